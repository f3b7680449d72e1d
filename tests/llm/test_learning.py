"""Learning tests (seeded, CPU, CI budget): the thresholds of the acceptance criteria.

- GRPO lifts the held-out exact match of the SFT model on arithmetic by >= 20 points,
  to at least 50% (pre-training and SFT of the nano model included in the test: the
  default `rlfoundry llm pipeline`, 62 CPU seconds for seed 0);
- from a weak SFT start (10% instead of 30%) GRPO with dynamic sampling still lifts
  it by >= 14 points;
- the reward model reaches >= 90% pairwise accuracy on held-out sentiment pairs;
- DPO raises the held-out chosen-vs-rejected margin.
"""

from __future__ import annotations

import json
import time

import pytest
import torch

from rlfoundry.api import train
from rlfoundry.llm.pipeline import run_pipeline

torch.set_num_threads(1)


@pytest.mark.slow
def test_grpo_lifts_sft_accuracy_by_20_points(tmp_path):
    """What the recipe must do: turn a partial SFT model (it stops at 30% on training
    prompts) into one that answers at least half of the held-out sums, a lift of at
    least 20 points. Measured (980 held-out sums, seeds 0-4): +33.9 to +45.3 points,
    67-88% after; with other floating-point rounding (AVX2 kernels, MKL compatibility
    mode: another CPU's numbers) +25.2 to +53.1, 59-88% after. So the margin is >= 13
    points on this machine and >= 5 on the worst of the 15 runs; seed 0 itself: +31.9
    to +34.1 on the three paths. The stages before GRPO are chaotic: a CPU with other
    rounding gets other numbers, which is why the threshold is not one run's result."""
    t0 = time.process_time()
    res = run_pipeline(task="arithmetic", out=tmp_path, progress=False, seed=0)
    lift = res["accuracy_after"] - res["accuracy_before"]
    print(json.dumps(res), f"{time.process_time() - t0:.0f} CPU s")
    assert lift >= 0.20, res
    assert res["accuracy_after"] >= 0.50, res


@pytest.mark.slow
def test_dynamic_sampling_lifts_grpo_from_a_weak_sft_start(tmp_path):
    """Off the tuned path: SFT stopped at 10% instead of 30% on training prompts, so
    most groups of 8 samples are all wrong and carry no gradient. Measured (980
    held-out sums, seeds 0-4, SFT 5.8-13.2%): plain GRPO +1.6 to +23.5 points (seed 2,
    the one here, +1.6; +4.4 with 400 rollouts, the same wall time as dynamic sampling);
    with `dynamic_sampling=true` +16.9 to +47.3 (seed 2: 7.8% -> 40.5%). Bar: the
    lowest of the five minus two binomial standard errors of its accuracy (2 x 1.3
    points), so >= 14 points and >= 20% after (docs/llm.md, "A weak SFT start")."""
    res = run_pipeline(
        task="arithmetic",
        out=tmp_path,
        progress=False,
        seed=2,
        sft_overrides={"target_accuracy": 0.1},
        grpo_overrides={"dynamic_sampling": True},
    )
    print(json.dumps(res))
    assert res["accuracy_before"] <= 0.2, res  # the weak start this test is about
    assert res["accuracy_after"] - res["accuracy_before"] >= 0.14, res
    assert res["accuracy_after"] >= 0.20, res


@pytest.mark.slow
def test_reward_model_sentiment_accuracy(tmp_path):
    s = train("llm-reward-model", out=tmp_path / "rm", task="sentiment", progress=False)
    print(json.dumps(s))
    assert s["eval_accuracy"] >= 0.90, s


@pytest.mark.slow
def test_dpo_raises_held_out_margin(tmp_path):
    s = train("llm-dpo", out=tmp_path / "dpo", model="tiny", task="sentiment", progress=False)
    print(json.dumps(s))
    # the policy's own preference for the chosen completion grew ...
    assert s["eval_logp_margin"] > s["logp_margin_before"] + 1.0, s
    # ... which is what the implicit reward measures against the frozen reference
    assert s["eval_reward_margin"] > 0 and s["eval_reward_accuracy"] >= 0.8, s
