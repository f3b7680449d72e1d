"""The shared-prompt training forward (`llm/prefix.py`) is the plain forward's function:
the same log-probs within float rounding and the same gradients, with and without LoRA,
for groups split across micro-batches and for rows whose prompts differ."""

from __future__ import annotations

import pytest
import torch

from rlfoundry.llm.models import add_lora, load_model, load_tokenizer, policy_logprobs
from rlfoundry.llm.prefix import prompt_runs, shared_prompt_logprobs
from rlfoundry.llm.rollout import rollout

torch.set_num_threads(1)

# long prompts, so that sharing them saves enough positions to be taken (MIN_SAVED)
PROMPTS = [
    "1+2+3+4+5+6+7+8+9+10+11+12+7=",
    "3+30+4+40+5+50+6+60+7+70=",
    "45+1=",
    "8+8+8+8+8+8+8+8+8=",
]


def _plain(model, ro, rows, temperature):
    cm = torch.zeros_like(ro.attention_mask[rows], dtype=torch.bool)
    cm[:, ro.prompt_len :] = ro.completion_mask[rows]
    logp = policy_logprobs(model, ro.input_ids[rows], ro.attention_mask[rows], cm, temperature)
    return logp[:, ro.prompt_len :]


def _grads(model, fn):
    model.zero_grad(set_to_none=True)
    fn().sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model("tiny").train(), load_tokenizer("tiny")


def test_prompt_runs_count_adjacent_equal_prompts():
    ids = torch.tensor([[0, 5, 1], [0, 5, 2], [4, 5, 3], [0, 5, 3]])
    attn = torch.tensor([[0, 1, 1], [0, 1, 1], [1, 1, 1], [0, 1, 1]])
    assert prompt_runs(ids, attn, 2).tolist() == [0, 0, 1, 2]
    attn2 = attn.clone()
    attn2[1, 0] = 1  # same ids, different padding: a different prompt
    assert prompt_runs(ids, attn2, 2).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("rows", [slice(None), slice(2, 13)])
def test_same_logprobs_and_gradients_as_the_plain_forward(tiny, lora, rows):
    model, tok = tiny
    if lora:
        torch.manual_seed(1)
        model = add_lora(load_model("tiny"), 4)
        for n, p in model.named_parameters():  # B != 0, so the adapters act
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)
        model.train()
    gen = torch.Generator().manual_seed(0)
    ro = rollout(model, tok, PROMPTS, 4, 12, 1.3, gen)
    mask = ro.completion_mask[rows].bool()
    shared = shared_prompt_logprobs(
        model, ro.input_ids[rows], ro.attention_mask[rows], ro.prompt_len, 1.3
    )
    assert shared is not None
    plain = _plain(model, ro, rows, 1.3)
    assert torch.allclose(shared[mask], plain[mask], atol=2e-6, rtol=0)
    g_shared = _grads(
        model,
        lambda: shared_prompt_logprobs(
            model, ro.input_ids[rows], ro.attention_mask[rows], ro.prompt_len, 1.3
        ).masked_fill(~mask, 0),
    )
    g_plain = _grads(model, lambda: _plain(model, ro, rows, 1.3))
    assert g_shared.keys() == g_plain.keys() and g_plain
    for n in g_plain:
        scale = g_plain[n].abs().max().clamp(min=1e-3)
        assert (g_shared[n] - g_plain[n]).abs().max() <= 1e-4 * scale, n


def test_plain_forward_where_sharing_saves_too_little(tiny):
    model, tok = tiny
    gen = torch.Generator().manual_seed(0)
    ro = rollout(model, tok, PROMPTS, 1, 6, 1.0, gen)  # one row per prompt: nothing shared
    assert shared_prompt_logprobs(model, ro.input_ids, ro.attention_mask, ro.prompt_len) is None
    ro = rollout(model, tok, ["1+2=", "3+4="], 4, 6, 1.0, gen)  # 6 x ~4 positions saved
    assert shared_prompt_logprobs(model, ro.input_ids, ro.attention_mask, ro.prompt_len) is None
    ro = rollout(model, tok, PROMPTS, 4, 6, 1.0, gen)
    assert shared_prompt_logprobs(model, ro.input_ids, ro.attention_mask, ro.prompt_len) is not None
