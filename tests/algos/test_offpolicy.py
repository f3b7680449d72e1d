"""SAC and TD3 alike (the off-policy toolkit): the replay memory, the twin critic, actions
mapped onto the env's bounds, truncation stored as a bootstrapping transition, exact
resume, warm starts, errors before any work, and CLI smoke runs."""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from needs import need

from rlfoundry import api
from rlfoundry.algos.deep import offpolicy, sac, td3
from rlfoundry.algos.replay import ReplayBuffer
from rlfoundry.cli.main import main
from rlfoundry.errors import ConfigError, EnvError, RLFoundryError
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

torch.set_num_threads(1)

ALGOS = ["sac", "td3"]
TINY = {  # a few seconds: small nets, early and frequent updates
    "hidden": [16, 16],
    "learning_starts": 100,
    "minibatch_size": 16,
    "log_every": 100,
    "eval_episodes": 2,
}


class BoxCounter(gym.Env):
    """obs = [t]; actions in Box(0, 10); never terminates unless ``end_at`` is set; a
    TimeLimit truncates it at t = 3. Reward: the action sent to the env."""

    observation_space = gym.spaces.Box(-1e6, 1e6, (1,), np.float32)
    action_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)

    def __init__(self, end_at: int | None = None) -> None:
        self.end_at = end_at

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        terminated = self.end_at is not None and self.t >= self.end_at
        return np.array([float(self.t)], np.float32), float(action[0]), terminated, False, {}


gym.register("rlfoundry_test/BoxCounter-v0", entry_point=BoxCounter, max_episode_steps=3)


def _train(algo, tmp_path, name="r", **kw):
    kw.setdefault("env", "Pendulum-v1")
    kw.setdefault("progress", False)
    kw.setdefault("evaluate_after", False)
    kw["overrides"] = {**TINY, **kw.get("overrides", {})}
    return api.train(algo, out=tmp_path / name, **kw)


# --------------------------------------------------------------------------- pieces


def test_replay_buffer_is_a_ring_and_samples_whole_transitions():
    buf = ReplayBuffer(3, 1, (2,), np.float32)
    for i in range(5):
        buf.add(np.array([i]), np.array([i, -i]), float(i), np.array([i + 1]), i == 4)
    assert buf.size == 3 and buf.pos == 2
    assert sorted(buf.rew.tolist()) == [2.0, 3.0, 4.0]  # the two oldest were overwritten
    obs, act, rew, next_obs, term = (x[0] for x in buf.sample(64, np.random.default_rng(0)))
    assert obs.shape == (64, 1) and act.shape == (64, 2) and act.dtype == torch.float32
    torch.testing.assert_close(next_obs, obs + 1)
    torch.testing.assert_close(act[:, 0], rew)  # rows stay together
    assert term.tolist() == [r == 4.0 for r in rew.tolist()]
    # n minibatches at once are the same draws as n calls
    many = buf.sample(8, np.random.default_rng(1), n=3)[2]
    rng = np.random.default_rng(1)
    assert torch.equal(many, torch.stack([buf.sample(8, rng)[2][0] for _ in range(3)]))
    # checkpoint round trip; a smaller buffer refuses it
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in buf.state_arrays().items()}
    other = ReplayBuffer(3, 1, (2,), np.float32)
    other.load(tensors, buf.state())
    assert other.pos == 2 and np.array_equal(other.act, buf.act)
    with pytest.raises(RLFoundryError, match="buffer_size"):
        ReplayBuffer(2, 1, (2,), np.float32).load(tensors, buf.state())


def test_twin_critics_are_two_independent_networks():
    torch.manual_seed(0)
    critic = offpolicy.TwinQ(3, 2, (8, 8))
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    q = critic(obs, act)
    assert q.shape == (2, 5)
    assert not torch.allclose(q[0], q[1])  # different initialisations
    torch.testing.assert_close(critic.q1(obs, act), q[0])
    # member 1 by hand: the same MLP with the second slice of every weight
    x = torch.cat([obs, act], -1)
    w, b = critic.weights, critic.biases
    h = torch.relu(x @ w[0][1] + b[0][1])
    h = torch.relu(h @ w[1][1] + b[1][1])
    torch.testing.assert_close(q[1], (h @ w[2][1] + b[2][1]).squeeze(-1))
    # Q1's loss moves only Q1's weights
    critic.q1(obs, act).sum().backward()
    assert critic.weights[0].grad[0].abs().sum() > 0
    assert critic.weights[0].grad[1].abs().sum() == 0


@pytest.mark.parametrize("algo", ALGOS)
def test_squashed_actions_are_mapped_onto_the_env_bounds(tmp_path, algo):
    """Box(0, 10): the buffer holds a in [-1, 1], the env gets 5 * (a + 1), and the
    reward (= the env action) proves it; the evaluation policy lies in the bounds too."""
    out = tmp_path / "r"
    _train(algo, tmp_path, env="rlfoundry_test/BoxCounter-v0", steps=30)
    tensors, _ = load_checkpoint_file(out / CHECKPOINT)
    act = tensors["buffer/act"][:, 0]
    assert act.abs().max() <= 1.0 and act.std() > 0.1
    torch.testing.assert_close(tensors["replay/actions"][:, 0], 5.0 * (act + 1.0))
    torch.testing.assert_close(tensors["buffer/rew"], 5.0 * (act + 1.0))
    _, cfg = api.resolve_config(algo, env="rlfoundry_test/BoxCounter-v0", overrides=TINY)
    policy = sac.load_policy(out, cfg) if algo == "sac" else td3.load_policy(out, cfg)
    a = policy(np.array([1.0], np.float32))
    assert a.shape == (1,) and a.dtype == np.float32 and 0.0 <= a[0] <= 10.0
    assert np.array_equal(a, policy(np.array([1.0], np.float32)))  # deterministic


@pytest.mark.parametrize("algo", ALGOS)
def test_truncated_transitions_are_stored_unterminated_with_their_last_obs(tmp_path, algo):
    """BoxCounter is cut at t=3 by its TimeLimit: the stored transition must have
    terminated=False and next_obs=[3] (the real last state, not the reset obs [0])."""
    _train(algo, tmp_path, env="rlfoundry_test/BoxCounter-v0", steps=7)
    tensors, state = load_checkpoint_file(tmp_path / "r" / CHECKPOINT)
    assert state["buffer_size"] == 7 and state["episodes"] == 2
    assert tensors["buffer/obs"][:, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert tensors["buffer/next_obs"][:, 0].tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert not tensors["buffer/terminated"].any()


@pytest.mark.parametrize("algo", ALGOS)
def test_terminated_transitions_are_stored_terminated(tmp_path, algo):
    over = {"env_kwargs": {"end_at": 2}}
    _train(algo, tmp_path, env="rlfoundry_test/BoxCounter-v0", steps=5, overrides=over)
    tensors, _ = load_checkpoint_file(tmp_path / "r" / CHECKPOINT)
    assert tensors["buffer/terminated"].tolist() == [False, True, False, True, False]


# --------------------------------------------------------------------------- resume


def _metrics(path):
    with open(path / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "sps"} for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    ("algo", "extra"),
    [
        ("sac", {}),
        ("sac", {"train_freq": 3, "gradient_steps": -1, "target_update_interval": 2}),
        ("sac", {"ent_coef": 0.1}),
        ("td3", {}),
        ("td3", {"train_freq": 2, "gradient_steps": 3, "policy_delay": 3}),
    ],
    ids=["sac", "sac-freq3-all-interval2", "sac-fixed-alpha", "td3", "td3-freq2-steps3-delay3"],
)
def test_resume_gives_identical_parameters(tmp_path, algo, extra):
    """Stopped at 250 of 500 steps and resumed, a run ends bit for bit where an
    uninterrupted one does: networks, targets, Adam moments, alpha, the replay memory, the
    action log, the generators and the metrics rows."""
    kw = dict(steps=500, seed=3, overrides=extra)
    _train(algo, tmp_path, "a", **kw)
    s = _train(algo, tmp_path, "b", stop_at_step=250, **kw)
    assert s["status"] == "interrupted" and s["steps"] == 250
    s = api.train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    assert s["status"] == "finished" and s["steps"] == 500
    a, sa = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    b, sb = load_checkpoint_file(tmp_path / "b" / CHECKPOINT)
    assert set(a) == set(b)
    assert sa["n_updates"] > 0 and any(k.startswith("critic_target/") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for key in ("rng", "n_updates", "sums", "n_logged", "ep_ret", "buffer_pos"):
        assert sa[key] == sb[key], key
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")


@pytest.mark.parametrize("algo", ALGOS)
def test_init_from_starts_from_the_source_networks(tmp_path, algo):
    _train(algo, tmp_path, "src", steps=200)
    src, _ = load_checkpoint_file(tmp_path / "src" / CHECKPOINT)
    _train(algo, tmp_path, "ft", steps=1, init_from=tmp_path / "src")  # no update yet
    ft, state = load_checkpoint_file(tmp_path / "ft" / CHECKPOINT)
    assert state["n_updates"] == 0 and state["buffer_size"] == 1  # fresh memory
    nets = [k for k in src if k.split("/")[0] in ("actor", "critic", "critic_target")]
    assert nets and all(torch.equal(src[k], ft[k]) for k in nets)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("algo", ALGOS)
def test_discrete_and_unbounded_actions_are_refused_before_any_work(tmp_path, algo):
    with pytest.raises(EnvError, match="use dqn or ppo for Discrete actions"):
        api.train(algo, env="CartPole-v1", out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    env = gym.make("Pendulum-v1")
    env.action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    with pytest.raises(EnvError, match="unbounded; wrap the env with"):
        offpolicy.check_env(env)


@pytest.mark.parametrize(
    ("algo", "key", "value"),
    [
        ("sac", "tau", 0.0),
        ("sac", "gradient_steps", 0),
        ("sac", "ent_coef", -1.0),
        ("sac", "ent_coef", "automatic"),
        ("td3", "policy_delay", 0),
        ("td3", "buffer_size", 0),
        ("td3", "gamma", 1.5),
    ],
)
def test_bad_config_values(algo, key, value):
    with pytest.raises(ConfigError, match=key):
        api.resolve_config(algo, overrides={key: value})


# --------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("algo", ALGOS)
def test_cli_train_eval_list_smoke(tmp_path, capsys, algo):
    out = tmp_path / "run"
    argv = ["train", algo, "--env", "Pendulum-v1", "--steps", "300", "--out", str(out)]
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    assert main([*argv, *sets, "--render-video", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["eval_episodes"] == 2
    assert summary["eval_mean_length"] == 200  # Pendulum's time limit
    assert (out / "learning_curve.png").exists()
    assert (out / "eval.gif").read_bytes()[:6] == b"GIF89a"
    assert main(["eval", str(out), "--episodes", "2"]) == 0
    assert main(["list", algo]) == 0
    key = "target_policy_noise" if algo == "td3" else "ent_coef"
    assert key in capsys.readouterr().out
    assert main(["train", algo, "--env", "CartPole-v1", "--out", str(tmp_path / "c")]) == 2
    assert "use dqn or ppo" in capsys.readouterr().err


# --------------------------------------------------------------------------- MuJoCo


@pytest.mark.parametrize("algo", ALGOS)
def test_a_mujoco_v5_env_trains_evaluates_and_resumes_exactly(tmp_path, algo):
    """Gymnasium's MuJoCo v5 envs (the mujoco extra): InvertedPendulum-v5 trains, its
    deterministic policy is evaluated, and a resumed run replays the simulator from the
    action log to the same state (float64 physics), ending bit for bit as an uninterrupted
    one."""
    need("mujoco", "bench")
    kw = dict(env="InvertedPendulum-v5", steps=400, seed=1)
    _train(algo, tmp_path, "a", **kw)
    _train(algo, tmp_path, "b", stop_at_step=200, **kw)
    api.train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    a, sa = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    b, _ = load_checkpoint_file(tmp_path / "b" / CHECKPOINT)
    assert sa["n_updates"] == 300 and sa["episodes"] > 1  # short falling episodes
    assert all(torch.equal(a[k], b[k]) for k in a)
    result = api.evaluate_run(tmp_path / "a", episodes=2, write=False)
    assert result["eval_episodes"] == 2 and result["eval_mean_length"] >= 1
