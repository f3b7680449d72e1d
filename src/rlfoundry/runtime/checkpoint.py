"""The checkpoint file: safetensors with a JSON state and a checksum, written so a crash
never leaves the run without a readable one.

    DIR/checkpoint.safetensors        the newest checkpoint
    DIR/checkpoint.prev.safetensors   the one before it (kept on every save)

A checkpoint is the tensors plus, in the safetensors metadata, ``state`` (JSON) and
``sha256``: the digest of every tensor (name, dtype, shape, bytes, in name order) and of
the state text. :func:`write` keeps the current file as the previous one (a hard link,
so it costs no space) and then replaces the current one atomically (temp file, fsync,
rename); at every instant both names hold a complete file. :func:`read` checks the
digest and turns every way a file can be damaged (truncated by a copy or a crash on a
filesystem without atomic rename, bytes flipped, not safetensors at all) into one
:class:`CheckpointError` sentence that says what is wrong and whether the previous
checkpoint is intact. Checkpoints written before the digest existed load unchecked.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime.config import atomic_write_bytes

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"

#: errno values that mean "the disk (or the quota) is full".
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


#: When a run checkpoints unless ``checkpoint_every`` says otherwise: every 60 s.
DEFAULT_CHECKPOINT_EVERY = "60s"

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_checkpoint_every(value: str | int | float | None) -> tuple[int, float]:
    """``checkpoint_every`` -> ``(steps, seconds)``; 0 steps / ``inf`` seconds = off.

    ``"1000"`` (or 1000): every 1000 steps; ``"60s"``, ``"5m"``, ``"1h"``: every so much
    wall time; ``"1000,60s"``: whichever comes first; ``"0"``: only the first, the last
    and those a stop asks for. None is :data:`DEFAULT_CHECKPOINT_EVERY`.
    """
    text = str(DEFAULT_CHECKPOINT_EVERY if value is None else value).replace(" ", "")
    steps, seconds = 0, math.inf
    for part in filter(None, text.lower().split(",")):
        unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if part.endswith(u)), "")
        try:
            number = float(part[: len(part) - len(unit)].replace("_", ""))
        except ValueError:
            number = -1.0
        if number < 0 or (not unit and not number.is_integer()):
            raise ConfigError(
                f"checkpoint_every must be steps (1000), a time (60s, 5m, 1h) or both "
                f"(1000,60s), got {value!r}; fix --set checkpoint_every."
            )
        if unit:
            seconds = number * _UNITS[unit] if number > 0 else math.inf
        else:
            steps = int(number)
    return steps, seconds


class CheckpointError(RLFoundryError):
    """A checkpoint that cannot be read (damaged) or written (disk full)."""


def digest(tensors: dict[str, torch.Tensor], state_text: str) -> str:
    """sha256 over every tensor (name, dtype, shape, raw bytes; in name order) and the state."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}\0{t.dtype}\0{list(t.shape)}\0".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    h.update(state_text.encode())
    return h.hexdigest()


def encode(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint file: ``tensors`` + ``state`` + their digest."""
    text = json.dumps(state)
    return st_save(tensors, metadata={"state": text, "sha256": digest(tensors, text)})


def _header(size: int, read: Callable[[int, int], bytes]) -> dict[str, Any]:
    """The safetensors header of a file of ``size`` bytes (``read(start, n)`` gives its
    bytes), checked against that size; ValueError saying what is wrong."""
    if size < 8:
        raise ValueError(f"it holds only {size} bytes")
    n = int.from_bytes(read(0, 8), "little")
    if n > size - 8:
        raise ValueError(f"it is truncated ({size} bytes, the header alone needs {n + 8})")
    try:
        header = json.loads(read(8, n))
    except ValueError:
        raise ValueError("its header is not valid JSON (not a safetensors file?)") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a safetensors header")
    try:
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (TypeError, KeyError, IndexError):
        raise ValueError("its header is not a safetensors header") from None
    need = 8 + n + max(ends, default=0)
    if size < need:
        raise ValueError(f"it is truncated ({size} of {need} bytes)")
    return header


def check_layout(path: str | os.PathLike) -> None:
    """Any safetensors file (a model's weights too) is as long as its header says, reading
    the header alone, not the tensors; ValueError saying what is wrong (cut short by a copy
    or a write that stopped, or not safetensors). It cannot see flipped bytes: only a
    checkpoint carries a checksum."""
    with open(path, "rb") as f:

        def read(start: int, n: int) -> bytes:
            f.seek(start)
            return f.read(n)

        _header(os.fstat(f.fileno()).st_size, read)


def decode(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, state)`` of a checkpoint's bytes; ValueError saying what is wrong."""
    header = _header(len(data), lambda start, n: data[start : start + n])
    try:
        tensors = st_load(data)
    except Exception as err:  # safetensors' SafetensorError and friends
        raise ValueError(f"safetensors cannot read it ({err})") from None
    meta = header.get("__metadata__") or {}
    text = meta.get("state", "{}")
    try:
        state = json.loads(text)
    except ValueError:
        raise ValueError("its JSON state is not valid JSON") from None
    if "sha256" in meta and digest(tensors, text) != meta["sha256"]:
        raise ValueError(
            "its checksum does not match its contents (the bytes changed after it was written)"
        )
    return tensors, state


def read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(tensors, state)`` of the checkpoint at ``path``; None if there is no file.

    Raises :class:`CheckpointError` (one sentence) for a damaged file.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return decode(path.read_bytes())
    except ValueError as err:
        raise CheckpointError(
            f"The checkpoint '{path}' is damaged: {err}; {_fallback(path)}"
        ) from None


def _fallback(path: Path) -> str:
    """What to do about a damaged ``path``: use the previous checkpoint, if one is intact."""
    prev = path.with_name(PREVIOUS)
    if path.name == CHECKPOINT and prev.exists():
        try:
            step = decode(prev.read_bytes())[1].get("step", "?")
        except ValueError:
            pass
        else:
            return (
                f"the previous checkpoint '{prev}' (step {step}) is intact, so use it with "
                f"`mv {prev} {path}` and run the command again (the steps after it are redone)."
            )
    return "no intact earlier checkpoint is kept, so start the run again with --overwrite."


def write(path: str | os.PathLike, data: bytes, keep_previous: bool = True) -> None:
    """Replace the checkpoint at ``path`` with ``data`` atomically, keeping the current
    one as :data:`PREVIOUS` first. On an OSError (a full disk: ``errno`` in
    :data:`DISK_FULL`) the current file is untouched."""
    path = Path(path)
    if keep_previous and path.exists():
        _keep_previous(path)
    atomic_write_bytes(path, data)


def _keep_previous(path: Path) -> None:
    prev, tmp = path.with_name(PREVIOUS), path.with_name(f".{PREVIOUS}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)  # no copy, no space: the same bytes under a second name
        os.replace(tmp, prev)
    except OSError:
        tmp.unlink(missing_ok=True)
        try:  # a filesystem without hard links: copy, atomically
            with open(path, "rb") as f:
                atomic_write_bytes(prev, f.read())
        except OSError:
            pass  # best effort: a stale or missing previous copy still loses nothing


def disk_full(
    path: Path, step: int, saved_step: int | None, resume_command: str | None
) -> CheckpointError:
    """One sentence for a write at ``step`` that found the disk full: nothing is lost."""
    kept = (
        f"the checkpoint of step {saved_step} is intact"
        if saved_step is not None
        else "no checkpoint was saved yet"
    )
    again = f"`{resume_command}`" if resume_command else "--resume"
    return CheckpointError(
        f"Cannot write '{path}' at step {step}: no space is left on the device (or the "
        f"quota is full); {kept}, so free some space and continue with {again}."
    )
