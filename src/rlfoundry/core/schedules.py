"""Schedules: a hyperparameter (exploration rate, step size) as a pure function of the step.

Pure functions of ``step`` rather than objects that count calls, so a resumed run only
needs the step to be back on its schedule, and the tabular agents can evaluate them in
their hot loop without state.

    constant:     v(t) = value
    linear:       v(t) = start + (end - start) * min(t / duration, 1)
    exponential:  v(t) = end + (start - end) * decay ** t

The exponential form decays the *gap* to ``end`` geometrically, so it approaches ``end``
and never crosses it (decay in (0, 1]). :func:`decay_rate` turns "close the gap to
``remaining`` of its size after ``duration`` steps" into that per-step ``decay``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Schedule = Callable[[int], float]
KINDS = ("constant", "linear", "exponential")


def constant_schedule(value: float, step: int) -> float:
    """``value`` at every step (the schedule of a hyperparameter that does not decay)."""
    return float(value)


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """``start`` at step 0, ``end`` from step ``duration`` on, a straight line between.

    ``duration <= 0`` means the decay is already over: ``end`` at every step.
    """
    if duration <= 0 or step >= duration:
        return float(end)
    return start + (end - start) * (step / duration)


def exponential_schedule(start: float, end: float, decay: float, step: int) -> float:
    """``end + (start - end) * decay ** step``: the gap to ``end`` shrinks by ``decay`` per step."""
    return end + (start - end) * decay**step


def decay_rate(duration: int, remaining: float = 0.01) -> float:
    """Per-step ``decay`` for :func:`exponential_schedule` that leaves ``remaining`` of the gap
    after ``duration`` steps: ``remaining ** (1 / duration)``.

    ``duration <= 0`` gives 0.0: ``start`` at step 0 (``0 ** 0 = 1``), ``end`` after.
    """
    if duration <= 0:
        return 0.0
    return remaining ** (1.0 / duration)


def make_schedule(
    kind: Literal["constant", "linear", "exponential"],
    start: float,
    end: float,
    duration: int,
) -> Schedule:
    """``step -> value`` for ``kind``; the exponential one leaves 1% of the gap at ``duration``."""
    if kind == "constant":
        return lambda step: float(start)
    if kind == "linear":
        return lambda step: linear_schedule(start, end, duration, step)
    if kind == "exponential":
        decay = decay_rate(duration)
        return lambda step: exponential_schedule(start, end, decay, step)
    raise ValueError(f"unknown schedule kind {kind!r}; use one of {', '.join(KINDS)}.")
