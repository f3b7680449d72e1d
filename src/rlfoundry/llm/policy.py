"""The trained model of every LLM stage, built one way: device, precision, checkpointing, LoRA.

    @dataclass
    class Config(ModelOptions): ...             # device, dtype, lora_rank, ... in every stage
    check_model_options(cfg)                    # in check(cfg): before anything is written
    model, tok, prec = build_policy(cfg)        # on prec.device, LoRA-wrapped when lora_rank > 0
    ref = Reference(model, prec)                # the frozen starting policy
    with torch.no_grad(), ref() as ref_model:   #   adapters off (LoRA) or a frozen copy
        ref_logp = policy_logprobs(ref_model, ...)
    save_policy(model, tok, run.path, cfg)      # DIR/model: merged weights or the adapter

With LoRA the reference policy is the policy itself with its adapters turned off: the
base weights are held once (TRL with peft does the same). Without LoRA it is a frozen
copy of the starting model, stored in `dtype`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.llm.lora import adapter_base, add_lora, is_lora, lora_targets, merged, reference_mode
from rlfoundry.llm.models import (
    from_hub,
    load_model,
    load_tokenizer,
    model_dir,
    parse_builtin,
    quiet_progress,
    resolve_model_dir,
    tiny_config,
    write_model_dir,
)
from rlfoundry.llm.precision import Precision, resolve_device, resolve_dtype


@dataclass
class ModelOptions:
    """Hardware, precision and LoRA fields shared by every LLM stage's Config."""

    device: str = "auto"
    """Where the models run: auto (cuda if available, else mps, else cpu) | cpu | cuda |
    cuda:N | mps; under torchrun each process takes the GPU of its LOCAL_RANK."""
    dtype: str = "float32"
    """Precision: float32 | bfloat16 | float16. Half precisions are mixed precision: trainable
    weights stay float32, forward passes run under autocast, frozen weights (LoRA base,
    reference copy) are stored in dtype; float16 adds a loss scaler and needs a GPU."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of storing them: less memory,
    about one more forward pass of time, the same gradients."""
    lora_rank: int = 0
    """LoRA rank; 0 = train every weight. With LoRA the reference policy is the base model
    with the adapters turned off (no second copy)."""
    lora_alpha: float = 0.0
    """LoRA scale numerator (the update is alpha / rank * B A); 0 = 2 * rank."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch's input."""
    lora_target_modules: str = ""
    """Comma-separated names of the linear layers to adapt; empty = the attention and MLP
    projections (q/k/v/o_proj, gate/up/down_proj; GPT-2: c_attn, c_proj, c_fc)."""
    save_adapter_only: bool = False
    """With LoRA, save DIR/model as the adapter alone (peft format, loads with
    from_pretrained given the base model directory); false = merged full weights."""


# ---------------------------------------------------------------------- the check


def _skeleton(name: str) -> torch.nn.Module:
    """The model's modules without weights (meta device): cheap, to look up layer names."""
    from transformers import AutoConfig, AutoModelForCausalLM

    builtin = parse_builtin(name)
    path = resolve_model_dir(name) if builtin is None else None
    if builtin is not None:
        config = tiny_config(*builtin)
    elif path is None:
        config = from_hub(AutoConfig, name, None, "Model")
    else:
        if (path / "adapter_config.json").is_file():
            path = Path(adapter_base(path))
        config = AutoConfig.from_pretrained(str(path))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def check_model_options(cfg: Any, lora: bool = True) -> None:
    """Fail before anything is written: device, dtype, and (when lora_rank > 0) that LoRA
    applies here (`lora=False`: pre-training) and finds the model's linear layers."""
    device = resolve_device(cfg.device)
    resolve_dtype(cfg.dtype, device)
    if cfg.lora_rank < 0:
        raise ConfigError(f"lora_rank must be >= 0, got {cfg.lora_rank}; 0 turns LoRA off.")
    if cfg.lora_rank == 0:
        return
    if not lora:
        raise ConfigError(
            "LoRA does not apply to pre-training from scratch, which trains every weight; "
            "set lora_rank=0 (use LoRA in sft and the later stages)."
        )
    if not 0 <= cfg.lora_dropout < 1:
        raise ConfigError(f"lora_dropout must lie in [0, 1), got {cfg.lora_dropout}.")
    if cfg.save_adapter_only:
        _check_adapter_base(cfg.model)
    try:
        skeleton = _skeleton(model_dir(cfg.model))
    except (OSError, ValueError, RLFoundryError):
        return  # not loadable here: loading the model reports it, in its own words
    lora_targets(skeleton, cfg.lora_target_modules)


def _check_adapter_base(name: str) -> None:
    """An adapter saved alone needs its base on disk as full weights: the starting model."""
    path = resolve_model_dir(name)
    if parse_builtin(name) is not None:
        why = "a built-in name"
    elif path is not None and (path / "adapter_config.json").is_file():
        why = "itself an adapter (it is merged into its base when loaded)"
    else:
        return
    raise ConfigError(
        f"save_adapter_only needs the starting model saved as full weights, and '{name}' is "
        f"{why}; start from a full model directory (a run saved with "
        "save_adapter_only=false) or set save_adapter_only=false."
    )


# ---------------------------------------------------------------------- building


def load_policy(cfg: Any) -> tuple[Any, Any, Precision]:
    """The starting model (a plain transformers model, any saved adapter folded in) on the
    device, its tokenizer, and the run's Precision. Built-in sizes draw their initial
    weights from torch's global RNG. Weights that will train are float32 (master weights);
    with LoRA in half precision the whole loaded model is frozen, so it is read in `dtype`
    straight away (never held in float32)."""
    prec = Precision.from_config(cfg)
    name = model_dir(cfg.model)
    tok = load_tokenizer(name)
    frozen = cfg.lora_rank > 0 and prec.mixed
    want = prec.dtype if frozen else torch.float32
    model = merged(load_model(name, dtype=want if frozen else None))
    if any(p.dtype != want for p in model.parameters() if p.is_floating_point()):
        model = model.to(want)
    return model.to(prec.device), tok, prec


def adapt(model: Any, cfg: Any, prec: Precision, task_type: str | None = "CAUSAL_LM") -> Any:
    """`model` ready to train: gradient checkpointing on request and, when lora_rank > 0,
    its weights stored in `dtype` (they are frozen) under a float32 LoRA adapter."""
    if cfg.gradient_checkpointing:
        # non-reentrant: gradients reach the adapters even though the embeddings are frozen
        kw = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x's name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
    if cfg.lora_rank <= 0:
        return model
    if prec.mixed:
        model = model.to(prec.dtype)
    return add_lora(
        model,
        cfg.lora_rank,
        cfg.lora_alpha or None,
        cfg.lora_target_modules or None,
        cfg.lora_dropout,
        task_type,
    )


def build_policy(cfg: Any) -> tuple[Any, Any, Precision]:
    """`load_policy` then `adapt`: the policy to train, its tokenizer, the Precision."""
    model, tok, prec = load_policy(cfg)
    return adapt(model, cfg, prec), tok, prec


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters the optimizer updates (all of them without LoRA)."""
    return [p for p in model.parameters() if p.requires_grad]


class Reference:
    """The frozen starting policy, for KL terms and DPO: `with ref() as m: m(...)`.

    With LoRA, the policy with its adapters off (one copy of the base weights); without,
    a frozen copy made now, stored in `dtype`.
    """

    def __init__(self, model: Any, prec: Precision) -> None:
        self.model = model
        self.copy = None if is_lora(model) else prec.frozen(copy.deepcopy(model))

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Any]:
        if self.copy is not None:
            yield self.copy
            return
        with reference_mode(self.model) as m:
            yield m


@contextlib.contextmanager
def dropout_off(model: torch.nn.Module) -> Iterator[None]:
    """Every module of `model` in eval mode for the block (no dropout: sampling with the
    policy the log-probs are taken from), then each back to its own mode.

    The `training` flags alone: `model.eval()` / `.train()` of a transformers model also
    re-kernelizes it for the `kernels` package's inference/training mode (0.4 ms a switch
    on the nano model, two per GRPO step), which computes the same function."""
    modes = [(m, m.training) for m in model.modules()]
    for m, _ in modes:
        m.training = False
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def place_rewards(reward_fn: Any, device: torch.device) -> None:
    """Move the models of reward sources (rm:DIR, judge:DIR) to the device."""
    for _, source in getattr(reward_fn, "parts", []):
        m = getattr(source, "model", None)
        if isinstance(m, torch.nn.Module):
            source.model = m.to(device)


# ---------------------------------------------------------------------- saving


def save_policy(model: Any, tok: Any, run_dir: str | Path, cfg: Any) -> Path:
    """`run_dir/model`: merged full weights (float32) or, with save_adapter_only, the
    LoRA adapter alone whose config names the base model's directory. Both load with
    transformers' `from_pretrained` (an adapter through its peft integration).

    Merging folds the adapter into `model` itself: call this last.
    """

    def save(path: Path) -> None:
        with quiet_progress():
            if is_lora(model) and cfg.save_adapter_only:
                base = resolve_model_dir(cfg.model)  # a full model directory (see the check)
                for pc in model.peft_config.values():
                    pc.base_model_name_or_path = (
                        str(base.resolve()) if base is not None else cfg.model
                    )
                model.save_pretrained(path, safe_serialization=True)
            else:
                merged(model).save_pretrained(path, safe_serialization=True)
        tok.save_pretrained(path)

    return write_model_dir(Path(run_dir) / "model", save)
