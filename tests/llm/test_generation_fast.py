"""The sampler's fast paths: the static-cache decode step reproduces the model's own forward
bit for bit, the lean decoder within float rounding, the inverse-CDF draw samples the right
distribution, AdamW is fused."""

from __future__ import annotations

import types

import pytest
import torch

from rlfoundry.core.sampling import draw_categorical
from rlfoundry.llm import decoder, generation
from rlfoundry.llm.checkpoint import adamw
from rlfoundry.llm.decoder import StaticDecoder, supported, train_logits
from rlfoundry.llm.generation import distinct_rows, generate
from rlfoundry.llm.lean import LeanDecoder
from rlfoundry.llm.models import add_lora, load_model, load_tokenizer, position_ids

PROMPTS = ["12+7=", "3+30=", "99+1=", "5+5=", "41+2="]  # lengths differ: left padding


def _pair(model, tok, **kw):
    """The same call with the static-cache step and with the generic forward."""
    out = {}
    for static in (True, False):
        gen = torch.Generator().manual_seed(3)
        out[static] = generate(model, tok, PROMPTS * 2, generator=gen, static_cache=static, **kw)
    return out[True], out[False]


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_static_cache_step_is_bit_identical_to_the_models_forward(arch, temperature, monkeypatch):
    torch.manual_seed(0)
    model, tok = load_model(f"tiny:nano:{arch}").eval(), load_tokenizer("tiny")
    assert supported(model)
    monkeypatch.setattr(generation.LeanDecoder, "build", lambda *a: None)  # StaticDecoder
    fast, slow = _pair(model, tok, max_new_tokens=12, temperature=temperature, check_every=1)
    assert torch.equal(fast.completion_ids, slow.completion_ids)
    assert torch.equal(fast.completion_mask, slow.completion_mask)
    assert torch.equal(fast.logp, slow.logp)  # bit for bit, not approximately


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_lean_decoder_agrees_with_the_models_forward(arch, temperature):
    """The lean path (prefill and steps) computes the model's math rounded differently
    (norm weights folded into the matmuls, bmm attention instead of sdpa): the same
    tokens, log-probs within 1e-5 (float32: ~1e-6 seen)."""
    torch.manual_seed(0)
    model, tok = load_model(f"tiny:nano:{arch}").eval(), load_tokenizer("tiny")
    assert LeanDecoder.build(model, 10, 5, 12) is not None
    fast, slow = _pair(model, tok, max_new_tokens=12, temperature=temperature, check_every=1)
    assert torch.equal(fast.completion_ids, slow.completion_ids)
    assert torch.equal(fast.completion_mask, slow.completion_mask)
    assert (fast.logp - slow.logp).abs().max() <= 1e-5
    # every decode step's logits against the model's own forward over the whole row
    ids, attn = fast.input_ids, fast.attention_mask
    P, T = ids.shape[1] - fast.completion_ids.shape[1], fast.completion_ids.shape[1]
    dec = LeanDecoder.build(model, ids.shape[0], P, T)
    pos = position_ids(attn)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits
        got = [dec.prefill(ids[:, :P], attn[:, :P], pos[:, :P], None)]
        mask = attn.bool()[:, None, None, :]
        for t in range(T - 1):
            got.append(dec.step(ids[:, P + t : P + t + 1], pos[:, P + t : P + t + 1], P + t, mask))
    diff = (torch.stack(got, 1) - ref[:, P - 1 : -1]).abs()
    assert diff[attn[:, P - 1 : -1].bool()].max() <= 1e-5


def test_lean_decoder_only_where_its_math_is_the_models():
    torch.manual_seed(0)
    model = load_model("tiny:nano")
    assert LeanDecoder.build(model, 4, 4, 4) is not None
    assert LeanDecoder.build(model.to(torch.float64), 4, 4, 4) is None
    model = add_lora(load_model("tiny:nano"), rank=4)  # adapters: StaticDecoder's, exact
    assert LeanDecoder.build(model, 4, 4, 4) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert LeanDecoder.build(load_model("tiny:nano"), 4, 4, 4) is None


def test_static_cache_step_with_lora_adapters_is_bit_identical():
    torch.manual_seed(0)
    model = add_lora(load_model("tiny:nano"), rank=4).eval()
    for name, p in model.named_parameters():  # non-zero B: the adapters change the output
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    tok = load_tokenizer("tiny")
    assert supported(model)
    calls = []
    real = decoder._lora_linear
    with pytest.MonkeyPatch.context() as mp:  # the LoRA shortcut runs (not peft's forward)
        mp.setattr(decoder, "_lora_linear", lambda parts, x: calls.append(1) or real(parts, x))
        fast, slow = _pair(model, tok, max_new_tokens=10, temperature=1.0)
    assert calls
    assert torch.equal(fast.completion_ids, slow.completion_ids)
    assert torch.equal(fast.logp, slow.logp)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: the same bits too
        fast, slow = _pair(model, tok, max_new_tokens=6, temperature=1.0)
    assert torch.equal(fast.logp, slow.logp)
    calls.clear()
    # the reference policy: adapters off, peft's own path
    with model.disable_adapter(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(decoder, "_lora_linear", lambda parts, x: calls.append(1) or real(parts, x))
        fast, slow = _pair(model, tok, max_new_tokens=6, temperature=1.0)
    assert not calls
    assert torch.equal(fast.logp, slow.logp)


def test_unsupported_models_fall_back_to_the_generic_forward():
    torch.manual_seed(0)
    model = load_model("tiny:nano").eval()
    model.config._attn_implementation = "eager"  # a mask path the step does not mirror
    assert not supported(model)
    assert StaticDecoder.wrap(model, types.SimpleNamespace(layers=[]), 4, 4) is None
    fast, slow = _pair(model, load_tokenizer("tiny"), max_new_tokens=6, temperature=1.0)
    assert torch.equal(fast.logp, slow.logp)


def test_draw_categorical_hand_computed():
    # cdf of [0.2, 0, 0.3, 0.5] (total 1): index i when cdf[i-1] <= u < cdf[i]
    prob = torch.tensor([[0.2, 0.0, 0.3, 0.5]] * 4)
    u = torch.rand(4, 1, generator=torch.Generator().manual_seed(7))
    expect = [0 if x < 0.2 else 2 if x < 0.5 else 3 for x in u[:, 0].tolist()]
    got = draw_categorical(prob, torch.Generator().manual_seed(7))
    assert got.tolist() == expect
    # unnormalised probabilities: 2 * prob draws the same indices from the same numbers
    assert torch.equal(draw_categorical(2 * prob, torch.Generator().manual_seed(7)), got)


def test_draw_categorical_frequencies_and_empty_entries():
    p = torch.tensor([0.1, 0.0, 0.2, 0.7, 0.0])
    n = 20_000
    draws = draw_categorical(p.expand(n, -1), torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=5).float() / n
    assert freq[1] == 0 and freq[4] == 0  # zero probability (e.g. top-k/top-p removed)
    sd = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() <= 4 * sd + 1e-9).all(), freq


def test_adamw_is_fused_for_plain_float_parameters():
    cfg = types.SimpleNamespace(learning_rate=1e-3, weight_decay=0.0, warmup_steps=0)
    cfg.total_steps = 10
    opt, _ = adamw([torch.nn.Parameter(torch.zeros(3))], cfg, 1.0)
    assert opt.defaults["fused"] is True


def test_distinct_rows_indexes_every_row_back():
    ids = torch.tensor([[0, 5, 6], [7, 8, 9], [0, 5, 6], [0, 5, 6]])
    attn = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1]])
    rows, inv = distinct_rows(ids, attn)
    assert rows is not None and inv is not None and len(rows) == 2
    assert torch.equal(ids[rows][inv], ids) and torch.equal(attn[rows][inv], attn)
    assert distinct_rows(ids[:2], attn[:2]) == (None, None)  # all distinct: nothing to do
    # the same tokens, one row padded differently: two distinct rows
    rows, _ = distinct_rows(ids[[0, 0]], torch.tensor([[0, 1, 1], [1, 1, 1]]))
    assert rows is None


@pytest.mark.parametrize("static", [True, False])
def test_prefill_once_per_distinct_prompt_changes_no_bit(monkeypatch, static):
    """Repeated prompts (a GRPO group) are prefilled once; the samples and log-probs are
    those of a prefill over every row."""
    torch.manual_seed(0)
    model, tok = load_model("tiny:nano").eval(), load_tokenizer("tiny")
    out = []
    for dedup in (True, False):
        if not dedup:
            monkeypatch.setattr(generation, "distinct_rows", lambda ids, attn: (None, None))
        gen = torch.Generator().manual_seed(3)
        out.append(generate(model, tok, PROMPTS * 3, 10, 1.0, generator=gen, static_cache=static))
    assert torch.equal(out[0].completion_ids, out[1].completion_ids)
    assert torch.equal(out[0].logp, out[1].logp)


@pytest.mark.parametrize("kind", ["qwen2", "llama", "lora"])
def test_training_forward_is_bit_identical_to_the_models_forward(kind):
    """decoder.train_logits: the same logits and the same gradient of every parameter as
    the model's own forward (left-padded rows, train mode)."""
    torch.manual_seed(0)
    arch = "qwen2" if kind == "lora" else kind
    model = load_model(f"tiny:nano:{arch}")
    if kind == "lora":
        model = add_lora(model, rank=4)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
    model.train()
    tok = load_tokenizer("tiny")
    ids, attn = generation.left_pad(tok, PROMPTS)
    pos = position_ids(attn)
    params = [p for p in model.parameters() if p.requires_grad]
    fast = train_logits(model, ids, attn, pos, 3)
    assert fast is not None
    slow = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=3).logits
    assert torch.equal(fast, slow)
    g_fast = torch.autograd.grad(fast.square().sum(), params)
    g_slow = torch.autograd.grad(slow.square().sum(), params)
    assert all(torch.equal(a, b) for a, b in zip(g_fast, g_slow))
    model.config._attn_implementation = "eager"  # not one it mirrors: the caller's forward
    assert train_logits(model, ids, attn, pos, 3) is None


def test_lean_decoder_reuses_buffers_but_reads_the_weights_every_call():
    """Buffers are kept from call to call (`lean._SPARE`), their contents are not: a
    weight changed in place (also through `.data`, which no version counter sees) is used
    by the next call."""
    torch.manual_seed(0)
    model, tok = load_model("tiny:nano").eval(), load_tokenizer("tiny")
    first, again = (generate(model, tok, PROMPTS, 8, 0.0) for _ in range(2))
    assert torch.equal(first.completion_ids, again.completion_ids)
    assert torch.equal(first.logp, again.logp)
    model.model.layers[0].mlp.down_proj.weight.data.mul_(3.0)
    fast = generate(model, tok, PROMPTS, 8, 0.0)
    slow = generate(model, tok, PROMPTS, 8, 0.0, static_cache=False)
    assert not torch.equal(fast.logp, first.logp)
    assert torch.equal(fast.completion_ids, slow.completion_ids)
    assert (fast.logp - slow.logp).abs().max() <= 1e-5
