"""Schedules: a hyperparameter (exploration rate, step size) as a pure function of the step.

Pure functions of ``step`` rather than objects that count calls, so a resumed run only
needs the step to be back on its schedule, and the tabular agents can evaluate them in
their hot loop without state.

    constant:     v(t) = value
    linear:       v(t) = start + (end - start) * min(t / duration, 1)
    exponential:  v(t) = end + (start - end) * decay ** t
    warmup-cosine (a learning-rate multiplier, the LLM stages' schedule):
                  v(t) = (t + 1) / warmup                                   t < warmup
                  v(t) = m + (1 - m) * (1 + cos(pi * min(1, (t - warmup) / (total - warmup)))) / 2

The exponential form decays the *gap* to ``end`` geometrically, so it approaches ``end``
and never crosses it (decay in (0, 1]). :func:`decay_rate` turns "close the gap to
``remaining`` of its size after ``duration`` steps" into that per-step ``decay``.
"""

from __future__ import annotations

import math
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


def warmup_cosine_schedule(warmup: int, total: int, min_ratio: float, step: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``.

    A multiplier of the peak learning rate (``torch.optim.lr_scheduler.LambdaLR``): step 0
    already trains at ``1 / warmup`` of it, not at 0, so the first step is never wasted.
    ``min_ratio = 1`` is a constant rate after the warm-up (exactly 1.0); ``warmup = 0``
    starts the decay at once. Loshchilov & Hutter 2017 (SGDR) for the cosine; the warm-up
    as in Goyal et al. 2017.
    """
    if step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))


def warmup_cosine(warmup: int, total: int, min_ratio: float = 0.0) -> Schedule:
    """``step -> multiplier`` of :func:`warmup_cosine_schedule`, for ``LambdaLR``.

    A plain function (not a ``functools.partial``): torch saves only callable *objects*'
    state in the scheduler's ``state_dict``, and the schedule comes from the config anyway.
    """
    return lambda step: warmup_cosine_schedule(warmup, total, min_ratio, step)


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
