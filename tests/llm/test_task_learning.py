"""Learning tests of the seeds' task list on the built-in tiny model (seeded, CPU, CI-sized).

Thresholds come from several seeds (the figures are in each test and in docs/llm.md,
'The seeds' task list'); each bar is above what the trivial policies score where one
applies (tests/llm/test_task_suite.py measures those).
"""

from __future__ import annotations

import json

import pytest
import torch

from rlfoundry.api import train
from rlfoundry.runtime.plotting import read_metrics

torch.set_num_threads(1)


def _series(out, key):
    return [float(x) for x in read_metrics(out)[key] if x == x]


def test_grpo_raises_the_reward_model_score_of_dialogue_replies(tmp_path):
    """A reward model trained on the shipped feedback export (60 steps) ranks held-out
    pairs right >= 85% of the time, and GRPO from the random tiny model raises its
    score (20 steps x 32 replies). Seeds 0-3: held-out pairwise accuracy 94.9% each;
    reward lift (mean of the last three steps minus the first three) +1.62, +1.56,
    +2.50, +1.10 (about 12 CPU seconds a seed). No trivial policy applies: the bar is a
    lift of the policy's own score."""
    rm = train("llm-reward-model", out=tmp_path / "rm", progress=False,
               overrides={"task": "dialogue", "total_steps": 60, "eval_every": 0})  # fmt: skip
    assert rm["eval_accuracy"] >= 0.85, rm
    ov = {"model": "tiny", "task": f"dialogue:rm={tmp_path / 'rm'}", "rollout_size": 32,
          "group_size": 4, "minibatch_size": 16, "update_epochs": 2, "eval_every": 0,
          "eval_size": 0, "max_new_tokens": 8, "learning_rate": 3e-3, "warmup_steps": 0}  # fmt: skip
    train("llm-grpo", steps=20, out=tmp_path / "grpo", overrides=ov, progress=False)
    rew = _series(tmp_path / "grpo", "reward")
    lift = sum(rew[-3:]) / 3 - sum(rew[:3]) / 3
    assert lift >= DIALOGUE_MIN_LIFT, rew


DIALOGUE_MIN_LIFT = 0.5  # seeds 0-3: +1.10..+2.50


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="GRPO does not yet lift the greedy held-out pass rate of code at this budget",
)
def test_grpo_lifts_the_held_out_pass_rate_of_code(tmp_path):
    """SFT stops at 30% of training prompts passing their tests; GRPO (20 steps x 128
    completions, reward = share of unit tests passed in the sandbox) should lift the
    held-out pass rate (200 prompts, greedy, all three tests). Constant bodies pass no
    held-out prompt. It does not yet: measured at this commit (deterministic, the same
    under pytest and outside it), seeds 0-2, held-out pass rate after SFT -> after GRPO:
    61.5% -> 61.0%, 49.5% -> 52.5%, 49.5% -> 61.5% (only seed 2 clears the bar); 40 and 60
    steps, lr 1e-3 or temperature 1.0 did not lift seeds 0 and 1 either, although the
    training reward rises (seed 0: 0.42 -> 0.63). SFT's sudden jump in accuracy makes
    the starting point chaotic. The strict xfail turns a pass into a failure, so this
    test is revisited when a recipe lifts every seed. About 35-50 CPU seconds a seed."""
    sft = {"task": "code", "target_accuracy": 0.3, "total_steps": 1000, "eval_every": 0,
           "eval_size": 100, "check_every": 25}  # fmt: skip
    train("llm-sft", out=tmp_path / "sft", overrides=sft, progress=False)
    ov = {"model": str(tmp_path / "sft"), "task": "code", "rollout_size": 128, "group_size": 8,
          "minibatch_size": 64, "update_epochs": 2, "temperature": 0.7, "learning_rate": 3e-4,
          "eval_every": 20, "eval_size": 200}  # fmt: skip
    train("llm-grpo", steps=20, out=tmp_path / "grpo", overrides=ov, progress=False)
    before, after = _series(tmp_path / "grpo", "eval_accuracy")
    print(json.dumps({"before": before, "after": after}))
    assert after >= before + CODE_MIN_LIFT and after >= CODE_MIN_AFTER, (before, after)


CODE_MIN_LIFT = 0.04  # the goal: a lift clear of greedy decoding's seed-to-seed noise
CODE_MIN_AFTER = 0.45  # the goal; constant bodies pass 0


QA_MIN_F1 = 0.65  # seeds 0-2: 0.758..0.830; the trivial policies 0.60 at best


def _llm_eval(run_dir, task: str, capsys) -> dict:
    """`rlfoundry llm eval RUN --task TASK --reward task`: held-out mean reward and accuracy."""
    from rlfoundry.cli.main import main

    capsys.readouterr()
    args = ["llm", "eval", str(run_dir), "--task", task, "--reward", "task", "-n", "200"]
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# task: (SFT target accuracy on training prompts, step budget, held-out mean reward bar,
# held-out accuracy bar); the measured seeds are in the test's docstring
SFT_BARS = {
    "summarize": (0.5, 600, 0.75, 0.0),
    "qa": (0.75, 800, QA_MIN_F1, 0.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(SFT_BARS))
def test_sft_lifts_the_held_out_score_above_the_trivial_policies(tmp_path, task, capsys):
    """SFT of the random tiny model until its greedy answers pass on `target` of the
    training prompts (or the step budget), then the held-out score (200 prompts) by
    `rlfoundry llm eval --reward task`. A random model scores about 0.

    summarize, mean ROUGE-L: seeds 0-2 0.984, 0.946, 0.852 (accuracy, ROUGE-L >= 0.9:
    90.5%, 68%, 11.5%; seed 2 had not yet made the jump the others made at step 225-250
    when its 600 steps ran out). Bar 0.75, above every trivial policy: the whole
    document 0.55, a fixed template sentence ~0.5 (the untrimmed lead sentence scores
    0.857, a heuristic rather than a trivial policy).

    qa, mean SQuAD F1: seeds 0-2 0.758, 0.830, 0.765 (exact match 54.5%, 72.5%, 57.5%;
    seed 1 reached the target at step 525, seeds 0 and 2 ran the 800 steps). Answering with the first or the second fact, the
    trivial policies, scores F1 0.60 / 0.55 (exact match 0.54 / 0.48)."""
    target, steps, min_reward, min_acc = SFT_BARS[task]
    ov = {"task": task, "target_accuracy": target, "total_steps": steps, "eval_every": 0,
          "eval_size": 100, "check_every": 25}  # fmt: skip
    train("llm-sft", out=tmp_path / "sft", overrides=ov, progress=False)
    res = _llm_eval(tmp_path / "sft", task, capsys)
    print(json.dumps(res))
    assert res["mean_reward"] >= min_reward and res["accuracy"] >= min_acc, res
