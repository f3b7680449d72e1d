"""PPO: truncation bootstrapping, exact resume, CLI smoke runs, bad envs, learning."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from trivial import assert_trivial_fails

from rlfoundry.algos import nets
from rlfoundry.algos.deep import onpolicy, ppo
from rlfoundry.api import resolve_config, train
from rlfoundry.cli.main import main
from rlfoundry.errors import EnvError, RLFoundryError
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

torch.set_num_threads(1)


class _FakeRun:
    def log(self, step, **metrics):
        pass


def test_truncated_steps_bootstrap_from_final_obs():
    """With lambda = 0, adv_t = r_t + gamma * V(s') - V(s_t): at a truncated step s' must
    be the FINAL observation of the episode (info["final_obs"]), not the reset one."""
    cfg = ppo.Config(
        env_id="Pendulum-v1",
        env_kwargs={"max_episode_steps": 3},
        num_envs=2,
        num_steps=5,
        seed=1,
    )
    rollout = onpolicy.Rollout(cfg)
    rollout.reset()
    agent = onpolicy.Agent(rollout.obs_space, rollout.act_space)
    rollout.collect(agent, _FakeRun(), 0)
    gamma = 0.9
    adv, _ = rollout.advantages(agent, gamma, lam=0.0)
    assert rollout.trunc[2].all() and not rollout.term.any()
    [(t, idx, fin)] = rollout.final_obs
    assert t == 2 and list(idx) == [0, 1]
    with torch.no_grad():
        v_fin = agent.value(torch.from_numpy(fin))
        v_reset = agent.value(rollout.obs[3])
    expected = rollout.rew[2] + gamma * v_fin - rollout.val[2]
    torch.testing.assert_close(adv[2], expected)
    wrong = rollout.rew[2] + gamma * v_reset - rollout.val[2]
    assert not torch.allclose(adv[2], wrong)
    # a non-final step bootstraps from the next step's value
    torch.testing.assert_close(adv[0], rollout.rew[0] + gamma * rollout.val[1] - rollout.val[0])
    rollout.close()


def _tiny(**extra):
    return {
        "num_envs": 4,
        "num_steps": 64,
        "minibatch_size": 64,
        "update_epochs": 2,
        **extra,
    }


def test_resume_is_exact_with_obs_and_reward_normalisation(tmp_path):
    """Stopped half-way and resumed == uninterrupted: every parameter, Adam moment,
    normaliser statistic and the env action log, bit for bit; same metrics too."""
    kw = dict(
        env="CartPole-v1",
        steps=3 * 256,
        seed=3,
        progress=False,
        evaluate_after=False,
        overrides=_tiny(norm_obs=True, norm_reward=True),
    )
    train("ppo", out=tmp_path / "a", **kw)
    s = train("ppo", out=tmp_path / "b", stop_at_step=256, **kw)
    assert s["status"] == "interrupted" and s["steps"] == 256
    s = train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    assert s["status"] == "finished" and s["steps"] == 768

    ta, _ = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    tb, _ = load_checkpoint_file(tmp_path / "b" / CHECKPOINT)
    assert ta.keys() == tb.keys()
    assert any(k.startswith("obs_rms/") for k in ta) and any(k.startswith("rew_rms/") for k in ta)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k

    # and the networks built from each run are equal parameter by parameter
    _, cfg = resolve_config("ppo", config=tmp_path / "a" / "config.yaml")
    agent_a, _ = onpolicy.load_agent(tmp_path / "a", cfg)
    agent_b, _ = onpolicy.load_agent(tmp_path / "b", cfg)
    for (name, pa), (_, pb) in zip(agent_a.named_parameters(), agent_b.named_parameters()):
        assert torch.equal(pa, pb), name

    def rows(path):
        import csv

        with open(path / "metrics.csv") as f:
            return [{k: v for k, v in r.items() if k != "sps"} for r in csv.DictReader(f)]

    assert rows(tmp_path / "a") == rows(tmp_path / "b")


@pytest.mark.parametrize(
    ("env_id", "extra"),
    [("CartPole-v1", []), ("Pendulum-v1", ["--set", "norm_obs=true"])],
)
def test_cli_train_eval_and_gif(tmp_path, env_id, extra, capsys):
    out = tmp_path / "run"
    argv = ["train", "ppo", "--env", env_id, "--steps", "512", "--out", str(out)]
    argv += ["--no-progress", "--set", "render_video=true", "--set", "num_envs=2"]
    argv += ["--set", "num_steps=128", "--set", "eval_episodes=2"] + extra
    assert main(argv) == 0
    for name in ("config.yaml", "metrics.csv", CHECKPOINT, "summary.json", "eval.gif"):
        assert (out / name).exists(), name
    assert (out / "eval.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["eval_episodes"] == 2
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("episode_return", "episode_length", "approx_kl", "clip_fraction", "entropy"):
        assert key in header, key
    assert main(["eval", str(out), "--episodes", "1"]) == 0


def test_cli_uses_the_tuned_config(tmp_path):
    """`rlfoundry train ppo --env CartPole-v1` picks up configs/ppo/CartPole-v1.yaml."""
    _, cfg = resolve_config("ppo", env="CartPole-v1")
    assert (cfg.num_envs, cfg.num_steps, cfg.update_epochs, cfg.gamma) == (8, 32, 20, 0.98)
    out = tmp_path / "run"
    argv = ["train", "ppo", "--env", "CartPole-v1", "--steps", "256", "--out", str(out)]
    assert main(argv + ["--no-progress", "--set", "eval_episodes=1"]) == 0


class _SpaceEnv(gym.Env):
    def __init__(self, observation_space, action_space):
        self.observation_space = observation_space
        self.action_space = action_space


@pytest.mark.parametrize(
    ("obs_space", "act_space", "match"),
    [
        (spaces.Box(-1, 1, (3,)), spaces.MultiBinary(4), "Discrete or Box action space"),
        (spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([2, 3]), "Discrete or Box action"),
        (spaces.Dict({"a": spaces.Box(-1, 1, (2,))}), spaces.Discrete(2), "FlattenObservation"),
    ],
)
def test_check_env_rejects_unsupported_spaces(obs_space, act_space, match):
    with pytest.raises(EnvError, match=match):
        ppo.check_env(_SpaceEnv(obs_space, act_space))


def test_train_rejects_bad_env_before_writing(tmp_path):
    gym.register(
        "rlfoundry_test/MultiBinaryActions-v0",
        entry_point=lambda: _SpaceEnv(spaces.Box(-1, 1, (3,)), spaces.MultiBinary(2)),
    )
    with pytest.raises(EnvError, match="action space"):
        train("ppo", env="rlfoundry_test/MultiBinaryActions-v0", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_discrete_observations_are_one_hot():
    obs = onpolicy.encode_obs(spaces.Discrete(4, start=1), np.array([1, 4]))
    np.testing.assert_array_equal(obs, [[1, 0, 0, 0], [0, 0, 0, 1]])
    act = onpolicy.env_action(spaces.Box(-2.0, 2.0, (1,)), np.array([[3.0], [-0.5]]))
    np.testing.assert_array_equal(act, [[2.0], [-0.5]])


@pytest.mark.slow
def test_ppo_solves_cartpole_within_100k_steps(tmp_path):
    """Tuned config (rl-zoo's), 100k steps (99,840: whole segments), seed 0: the first
    seed tried. Deterministic evaluation over 20 unseen episodes must average >= 475."""
    s = train("ppo", env="CartPole-v1", seed=0, out=tmp_path / "r", progress=False)
    assert s["steps"] <= 100_000
    assert s["eval_mean_return"] >= 475, s
    assert_trivial_fails(475, "CartPole-v1", episodes=20)  # the best constant and random fail it


@pytest.mark.slow
def test_ppo_solves_pendulum(tmp_path):
    """Tuned config (configs/ppo/Pendulum-v1.yaml), seed 0: the first seed tried.
    Deterministic evaluation over 20 unseen episodes must average >= -200."""
    s = train("ppo", env="Pendulum-v1", seed=0, out=tmp_path / "r", progress=False)
    assert s["eval_mean_return"] >= -200, s
    assert_trivial_fails(-200, "Pendulum-v1", episodes=20)  # the best constant and random fail it


@pytest.mark.parametrize("scale", [1e-3, 10.0])
def test_clip_grad_norm_matches_torch(scale):
    torch.manual_seed(0)
    a = onpolicy.Agent(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))
    b = onpolicy.Agent(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))
    b.load_state_dict(a.state_dict())
    for pa, pb in zip(a.parameters(), b.parameters()):
        pa.grad = torch.randn_like(pa) * scale
        pb.grad = pa.grad.clone()
    n1 = nets.clip_grad_norm(list(a.parameters()), 0.5)
    n2 = torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
    torch.testing.assert_close(n1, n2)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad)


@pytest.mark.parametrize("fused", [True, False])
def test_adam_step_is_bit_identical_to_optimizer_step(fused):
    """nets.adam_step (PPO's and DQN's step) against torch's own, with a changing lr as
    under annealing; the first call goes through opt.step (no state yet)."""
    from rlfoundry.algos.nets import adam_step

    torch.manual_seed(0)
    a = onpolicy.Agent(spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    b = onpolicy.Agent(spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    b.load_state_dict(a.state_dict())
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-5, fused=fused) for m in (a, b)]
    for t in range(5):
        x = torch.randn(16, 3)
        for m, opt in zip((a, b), opts):
            opt.param_groups[0]["lr"] = 1e-3 * (1 - t / 5)
            for p in m.parameters():
                p.grad = None
            (m.policy_out(x).pow(2).mean() + m.value(x).pow(2).mean()).backward()
        opts[0].step()
        adam_step(opts[1])
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opts[0].state[pa][k], opts[1].state[pb][k])


def test_fused_adam_is_torch_adam_bit_for_bit():
    """nets.FusedAdam (PPO's optimiser, no torch._dynamo import) against
    torch.optim.Adam(fused=True): parameters, moments and step counts equal under a
    changing lr, the same state_dict, and each loads the other's."""
    from rlfoundry.algos.nets import FusedAdam
    from rlfoundry.runtime.torch_state import load_optimizer_state, optimizer_state

    torch.manual_seed(0)
    a = onpolicy.Agent(spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    b = onpolicy.Agent(spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    b.load_state_dict(a.state_dict())
    ref = torch.optim.Adam(a.parameters(), lr=1e-3, eps=1e-5, fused=True)
    ours = FusedAdam(list(b.parameters()), lr=1e-3, eps=1e-5)
    for t in range(4):
        x = torch.randn(16, 3)
        for m, opt in ((a, ref), (b, ours)):
            opt.param_groups[0]["lr"] = 1e-3 * (1 - t / 4)
            for p in m.parameters():
                p.grad = None
            (m.policy_out(x).pow(2).mean() + m.value(x).pow(2).mean()).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    ta, sa = optimizer_state("optim", ref)
    tb, sb = optimizer_state("optim", ours)
    assert sa == sb and ta.keys() == tb.keys()
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    # interchangeable: each loads the other's checkpointed state
    fresh = FusedAdam(list(b.parameters()), lr=1.0)
    load_optimizer_state("optim", fresh, ta, sa)
    assert optimizer_state("optim", fresh)[1] == sa
    torch_fresh = torch.optim.Adam(a.parameters(), lr=1.0, fused=True)
    load_optimizer_state("optim", torch_fresh, tb, sb)
    assert all(torch.equal(v, tb[k]) for k, v in optimizer_state("optim", torch_fresh)[0].items())
    with pytest.raises(RLFoundryError, match="does not fit"):
        load_optimizer_state("optim", FusedAdam(list(b.actor.parameters()), lr=1.0), ta, sa)


def test_target_kl_stops_the_update_early(tmp_path):
    """epochs x minibatches = 2 x 4 = 8 planned steps per update; with a tiny target_kl
    the update stops at the first minibatch whose KL from the rollout policy exceeds
    1.5 * target_kl, i.e. after one step (the first minibatch has KL ~ 0)."""
    import csv

    def steps(target_kl):
        out = tmp_path / str(target_kl)
        over = _tiny(num_steps=64, minibatch_size=64, update_epochs=2)
        if target_kl is not None:
            over["target_kl"] = target_kl
        train(
            "ppo",
            env="CartPole-v1",
            steps=512,
            out=out,
            progress=False,
            evaluate_after=False,
            overrides=over,
        )
        with open(out / "metrics.csv") as f:
            return [float(r["grad_steps"]) for r in csv.DictReader(f) if r["grad_steps"]]

    assert steps(None) == [8.0, 8.0]
    assert all(n < 8 for n in steps(1e-7))
