"""Datasets the way TRL users have them: any file, a saved `datasets` directory, a hub name.

    table = load_table("train.parquet")          # JSONL, JSON, CSV, Parquet, save_to_disk dir
    table = load_table("openai/gsm8k:main@test")  # hub NAME[:CONFIG][@SPLIT], when online
    cols = require(table, "sft")                  # the columns of the format found, or raises
    table.rows[0]                                 # {"messages": [{"role": ..., "content": ...}]}

The format is read from the columns, as TRL reads it (Hugging Face's dataset formats):

    prompt                        RL prompts (GRPO, RLOO, PPO, eval, generate)
    prompt + completion           SFT pairs
    messages                      SFT on a conversation: list of {role, content}
    text                          pre-training (and SFT on every token)
    prompt + chosen + rejected    preference pairs (reward model, DPO); chosen + rejected
                                  alone when both are conversations sharing their prompt

`prompt`, `completion`, `chosen` and `rejected` may each be plain text or a list of
messages (the conversational variants); `chat_format` renders them for a model. Every
other column is kept: RL stages pass it to reward functions by name.

JSONL files are read line by line (errors name the line); the other formats go through
`datasets.load_dataset` / `load_from_disk`, into a throw-away cache. A name that is not a
local path is tried on the Hugging Face Hub, and offline that fails in one sentence.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rlfoundry.errors import RLFoundryError

#: File suffixes read as data, and the `datasets` builder of each.
BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}

#: Per use, the column sets that satisfy it, in order of preference.
FORMATS: dict[str, list[tuple[str, ...]]] = {
    "prompts": [("prompt",)],
    "sft": [("messages",), ("prompt", "completion"), ("text",)],
    "preference": [("prompt", "chosen", "rejected"), ("chosen", "rejected")],
    "text": [("text",)],
}
_USES = {
    "prompts": "RL prompts",
    "sft": "SFT",
    "preference": "preference training",
    "text": "pre-training",
}
_CONVERSATIONAL = {"prompt", "completion", "chosen", "rejected", "messages"}


@dataclass
class Table:
    """The rows of a dataset, as dicts, and where they came from (for messages)."""

    source: str
    rows: list[dict[str, Any]]
    lines: list[int] | None = None
    """Line number of each row in a JSONL file (errors name it); None for other formats."""
    columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.columns:
            seen: dict[str, None] = {}
            for row in self.rows:
                seen.update(dict.fromkeys(row))
            self.columns = list(seen)

    def where(self, i: int) -> str:
        """'line N' (JSONL) or 'row N' (other formats) of row `i`, counted from 1."""
        return f"line {self.lines[i]}" if self.lines else f"row {i + 1}"

    def column(self, name: str) -> list[Any]:
        """The values of column `name`, None where a row lacks it."""
        return [row.get(name) for row in self.rows]


# ---------------------------------------------------------------------- loading


def load_table(source: str | os.PathLike) -> Table:
    """The rows of a local file or directory, or of a hub dataset `NAME[:CONFIG][@SPLIT]`.

    A missing local path, an unreadable file, an empty dataset or an unreachable hub
    raises one RLFoundryError naming the cause and the fix.
    """
    text = str(source)
    path = Path(text).expanduser()
    split = None
    if not path.exists() and "@" in text:  # DIR@test, NAME@test
        base, _, split = text.rpartition("@")
        if Path(base).expanduser().exists():
            path = Path(base).expanduser()
    if path.is_file():
        table = _load_file(path)
    elif path.is_dir():
        table = _load_dir(path, split)
    elif _looks_local(text):
        raise RLFoundryError(f"Data file '{text}' does not exist; check the path.")
    else:
        table = _load_hub(text)
    if not table.rows:
        raise RLFoundryError(f"Dataset '{text}' holds no rows; add at least one example.")
    return table


def _looks_local(text: str) -> bool:
    """A path, not a hub name: a data file suffix, a leading . / ~, a backslash, or more
    than one '/' (hub names are NAME or OWNER/NAME)."""
    base = text.split("@")[0].split(":")[0]
    return (
        Path(base).suffix.lower() in BUILDERS
        or text.startswith((".", "/", "~"))
        or "\\" in text
        or base.count("/") > 1
    )


def _load_file(path: Path) -> Table:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    builder = BUILDERS.get(suffix)
    if builder is None:
        raise RLFoundryError(
            f"Data file '{path}' has the suffix '{path.suffix}', which is not a data format "
            "rlfoundry reads; use .jsonl, .json, .csv or .parquet."
        )
    import datasets

    kwargs: dict[str, Any] = {}
    if builder == "csv":  # "19" stays the text "19" in the text columns, not the number 19
        with path.open(encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
        kwargs["converters"] = {c: str for c in header if c in _CONVERSATIONAL | {"text"}}
    try:
        with _quiet(), tempfile.TemporaryDirectory() as cache:
            ds = datasets.load_dataset(
                builder,
                data_files=str(path),
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
                **kwargs,
            )
            return Table(str(path), ds.to_list(), columns=list(ds.column_names))
    except Exception as err:
        raise RLFoundryError(
            f"Cannot read '{path}' as {builder.upper()} ({type(err).__name__}: "
            f"{_first_line(err)}); check that the file is valid {builder.upper()}."
        ) from None


def _read_jsonl(path: Path) -> Table:
    rows, lines = [], []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RLFoundryError(
                    f"'{path}' line {lineno} is not valid JSON ({err.msg}); "
                    "write one JSON object per line."
                ) from None
            if not isinstance(row, dict):
                raise RLFoundryError(
                    f"'{path}' line {lineno} is not a JSON object; write one object per line."
                )
            rows.append(row)
            lines.append(lineno)
    return Table(str(path), rows, lines)


def _load_dir(path: Path, split: str | None) -> Table:
    import datasets

    saved = (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()
    try:
        with _quiet():
            ds = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))
    except Exception as err:
        raise RLFoundryError(
            f"Cannot read the directory '{path}' as a dataset ({type(err).__name__}: "
            f"{_first_line(err)}); pass a directory written by save_to_disk, or a data file."
        ) from None
    return Table(str(path), _pick_split(ds, split, str(path)).to_list())


def _pick_split(ds: Any, split: str | None, name: str) -> Any:
    """A `Dataset` from a `DatasetDict`: `split`, else 'train', else its only split."""
    if not hasattr(ds, "keys"):
        return ds
    names = list(ds.keys())
    if split is None:
        split = "train" if "train" in names or len(names) != 1 else names[0]
    if split not in names:
        raise RLFoundryError(
            f"Dataset '{name}' has no split '{split}'; its splits are {', '.join(names)} "
            f"(choose one with {name}@SPLIT)."
        )
    return ds[split]


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub endpoint answers a TCP connection within `timeout` s
    (checked first, so an offline machine fails at once instead of after retries)."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_env() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _load_hub(spec: str) -> Table:
    """`NAME[:CONFIG][@SPLIT]` from the hub (or its local cache when HF_HUB_OFFLINE=1)."""
    rest, _, split = spec.partition("@")
    name, _, config = rest.partition(":")
    fix = (
        "pass a local file (.jsonl, .json, .csv, .parquet) or a directory written by "
        "datasets' save_to_disk instead"
    )
    if not _offline_env() and not hub_reachable():
        raise RLFoundryError(
            f"'{spec}' is not a local file or directory, and the Hugging Face Hub is "
            f"unreachable from here to load it as a hub dataset; {fix}."
        )
    import datasets

    try:
        with _quiet():
            ds = datasets.load_dataset(name, config or None, split=split or None)
    except Exception as err:
        raise RLFoundryError(
            f"'{spec}' is not a local file or directory, and loading it as a hub dataset "
            f"failed ({type(err).__name__}: {_first_line(err)}); {fix}."
        ) from None
    return Table(spec, _pick_split(ds, split or None, name).to_list())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No `datasets` progress bars or info logs inside (a run shows its own progress)."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    level = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)
        if was:
            datasets.enable_progress_bars()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else "no detail"


# ---------------------------------------------------------------------- formats


def require(table: Table, use: str) -> tuple[str, ...]:
    """The columns of the first format of `use` (see FORMATS) that `table` has.

    Raises, before any training, when none fits (naming the columns found and those
    needed) or when a row lacks one of them or holds something other than text (or, for
    the conversational columns, a list of {role, content} messages).
    """
    found = set(table.columns)
    for cols in FORMATS[use]:
        if set(cols) <= found:
            _check_rows(table, cols)
            return cols
    needed = " or ".join("+".join(c) for c in FORMATS[use])
    have = ", ".join(table.columns) or "none"
    raise RLFoundryError(
        f"Dataset '{table.source}' has the columns {have}, but {_USES[use]} needs {needed}; "
        "rename its columns to one of these formats (docs/llm.md, 'Data formats')."
    )


def _check_rows(table: Table, cols: tuple[str, ...]) -> None:
    need = ", ".join(cols)
    for i, row in enumerate(table.rows):
        for key in cols:
            value = row.get(key)
            if value is None:
                raise RLFoundryError(
                    f"'{table.source}' {table.where(i)} has no field '{key}'; every row "
                    f"needs {need}."
                )
            msgs = "a list of {role, content} messages"
            if key == "messages":
                ok, kind = is_conversation(value), msgs
            elif key in _CONVERSATIONAL:
                ok, kind = isinstance(value, str) or is_conversation(value), f"text or {msgs}"
            else:
                ok, kind = isinstance(value, str), "text"
            if ok:
                continue
            raise RLFoundryError(
                f"'{table.source}' {table.where(i)}: field '{key}' is "
                f"{type(value).__name__}, not {kind}; store it as {kind}."
            )


def is_conversation(value: Any) -> bool:
    """A list of messages: dicts with a string `role` and a string `content`."""
    return isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    )
