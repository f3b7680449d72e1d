"""Device, precision, gradient checkpointing and LoRA in every LLM stage (`policy.ModelOptions`):
each stage runs with LoRA and with bfloat16 and saves a model that reloads; a LoRA
reference is the base model itself; bad settings are refused before anything is written."""

from __future__ import annotations

import csv
import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from rlfoundry.api import train
from rlfoundry.errors import ConfigError
from rlfoundry.llm.lora import add_lora, linear_names, lora_targets
from rlfoundry.llm.models import (
    load_model,
    load_tokenizer,
    policy_logprobs,
    save_model,
    tiny_config,
)
from rlfoundry.llm.policy import Reference, check_model_options
from rlfoundry.llm.precision import Precision, make_generator, resolve_device, restore_generator
from rlfoundry.llm.sft import Config as SFTConfig
from rlfoundry.runtime.run import load_checkpoint_file

torch.set_num_threads(1)

RL = {"model": "tiny", "eval_every": 0, "eval_size": 4, "max_new_tokens": 4, "total_steps": 2}
STAGES = {
    "llm-pretrain": {"total_steps": 2, "batch_size": 8, "eval_every": 0, "eval_size": 4},
    "llm-sft": {
        "model": "tiny",
        "total_steps": 2,
        "batch_size": 8,
        "eval_every": 0,
        "eval_size": 4,
    },
    "llm-reward-model": {"total_steps": 2, "batch_size": 8, "eval_every": 2, "eval_pairs": 8},
    "llm-dpo": {
        "model": "tiny",
        "total_steps": 2,
        "batch_size": 8,
        "eval_every": 2,
        "eval_pairs": 8,
    },
    "llm-grpo": {**RL, "rollout_size": 8, "group_size": 4, "beta": 0.05},
    "llm-rloo": {**RL, "rollout_size": 8, "group_size": 4},
    "llm-ppo": {**RL, "rollout_size": 4, "update_epochs": 1},
}


def _metrics(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _reload(out, name):
    """DIR/model loads with transformers' from_pretrained and gives finite outputs."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if name == "llm-reward-model":
        m = AutoModelForSequenceClassification.from_pretrained(out / "model", num_labels=1)
    else:
        m = AutoModelForCausalLM.from_pretrained(out / "model")
    with torch.no_grad():
        logits = m(torch.tensor([[5, 6, 7, 8]])).logits
    assert torch.isfinite(logits).all()
    return m


@pytest.mark.parametrize("name", [n for n in STAGES if n != "llm-pretrain"])
def test_every_stage_trains_with_lora_in_bfloat16(tmp_path, name):
    out = tmp_path / name
    ov = {**STAGES[name], "lora_rank": 4, "dtype": "bfloat16", "seed": 1}
    s = train(name, out=out, overrides=ov, progress=False)
    assert s["status"] == "finished"
    # the checkpoint holds what trains (adapter, and heads), not the frozen base
    tensors, _ = load_checkpoint_file(out / "checkpoint.safetensors")
    weights = [k for k in tensors if k.startswith(("model/", "policy/", "value/"))]
    assert weights and all("lora_" in k or "score" in k or "head" in k for k in weights)
    assert all(tensors[k].dtype == torch.float32 for k in weights)  # float32 master weights
    # merged weights (float32, no adapter) reload with from_pretrained
    m = _reload(out, name)
    assert not any("lora" in n for n, _ in m.named_parameters())
    assert all(p.dtype == torch.float32 for p in m.parameters())


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_trains_in_bfloat16(tmp_path, name):
    out = tmp_path / name
    s = train(name, out=out, overrides={**STAGES[name], "dtype": "bfloat16"}, progress=False)
    assert s["status"] == "finished"
    _reload(out, name)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny model saved as a directory: the base an adapter-only save points to."""
    path = tmp_path_factory.mktemp("base") / "tiny"
    torch.manual_seed(0)
    save_model(load_model("tiny"), load_tokenizer("tiny"), path)
    return path


@pytest.mark.parametrize("name", ["llm-sft", "llm-reward-model", "llm-grpo"])
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_adapter_only_save_reloads_like_the_merged_one(tmp_path, base_dir, name):
    """Same seed, same training; one run saves the adapter alone, the other merged weights:
    both reload with from_pretrained (the adapter through peft) to the same model."""
    ov = {**STAGES[name], "model": str(base_dir), "lora_rank": 4, "seed": 3}
    train(name, out=tmp_path / "a", overrides={**ov, "save_adapter_only": True}, progress=False)
    train(name, out=tmp_path / "m", overrides=ov, progress=False)
    files = sorted(p.name for p in (tmp_path / "a" / "model").iterdir())
    assert "adapter_config.json" in files and "config.json" not in files
    adapter = load_file(tmp_path / "a" / "model" / "adapter_model.safetensors")
    assert all("lora_" in k or "score" in k for k in adapter)
    base = json.loads((tmp_path / "a" / "model" / "adapter_config.json").read_text())
    assert base["base_model_name_or_path"] == str(base_dir.resolve())
    a, m = _reload(tmp_path / "a", name), _reload(tmp_path / "m", name)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        la, lm = a(ids).logits, m(ids).logits
    assert torch.allclose(la, lm, atol=1e-5)
    if name == "llm-reward-model":  # as an RL reward ("rm:DIR") it scores like the merged one
        from rlfoundry.llm.rewards import parse_reward

        pc = (["1+1="] * 2, ["2", "3"])
        assert parse_reward(f"rm:{tmp_path / 'a'}")(*pc) == pytest.approx(
            parse_reward(f"rm:{tmp_path / 'm'}")(*pc), abs=1e-5
        )
    else:  # through peft itself, and through rlfoundry's loader
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        with torch.no_grad():
            base = AutoModelForCausalLM.from_pretrained(base_dir)
            lp = PeftModel.from_pretrained(base, tmp_path / "a" / "model")(ids).logits
            lr = load_model(tmp_path / "a").eval()(ids).logits
        assert torch.allclose(lp, lm, atol=1e-5) and torch.allclose(lr, lm, atol=1e-5)


def test_lora_reference_is_the_base_model_without_a_copy():
    torch.manual_seed(0)
    base = load_model("tiny").eval()
    torch.manual_seed(0)
    model = add_lora(load_model("tiny"), 4)
    for n, p in model.named_parameters():  # a trained-looking adapter: policy != base
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    model.train()
    ref = Reference(model, Precision(torch.device("cpu")))
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    attn, cm = torch.ones_like(ids), torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        want = policy_logprobs(base, ids, attn, cm)
        with ref() as ref_model:
            assert ref_model is model and ref.copy is None  # no second copy of the weights
            assert not ref_model.training
            got = policy_logprobs(ref_model, ids, attn, cm)
        assert model.training  # the policy's mode is restored
        policy = policy_logprobs(model.eval(), ids, attn, cm)
    assert torch.equal(got, want)
    assert not torch.allclose(policy, want, atol=1e-3)
    # one copy of every base weight: the model's tensors are the base's plus the adapter
    n_base = sum(p.numel() for p in base.parameters())
    n_lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert sum(p.numel() for p in model.parameters()) == n_base + n_lora


def test_lora_dpo_starts_at_the_reference(tmp_path):
    """pi = ref at the start (B = 0), so the held-out implicit reward margin is exactly 0."""
    out = tmp_path / "dpo"
    train("llm-dpo", out=out, overrides={**STAGES["llm-dpo"], "lora_rank": 4}, progress=False)
    first = _metrics(out)[0]
    assert first["step"] == "0" and float(first["eval_reward_margin"]) == 0.0


def test_lora_resume_is_exact(tmp_path):
    ov = {**STAGES["llm-grpo"], "total_steps": 4, "lora_rank": 4}
    train("llm-grpo", out=tmp_path / "straight", overrides=ov, progress=False)
    train("llm-grpo", out=tmp_path / "cut", overrides=ov, progress=False, stop_at_step=2)
    train(resume=tmp_path / "cut", progress=False)
    a, _ = load_checkpoint_file(tmp_path / "straight" / "checkpoint.safetensors")
    b, _ = load_checkpoint_file(tmp_path / "cut" / "checkpoint.safetensors")
    keys = [k for k in a if k.startswith("model/")]
    assert keys and all("lora_" in k for k in keys)
    for k in keys:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("lora", [0, 4])
def test_gradient_checkpointing_changes_memory_not_math(tmp_path, lora):
    ov = {**STAGES["llm-sft"], "total_steps": 1, "lora_rank": lora, "seed": 2}
    train("llm-sft", out=tmp_path / "plain", overrides=ov, progress=False)
    ov["gradient_checkpointing"] = True
    train("llm-sft", out=tmp_path / "ckpt", overrides=ov, progress=False)
    a, _ = load_checkpoint_file(tmp_path / "plain" / "checkpoint.safetensors")
    b, _ = load_checkpoint_file(tmp_path / "ckpt" / "checkpoint.safetensors")
    rows = [_metrics(tmp_path / d)[0] for d in ("plain", "ckpt")]
    assert rows[0]["loss"] == rows[1]["loss"]  # the same forward pass
    assert float(rows[0]["grad_norm"]) == pytest.approx(float(rows[1]["grad_norm"]), rel=1e-5)
    keys = [k for k in a if k.startswith("model/")]
    assert keys
    for k in keys:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "name,overrides,match",
    [
        ("llm-sft", {"dtype": "float16", "device": "cpu"}, "float16 needs a GPU"),
        ("llm-grpo", {"device": "tpu"}, "Unknown device 'tpu'"),
        ("llm-grpo", {"device": "cpu:1"}, "Unknown device 'cpu:1'"),
        ("llm-dpo", {"dtype": "half"}, "Unknown dtype 'half'"),
        ("llm-pretrain", {"lora_rank": 8}, "LoRA does not apply to pre-training"),
        (
            "llm-sft",
            {"lora_rank": 4, "lora_target_modules": "qkv"},
            r"LoRA target modules \['qkv'\]",
        ),
        ("llm-sft", {"lora_rank": 4, "save_adapter_only": True}, "a built-in name"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, name, overrides, match):
    out = tmp_path / "run"
    ov = {**STAGES[name], **overrides}
    with pytest.raises(ConfigError, match=match) as err:
        train(name, out=out, overrides=ov, progress=False)
    assert str(err.value).count(". ") == 0  # one sentence
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_cuda_without_a_gpu_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no CUDA device"):
        train("llm-sft", out=tmp_path / "r", overrides={**STAGES["llm-sft"], "device": "cuda"})
    assert not (tmp_path / "r").exists()


def test_lora_on_a_model_without_the_expected_layer_names(tmp_path):
    """A GPT-NeoX model names its projections query_key_value, dense, ...: the error
    names what LoRA looked for and what it found, and nothing is written."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    tok = load_tokenizer("tiny")
    cfg = GPTNeoXConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    path = tmp_path / "neox"
    save_model(AutoModelForCausalLM.from_config(cfg), tok, path)
    out = tmp_path / "run"
    ov = {**STAGES["llm-grpo"], "model": str(path), "lora_rank": 4}
    with pytest.raises(ConfigError, match="LoRA looked for linear layers named q_proj") as err:
        train("llm-grpo", out=out, overrides=ov, progress=False)
    assert "query_key_value" in str(err.value) and "lora_target_modules" in str(err.value)
    assert not out.exists()
    # naming its layers works
    cfg_ok = SFTConfig(model=str(path), lora_rank=4, lora_target_modules="query_key_value")
    check_model_options(cfg_ok)


def test_default_targets_by_family():
    from transformers import AutoModelForCausalLM, GPT2Config

    with torch.device("meta"):
        qwen = AutoModelForCausalLM.from_config(tiny_config("nano"))
        llama = AutoModelForCausalLM.from_config(tiny_config("nano", "llama"))
    proj = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert lora_targets(qwen) == proj and lora_targets(llama) == proj
    assert "lm_head" in linear_names(qwen) and "lm_head" not in lora_targets(qwen)
    gpt2 = AutoModelForCausalLM.from_config(
        GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100, n_positions=32)
    )
    assert lora_targets(gpt2) == ["c_attn", "c_proj", "c_fc"]
    wrapped = add_lora(gpt2, 2)  # Conv1D layers, adapted with fan_in_fan_out
    with torch.no_grad():
        assert torch.isfinite(wrapped(torch.tensor([[1, 2, 3]])).logits).all()


# ---------------------------------------------------------------------- precision pieces


def test_auto_device_and_defaults():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and getattr(torch.backends, "mps", None):
        want = "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == want
    prec = Precision.from_config(SFTConfig(device="cpu"))
    assert prec.dtype == torch.float32 and prec.scaler is None and not prec.mixed


def test_loss_scaler_skips_a_step_whose_gradient_overflowed():
    """The float16 path's bookkeeping (run here with a CPU GradScaler): an inf gradient
    leaves the weights alone and halves the scale; a finite one steps."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    prec = Precision(torch.device("cpu"), torch.bfloat16, torch.amp.GradScaler("cpu"))
    scale = prec.scaler.get_scale()
    prec.backward((w * torch.tensor([1.0, float("inf"), 1.0])).sum())
    prec.unscale(opt)
    prec.step(opt)
    assert torch.equal(w.detach(), torch.ones(3)) and prec.scaler.get_scale() == scale / 2
    opt.zero_grad()
    prec.backward(w.sum())
    prec.unscale(opt)
    assert torch.allclose(w.grad, torch.ones(3))  # unscaled: the true gradient
    prec.step(opt)
    assert torch.allclose(w.detach(), torch.full((3,), 0.9))
    saved = prec.state()
    other = Precision(torch.device("cpu"), torch.bfloat16, torch.amp.GradScaler("cpu"))
    other.load_state(saved)
    assert other.scaler.get_scale() == prec.scaler.get_scale()


def test_sampling_stream_saved_on_another_device_restarts_with_a_warning():
    gen = make_generator(torch.device("cpu"), 0)
    state = gen.get_state()
    torch.rand(3, generator=gen)
    restore_generator(gen, state, "cpu", reseed=7)
    assert torch.equal(gen.get_state(), state)
    with pytest.warns(UserWarning, match="saved on cuda"):
        restore_generator(gen, torch.zeros(16, dtype=torch.uint8), "cuda", reseed=7)
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(7).get_state())


# ---------------------------------------------------------------------- GPU


@pytest.mark.gpu(1)  # deselected without a CUDA device (tests/conftest.py)
@pytest.mark.parametrize("lora", [0, 4])
def test_cuda_bfloat16_stages(tmp_path, lora):
    """SFT then GRPO on cuda in bfloat16 (LoRA on and off); the GRPO checkpoint resumes on
    the CPU (device-independent tensors; the sampling stream restarts)."""
    gpu = {"device": "cuda", "dtype": "bfloat16", "lora_rank": lora}
    s = train("llm-sft", out=tmp_path / "sft", overrides={**STAGES["llm-sft"], **gpu})
    assert s["status"] == "finished"
    ov = {**STAGES["llm-grpo"], **gpu, "model": str(tmp_path / "sft"), "total_steps": 3}
    s = train("llm-grpo", out=tmp_path / "grpo", overrides=ov, stop_at_step=2, progress=False)
    assert s["status"] == "interrupted"
    tensors, state = load_checkpoint_file(tmp_path / "grpo" / "checkpoint.safetensors")
    assert all(t.device.type == "cpu" for t in tensors.values())
    assert state["gen_device"] == "cuda"
    cfg = tmp_path / "grpo" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("device: cuda", "device: cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = train(resume=tmp_path / "grpo", progress=False)
    assert s["status"] == "finished"
    _reload(tmp_path / "grpo", "llm-grpo")
