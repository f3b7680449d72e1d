"""Schedules against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from rlfoundry.core.schedules import (
    constant_schedule,
    decay_rate,
    exponential_schedule,
    linear_schedule,
    make_schedule,
)


def test_constant():
    assert constant_schedule(0.3, 0) == 0.3
    assert constant_schedule(0.3, 10**9) == 0.3


def test_linear_hand_values():
    # 1.0 -> 0.1 over 100 steps: slope -0.009 per step
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 90) == pytest.approx(0.19)
    assert linear_schedule(1.0, 0.1, 100, 100) == 0.1
    assert linear_schedule(1.0, 0.1, 100, 1_000) == 0.1  # stays at the end
    assert linear_schedule(0.0, 2.0, 4, 1) == 0.5  # increasing works too
    assert linear_schedule(1.0, 0.1, 0, 0) == 0.1  # no decay window: already at the end


def test_exponential_hand_values():
    # gap 0.9 halves every step: 1.0, 0.55, 0.325, 0.2125
    assert exponential_schedule(1.0, 0.1, 0.5, 0) == 1.0
    assert exponential_schedule(1.0, 0.1, 0.5, 1) == pytest.approx(0.55)
    assert exponential_schedule(1.0, 0.1, 0.5, 2) == pytest.approx(0.325)
    assert exponential_schedule(1.0, 0.1, 0.5, 3) == pytest.approx(0.2125)
    assert exponential_schedule(1.0, 0.1, 0.5, 200) == pytest.approx(0.1)
    assert exponential_schedule(1.0, 0.1, 0.5, 200) >= 0.1  # never crosses the end


def test_decay_rate_leaves_the_requested_gap():
    assert decay_rate(2, remaining=0.25) == pytest.approx(0.5)
    assert decay_rate(100) ** 100 == pytest.approx(0.01)
    assert decay_rate(0) == 0.0


def test_make_schedule():
    lin = make_schedule("linear", 1.0, 0.0, 10)
    assert [lin(t) for t in (0, 5, 10, 20)] == [1.0, 0.5, 0.0, 0.0]
    exp = make_schedule("exponential", 1.0, 0.0, 10)  # 1% of the gap left at step 10
    assert exp(0) == 1.0 and exp(10) == pytest.approx(0.01) and exp(5) == pytest.approx(0.1)
    const = make_schedule("constant", 0.7, 0.0, 10)
    assert const(0) == const(10**6) == 0.7
    with pytest.raises(ValueError, match="cosine"):
        make_schedule("cosine", 1.0, 0.0, 10)  # type: ignore[arg-type]
    assert not math.isnan(make_schedule("exponential", 1.0, 0.0, 0)(0))
