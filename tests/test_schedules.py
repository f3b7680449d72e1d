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
    warmup_cosine,
    warmup_cosine_schedule,
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


def test_warmup_cosine_hand_values():
    # warm-up 4 steps: 1/4, 2/4, 3/4, 4/4, then cosine from 1 to 0.1 over total - warmup = 10
    f = [warmup_cosine_schedule(4, 14, 0.1, t) for t in range(16)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == 1.0  # cos(0) = 1: the peak, once more
    assert f[9] == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi / 2) = 0
    assert f[14] == pytest.approx(0.1) and f[15] == pytest.approx(0.1)  # ends, then stays
    assert all(a >= b for a, b in zip(f[3:], f[4:]))  # never rises after the warm-up
    # min_ratio 1: constant after the warm-up, exactly (token PPO's schedule)
    assert [warmup_cosine_schedule(2, 10, 1.0, t) for t in range(5)] == [0.5, 1.0, 1.0, 1.0, 1.0]
    # no warm-up: the decay starts at step 0
    assert warmup_cosine_schedule(0, 10, 0.0, 0) == 1.0
    assert warmup_cosine_schedule(0, 10, 0.0, 10) == pytest.approx(0.0, abs=1e-12)
    sched = warmup_cosine(4, 14, 0.1)
    assert [sched(t) for t in range(16)] == f


def test_warmup_cosine_drives_lambda_lr_and_is_not_stored():
    import torch

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(2, 6, 0.5))
    lrs = []
    for _ in range(7):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:3] == [1.0, 2.0, 2.0] and lrs[6] == pytest.approx(1.0)
    # a plain function: torch stores nothing of it in the state dict (the config rebuilds it)
    assert sched.state_dict()["lr_lambdas"] == [None]
