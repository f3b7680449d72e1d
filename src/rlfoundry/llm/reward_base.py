"""What every reward source is, and the check its scores pass through.

A reward source scores a batch of (prompt, completion) strings, and may read the other
columns of the prompts' dataset (TRL's convention: one list per column, by name):

    source.score(prompts: list[str], completions: list[str], **columns) -> list[float]  # [B]

    def my_reward(prompt, completion, answer): ...               # one pair, `answer` column
    def my_reward(prompts, completions, answer, **kwargs): ...   # a batch, TRL-style

`call_with_columns` hands a function the columns it names (all of them when it takes
`**kwargs`); `needed_columns` lists those it cannot do without, so a dataset lacking one
fails before training. A `@verifier` returns 1.0 for a correct completion and 0.0
otherwise: `llm eval` reports the share of 1.0s as accuracy.

Every score passes through `checked`: a source that raises, or returns NaN/inf or
something that is not a number, stops training with one RLFoundryError naming the
source and quoting the prompt and completion that caused it. Nothing is written on
that path, so checkpoints already on disk (written atomically by `Run`) stay intact
and the run can be resumed once the reward is fixed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlfoundry.errors import RLFoundryError

Columns = dict[str, list[Any]]
"""Extra dataset columns of a batch: name -> one value per completion."""


def _short(text: str, n: int = 200) -> str:
    text = repr(text)
    return text if len(text) <= n else text[: n - 4] + "...'"


def batched(fn: Callable) -> Callable:
    """Mark `fn(prompts, completions, ...) -> list[float]` as scoring a whole batch at once."""
    fn.batched = True  # type: ignore[attr-defined]
    return fn


def verifier(fn: Callable) -> Callable:
    """Mark `fn` as a verifier: 1.0 for a correct completion, 0.0 otherwise (its share of
    1.0s is the accuracy `llm eval` reports)."""
    fn.verifier = True  # type: ignore[attr-defined]
    return fn


class RewardSource:
    """Base of every source: a name for messages and logs, a batched `score`, and
    `hits` (which completions count as correct) when it is a verifier."""

    name = "reward"
    needs: tuple[str, ...] = ()
    """Dataset columns the source cannot score without."""

    def score(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        raise NotImplementedError

    def metrics(self) -> dict[str, float]:
        """Numbers about the last batch to log beside the rewards ({} for most sources)."""
        return {}

    def hits(self, prompts: list[str], completions: list[str], scores: list[float]) -> Any:
        """Per completion, whether it is correct; None for a source that is no verifier."""
        return None

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return checked(self, prompts, completions, columns)


# ---------------------------------------------------------------------- columns


def _params(fn: Callable) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def takes_batches(fn: Callable) -> bool:
    """Decorated `@batched`, or its first two parameters are named `prompts, completions`."""
    params = _params(fn)
    named = [p.name for p in params[:2]] if params else []
    return bool(getattr(fn, "batched", False)) or named == ["prompts", "completions"]


def call_with_columns(fn: Callable, columns: Columns) -> Columns:
    """The columns `fn` takes after its (prompt, completion) pair: every one when it has
    `**kwargs`, else those it names. Never the names of its first two parameters."""
    params = _params(fn)
    if params is None:
        return {}
    first = {p.name for p in params[:2]}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return {k: v for k, v in columns.items() if k not in first}
    named = {p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in columns.items() if k in named}


def needed_columns(fn: Callable) -> tuple[str, ...]:
    """Parameters after the (prompt, completion) pair that have no default: the dataset
    columns `fn` needs."""
    params = _params(fn) or []
    return tuple(
        p.name
        for p in params[2:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty
    )


def row(columns: Columns, i: int) -> dict[str, Any]:
    """The columns' values at completion `i`."""
    return {k: v[i] for k, v in columns.items()}


# ---------------------------------------------------------------------- the check


def _fail(source: RewardSource, what: str, prompt: str, completion: str) -> RLFoundryError:
    return RLFoundryError(
        f"Reward '{source.name}' {what} for prompt {_short(prompt)} and completion "
        f"{_short(completion)}; fix the reward so it returns a finite number for every input."
    )


def _as_float(value: Any) -> float | None:
    """A plain float from an int/float/bool/NumPy scalar/0-d tensor, else None."""
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    if isinstance(value, np.ndarray):
        return float(value.item()) if value.size == 1 else None
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "__float__") and not isinstance(value, (str, bytes)):
        return float(value)
    return None


def checked(
    source: RewardSource,
    prompts: list[str],
    completions: list[str],
    columns: Columns | None = None,
) -> list[float]:
    """`source.score(...)` with every failure turned into one RLFoundryError (see module doc)."""
    columns = columns or {}
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions.")
    for k, v in columns.items():
        if len(v) != len(prompts):
            raise ValueError(f"Column '{k}' has {len(v)} values for {len(prompts)} completions.")
    try:
        out = source.score(prompts, completions, **columns)
    except RLFoundryError:
        raise
    except Exception as err:
        i = _find_raising(source, prompts, completions, columns)
        raise _fail(
            source, f"raised {type(err).__name__}: {err}", prompts[i], completions[i]
        ) from err
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().reshape(-1).tolist()
    try:
        out = list(out)
    except TypeError:
        raise _fail(
            source, f"returned {type(out).__name__}, not a list", prompts[0], completions[0]
        ) from None
    if len(out) != len(prompts):
        raise RLFoundryError(
            f"Reward '{source.name}' returned {len(out)} scores for a batch of {len(prompts)} "
            "completions; return one number per completion."
        )
    vals = []
    for p, c, v in zip(prompts, completions, out):
        f = _as_float(v)
        if f is None:
            raise _fail(source, f"returned {v!r} ({type(v).__name__}), not a number", p, c)
        if not math.isfinite(f):
            raise _fail(source, f"returned {f}", p, c)
        vals.append(f)
    return vals


def _find_raising(
    source: RewardSource, prompts: list[str], completions: list[str], columns: Columns
) -> int:
    """Index of the first pair that makes `source` raise on its own (0 if none does)."""
    if len(prompts) == 1:
        return 0
    for i, (p, c) in enumerate(zip(prompts, completions)):
        try:
            source.score([p], [c], **{k: [v[i]] for k, v in columns.items()})
        except Exception:
            return i
    return 0
