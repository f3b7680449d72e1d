"""Transfer and lifelong learning: the metrics by hand, the warm start, seeded transfer
and forgetting runs on GridWorld layouts, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlfoundry.cli.main import main
from rlfoundry.errors import ConfigError
from rlfoundry.experiments import transfer as T

torch.set_num_threads(1)
ENV = "rlfoundry/GridWorld-v0"


def test_time_to_threshold_by_hand():
    steps = np.array([0, 50, 100, 150])
    assert T.time_to_threshold(steps, np.array([-4.0, 0.2, 0.8, 0.8]), 0.8) == 100
    assert T.time_to_threshold(steps, np.array([0.9, -4.0, 0.8, 0.8]), 0.8) == 0
    assert T.time_to_threshold(steps, np.array([-4.0, -4.0, 0.5, 0.6]), 0.8) == float("inf")


def test_forgetting_by_hand():
    # row i: returns on tasks 0..2 after learning task i
    R = np.array(
        [
            [0.8, -4.0, -4.0],
            [0.5, 0.7, -4.0],
            [-1.0, 0.7, 0.6],
        ]
    )
    # task 0: 0.8 right after learning it, -1.0 at the end; task 1: 0.7 and 0.7
    assert T.forgetting(R) == pytest.approx([1.8, 0.0])
    assert T.max_forgetting(R) == pytest.approx([1.8, 0.0])
    assert T.backward_transfer(R) == pytest.approx(-0.9)
    # the best on task 0 came after learning it (0.9 > 0.8): max_forgetting counts from there
    R2 = R.copy()
    R2[1, 0] = 0.9
    assert T.forgetting(R2)[0] == pytest.approx(1.8)
    assert T.max_forgetting(R2)[0] == pytest.approx(1.9)


def test_warm_start_begins_from_the_given_table():
    """The fine-tune's step-0 score is the source table's, and with a tiny budget the
    table it ends with is still close to it (the algorithm really started there)."""
    score = T.exact_scorer(ENV, {"layout": T.BRIDGE})
    _, vals, q_src = T.train_curve("qlearning", ENV, {"layout": T.BRIDGE}, 3000, 0, 500, score)
    assert vals[-1] == pytest.approx(0.8)  # learned: the 6-step bridge, 1 - 5 * 0.04
    steps, vals2, q2 = T.train_curve(
        "qlearning", ENV, {"layout": T.BRIDGE}, 5, 1, 5, score, q0=q_src
    )
    assert list(steps) == [0, 5] and vals2[0] == pytest.approx(0.8)
    assert np.abs(q2 - q_src).max() < 0.5 and (q2 != q_src).sum() <= 5  # 5 TD updates
    _, vals3, _ = T.train_curve("qlearning", ENV, {"layout": T.BRIDGE}, 5, 1, 5, score)
    assert vals3[0] == pytest.approx(-4.0)  # zero table: never reaches G in 100 steps


def test_transfer_reaches_the_target_optimum_in_fewer_steps_than_scratch():
    """Seeds 0-1, source BRIDGE, target START_MOVED (start moved to a corner), 2,000 steps
    each; threshold: the target's optimum (0.68). Measured: the fine-tune gets there
    within ~50-100 steps, scratch after ~1,200."""
    cfg = T.FinetuneConfig(seeds=[0, 1], source_steps=2000, target_steps=2000)
    res = T.run_finetune(cfg)
    assert res["threshold"] == pytest.approx(0.68)
    for s in res["per_seed"]:
        assert s["source_final_return"] == pytest.approx(0.8)
        assert s["steps_to_threshold_finetune"] < s["steps_to_threshold_scratch"], s
        assert s["asymptotic_return_finetune"] == pytest.approx(0.68)
    assert res["mean"]["area_finetune"] > res["mean"]["area_scratch"]


def test_shortcut_gives_a_jumpstart_but_a_worse_asymptote():
    """Source DETOUR (corridor), target BRIDGE (the shortcut opens). The source's corridor
    policy works at once (jumpstart 0.56 - (-4) = 4.56), but the greedy fine-tune never
    tries the bridge within 3,000 steps, so its asymptote stays at 0.56 < 0.80."""
    cfg = T.FinetuneConfig(
        source={"layout": T.DETOUR}, target={"layout": T.BRIDGE}, seeds=[0], threshold=0.5
    )
    res = T.run_finetune(cfg)
    s = res["per_seed"][0]
    assert s["jumpstart"] == pytest.approx(4.56)
    assert s["steps_to_threshold_finetune"] == 0 < s["steps_to_threshold_scratch"]
    assert s["asymptotic_return_finetune"] < s["asymptotic_return_scratch"]


def test_forgetting_on_a_hand_checkable_sequence():
    """Open 7x7 room, goal in the top-left then the top-right corner. Each optimum is
    6 steps (1 - 5 * 0.04 = 0.8); a policy that never reaches G scores 100 * -0.04 = -4.
    Task 0 is learned (0.8), then fully forgotten (-4): forgetting 4.8. Repeating task 0
    instead forgets nothing."""
    cfg = T.LifelongConfig(tasks=[{"layout": T.CORNERS[0]}, {"layout": T.CORNERS[1]}], seeds=[0])
    res = T.run_lifelong(cfg)
    R = np.asarray(res["per_seed"][0]["R"])
    assert R[0, 0] == pytest.approx(0.8) and R[1, 1] == pytest.approx(0.8)
    assert R[1, 0] == pytest.approx(-4.0)
    assert res["forgetting_mean"] == pytest.approx([4.8])
    same = T.LifelongConfig(tasks=[{"layout": T.CORNERS[0]}] * 2, seeds=[0], steps_per_task=3000)
    res = T.run_lifelong(same)
    assert res["forgetting_mean"] == pytest.approx([0.0])
    # the curve's last point of each task is the row of R
    curve = np.asarray(res["curves"][0])
    assert curve[-1, 1:] == pytest.approx(res["per_seed"][0]["R"][1])


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="tabular"):
        T.FinetuneConfig(algo="dqn").validate()
    with pytest.raises(ConfigError, match=">= 2 tasks"):
        T.LifelongConfig(tasks=[{}]).validate()


def test_cli_finetune_and_lifelong_smoke(tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["transfer", "finetune", "--seeds", "0", "--out", str(out)]
    argv += ["--set", "source_steps=300", "--set", "target_steps=200", "--set", "tail=2"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["per_seed"][0]["seed"] == 0 and len(res["steps"]) == 5  # 0, 50, ..., 200
    for name in ("config.yaml", "curves.csv", "transfer.png", "summary.md"):
        assert (out / name).exists(), name
    assert "jumpstart" in capsys.readouterr().out
    out = tmp_path / "ll"
    argv = ["transfer", "lifelong", "--seeds", "0", "--out", str(out)]
    assert main([*argv, "--set", "steps_per_task=100"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert np.asarray(res["R_mean"]).shape == (4, 4)
    assert main(["transfer", "finetune", "--algo", "dqn", "--out", str(tmp_path / "x")]) == 2
    assert "tabular" in capsys.readouterr().err
