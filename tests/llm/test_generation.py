"""The KV-cache sampler: greedy output equals `model.generate` token for token, sampling
log-probs equal a fresh forward pass, EOS handling (also pad == eos), top-k/top-p."""

from __future__ import annotations

import pytest
import torch

from rlfoundry.llm.generation import generate, left_pad, sample_tokens
from rlfoundry.llm.models import load_model, load_tokenizer, policy_logprobs

torch.set_num_threads(1)

PROMPTS = ["12+7=", "3+30=", "The pasta was", "8+8=", "1", "Honestly, the movie is"]


def _model(arch="qwen2", eos_bias=0.0):
    """A nano model with larger random weights (varied greedy output) and, optionally,
    a bias on the EOS logit so that sampled rows end at different lengths."""
    torch.manual_seed(0)
    model = load_model(f"tiny:nano:{arch}").eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.1)
    if eos_bias:
        eos = model.config.eos_token_id

        def hook(module, inputs, output):
            output = output.clone()
            output[..., eos] += eos_bias
            return output

        model.lm_head.register_forward_hook(hook)
    return model


def _completion_logp(model, out, temperature):
    cm = torch.zeros_like(out.attention_mask, dtype=torch.bool)
    cm[:, out.prompt_len :] = out.completion_mask
    with torch.no_grad():
        lp = policy_logprobs(model, out.input_ids, out.attention_mask, cm, temperature)
    return lp[:, out.prompt_len :]


@pytest.mark.parametrize("arch,eos_bias", [("qwen2", 0.0), ("llama", 0.0), ("qwen2", 4.0)])
def test_greedy_equals_model_generate(arch, eos_bias):
    model, tok = _model(arch, eos_bias), load_tokenizer("tiny")
    out = generate(model, tok, PROMPTS, max_new_tokens=12, temperature=0.0, check_every=1)
    ids, attn = left_pad(tok, PROMPTS)
    ref = model.generate(
        input_ids=ids,
        attention_mask=attn,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )[:, ids.shape[1] :]
    T = out.completion_ids.shape[1]
    assert torch.equal(out.completion_ids, ref[:, :T])
    assert (ref[:, T:] == tok.pad_token_id).all()  # we stopped only when all rows ended
    assert len(set(out.completion_ids[:, 0].tolist())) > 1  # not a degenerate test
    if eos_bias:  # rows end at different steps; the finished ones are padded meanwhile
        assert (~out.truncated).all() and len(set(out.completion_mask.sum(1).tolist())) > 1


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 0, 1.0), (1.3, 20, 0.9)])
def test_sampling_logprobs_match_a_fresh_forward_pass(temperature, top_k, top_p):
    model, tok = _model(eos_bias=3.0), load_tokenizer("tiny")
    gen = torch.Generator().manual_seed(0)
    out = generate(
        model, tok, PROMPTS * 4, 16, temperature, top_k=top_k, top_p=top_p, generator=gen
    )
    fresh = _completion_logp(model, out, temperature)
    m = out.completion_mask
    assert torch.allclose(out.logp[m], fresh[m], atol=1e-5, rtol=0)
    assert out.logp[~m].eq(0).all()
    # seeded: the same generator state gives the same samples
    again = generate(
        model,
        tok,
        PROMPTS * 4,
        16,
        temperature,
        top_k=top_k,
        top_p=top_p,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(again.completion_ids, out.completion_ids)


@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_eos_is_kept_in_the_mask_and_the_rest_is_padding(pad_is_eos):
    model, tok = _model(eos_bias=3.0), load_tokenizer("tiny")
    if pad_is_eos:
        tok.pad_token = tok.eos_token
    eos = tok.eos_token_id
    out = generate(model, tok, PROMPTS * 4, 16, 1.0, generator=torch.Generator().manual_seed(1))
    ended = ~out.truncated
    assert ended.any() and out.truncated.any()
    for i in range(len(out.texts)):
        n = int(out.completion_mask[i].sum())
        row = out.completion_ids[i]
        assert out.completion_mask[i, :n].all() and not out.completion_mask[i, n:].any()
        assert (row[n:] == tok.pad_token_id).all()
        if ended[i]:
            assert row[n - 1] == eos and (row[: n - 1] != eos).all()
            assert out.texts[i] == tok.decode(row[: n - 1])
        else:
            assert n == out.completion_ids.shape[1] == 16 and (row != eos).all()
    assert torch.equal(out.attention_mask[:, out.prompt_len :].bool(), out.completion_mask)
    fresh = _completion_logp(model, out, 1.0)
    assert torch.allclose(out.logp[out.completion_mask], fresh[out.completion_mask], atol=1e-5)


def test_early_exit_when_every_row_has_ended():
    model, tok = _model(eos_bias=50.0), load_tokenizer("tiny")  # EOS at once, every row
    out = generate(model, tok, PROMPTS, max_new_tokens=64, temperature=1.0, check_every=4)
    assert out.completion_ids.shape[1] == 4  # stopped at the first check
    assert out.completion_mask[:, 0].all() and not out.completion_mask[:, 1:].any()
    assert out.texts == [""] * len(PROMPTS) and not out.truncated.any()


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)
    gen = torch.Generator().manual_seed(0)
    tok, lp = sample_tokens(logits, 1.0, top_k=2, generator=gen)
    assert set(tok.tolist()) == {0, 1}
    assert torch.allclose(lp, torch.log_softmax(logits[0], -1)[tok])  # untruncated log-prob
    p = torch.softmax(logits[0], -1)  # [0.64, 0.24, 0.09, ...]: top_p 0.8 keeps 2 tokens
    tok, _ = sample_tokens(logits, 1.0, top_p=float(p[0] + p[1]) - 0.01, generator=gen)
    assert set(tok.tolist()) == {0, 1}
    greedy, _ = sample_tokens(logits[:3], 0.0)
    assert greedy.tolist() == [0, 0, 0]
