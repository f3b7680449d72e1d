"""The training forward of a group rollout with each prompt computed once.

    logp = shared_prompt_logprobs(model, input_ids, attention_mask, prompt_len, temperature)
    # [B, T] log pi(y_t | x, y_<t) of the completion columns; None: not applicable

A group rollout holds G completions of each prompt in adjacent rows, so the plain
training forward runs every prompt's columns G times, forward and backward. Here the
prompt columns of each run of equal adjacent rows go through the model once (keeping
each layer's keys and values), and the completion columns of every row attend to their
prompt's keys and values plus their own, causally:

    prompt pass      [U, P]  ->  K_p, V_p per layer, and the logits of the last prompt
                                 column (they predict the first completion token)
    completion pass  [B, T]  ->  attention over [K_p[row's prompt] | K_c], mask =
                                 prompt padding | causal over the completion's tokens

It is the same function of the weights (each completion token sees the same keys and
values at the same positions), and the prompt's gradient is the sum over its rows, as
it is when the rows are computed apart; only the floating-point grouping of the matmuls
differs: log-probs within 2e-6 of the plain forward in float32 on the tiny models
(tests/llm/test_prefix.py), 1.7e-5 on SmolLM2-135M, where the plain forward and the
sampler's cached decode differ by as much. With P prompt and T completion columns, B rows and U distinct
prompts the forward and backward run U * P + B * T positions instead of B * (P + T).

It pays only when it saves many positions: the second pass reads every weight again
and, backward, writes a second full weight gradient. Measured on one CPU core (float32,
forward + backward): SmolLM2-135M, 8 rows of 2 chat prompts (P = 52, T = 24) 2.43 s
against 4.0 s plain; the same model on bare arithmetic prompts (P = 6, T = 8, 36
positions saved of 112) 1.2 s against 0.95 s, slower; the 0.16M-parameter nano model,
64 rows of 8 prompts (P = 6, T = 8, 336 of 896 saved) 15.6 ms against 17.0 ms. Hence
the rule: share when at least `MIN_SAVED` positions and `MIN_SAVED_FRACTION` of them
are saved.

Where `decoder.train_logits` does not apply (other architectures, hooks, gradient
checkpointing) or too few positions would be saved, it returns None and the caller
runs the plain forward.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import Tensor

from rlfoundry.llm.decoder import _base, _linear, _mlp, train_logits
from rlfoundry.llm.models import position_ids

#: Share the prompt columns only when at least this many positions are saved...
MIN_SAVED = 128
#: ... and at least this fraction of all positions (module docstring).
MIN_SAVED_FRACTION = 0.25


def prompt_runs(input_ids: Tensor, attention_mask: Tensor, prompt_len: int) -> Tensor:
    """Index `[B]` of each row's prompt among the distinct runs of equal adjacent prompt
    rows (ids and padding), counted from 0 in row order."""
    p = torch.cat([input_ids[:, :prompt_len], attention_mask[:, :prompt_len].long()], 1)
    new = torch.ones(p.shape[0], dtype=torch.bool, device=p.device)
    new[1:] = (p[1:] != p[:-1]).any(1)
    return new.long().cumsum(0) - 1


def shared_prompt_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    prompt_len: int,
    temperature: float = 1.0,
) -> Tensor | None:
    """Log-probs `[B, T]` of the completion tokens `input_ids[:, prompt_len:]` (T >= 1),
    prompts computed once per run of equal adjacent rows (module docstring); positions
    where `attention_mask` is 0 hold values that are not to be read. None where it
    does not apply."""
    P = prompt_len
    B, L = input_ids.shape
    T = L - P
    if P < 1 or T < 1:
        return None
    idx = prompt_runs(input_ids, attention_mask, P)
    U = int(idx[-1]) + 1
    saved = (B - U) * P
    if saved < MIN_SAVED or saved < MIN_SAVED_FRACTION * B * L:
        return None
    first = torch.ones(B, dtype=torch.bool, device=idx.device)
    first[1:] = idx[1:] != idx[:-1]
    p_ids, p_mask = input_ids[first, :P], attention_mask[first, :P]
    kv: list[tuple[Tensor, Tensor]] = []
    first_logits = train_logits(model, p_ids, p_mask, position_ids(p_mask), 1, kv)
    if first_logits is None:
        return None
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    base = _base(model)
    inner = base.model
    rope = sys.modules[type(base).__module__].apply_rotary_pos_emb
    c_ids = input_ids[:, P:]
    pos = position_ids(attention_mask)[:, P:]
    h = inner.embed_tokens(c_ids)
    cos, sin = inner.rotary_emb(h, pos)
    causal = torch.ones(T, T, dtype=torch.bool, device=h.device).tril()
    mask = torch.cat(
        [
            attention_mask[:, None, None, :P].bool().expand(B, 1, T, P),
            causal & attention_mask[:, None, None, P:].bool(),
        ],
        -1,
    )  # [B, 1, T, P + T], True = attend
    for layer, (kp, vp) in zip(inner.layers, kv):
        a = layer.self_attn
        heads = (B, T, -1, a.head_dim)
        x = layer.input_layernorm(h)
        q, k, v = (
            _linear(m, x).view(heads).transpose(1, 2) for m in (a.q_proj, a.k_proj, a.v_proj)
        )
        q, k = rope(q, k, cos, sin)
        k = torch.cat([kp[idx], k], 2)
        v = torch.cat([vp[idx], v], 2)
        o, _ = sdpa_attention_forward(
            a, q, k, v, mask, dropout=a.attention_dropout if a.training else 0.0, scaling=a.scaling
        )
        h = h + _linear(a.o_proj, o.reshape(B, T, -1).contiguous())
        h = h + _mlp(layer.mlp, layer.post_attention_layernorm(h))
    rest = _linear(base.lm_head, inner.norm(h[:, :-1]))  # [B, T - 1, V]
    logits = torch.cat([first_logits[idx], rest], 1).float()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.log_softmax(logits, -1).gather(-1, c_ids[..., None]).squeeze(-1)
