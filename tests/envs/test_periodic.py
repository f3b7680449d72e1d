"""Periodic evaluation and the best checkpoint (rlfoundry.envs.periodic, --eval-every)."""

import csv
import json

import pytest
import torch

from rlfoundry import api
from rlfoundry.cli.main import main
from rlfoundry.envs.periodic import eval_interval
from rlfoundry.errors import ConfigError
from rlfoundry.runtime.run import load_checkpoint_file

FAST_DQN = dict(learning_starts=100, train_freq=4, target_update_interval=200, log_every=500)


def eval_rows(run_dir):
    with (run_dir / "metrics.csv").open() as f:
        return [
            (int(r["step"]), float(r["eval_return"])) for r in csv.DictReader(f) if r["eval_return"]
        ]


def test_eval_interval_auto_only_for_deep_runs_of_20k_steps_or_more():
    assert eval_interval(None, 100_000, auto=True) == 5_000
    assert eval_interval("auto", 100_000, auto=True) == 5_000
    assert eval_interval(None, 19_999, auto=True) == 0  # a smoke run
    assert eval_interval(None, 100_000, auto=False) == 0  # tabular: only when asked
    assert eval_interval("2_000", 10, auto=False) == 2_000
    assert eval_interval(0, 100_000, auto=True) == 0
    with pytest.raises(ConfigError, match="eval_every must be a number"):
        eval_interval("often", 1000, auto=True)


def test_eval_every_logs_keeps_the_best_and_changes_no_number(tmp_path):
    """eval_return rows at 500, 1000, ..., 2000; best.safetensors is the checkpoint of
    the highest one; the summary scores final and best on the held-out episodes; and the
    final checkpoint is bit for bit the one of a run without periodic evaluation."""
    kw = dict(env="CartPole-v1", steps=2000, seed=3, progress=False, tuned=False, **FAST_DQN)
    s = api.train("dqn", out=tmp_path / "e", eval_every=500, **kw)
    rows = eval_rows(tmp_path / "e")
    assert [step for step, _ in rows] == [500, 1000, 1500, 2000]
    best = json.loads((tmp_path / "e" / "best.json").read_text())
    assert best["best_score"] == max(v for _, v in rows)
    assert best["best_step"] == next(step for step, v in rows if v == best["best_score"])
    assert s["best_step"] == best["best_step"] and "best_eval_mean_return" in s
    assert (tmp_path / "e" / "tb").is_dir()
    plain = api.train("dqn", out=tmp_path / "p", eval_every=0, **kw)
    assert not (tmp_path / "p" / "best.safetensors").exists()
    assert "best_eval_mean_return" not in plain
    a, _ = load_checkpoint_file(tmp_path / "e" / "checkpoint.safetensors")
    b, _ = load_checkpoint_file(tmp_path / "p" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # rlfoundry eval DIR reports the best beside the final, on the same episodes
    again = api.evaluate_run(tmp_path / "e", write=False)
    assert again["best_eval_mean_return"] == s["best_eval_mean_return"]
    assert again["eval_mean_return"] == s["eval_mean_return"]


def test_a_resumed_run_keeps_its_best_and_evaluation_points(tmp_path):
    kw = dict(env="CartPole-v1", steps=2000, seed=1, progress=False, tuned=False, **FAST_DQN)
    whole = api.train("dqn", out=tmp_path / "w", eval_every=500, **kw)
    api.train("dqn", out=tmp_path / "r", eval_every=500, stop_at_step=1100, **kw)
    resumed = api.train(resume=tmp_path / "r", progress=False)
    assert eval_rows(tmp_path / "r") == eval_rows(tmp_path / "w")
    assert resumed["best_step"] == whole["best_step"]
    assert resumed["best_eval_mean_return"] == whole["best_eval_mean_return"]
    with pytest.raises(ConfigError, match="keeps the eval_every"):
        api.train(resume=tmp_path / "r", eval_every=100, progress=False)


def test_cli_eval_every_is_recorded_and_works_for_a_tabular_agent(tmp_path, capsys):
    out = tmp_path / "q"
    argv = ["train", "qlearning", "--env", "FrozenLake-v1", "--steps", "3000"]
    assert main([*argv, "--eval-every", "1000", "--out", str(out), "--no-progress"]) == 0
    assert "eval_every: '1000'" in (out / "config.yaml").read_text()
    assert [step for step, _ in eval_rows(out)] == [1000, 2000, 3000]
    assert (out / "best.safetensors").is_file()
    capsys.readouterr()
    assert main([*argv, "--eval-every", "often", "--out", str(tmp_path / "x")]) == 2
    assert "eval_every must be a number" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_an_entry_with_its_own_eval_every_keeps_it():
    """rl2, mappo and the LLM stages have an eval_every field of their own (iterations):
    --set eval_every and the API's eval_every reach their Config; no periodic evaluation."""
    from rlfoundry.runtime.resolve import resolve

    assert resolve("rl2", overrides={"eval_every": "3"}).cfg.eval_every == 3
    r = resolve("llm-grpo", config={"eval_every": 0})
    assert r.cfg.eval_every == 0 and r.eval_every is None


def test_periodic_episodes_sets_the_episodes_of_each_evaluation(tmp_path, monkeypatch, capsys):
    """--periodic-episodes N (= --set periodic_episodes=N, a deep Config field) plays N
    episodes at each periodic evaluation and is recorded; the default stays 10; a bad value
    or an algorithm without the field fails before anything is written."""
    from rlfoundry.envs import periodic
    from rlfoundry.runtime.resolve import resolve

    played = []

    def spy(policy, env, episodes, seed):
        played.append(episodes)
        return real(policy, env, episodes, seed)

    real = periodic.evaluate
    monkeypatch.setattr(periodic, "evaluate", spy)
    sets = [a for k, v in FAST_DQN.items() for a in ("--set", f"{k}={v}")]
    argv = ["train", "dqn", "--env", "CartPole-v1", "--steps", "600", "--eval-every", "300",
            "--no-tuned", "--no-progress", *sets]  # fmt: skip
    assert main([*argv, "--periodic-episodes", "3", "--out", str(tmp_path / "a")]) == 0
    assert played == [3, 3, 20]  # 20: the best checkpoint on the held-out episodes
    assert "periodic_episodes: 3" in (tmp_path / "a" / "config.yaml").read_text()
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert played[3:] == [10, 10, 20]
    capsys.readouterr()
    assert main([*argv, "--periodic-episodes", "0", "--out", str(tmp_path / "c")]) == 2
    assert "periodic_episodes must be" in capsys.readouterr().err
    q = ["train", "qlearning", "--env", "FrozenLake-v1", "--periodic-episodes", "5"]
    assert main([*q, "--out", str(tmp_path / "q")]) == 2
    assert "not available for qlearning" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "q").exists()
    assert resolve("dqn", env="MountainCar-v0").cfg.periodic_episodes == 50  # shipped config
