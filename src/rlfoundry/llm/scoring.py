"""Scalar reward models: a transformer with a one-output sequence-classification head.

    model, tok = build_reward_model("tiny")          # or a run / model directory
    model, tok = load_reward_model("runs/rm")        # trained by `rlfoundry llm reward-model`
    r = score_texts(model, tok, prompts, completions)   # [B]

The head reads the hidden state of the LAST non-pad token (the appended EOS), as in
InstructGPT (Ouyang et al. 2022) and transformers' `*ForSequenceClassification`.
`reward_model.py` trains it; `rewards.py` scores RL completions with it ("rm:DIR").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.data import encode_pairs
from rlfoundry.llm.lora import adapter_base, merged
from rlfoundry.llm.models import load_tokenizer, model_dir, tiny_config


def _from_dir(path: str, **kwargs: Any) -> Any:
    """A sequence classifier from a model directory (`kwargs` to from_pretrained); a LoRA
    adapter saved alone (adapter_config.json) is loaded onto its base with one output
    (the reward-model stage's head) and folded in."""
    from transformers import AutoModelForSequenceClassification

    if not (Path(path) / "adapter_config.json").is_file():
        return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    from peft import PeftModel

    base = AutoModelForSequenceClassification.from_pretrained(adapter_base(path), num_labels=1)
    return merged(PeftModel.from_pretrained(base, path))


def build_reward_model(name: str) -> tuple[Any, Any]:
    """A sequence-classification model with one output from a causal LM (or 'tiny')."""
    from transformers import AutoModelForSequenceClassification

    if name == "tiny":
        tok = load_tokenizer("tiny")
        config = tiny_config(tok)
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        path = model_dir(name)
        tok = load_tokenizer(path)
        model = _from_dir(path, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def load_reward_model(path: str | Path) -> tuple[Any, Any]:
    """The trained reward model and tokenizer saved in `DIR/model` (or `DIR`)."""
    path = model_dir(str(path))
    model = _from_dir(path).eval()
    if model.config.num_labels != 1:
        raise RLFoundryError(
            f"'{path}' has {model.config.num_labels} outputs, not 1; pass a reward model "
            "trained by `rlfoundry llm reward-model`."
        )
    return model, load_tokenizer(path)


def sequence_rewards(model: Any, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Score of each right-padded row, read at its last non-pad token. `[B, L] -> [B]`.

    The position comes from the attention mask, not from searching pad ids: with
    pad == eos (common) a search would stop before the EOS the score should read.
    The batch moves to the model's device; a LoRA-wrapped model is read through its
    (adapted) transformer body and score head.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    dev = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(dev), attention_mask.to(dev)
    hidden = inner.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    last = attention_mask.sum(-1) - 1  # [B]
    h = hidden[torch.arange(hidden.shape[0], device=dev), last]  # [B, H]
    return inner.score(h).squeeze(-1).float()


@torch.no_grad()
def score_texts(
    model: Any, tok: Any, prompts: list[str], completions: list[str], batch_size: int = 32
) -> Tensor:
    """Rewards `[B]` of (prompt, completion) pairs, in batches."""
    max_len = getattr(model.config, "max_position_embeddings", 512)
    out = []
    for i in range(0, len(prompts), batch_size):
        ids, attn, _ = encode_pairs(
            tok, prompts[i : i + batch_size], completions[i : i + batch_size], max_len
        )
        out.append(sequence_rewards(model, ids, attn))
    return torch.cat(out) if out else torch.zeros(0)
