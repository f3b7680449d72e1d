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


def test_filters_restrict_the_sample_and_keep_the_policy_logprob():
    """Hand-checked: logits [2, 0.5, 0.4, -1] with tokens 1 and 3 already seen. top_k=2
    draws only tokens 0 and 1; repetition penalty 4 turns token 1's logit into 0.125 <
    0.4, so top_k=2 then draws from {0, 2}; top_p=0.5 keeps token 0 alone (p = 0.66 >
    0.5). The log-prob returned is the unprocessed policy's in every case."""
    logits = torch.tensor([[2.0, 0.5, 0.4, -1.0]]).repeat(2000, 1)
    seen = torch.tensor([[False, True, False, True]]).repeat(2000, 1)
    full = torch.log_softmax(logits[0], -1)
    g = torch.Generator().manual_seed(0)
    for kw, support in [
        ({"top_k": 2}, {0, 1}),
        ({"top_k": 2, "repetition_penalty": 4.0, "seen": seen}, {0, 2}),
        ({"top_p": 0.5}, {0}),
        ({}, {0, 1, 2, 3}),
    ]:
        tok, lp = sample_tokens(logits, 1.0, generator=g, **kw)
        assert set(tok.tolist()) == support, kw
        assert torch.allclose(lp, full[tok])
    # greedy: the penalty alone can change the argmax (1.2 seen -> 0.6 < 1.0)
    tok, lp = sample_tokens(
        torch.tensor([[1.0, 1.2]]), 0.0, repetition_penalty=2.0, seen=torch.tensor([[False, True]])
    )
    assert tok.tolist() == [0] and torch.isclose(
        lp, torch.log_softmax(torch.tensor([1.0, 1.2]), -1)[0]
    )


@pytest.mark.parametrize("penalty", [1.3, 0.8])
def test_greedy_with_repetition_penalty_equals_model_generate(penalty):
    """transformers penalises every token of input_ids, padding included, so compare one
    prompt at a time (no padding)."""
    model, tok = _model(), load_tokenizer("tiny")
    changed = 0
    for prompt in PROMPTS:
        out = generate(model, tok, [prompt], 12, 0.0, check_every=1, repetition_penalty=penalty)
        ids, attn = left_pad(tok, [prompt])
        ref = model.generate(
            input_ids=ids,
            attention_mask=attn,
            max_new_tokens=12,
            do_sample=False,
            repetition_penalty=penalty,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )[:, ids.shape[1] :]
        T = out.completion_ids.shape[1]
        assert torch.equal(out.completion_ids, ref[:, :T]), prompt
        plain = generate(model, tok, [prompt], 12, 0.0, check_every=1)
        changed += not torch.equal(plain.completion_ids, out.completion_ids)
    assert changed  # the penalty did something


def test_sampling_with_repetition_penalty_keeps_the_policy_logprobs():
    model, tok = _model(eos_bias=3.0), load_tokenizer("tiny")
    gen = torch.Generator().manual_seed(0)
    out = generate(
        model,
        tok,
        PROMPTS * 4,
        16,
        0.9,
        top_k=30,
        top_p=0.95,
        generator=gen,
        repetition_penalty=1.5,
    )
    fresh = _completion_logp(model, out, 0.9)
    m = out.completion_mask
    assert torch.allclose(out.logp[m], fresh[m], atol=1e-5, rtol=0)
