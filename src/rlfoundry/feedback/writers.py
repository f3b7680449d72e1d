"""Write export rows (a list of flat dicts) as JSONL, CSV, Parquet or a ``datasets`` dir.

The sink comes from ``to`` or else from the path's suffix: ``.jsonl``/``.json`` JSONL,
``.csv`` CSV, ``.parquet`` Parquet, no suffix a directory written with
``datasets.Dataset.save_to_disk`` (load it back with ``datasets.load_from_disk``).
CSV cells that hold lists (``responses``, ``models``) are JSON text; a missing value is
an empty cell. Files are written to a temporary name and renamed, so a failed export
leaves any earlier file as it was.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from rlfoundry.errors import RLFoundryError

SINKS = ("jsonl", "csv", "parquet", "datasets")
SUFFIXES = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    "": "datasets",
}


def sink_for(out: str, to: str | None = None) -> str:
    """The sink of ``out`` (explicit ``to`` wins); raises one sentence on a bad suffix."""
    if to is not None:
        if to not in SINKS:
            raise RLFoundryError(f"--to must be one of {', '.join(SINKS)}, got '{to}'.")
        return to
    suffix = Path(out).suffix.lower()
    if suffix not in SUFFIXES:
        raise RLFoundryError(
            f"Cannot tell the output format of '{out}' from its suffix; end it in .jsonl, "
            ".csv or .parquet, give a directory name without a suffix, or pass --to."
        )
    return SUFFIXES[suffix]


def check_sink(out: str, sink: str) -> None:
    """Fail before any work if the sink's library is missing or the target is taken."""
    if sink == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as e:
            raise RLFoundryError(
                "Parquet export needs pyarrow; pip install 'rlfoundry[feedback]'."
            ) from e
    if sink == "datasets":
        try:
            import datasets  # noqa: F401
        except ImportError as e:
            raise RLFoundryError(
                "A datasets directory needs the datasets package; pip install 'rlfoundry[llm]'."
            ) from e
        p = Path(out)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise RLFoundryError(
                f"'{out}' already exists and is not an empty directory; choose a new name."
            )


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(
            {
                k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                for k, v in r.items()
            }
        )
    return buf.getvalue()


def check_columns(rows: list[dict[str, Any]], sink: str) -> None:
    """Parquet and ``datasets`` need one type per column: a ``prompt`` that is text in
    some rows and a list of messages in others (single- and multi-turn items exported
    together) is refused with a way out, before anything is written."""
    if sink not in ("parquet", "datasets"):
        return
    kinds: dict[str, set[str]] = {}
    for r in rows:
        for k, v in r.items():
            if v is not None:
                kinds.setdefault(k, set()).add("list" if isinstance(v, list) else "scalar")
    mixed = sorted(k for k, v in kinds.items() if len(v) > 1)
    if mixed:
        raise RLFoundryError(
            f"Column(s) {', '.join(mixed)} hold text in some rows and lists (messages) in "
            f"others, which {sink} cannot store; export single- and multi-turn items "
            "separately (--project), or write JSONL or CSV."
        )


def write_rows(rows: list[dict[str, Any]], out: str, sink: str) -> None:
    from rlfoundry.runtime.config import atomic_write_text

    check_columns(rows, sink)
    if sink == "jsonl":
        atomic_write_text(out, to_jsonl(rows))
    elif sink == "csv":
        atomic_write_text(out, to_csv(rows))
    elif sink == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        tmp = f"{out}.tmp"
        pq.write_table(pa.Table.from_pylist(rows), tmp)
        os.replace(tmp, out)
    elif sink == "datasets":
        from datasets import Dataset

        Dataset.from_list(rows).save_to_disk(out)
    else:
        raise RLFoundryError(f"unknown sink '{sink}'")
