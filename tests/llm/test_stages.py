"""Every preference/RL stage on a tiny budget: the run-directory contract, exact resume,
bad input rejected before training, and a failing reward that leaves the checkpoint
intact."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rlfoundry.api import train
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.llm import dpo, grpo, ppo, rloo
from rlfoundry.runtime.run import load_checkpoint_file

torch.set_num_threads(1)

TINY_RL = {"model": "tiny", "eval_every": 0, "eval_size": 8, "max_new_tokens": 6}


def _contract(out, curve=True):
    for name in ("config.yaml", "metrics.csv", "checkpoint.safetensors", "summary.json"):
        assert (out / name).is_file(), name
    assert (out / "model" / "config.json").is_file()
    assert list((out / "model").glob("*.safetensors"))
    assert list((out / "tb").iterdir())
    if curve:
        assert (out / "learning_curve.png").is_file()
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize(
    "name,steps,overrides",
    [
        ("llm-grpo", 2, {**TINY_RL, "rollout_size": 16, "group_size": 4, "beta": 0.05}),
        ("llm-rloo", 2, {**TINY_RL, "rollout_size": 16, "group_size": 4, "loss_type": "cispo"}),
        (
            "llm-ppo",
            2,
            {**TINY_RL, "rollout_size": 8, "update_epochs": 2, "kl_target": 0.5, "top_p": 0.9},
        ),
        ("llm-reward-model", 3, {"batch_size": 8, "micro_batch_size": 4, "eval_every": 2}),
        ("llm-dpo", 3, {"model": "tiny", "batch_size": 8, "eval_every": 2}),
        ("llm-kto", 3, {"model": "tiny", "batch_size": 8, "eval_every": 2}),
        ("llm-online-dpo", 2, {**TINY_RL, "batch_size": 8, "eval_every": 1}),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_stage_writes_the_run_directory(tmp_path, name, steps, overrides):
    out = tmp_path / name
    summary = train(name, steps=steps, out=out, overrides=overrides, progress=False)
    assert summary["status"] == "finished" and summary["steps"] == steps
    saved = _contract(out)
    assert saved["algo"] == name
    assert yaml.safe_load((out / "config.yaml").read_text())["algo"] == name
    with pytest.raises(RLFoundryError, match="already holds a run"):
        train(name, steps=steps, out=out, overrides=overrides, progress=False)


def _params(out, prefix="model/"):
    tensors, _ = load_checkpoint_file(out / "checkpoint.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith(prefix)}


@pytest.mark.parametrize(
    "name", ["llm-grpo", "llm-reward-model", "llm-grpo-dynamic", "llm-kto", "llm-online-dpo"]
)
def test_resume_is_exact(tmp_path, name):
    if name == "llm-grpo":
        ov = {**TINY_RL, "rollout_size": 16, "group_size": 4}
    elif name == "llm-grpo-dynamic":  # GSPO, dynamic sampling and the sampling filters
        name = "llm-grpo"
        ov = {**TINY_RL, "rollout_size": 16, "group_size": 4, "loss_type": "gspo"}
        ov.update(dynamic_sampling=True, top_k=50, top_p=0.9, repetition_penalty=1.3)
    elif name == "llm-kto":
        ov = {"model": "tiny", "batch_size": 8, "eval_every": 2}
    elif name == "llm-online-dpo":
        ov = {**TINY_RL, "batch_size": 8, "reward": f"{__name__}:vowel_share"}
    else:
        ov = {"batch_size": 8, "eval_every": 2}
    train(name, steps=4, out=tmp_path / "straight", overrides=ov, progress=False)
    s = train(name, steps=4, out=tmp_path / "cut", overrides=ov, progress=False, stop_at_step=2)
    assert s["status"] == "interrupted"
    stage = name.removeprefix("llm-")
    assert s["resume_command"] == f"rlfoundry llm {stage} --resume {tmp_path / 'cut'}"
    train(resume=tmp_path / "cut", progress=False)
    a, b = _params(tmp_path / "straight"), _params(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = (tmp_path / "cut" / "metrics.csv").read_text().strip().splitlines()
    straight = (tmp_path / "straight" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == len(straight)


def test_bad_inputs_fail_before_training(tmp_path):
    with pytest.raises(ConfigError, match="batch_size % micro_batch_size"):
        train("llm-reward-model", out=tmp_path / "a", batch_size=10, micro_batch_size=4)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n'
    )
    with pytest.raises(RLFoundryError, match="line 2") as err:
        train("llm-dpo", out=tmp_path / "b", overrides={"model": "tiny", "data": str(pairs)})
    assert "rejected" in str(err.value)
    with pytest.raises(RLFoundryError, match="does not exist"):
        train("llm-dpo", out=tmp_path / "c", model=str(tmp_path / "missing"))
    with pytest.raises(RLFoundryError, match="does not exist"):
        train("llm-reward-model", out=tmp_path / "d", data=str(tmp_path / "x.jsonl"))
    with pytest.raises(ConfigError, match="Unknown config key 'stepz'"):
        train("llm-ppo", out=tmp_path / "e", overrides={"model": "tiny", "stepz": 3})
    with pytest.raises(RLFoundryError, match="Cannot import reward module"):
        train("llm-grpo", out=tmp_path / "f", overrides={**TINY_RL, "reward": "nosuchmod:fn"})
    for name in "abcdef":
        assert not (tmp_path / name / "config.yaml").exists()


def vowel_share(prompts, completions):
    """Share of a completion's characters that are vowels: varied enough for pairs."""
    return [sum(ch in "aeiou" for ch in c) / max(1, len(c)) for c in completions]


_CALLS = {"n": 0}


def nan_after_two_batches(prompts, completions):
    """Finite for the first two batches, then NaN for the second completion."""
    _CALLS["n"] += 1
    out = [0.5] * len(prompts)
    if _CALLS["n"] > 2:
        out[1] = float("nan")
    return out


def test_failing_reward_names_itself_and_keeps_the_checkpoint(tmp_path):
    _CALLS["n"] = 0
    out = tmp_path / "run"
    ov = {
        **TINY_RL,
        "rollout_size": 8,
        "group_size": 4,
        "reward": f"{__name__}:nan_after_two_batches",
    }
    # checkpoint at every step (interval 0) so one exists when the reward breaks
    import rlfoundry.runtime.run as run_mod

    orig = run_mod.Run.__init__

    def eager(self, *a, **kw):
        orig(self, *a, **kw)
        self.checkpoint_interval_s = 0.0

    run_mod.Run.__init__ = eager
    try:
        with pytest.raises(RLFoundryError) as err:
            train("llm-grpo", steps=5, out=out, overrides=ov, progress=False)
    finally:
        run_mod.Run.__init__ = orig
    msg = str(err.value)
    assert "nan_after_two_batches" in msg and "nan" in msg and "completion" in msg
    tensors = load_file(out / "checkpoint.safetensors")  # still readable, from step 2
    _, state = load_checkpoint_file(out / "checkpoint.safetensors")
    assert state["step"] == 2 and any(k.startswith("model/") for k in tensors)


def test_reward_model_and_local_judge_as_reward_sources(tmp_path):
    from rlfoundry.llm.data import encode_pairs
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.rewards import parse_reward
    from rlfoundry.llm.scoring import load_reward_model, score_texts, sequence_rewards

    rm_dir = tmp_path / "rm"
    train("llm-reward-model", steps=2, out=rm_dir, batch_size=8, progress=False)
    reward = parse_reward(f"rm:{rm_dir}")
    vals = reward(["The movie was", "The movie was"], [" great.", " awful."])
    assert len(vals) == 2 and all(isinstance(v, float) for v in vals)

    # the score is read at the last real token (the EOS), also when pad == eos and the
    # batch is padded: a row scores the same alone and next to a longer one
    model, tok = load_reward_model(rm_dir)
    tok.pad_token = tok.eos_token
    alone = score_texts(model, tok, ["ab"], ["c"])
    padded = score_texts(model, tok, ["ab", "a much longer prompt"], ["c", "and completion"])
    assert torch.allclose(alone, padded[:1], atol=1e-5)
    ids, attn, _ = encode_pairs(tok, ["ab"], ["c"], 16)
    assert ids[0, int(attn[0].sum()) - 1] == tok.eos_token_id
    assert torch.allclose(sequence_rewards(model, ids, attn), alone, atol=1e-5)

    # a local judge: any causal LM directory, scores in [0, 1]
    judge_dir = tmp_path / "judge"
    torch.manual_seed(0)
    load_model("tiny").save_pretrained(judge_dir)
    load_tokenizer("tiny").save_pretrained(judge_dir)
    scores = parse_reward(f"0.5*judge:{judge_dir}")(["q1", "q2"], ["a", "bb"])
    assert all(0.0 <= s <= 0.5 for s in scores)

    # GRPO trains on the reward model's score plus a weighted task reward
    out = tmp_path / "grpo"
    s = train(
        "llm-grpo",
        steps=1,
        out=out,
        overrides={
            **TINY_RL,
            "task": "sentiment",
            "rollout_size": 8,
            "group_size": 4,
            "reward": f"rm:{rm_dir},0.5*task",
        },
        progress=False,
    )
    assert s["status"] == "finished"
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert f"reward/rm:{rm_dir}" in header


def test_a_run_from_before_the_registry_resumes(tmp_path, capsys):
    """Runs made before the registry say `stage: NAME` in config.yaml; they resume alike."""
    from rlfoundry.cli.main import main

    out = tmp_path / "rm"
    ov = {"batch_size": 8, "eval_every": 2}
    s = train("llm-reward-model", steps=4, out=out, overrides=ov, progress=False, stop_at_step=2)
    assert s["status"] == "interrupted"
    path = out / "config.yaml"
    path.write_text(path.read_text().replace("algo: llm-reward-model", "stage: reward-model"))
    assert main(["llm", "dpo", "--resume", str(out)]) == 2
    assert "was trained with llm-reward-model, not llm-dpo" in capsys.readouterr().err
    assert main(["llm", "reward-model", "--resume", str(out), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["status"] == "finished" and summary["algo"] == "llm-reward-model"


def test_old_config_names_still_work_with_a_warning():
    """One vocabulary: the LLM stages' old key names are accepted (with a FutureWarning)
    under their new names; `batch_size` is a rollout in the RL stages only."""
    import warnings

    from rlfoundry.llm import sft
    from rlfoundry.runtime.config import build_config

    old = {"steps": 3, "batch_size": 16, "mini_batch_size": 8, "epochs": 2, "lr": 1e-3}
    with pytest.warns(FutureWarning, match="'batch_size' is now 'rollout_size'"):
        cfg = build_config(grpo.Config, {**old, "clip_eps": 0.1, "clip_eps_high": 0.3})
    got = (cfg.total_steps, cfg.rollout_size, cfg.minibatch_size, cfg.update_epochs)
    assert got == (3, 16, 8, 2)
    assert (cfg.learning_rate, cfg.clip_coef, cfg.clip_coef_high) == (1e-3, 0.1, 0.3)
    with pytest.warns(FutureWarning, match="'lam' is now 'gae_lambda'"):
        cfg = build_config(ppo.Config, {"lam": 0.9, "whiten_advantages": False, "batch_size": 8})
    assert (cfg.gae_lambda, cfg.norm_adv, cfg.rollout_size) == (0.9, False, 8)
    with pytest.warns(FutureWarning, match="'batch_size' is now 'rollout_size'"):
        assert build_config(rloo.Config, {"batch_size": 8}).rollout_size == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a supervised batch stays `batch_size`, no warning
        assert build_config(sft.Config, {"batch_size": 4}).batch_size == 4
        assert build_config(dpo.Config, {"batch_size": 4}).batch_size == 4
