"""TensorBoard scalars of one metrics row, as one event."""

from __future__ import annotations

import math
from typing import Any


def write_scalars(writer: Any, values: dict[str, float], step: int) -> None:
    """The finite `values` as one TensorBoard event of `writer` (a SummaryWriter): the
    scalars `add_scalar` would write (same tags and simple values), one event instead of
    one per scalar (a protobuf, a queue hand-off and a record each: most of the cost of a
    step's log on a small model)."""
    try:
        from tensorboard.compat.proto.summary_pb2 import Summary
    except ImportError:  # not the tensorboard package: the writer's own path
        for key, value in values.items():
            if math.isfinite(value):
                writer.add_scalar(key, value, step)
        return
    items = [Summary.Value(tag=k, simple_value=v) for k, v in values.items() if math.isfinite(v)]
    if items:
        writer._get_file_writer().add_summary(Summary(value=items), step)
