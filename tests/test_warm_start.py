"""--init-from: a new deep run starts from another run's weights (Run.warm_start)."""

from __future__ import annotations

import shutil

import pytest
import torch

from rlfoundry.algos.deep import a2c, onpolicy
from rlfoundry.api import resolve_config, train
from rlfoundry.cli.main import main
from rlfoundry.envs.evaluation import evaluate, make_env
from rlfoundry.errors import ConfigError
from rlfoundry.runtime.callbacks import Callback
from rlfoundry.runtime.config import load_yaml
from rlfoundry.runtime.run import CHECKPOINT, Run, load_checkpoint_file, seed_everything

torch.set_num_threads(1)

ENV = "rlfoundry/CartPole-v1"
TINY = {"num_envs": 4, "num_steps": 64, "minibatch_size": 128, "update_epochs": 2}
LONG = {"env_kwargs": {"pole_length": 2.0}}


def _ppo(tmp, name, steps=512, seed=0, **kw):
    kw.setdefault("overrides", TINY)
    return train(
        "ppo", env=ENV, steps=steps, seed=seed, out=tmp / name, progress=False,
        evaluate_after=False, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A short PPO run on the default pole, with observation normalisation."""
    tmp = tmp_path_factory.mktemp("src")
    _ppo(tmp, "src", overrides={**TINY, "norm_obs": True})
    return tmp / "src"


def _fresh_ppo(path, src, overrides=None):
    """PPO's pieces as ppo.train builds them, then its restore(): a fresh run's start
    (default overrides: the tiny config with norm_obs on the 2 m pole)."""
    if overrides is None:
        overrides = {**TINY, "norm_obs": True, **LONG}
    _, cfg = resolve_config("ppo", env=ENV, overrides=overrides)
    seed_everything(cfg.seed)
    rollout = onpolicy.Rollout(cfg)
    agent = onpolicy.Agent(rollout.obs_space, rollout.act_space, cfg.hidden)
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate)
    with Run(path, cfg.total_steps, progress=False, tensorboard=False, init_from=src) as run:
        assert onpolicy.restore(run, agent, opt, rollout) == (0, 0)
    return cfg, rollout, agent, opt


def test_ppo_starts_from_the_source_weights_and_obs_statistics(tmp_path, source):
    tensors, _ = load_checkpoint_file(source / CHECKPOINT)
    cfg, rollout, agent, opt = _fresh_ppo(tmp_path / "ft", source)
    for name, value in agent.state_dict().items():
        assert torch.equal(value, tensors[f"agent/{name}"]), name
    assert not opt.state  # fresh optimiser: no Adam moments carried over
    # obs statistics: the source's, then updated once with the first reset's N observations
    rms = rollout.obs_norm.rms
    assert rms.count == pytest.approx(float(tensors["obs_rms/count"][0]) + cfg.num_envs)
    assert rms.mean == pytest.approx(tensors["obs_rms/mean"].numpy(), abs=1e-3)
    rollout.close()
    # without init_from the same seed gives the usual random init, not the source's
    _, rollout, scratch, _ = _fresh_ppo(tmp_path / "scratch", None)
    assert not torch.equal(scratch.actor[0].weight, agent.actor[0].weight)
    rollout.close()


def test_dqn_starts_from_the_source_q_and_target_networks(tmp_path):
    common = {"hidden": [32, 32], "train_freq": 4, "gradient_steps": 1}
    common |= {"learning_starts": 100, "target_update_interval": 1000}  # q_target stays at init
    kw = {"env": ENV, "progress": False, "evaluate_after": False}
    train("dqn", steps=400, out=tmp_path / "src", overrides=common, **kw)
    # no gradient step (learning_starts > steps) and no target update: weights stay the source's
    over = {**common, **LONG, "learning_starts": 1000}
    s = train(
        "dqn", steps=50, out=tmp_path / "ft", overrides=over, init_from=tmp_path / "src", **kw
    )
    assert s["init_from"] == str((tmp_path / "src").resolve())
    src, _ = load_checkpoint_file(tmp_path / "src" / CHECKPOINT)
    ft, _ = load_checkpoint_file(tmp_path / "ft" / CHECKPOINT)
    keys = [k for k in src if k.startswith(("q/", "q_target/"))]
    first = next(
        k for k in keys if k.startswith("q/") and k.endswith("weight")
    )  # the trained q differs from q_target
    assert len(keys) == 12 and not torch.equal(src[first], src["q_target/" + first[2:]])
    for k in keys:
        assert torch.equal(src[k], ft[k]), k


class _Capture(Callback):
    """Keeps a copy of the weights the algorithm's own train() starts from."""

    def on_start(self, run, modules, stats):
        self.start = {k: v.clone() for k, v in modules["agent"].state_dict().items()}


def test_a2c_train_starts_from_the_source_weights(tmp_path):
    over = {"num_envs": 2, "num_steps": 8}
    kw = {"env": ENV, "progress": False, "evaluate_after": False}
    train("a2c", steps=64, out=tmp_path / "src", overrides=over, **kw)
    _, cfg = resolve_config("a2c", env=ENV, steps=16, overrides={**over, **LONG})
    ft, scratch = _Capture(), _Capture()
    src_dir = tmp_path / "src"
    with Run(tmp_path / "ft", 16, progress=False, init_from=src_dir, callbacks=[ft]) as run:
        a2c.train(cfg, run)
    src, _ = load_checkpoint_file(tmp_path / "src" / CHECKPOINT)
    assert ft.start.keys() and all(torch.equal(v, src[f"agent/{k}"]) for k, v in ft.start.items())
    # a scratch run of the same seed starts elsewhere, so the check above can fail
    with Run(tmp_path / "scratch", 16, progress=False, callbacks=[scratch]) as run:
        a2c.train(cfg, run)
    assert not torch.equal(scratch.start["actor.0.weight"], src["agent/actor.0.weight"])


def test_resumed_finetune_continues_from_its_own_checkpoint(tmp_path, source):
    """Stopped half-way and resumed == uninterrupted, with the source gone by then (so a
    resumed run cannot have warm-started again); --config of its config.yaml repeats it."""
    src = tmp_path / "src_copy"
    shutil.copytree(source, src)
    kw = {"steps": 768, "overrides": {**TINY, "norm_obs": True, **LONG}}
    _ppo(tmp_path, "a", init_from=src, **kw)
    s = _ppo(tmp_path, "b", init_from=src, stop_at_step=256, **kw)
    assert s["status"] == "interrupted"
    assert load_yaml(tmp_path / "b" / "config.yaml")["init_from"] == str(src.resolve())
    _ppo(tmp_path, "c", config=tmp_path / "a" / "config.yaml", steps=None, overrides=None)
    (src / CHECKPOINT).unlink()
    s = train(resume=tmp_path / "b", progress=False, evaluate_after=False)
    assert s["status"] == "finished" and s["steps"] == 768
    ta, _ = load_checkpoint_file(tmp_path / "a" / CHECKPOINT)
    for name in ("b", "c"):
        tb, _ = load_checkpoint_file(tmp_path / name / CHECKPOINT)
        assert ta.keys() == tb.keys()
        for k in ta:
            assert torch.equal(ta[k], tb[k]), (name, k)
    # ... and it did start from the source: a scratch run with the same seed differs
    _ppo(tmp_path, "scratch", **kw)
    ts, _ = load_checkpoint_file(tmp_path / "scratch" / CHECKPOINT)
    assert not torch.equal(ta["agent/actor.0.weight"], ts["agent/actor.0.weight"])


def test_bad_sources_are_refused_before_training(tmp_path, source):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a run directory"):
        _ppo(tmp_path, "r", init_from=tmp_path / "empty")
    (tmp_path / "nockpt").mkdir()
    (tmp_path / "nockpt" / "config.yaml").write_text("algo: ppo\n")
    with pytest.raises(ConfigError, match="has no checkpoint.safetensors"):
        _ppo(tmp_path, "r", init_from=tmp_path / "nockpt")
    with pytest.raises(ConfigError, match="trained by ppo; warm-start from a dqn run"):
        train("dqn", env=ENV, out=tmp_path / "r", init_from=source)
    with pytest.raises(
        ConfigError, match="--init-from works with ppo, a2c, dqn, sac, td3, not vpg"
    ):
        train("vpg", env=ENV, out=tmp_path / "r", init_from=source)
    assert not (tmp_path / "r").exists()  # refused before the run directory was made
    with pytest.raises(ConfigError, match="drop it when resuming"):
        train(resume=source, init_from=source)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({**TINY, "norm_obs": True, "hidden": [32, 32]}, r"actor.0.weight is \[64, 4\] there"),
        (TINY, "has 'obs_rms/' normaliser statistics and this run has none"),
    ],
)
def test_a_source_that_does_not_fit_is_one_error_and_frees_out(tmp_path, source, over, match):
    with pytest.raises(ConfigError, match=match):
        _ppo(tmp_path, "r", init_from=source, overrides=over)
    assert not (tmp_path / "r" / CHECKPOINT).exists()
    # nothing was trained, so the same --out can be used again at once
    _ppo(tmp_path, "r", steps=256, init_from=source, overrides={**TINY, "norm_obs": True})


def test_cli_init_from_and_render_video(tmp_path, source, capsys):
    out = tmp_path / "ft"
    argv = ["train", "ppo", "--env", ENV, "--steps", "256", "--out", str(out), "--no-progress"]
    argv += ["--init-from", str(source), "--render-video", "--set", "norm_obs=true"]
    argv += ["--set", "num_envs=4", "--set", "num_steps=64", "--set", "eval_episodes=1"]
    assert main(argv) == 0
    saved = load_yaml(out / "config.yaml")
    assert saved["render_video"] is True and saved["init_from"] == str(source.resolve())
    assert (out / "eval.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    capsys.readouterr()
    argv = ["train", "qlearning", "--env", "FrozenLake-v1", "--out", str(tmp_path / "q")]
    assert main(argv + ["--render-video"]) == 2
    assert "--render-video is not available for qlearning" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()
    assert main(["train", "--resume", str(out), "--render-video"]) == 2
    assert "keeps the render_video of its config.yaml" in capsys.readouterr().err


def test_resolve_config_reads_a_finetune_config_yaml(tmp_path, source):
    """rlfoundry eval (and --config) accept a config.yaml that holds init_from."""
    _ppo(tmp_path, "ft", steps=256, init_from=source, overrides={**TINY, "norm_obs": True})
    _, cfg = resolve_config("ppo", config=tmp_path / "ft" / "config.yaml")
    assert cfg.env_id == ENV and cfg.norm_obs


@pytest.mark.slow
def test_finetuned_policy_jumpstarts_on_a_shorter_pole(tmp_path):
    """Seed 0, PPO's shipped config (100k steps) on the 1 m pole: at step 0 on a 0.2 m
    pole its weights score far above a scratch network's (deterministic policy, 10 target
    episodes). Measured 178.8 vs 5.0; seeds 1 and 2 of benchmarks/transfer_deep.py: 182.9
    vs 92.9 and 258.9 vs 78.2. About 35 CPU-seconds."""
    train("ppo", env=ENV, out=tmp_path / "src", progress=False, evaluate_after=False)
    scores = {}
    for name, src in (("finetune", tmp_path / "src"), ("scratch", None)):
        cfg, rollout, agent, _ = _fresh_ppo(
            tmp_path / name, src, {"env_kwargs": {"pole_length": 0.2}}
        )
        policy = onpolicy.make_policy(agent, rollout.obs_space, rollout.act_space, rollout.obs_norm)
        rollout.close()
        scores[name] = evaluate(policy, make_env(ENV, **cfg.env_kwargs), 10, 10_000)[
            "eval_mean_return"
        ]
    assert scores["finetune"] >= 100 and scores["finetune"] - scores["scratch"] >= 75, scores
