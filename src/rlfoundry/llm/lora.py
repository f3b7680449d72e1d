"""LoRA (Hu et al. 2021, arXiv:2106.09685) through peft: which layers, wrapping, merging.

    targets = lora_targets(model, "")              # the attention/MLP projections found
    model = add_lora(model, rank=8, targets=targets)
    with reference_mode(model): ...                # the base model: adapters off
    plain = merged(model)                          # W + (alpha/rank) B A folded in, float32

A LoRA layer computes `W x + (alpha / rank) B A x` with `W` frozen and only `A`
`[rank, in]` and `B` `[out, rank]` trained; `B` starts at 0, so the wrapped model starts
as the base model. Turning the adapters off gives the base model back exactly, which is
why a LoRA run's reference policy needs no second copy of the weights (TRL does the
same with peft's `disable_adapter()`).

Default targets are found by name: the linear projections of attention and MLP in the
Llama/Qwen2/Mistral/SmolLM family (`q_proj k_proj v_proj o_proj gate_proj up_proj
down_proj`, which the built-in tiny models share) and GPT-2's `c_attn c_proj c_fc`
(Conv1D layers, adapted with `fan_in_fan_out`). Never the embeddings or the output head.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rlfoundry.errors import ConfigError

#: Layer names LoRA adapts by default, by family (the last component of the module name).
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "llama/qwen2/mistral": (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
}
#: Linear layers that are never default targets: the output head and a classifier head.
HEADS = ("lm_head", "score", "classifier")


def _is_linear(module: torch.nn.Module) -> bool:
    """nn.Linear, or the Conv1D of GPT-2 (a linear layer with a transposed weight)."""
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def linear_names(model: torch.nn.Module) -> list[str]:
    """Sorted distinct last name components of the model's linear layers."""
    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if n and _is_linear(m)})


def parse_targets(targets: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """ "q_proj, v_proj" or a list -> ["q_proj", "v_proj"]; empty or None -> []."""
    if targets is None:
        return []
    if isinstance(targets, str):
        targets = targets.split(",")
    return [t.strip() for t in targets if t and t.strip()]


def lora_targets(model: torch.nn.Module, requested: str | list[str] | None = None) -> list[str]:
    """The layer names to adapt: `requested`, each checked against the model, or the default
    attention/MLP projections the model has. One-sentence ConfigError when none match."""
    present = linear_names(model)
    shown = ", ".join(present) if present else "none"
    wanted = parse_targets(requested)
    if wanted:
        missing = [t for t in wanted if t not in present]
        if missing:
            raise ConfigError(
                f"LoRA target modules {missing} name no linear layer of this model (its linear "
                f"layers: {shown}); set lora_target_modules to some of those names."
            )
        return wanted
    searched = [n for names in DEFAULT_TARGETS.values() for n in names]
    found = [n for n in searched if n in present]
    if not found:
        raise ConfigError(
            f"LoRA looked for linear layers named {', '.join(searched)} (Llama, Qwen2 and GPT-2 "
            f"names) and this model has none (its linear layers: {shown}); set "
            "lora_target_modules to some of its layer names, or lora_rank=0."
        )
    return found


def add_lora(
    model: torch.nn.Module,
    rank: int,
    alpha: float | None = None,
    targets: str | list[str] | None = None,
    dropout: float = 0.0,
    task_type: str | None = "CAUSAL_LM",
) -> Any:
    """`model` wrapped in a peft LoRA adapter of `rank` on `targets` (default: see module).

    alpha 0/None = 2 * rank. Only the adapter (and, for task_type SEQ_CLS, the new score
    head) trains; trainable weights are kept in float32 whatever the base's dtype, so the
    optimizer never updates half-precision weights.
    """
    from peft import LoraConfig, get_peft_model

    names = lora_targets(model, targets)
    conv1d = any(
        type(m).__name__ == "Conv1D" and n.rsplit(".", 1)[-1] in names
        for n, m in model.named_modules()
    )
    cfg = LoraConfig(
        r=rank,
        lora_alpha=alpha or 2 * rank,
        target_modules=names,
        lora_dropout=dropout,
        fan_in_fan_out=conv1d,
        task_type=task_type,
    )
    with warnings.catch_warnings():  # peft 0.21 reads an attribute transformers 5 renamed
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        wrapped = get_peft_model(model, cfg)
    for p in wrapped.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return wrapped


def is_lora(model: Any) -> bool:
    """Whether `model` is wrapped in a peft adapter."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


@contextlib.contextmanager
def reference_mode(model: Any) -> Iterator[Any]:
    """The LoRA-wrapped `model` as its base model (adapters off, eval mode) inside; yields it.

    The reference policy of a LoRA run: the same weights in memory, with the adapters'
    contribution switched off (peft's `disable_adapter()`).
    """
    was = model.training
    model.eval()
    try:
        with model.disable_adapter():
            yield model
    finally:
        model.train(was)


def merged(model: Any) -> Any:
    """The plain model with the adapter folded in (`merge_and_unload`), in float32.

    Half-precision base weights are upcast first: a LoRA update is small next to the
    weights, and adding it in bfloat16 would round most of it away. Modifies `model`;
    a model without an adapter is returned as it is.
    """
    if not hasattr(model, "merge_and_unload"):
        return model
    if any(p.dtype != torch.float32 and p.is_floating_point() for p in model.parameters()):
        model = model.float()
    return model.merge_and_unload()


def adapter_base(path: str | Path) -> str:
    """The base model an adapter directory was trained on (its adapter_config.json)."""
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    return str(cfg.get("base_model_name_or_path") or "")
