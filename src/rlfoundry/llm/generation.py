"""Fast batched sampling with the model's KV cache: rollouts for RL and evaluation.

    out = generate(model, tok, ["12+7=", "3+30="], max_new_tokens=8, temperature=1.0)
    out.texts             # ["19", "33"]   (decoded up to, not including, EOS)
    out.completion_ids    # [B, T]  sampled tokens, pad after EOS
    out.completion_mask   # [B, T]  True up to AND including EOS (also when pad == eos)
    out.logp              # [B, T]  log pi(token) at sampling time, 0 outside the mask
    out.input_ids         # [B, P+T] left-padded prompt + completion: the training input
    out.attention_mask    # [B, P+T]

Sampling is the bottleneck of every on-policy RL step, so the loop is kept lean
(`sample`): one prefill over the left-padded prompts, computing logits for the last
position only, once per distinct prompt (a GRPO group's G copies share one row; the
logits and KV cache are then indexed out to every row), then one decode step per new
token over a preallocated KV cache:

- small float32 Llama/Qwen2 models without adapters (the built-in tiny ones):
  `lean.LeanDecoder`, prefill and steps in as few operations as the math allows (the
  same math rounded differently: log-probs within ~1e-6 of the model's forward, same
  greedy tokens);
- other Llama/Qwen2-family models (LoRA, autocast, bfloat16, larger): the prefill
  through the model's submodules without the plumbing (`decoder.train_logits`) and
  `decoder.StaticDecoder.step` per token: bit-identical logits;
- anything else: the model's own cached forward.

Outputs are preallocated, what follows a row's EOS is masked once at the end, and the
only host sync is the "all rows finished?" check every `check_every` steps (with an
EOS). A sampled token is one uniform number per row pushed
through the inverse CDF (`core.sampling.draw_categorical`); `model.generate`'s
`torch.multinomial` draws one number per vocabulary entry, 20x slower at a 49k
vocabulary on the CPU. `benchmarks/llm_generation.py` measures both against the
matmul ceiling.

The log-probs are those of the temperature-scaled distribution before the repetition
penalty and top-k/top-p truncation (`rlfoundry.core.sampling`): exactly what
`models.policy_logprobs(..., temperature)` recomputes in the training forward pass, so
the first PPO/GRPO ratio is 1. With top-k/top-p < full or a repetition penalty, the
sampled token is drawn from the processed distribution; the ratio then refers to the
unprocessed policy, the usual convention (TRL, OpenRLHF).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rlfoundry.core.sampling import (
    apply_repetition_penalty,
    draw_categorical,
    top_k_filter,
    top_p_filter,
)
from rlfoundry.llm.decoder import Prefill, StaticDecoder, train_logits
from rlfoundry.llm.lean import LeanDecoder
from rlfoundry.llm.models import encode_prompt, position_ids


@dataclass
class Generation:
    """Result of `generate` / `sample`; see the module docstring for each field."""

    input_ids: Tensor  # [B, P+T]
    attention_mask: Tensor  # [B, P+T]
    completion_ids: Tensor  # [B, T]
    completion_mask: Tensor  # [B, T] bool
    logp: Tensor  # [B, T] float32
    truncated: Tensor  # [B] bool: no EOS within max_new_tokens
    texts: list[str]

    @property
    def prompt_len(self) -> int:
        return self.input_ids.shape[1] - self.completion_ids.shape[1]


def left_pad(
    tok: Any, prompts: Sequence[str], device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """Encode prompts and left-pad them: `input_ids [B, P]`, `attention_mask [B, P]`.

    Left padding puts every prompt's last token in the last column, so all rows
    generate in lockstep from the same column. Repeated prompts (a GRPO group's G
    copies) are tokenised once.
    """
    enc = {p: encode_prompt(tok, p) for p in dict.fromkeys(prompts)}  # a group's copies once
    rows = [enc[p] for p in prompts]
    width = max(1, max(len(r) for r in rows))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
    attn = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids.to(device), attn.to(device)


def sample_tokens(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    repetition_penalty: float = 1.0,
    seen: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Next tokens `[B]` and their log-probs `[B]` from last-position logits `[B, V]`.

    temperature 0 = greedy (log-probs then at temperature 1). The log-prob is taken
    from the temperature-scaled distribution before the repetition penalty (on the
    tokens `seen` `[B, V]`) and top-k/top-p filtering (`rlfoundry.core.sampling`).
    """
    logits = logits.float()
    penalise = repetition_penalty != 1.0 and seen is not None
    penalised = apply_repetition_penalty(logits, seen, repetition_penalty) if penalise else logits
    if temperature <= 0:
        tok = penalised.max(-1).indices  # = argmax (first maximum), 2x faster on the CPU
        return tok, torch.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
    if temperature != 1.0:
        logits = logits / temperature
        penalised = penalised / temperature if penalise else logits
    logp_all = torch.log_softmax(logits, -1)
    filtered = torch.log_softmax(penalised, -1) if penalise else logp_all
    filtered = top_k_filter(filtered, top_k)
    if top_p < 1.0 and top_k:
        filtered = torch.log_softmax(filtered, -1)  # nucleus of what top-k left, renormalised
    filtered = top_p_filter(filtered, top_p)
    tok = draw_categorical(filtered.exp(), generator)  # inverse CDF: one uniform per row
    return tok, logp_all.gather(-1, tok[:, None]).squeeze(-1)


def distinct_rows(input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """`(rows, inv)`: indices of the distinct rows of the left-padded batch and, for each
    row, its index among them (`x[rows][inv] == x`); `(None, None)` when every row is
    distinct."""
    B = input_ids.shape[0]
    key = torch.cat([input_ids, attention_mask.to(input_ids.dtype)], 1)
    uniq, inv = torch.unique(key, dim=0, return_inverse=True)
    if uniq.shape[0] == B:
        return None, None
    first = torch.full((uniq.shape[0],), B, dtype=torch.long, device=input_ids.device)
    first.scatter_reduce_(0, inv, torch.arange(B, device=input_ids.device), "amin")
    return first, inv


@torch.no_grad()
def sample(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    max_new_tokens: int,
    eos_token_id: int | None,
    pad_token_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    check_every: int = 4,
    repetition_penalty: float = 1.0,
    static_cache: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """The KV-cache loop on left-padded token ids.

    `static_cache`: decode with `decoder.StaticDecoder` (a preallocated cache, the same
    arithmetic as the model's forward) where the model is one it supports; False, or an
    unsupported model, runs every token through the model's own forward.

    `repetition_penalty` != 1 penalises every token already in the row (prompt and
    completion so far), `core.sampling.apply_repetition_penalty`. Returns
    `completion_ids [B, T]`, `completion_mask [B, T]` (bool, EOS included) and
    `logp [B, T]`, with T <= max_new_tokens (the loop stops once every row has
    emitted EOS, checked every `check_every` steps).
    """
    B, P = input_ids.shape
    dev = input_ids.device
    # preallocated: the attention mask of prompt + all new tokens, and the outputs
    attn = torch.ones(B, P + max_new_tokens, dtype=attention_mask.dtype, device=dev)
    attn[:, :P] = attention_mask
    tokens = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=dev)
    logps = torch.zeros(B, max_new_tokens, dtype=torch.float32, device=dev)
    # Decode steps get the padding mask ready-made in 4D ([B, 1, 1, keys], True = attend;
    # one query row has no causal part): transformers uses a 4D mask as is instead of
    # rebuilding it from the 2D one at every step. Only sdpa takes a boolean mask.
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    step_mask = attn.bool()[:, None, None, :] if impl == "sdpa" else attn
    pos = position_ids(attention_mask)
    # the prefill runs once per distinct prompt row (a GRPO group's G copies once), its
    # logits and KV cache then indexed back to all B rows: each row's numbers are its own
    rows, inv = distinct_rows(input_ids, attention_mask)
    once = [x if rows is None else x[rows] for x in (input_ids, attention_mask, pos)]
    # transformers >= 5.2x names the KV cache `cache` (`past_key_values` warns, then goes)
    # (a peft wrapper's forward takes **kwargs: read the wrapped model's signature)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cache_kw = "cache" if "cache" in inspect.signature(inner.forward).parameters else None
    cache_kw = cache_kw or "past_key_values"
    # small float32 models: `lean.LeanDecoder` (prefill and steps in few ops); else with
    # the static decoder, the prefill too without the generic forward's plumbing
    fast = LeanDecoder.build(model, B, P, max_new_tokens) if static_cache else None
    kv: list[tuple[Tensor, Tensor]] = []
    prefilled = train_logits(model, *once, 1, kv) if static_cache and fast is None else None
    if fast is not None:
        cache, logits = None, fast.prefill(*once, inv)
    elif prefilled is not None:
        cache, logits = Prefill(kv), prefilled[:, -1]
    else:
        out = model(
            input_ids=once[0],
            attention_mask=once[1],
            position_ids=once[2],
            use_cache=True,
            logits_to_keep=1,
        )
        cache, logits = out[cache_kw], out.logits[:, -1]
    dec: Any = fast
    if fast is None:
        logits = logits if inv is None else logits[inv]
        dec = StaticDecoder.wrap(model, cache, P, max_new_tokens, inv) if static_cache else None
    if dec is None and inv is not None:  # the generic forward decodes from the cache itself
        cache.reorder_cache(inv)
    # positions of the new tokens, [B, T] (all rows advance in lockstep)
    new_pos = pos[:, -1:] + torch.arange(1, max_new_tokens + 1, device=dev)
    seen = None  # [B, V] tokens in each row's context, for the repetition penalty
    if repetition_penalty != 1.0:
        vocab = logits.shape[-1]
        seen = torch.zeros(B, vocab + 1, dtype=torch.bool, device=dev)  # column V: padding
        seen.scatter_(1, input_ids.masked_fill(attention_mask == 0, vocab), True)
        seen = seen[:, :vocab]
    # every row decodes every step; what follows a row's EOS is masked out at the end
    # (rows do not interact: a finished row's tokens change no other row's numbers)
    T = max_new_tokens
    for t in range(max_new_tokens):
        tok, lp = sample_tokens(
            logits, temperature, top_k, top_p, generator, repetition_penalty, seen
        )
        if seen is not None:
            seen.scatter_(1, tok[:, None], True)
        tokens[:, t] = tok
        logps[:, t] = lp
        if t + 1 == max_new_tokens or (
            eos_token_id is not None
            and (t + 1) % check_every == 0
            and bool((tokens[:, : t + 1] == eos_token_id).any(1).all())
        ):
            T = t + 1
            break
        if dec is not None:
            logits = dec.step(tokens[:, t : t + 1], new_pos[:, t : t + 1], P + t, step_mask)
            continue
        out = model(
            input_ids=tokens[:, t : t + 1],
            attention_mask=step_mask[..., : P + t + 1],
            position_ids=new_pos[:, t : t + 1],
            use_cache=True,
            **{cache_kw: cache},
        )
        cache, logits = out[cache_kw], out.logits[:, -1]
    if fast is not None:
        fast.release()
    tokens, logps = tokens[:, :T], logps[:, :T]
    alive = torch.ones_like(tokens, dtype=torch.bool)
    if eos_token_id is not None:  # alive up to and including the first EOS
        hit = (tokens == eos_token_id).int()
        alive = (hit.cumsum(1) - hit) == 0
        tokens.masked_fill_(~alive, pad_token_id)
        logps.masked_fill_(~alive, 0.0)
    return tokens, alive, logps


@torch.no_grad()
def generate(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    check_every: int = 4,
    stop_at_eos: bool = True,
    repetition_penalty: float = 1.0,
    static_cache: bool = True,
) -> Generation:
    """Sample one completion per prompt (repeat prompts for groups); see the module.

    `stop_at_eos=False` generates exactly `max_new_tokens` per row (EOS is then an
    ordinary token)."""
    if not prompts:
        raise ValueError("generate() needs at least one prompt.")
    dev = next(model.parameters()).device
    ids, attn = left_pad(tok, prompts, dev)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    eos = tok.eos_token_id if stop_at_eos else None
    comp, cmask, logp = sample(
        model,
        ids,
        attn,
        max_new_tokens,
        eos,
        pad,
        temperature,
        top_k,
        top_p,
        generator,
        check_every,
        repetition_penalty,
        static_cache,
    )
    lengths = cmask.sum(-1)  # [B]
    ended = torch.zeros_like(lengths, dtype=torch.bool)
    if eos is not None and comp.shape[1] > 0:
        last = comp.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
        ended = (lengths > 0) & (last == eos)
    n_text = (lengths - ended.long()).tolist()  # tokens before the EOS
    rows = comp.tolist()
    texts = tok.batch_decode(
        [r[:n] for r, n in zip(rows, n_text)],
        skip_special_tokens=True,
        clean_up_tokenization_spaces=False,
    )
    return Generation(
        input_ids=torch.cat([ids, comp], 1),
        attention_mask=torch.cat([attn, cmask.to(attn.dtype)], 1),
        completion_ids=comp,
        completion_mask=cmask,
        logp=logp,
        truncated=~ended,
        texts=texts,
    )
