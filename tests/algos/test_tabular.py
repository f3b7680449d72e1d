"""Tabular agents: math against rlfoundry.core, the update rules against exact fixed points,
exact resume (in-process and by SIGINT to a real CLI process), CLI smoke runs and errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rlfoundry.core as core
from rlfoundry import api
from rlfoundry.algos.tabular import common as tabular
from rlfoundry.algos.tabular import dyna_q, expected_sarsa, qlearning
from rlfoundry.cli.main import main
from rlfoundry.envs.evaluation import make_env
from rlfoundry.errors import EnvError
from rlfoundry.mdp import tabular_model, value_iteration
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

ALGOS = ["qlearning", "sarsa", "expected_sarsa", "dyna_q"]
GRID = "rlfoundry/GridWorld-v0"
# A small deterministic world that a random walk covers quickly: wall, pit, goal.
SMALL = {"layout": ["S..P", ".#..", "...G"]}


# --------------------------------------------------------------------------- math


@pytest.mark.parametrize("terminated", [False, True])
def test_scalar_td_targets_agree_with_core(terminated):
    rng = np.random.default_rng(0)
    for _ in range(50):
        rew, gamma = float(rng.normal()), float(rng.uniform(0.5, 1.0))
        next_q = rng.normal(size=4)
        a2 = int(rng.integers(4))
        probs = tabular.epsilon_greedy_probs(next_q, float(rng.uniform()))
        assert tabular.q_learning_target(rew, next_q, terminated, gamma) == pytest.approx(
            core.q_learning_target(rew, next_q, terminated, gamma), abs=1e-12
        )
        assert tabular.sarsa_target(rew, next_q[a2], terminated, gamma) == pytest.approx(
            core.sarsa_target(rew, next_q[a2], terminated, gamma), abs=1e-12
        )
        assert tabular.expected_sarsa_target(
            rew, next_q, probs, terminated, gamma
        ) == pytest.approx(
            core.expected_sarsa_target(rew, next_q, probs, terminated, gamma), abs=1e-12
        )


def test_td_target_hand_values():
    q = np.array([0.5, 2.0, -1.0])
    assert tabular.q_learning_target(1.0, q, False, 0.9) == pytest.approx(1.0 + 0.9 * 2.0)
    assert tabular.q_learning_target(1.0, q, True, 0.9) == 1.0
    # a truncated step is not terminated: it bootstraps like any other
    assert tabular.sarsa_target(-1.0, q[2], False, 0.5) == pytest.approx(-1.5)
    # eps = 0.3 over 3 actions: pi = [0.1, 0.8, 0.1]; E Q = 0.05 + 1.6 - 0.1 = 1.55
    probs = tabular.epsilon_greedy_probs(q, 0.3)
    np.testing.assert_allclose(probs, [0.1, 0.8, 0.1])
    assert tabular.expected_sarsa_target(0.0, q, probs, False, 1.0) == pytest.approx(1.55)


def test_epsilon_greedy_probs_with_ties():
    np.testing.assert_allclose(
        tabular.epsilon_greedy_probs(np.array([1.0, 1.0, 0.0]), 0.3), [0.45, 0.45, 0.1]
    )


def test_epsilon_greedy_breaks_ties_at_random_and_matches_its_probs():
    rng = np.random.default_rng(0)
    q = np.array([1.0, 1.0, 0.0, 0.5])
    greedy = [tabular.epsilon_greedy(q, 0.0, rng) for _ in range(2000)]
    assert set(greedy) == {0, 1}  # both maxima, never the others
    assert abs(greedy.count(0) - 1000) < 150
    n = 20_000
    acts = np.array([tabular.epsilon_greedy(q, 0.4, rng) for _ in range(n)])
    freq = np.bincount(acts, minlength=4) / n
    np.testing.assert_allclose(freq, tabular.epsilon_greedy_probs(q, 0.4), atol=0.015)


def test_check_env_accepts_discrete_and_rejects_the_rest():
    tabular.check_env(make_env("FrozenLake-v1"))
    tabular.check_env(make_env(GRID))
    for env_id in ("Pendulum-v1", "CartPole-v1", "Blackjack-v1"):
        with pytest.raises(EnvError, match="cannot handle .* use dqn or ppo"):
            tabular.check_env(make_env(env_id))


# --------------------------------------------------------------------------- update rules


def _train(module, tmp_path, **over):
    """Train ``module`` in-process with its defaults and ``over``; return the Q-table."""
    from rlfoundry.runtime.config import build_config
    from rlfoundry.runtime.run import Run

    cfg = build_config(module.Config, over)
    with Run(tmp_path, cfg.total_steps, progress=False, tensorboard=False) as run:
        module.train(cfg, run)
    return tabular.load_q(tmp_path), cfg


def _reachable(env):
    """States reachable from the start without the episode ending (the ones the agent acts in)."""
    P = env.unwrapped.P
    start = np.flatnonzero(env.unwrapped.initial_state_distrib)
    seen, todo = set(start.tolist()), list(start.tolist())
    while todo:
        s = todo.pop()
        for a in P[s]:
            for prob, s2, _, term in P[s][a]:
                if prob > 0 and not term and s2 not in seen:
                    seen.add(s2)
                    todo.append(s2)
    return sorted(seen)


def test_qlearning_converges_to_q_star_from_random_behaviour(tmp_path):
    # Off-policy: uniform random behaviour, alpha = 1 on a deterministic env is asynchronous
    # value iteration, so every tried (s, a) ends at Q*(s, a) exactly (up to float noise).
    Q, cfg = _train(
        qlearning, tmp_path, env_kwargs=SMALL, total_steps=10_000, gamma=0.9, learning_rate=1.0,
        epsilon_start=1.0, epsilon_end=1.0, epsilon_schedule="constant", log_every=10_000,
    )  # fmt: skip
    env = make_env(GRID, **SMALL)
    q_star = value_iteration(env, gamma=0.9).Q
    states = _reachable(env)
    np.testing.assert_allclose(Q[states], q_star[states], atol=1e-9)


def test_expected_sarsa_converges_to_the_value_of_its_epsilon_greedy_policy(tmp_path):
    # On-policy: with alpha = 1 on a deterministic env, Expected SARSA is asynchronous
    # iteration of Q = R + gamma * C (pi_eps(Q) . Q), whose fixed point we compute directly.
    eps, gamma = 0.5, 0.9
    Q, cfg = _train(
        expected_sarsa, tmp_path, env_kwargs=SMALL, total_steps=20_000, gamma=gamma, learning_rate=1.0,
        epsilon_start=eps, epsilon_end=eps, epsilon_schedule="constant", log_every=10_000,
    )  # fmt: skip
    env = make_env(GRID, **SMALL)
    T, R, D = model = tabular_model(env)
    fixed = np.zeros_like(R)
    for _ in range(2_000):
        v = np.array([tabular.epsilon_greedy_probs(row, eps) @ row for row in fixed])
        fixed = R + gamma * model.C @ v
    states = _reachable(env)
    np.testing.assert_allclose(Q[states], fixed[states], atol=1e-6)
    # and the greedy action differs from Q*'s somewhere: it is not Q-learning
    assert not np.allclose(Q[states], value_iteration(env, gamma=gamma).Q[states], atol=1e-3)


def test_dyna_q_without_planning_is_qlearning_draw_for_draw(tmp_path):
    common = dict(env_id="FrozenLake-v1", total_steps=3_000, learning_rate=0.3, log_every=500)
    q_ql, _ = _train(qlearning, tmp_path / "q", **common)
    q_dq, _ = _train(dyna_q, tmp_path / "d", planning_steps=0, **common)
    assert np.array_equal(q_ql, q_dq)
    q_plan, _ = _train(dyna_q, tmp_path / "p", planning_steps=5, **common)
    assert not np.array_equal(q_ql, q_plan)


def test_dyna_model_samples_the_empirical_distribution_and_round_trips():
    model = dyna_q.Model()
    model.add(3, 1, 0.0, 4, False)
    model.add(3, 1, 0.0, 4, False)
    model.add(3, 1, 1.0, 5, True)
    model.add(7, 0, -1.0, 7, False)
    assert model.pairs == [(3, 1), (7, 0)]
    # pair 0 saw outcome A twice and B once: quantiles below 2/3 give A
    assert model.sample(0, 0.0) == (3, 1, 0.0, 4, False)
    assert model.sample(0, 0.66) == (3, 1, 0.0, 4, False)
    assert model.sample(0, 0.67) == (3, 1, 1.0, 5, True)
    assert model.sample(1, 0.99) == (7, 0, -1.0, 7, False)
    arrays = model.arrays()
    again = dyna_q.Model.from_arrays(arrays["model/rows"], arrays["model/rew"])
    assert again.pairs == model.pairs and again.outcomes == model.outcomes
    assert again.visits == model.visits == {(3, 1): 3, (7, 0): 1}


def test_config_rejects_out_of_range_values():
    from rlfoundry.errors import ConfigError
    from rlfoundry.runtime.config import build_config

    for bad in ({"gamma": 1.5}, {"learning_rate": 0.0}, {"epsilon_end": -0.1}, {"log_every": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            build_config(qlearning.Config, bad)
    with pytest.raises(ConfigError, match="planning_steps"):
        build_config(dyna_q.Config, {"planning_steps": -1})


def test_every_tabular_config_defaults_to_the_gridworld():
    for name in ALGOS:
        module = __import__(f"rlfoundry.algos.tabular.{name}", fromlist=["Config"])
        assert module.Config().env_id == GRID


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("algo", ALGOS)
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, algo):
    # FrozenLake is stochastic, so the env's own generator must come back too; 1_237 stops
    # mid-episode.
    kw = dict(env="FrozenLake-v1", steps=3_000, seed=3, progress=False, evaluate_after=False)
    kw["overrides"] = {"log_every": 200}
    full = api.train(algo, out=tmp_path / "full", **kw)
    assert full["status"] == "finished"
    part = api.train(algo, out=tmp_path / "part", stop_at_step=1_237, **kw)
    assert part["status"] == "interrupted" and part["steps"] == 1_237
    assert (tmp_path / "part" / CHECKPOINT).exists()
    assert not (tmp_path / "part" / "summary.json").exists()
    resumed = api.train(resume=tmp_path / "part", progress=False, evaluate_after=False)
    assert resumed["status"] == "finished" and resumed["steps"] == 3_000
    assert np.array_equal(tabular.load_q(tmp_path / "full"), tabular.load_q(tmp_path / "part"))
    assert (tmp_path / "full" / "metrics.csv").read_text() == (
        tmp_path / "part" / "metrics.csv"
    ).read_text()


def test_sigint_to_cli_process_checkpoints_and_resumes_exactly(tmp_path):
    # The first metrics row appears ~500 steps in; the SIGINT lands long before 50_000.
    steps = 50_000
    args = ["qlearning", "--env", "FrozenLake-v1", "--steps", str(steps), "--seed", "5"]
    args += ["--set", "log_every=500", "--no-progress"]
    run_dir = tmp_path / "cli"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rlfoundry", "train", *args, "--out", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not (run_dir / "metrics.csv").exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "the run never wrote metrics.csv"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert "--resume" in err.decode()
    assert (run_dir / CHECKPOINT).exists()
    assert not (run_dir / "summary.json").exists()
    stopped_at = load_checkpoint_file(run_dir / CHECKPOINT)[1]["step"]
    assert 0 < stopped_at < steps

    done = subprocess.run(
        [sys.executable, "-m", "rlfoundry", "train", "--resume", str(run_dir), "--no-progress"],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == steps

    assert main(["train", *args, "--out", str(tmp_path / "ref")]) == 0
    assert np.array_equal(tabular.load_q(run_dir), tabular.load_q(tmp_path / "ref"))


# --------------------------------------------------------------------------- CLI smoke


@pytest.mark.parametrize("algo", ALGOS)
def test_cli_train_eval_smoke(tmp_path, capsys, algo):
    out = tmp_path / algo
    argv = ["train", algo, "--env", GRID, "--steps", "400", "--seed", "1", "--out", str(out)]
    assert main([*argv, "--set", "log_every=50", "--no-progress"]) == 0
    for name in ("config.yaml", "metrics.csv", CHECKPOINT, "summary.json", "learning_curve.png"):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())
    summary = json.loads((out / "summary.json").read_text())
    for key in ("algo", "env", "seed", "steps", "eval_mean_return", "eval_std_return"):
        assert key in summary, key
    assert summary["algo"] == algo and summary["env"] == GRID and summary["steps"] == 400
    assert summary["eval_episodes"] == 20 and summary["wall_seconds"] > 0
    # extra_eval: the exact return of the greedy policy against the optimum
    assert summary["optimal_return"] == pytest.approx(0.8)
    assert summary["gap_to_optimum"] == pytest.approx(
        summary["optimal_return"] - summary["exact_return"]
    )
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("step", "episode_return", "episode_length", "epsilon", "td_error"):
        assert col in header
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "5"]) == 0
    assert "eval_mean_return" in capsys.readouterr().out
    # a re-evaluation gets its own file; the training's summary.json keeps its 20 episodes
    assert json.loads((out / "summary.json").read_text())["eval_episodes"] == 20
    (again,) = out.glob("eval-*.json")
    assert json.loads(again.read_text())["eval_episodes"] == 5


def test_cli_plot_and_list(tmp_path, capsys):
    dirs = []
    for algo in ("qlearning", "dyna_q"):
        dirs.append(str(tmp_path / algo))
        argv = ["train", algo, "--env", GRID, "--steps", "300", "--out", dirs[-1]]
        assert main([*argv, "--no-progress", "--set", "log_every=30"]) == 0
    assert main(["plot", *dirs, "--out", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    for name in ALGOS:
        assert name in listing
    assert GRID in listing
    assert main(["list", "qlearning"]) == 0
    listing = capsys.readouterr().out
    assert "epsilon_start" in listing and "Exploration rate" in listing
    assert main(["list", "dyna_q"]) == 0
    assert "planning_steps" in capsys.readouterr().out


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["train", "qlearnin"], ["Unknown algorithm 'qlearnin'", "qlearning", "dyna_q"]),
        (["train", "qlearning", "--env", "NoSuchEnv-v0"], ["NoSuchEnv-v0", GRID]),
        (["train", "qlearning", "--set", "epsilon_star=0.5"], ["epsilon_star", "epsilon_start"]),
        (["train", "qlearning", "--env", "Pendulum-v1"], ["cannot handle", "Pendulum-v1"]),
        (["train", "sarsa", "--set", "gamma=abc"], ["gamma", "float", "abc"]),
        (["train", "dyna_q", "--set", "planning_steps=2.5"], ["planning_steps", "int"]),
        (["train", "qlearning", "--set", "gamma=1.5"], ["gamma must lie in [0, 1]"]),
    ],
)
def test_bad_input_is_one_clear_error_before_any_directory(tmp_path, capsys, argv, needles):
    out = tmp_path / "run"
    assert main([*argv, "--steps", "10", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists()


def test_existing_run_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "qlearning", "--steps", "200", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main([*argv, "--seed", "9"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_resume_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "Cannot resume" in capsys.readouterr().err


def test_load_policy_is_greedy_on_the_saved_table(tmp_path):
    Q, cfg = _train(qlearning, tmp_path, total_steps=300)
    policy = qlearning.load_policy(tmp_path, cfg)
    assert [policy(s) for s in range(len(Q))] == list(np.argmax(Q, axis=1))
    assert Path(tmp_path / CHECKPOINT).exists()
