"""The sampler's prefill and decode step for small float32 Llama/Qwen2 models, in few ops.

    dec = LeanDecoder.build(model, batch, prompt_len, max_new_tokens)  # None: not applicable
    logits = dec.prefill(ids, attn, pos, inv)   # [B, V], last column; fills the KV cache
    logits = dec.step(tok, pos, col, mask)      # [B, V], as `decoder.StaticDecoder.step`

On the tiny models a decode step is a few small matmuls and many smaller operations, and
every operation costs its dispatch, so this computes the model's forward in as few as it
can: rows as `[B, H]`; RMSNorm as h / sqrt(sum h^2 + H eps), its weight and sqrt(H)
folded into the next matmul's weight (W (w * x) = (W diag w) x); q, k and v from one
matmul with the heads laid out so that each KV head's queries are one `[g, D]` block;
the rotary embedding as one complex product (each head's dims paired in the weight
layout); the attention as baddbmm / softmax / bmm over keys cached transposed (`[D,
positions]`, so `bmm` reads them contiguously; sdpa's CPU kernel costs 100 us a call at
this size, the three ops 40); residual adds inside `addmm`; weights transposed to `[in,
out]` and contiguous once per call (MKL multiplies small matrices 10-30% faster that
way), into buffers kept from the model's previous call (`_SPARE`: fresh ones page-fault
at every call). The prefill is the same math over all prompt positions at once (causal
mask, the last layer for the last position only).

The math is the model's; the rounding is not: the logits agree with the model's own
forward within ~1e-6 in float32 (tests/llm/test_generation_fast.py), with the same
greedy tokens on the built-in models. Taken only where that holds by construction:
`decoder.supported` models without hooks, hidden size <= `decoder.FUSE_MAX_HIDDEN`
(the weights are rearranged at every call, as they change between rollouts), float32
weights, autocast off, plain nn.Linear projections (LoRA adapters take
`decoder.StaticDecoder`, bit-identical), no o/MLP biases, a SiLU-gated MLP, RMSNorm,
a rotary embedding that depends on the position only.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import torch
from torch import Tensor

from rlfoundry.llm.decoder import (
    FUSE_MAX_HIDDEN,
    MLPS,
    RMS_NORMS,
    SILUS,
    STATIC_ROPE,
    _base,
    _no_hooks,
    supported,
)

F = torch.nn.functional

#: per model, the buffers of its last released LeanDecoder (rearranged weights, KV cache;
#: every call rewrites them): fresh multi-megabyte tensors page-fault on first touch at
#: every call (~3,000 faults of ~2 us for the micro model on a VM), reused ones do not
_SPARE: weakref.WeakKeyDictionary[Any, dict[Any, list[Tensor]]] = weakref.WeakKeyDictionary()
_SPARE_LOCK = threading.Lock()


class _Buffers:
    """Uninitialised tensors, taken from a released decoder's where the shape matches."""

    def __init__(self, spare: dict[Any, list[Tensor]]) -> None:
        self.spare, self.used = spare, []  # type: ignore[var-annotated]

    def empty(self, like: Tensor, *shape: int) -> Tensor:
        kept = self.spare.get((shape, like.dtype, like.device))
        t = kept.pop() if kept else like.new_empty(shape)
        self.used.append(t)
        return t

    def transposed(self, *parts: Tensor) -> Tensor:
        """`torch.cat(parts).t()` as a contiguous tensor `[in, out]`."""
        N, H = sum(x.shape[0] for x in parts), parts[0].shape[1]
        rows = torch.cat(parts, out=self.empty(parts[0], N, H)) if len(parts) > 1 else parts[0]
        return self.empty(parts[0], H, N).copy_(rows.t())  # torch's blocked transpose

    def kept(self) -> dict[Any, list[Tensor]]:
        out: dict[Any, list[Tensor]] = {}
        for t in self.used:
            out.setdefault((tuple(t.shape), t.dtype, t.device), []).append(t)
        return out


def _layer(layer: Any, width: int, buf: _Buffers) -> tuple[Any, ...] | None:
    """One layer's weights, `[in, out]` (see the module docstring), or None where its
    forward is not the plain one the lean step computes."""
    a, m = layer.self_attn, layer.mlp
    lins = [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj]
    if not all(type(x) is torch.nn.Linear for x in lins):
        return None
    if type(m).__name__ not in MLPS or type(m.act_fn).__name__ not in SILUS:
        return None
    if any(x.bias is not None for x in lins[3:]) or (a.training and a.attention_dropout):
        return None
    norms = (layer.input_layernorm, layer.post_attention_layernorm)
    if not all(type(n).__name__ in RMS_NORMS for n in norms):
        return None
    D, g = a.head_dim, a.num_key_value_groups
    hkv = a.k_proj.weight.shape[0] // D
    has_b = [x.bias is not None for x in lins[:3]]
    if any(has_b) and not all(has_b):
        return None

    # each q/k head's dims as (0, D/2), (1, D/2 + 1), ...: pairs that rotate together,
    # adjacent, so that the rotary embedding is one complex product (q.k is unchanged)
    def heads(q: Tensor, k: Tensor, v: Tensor) -> list[Tensor]:  # k_0, q_0..q_g-1, k_1, .., v
        q, k = (x.unflatten(0, (-1, 2, D // 2)).transpose(1, 2).flatten(0, 2) for x in (q, k))
        qs, ks = q.split(g * D), k.split(D)
        return [x for i in range(hkv) for x in (ks[i], qs[i])] + [v]

    root = width**0.5
    # `[in, out]` and contiguous, the norm's weight and sqrt(H) folded in
    w = buf.transposed(*heads(a.q_proj.weight, a.k_proj.weight, a.v_proj.weight))
    w.mul_((norms[0].weight * root)[:, None])
    b = torch.cat(heads(a.q_proj.bias, a.k_proj.bias, a.v_proj.bias)) if all(has_b) else None
    gu = buf.transposed(m.gate_proj.weight, m.up_proj.weight)
    gu.mul_((norms[1].weight * root)[:, None])
    o, down = buf.transposed(a.o_proj.weight), buf.transposed(m.down_proj.weight)
    sizes = ((hkv + hkv * g) * D, hkv, g, D, m.up_proj.weight.shape[0])
    eps = (width * norms[0].variance_epsilon, width * norms[1].variance_epsilon)
    return w, b, o, gu, down, sizes, eps, a.scaling


def _rotation(inner: Any, pos: Tensor) -> Tensor | None:
    """cos + i sin `[*pos.shape, D/2]` from the model's rotary module (positions `pos`
    `[N, P]`): apply_rotary_pos_emb, x cos + rotate_half(x) sin, is the complex product
    (x_j + i x_j+D/2) (cos_j + i sin_j) when cos and sin repeat over the two halves (as
    they do for every rotary variant of `STATIC_ROPE`); None where they do not."""
    w = inner.embed_tokens.weight
    x = w[None, :1].expand(pos.shape[0], -1, -1)
    cos, sin = inner.rotary_emb(x, position_ids=pos.to(w.device))
    a, b = cos.chunk(2, -1), sin.chunk(2, -1)
    if not (torch.equal(*a) and torch.equal(*b)):
        return None
    return torch.complex(a[0], b[0])


def _rotate(x: Tensor, cis: Tensor) -> Tensor:
    """The rotary embedding of `x` `[..., heads * D]` (pairs adjacent, `_layer`) at angles
    `cis` (broadcast over the heads) -> `[..., heads, D]`."""
    D = 2 * cis.shape[-1]
    xc = torch.view_as_complex(x.unflatten(-1, (-1, D // 2, 2)))
    return torch.view_as_real(xc * cis).flatten(-2)


def _softmax(s: Tensor) -> Tensor:
    """Softmax over the last axis; spelt out where that axis is shorter than 16 (the CPU
    kernel then takes a slow path: 3-5x the time of these four ops at 6 keys)."""
    if s.shape[-1] >= 16:
        return torch.softmax(s, -1)
    e = (s - s.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def _norm(h: Tensor, eps: float) -> Tensor:
    """h / sqrt(sum h^2 + eps) per row (RMSNorm with eps = H * its eps; sqrt(H) and the
    weight are in the next matmul)."""
    return h * torch.linalg.vecdot(h, h).add_(eps).rsqrt_()[:, None]


class LeanDecoder:
    """Prefill and one-token steps over a preallocated KV cache (see the module); call
    them under `torch.no_grad()` (as `generation.sample` does: a decorator would cost
    its context switch at every token)."""

    def __init__(
        self,
        model: Any,
        layers: list[tuple[Any, ...]],
        table: Tensor,
        batch: int,
        prompt_len: int,
        max_new_tokens: int,
        buf: _Buffers,
    ) -> None:
        self.base, self.buf = _base(model), buf
        self.inner = self.base.model
        emb, norm = self.inner.embed_tokens.weight, self.inner.norm
        width = emb.shape[1]
        self.layers, self.emb = layers, emb
        self.head = buf.transposed(self.base.lm_head.weight)
        self.head.mul_((norm.weight * width**0.5)[:, None])
        self.eps = width * norm.variance_epsilon
        n = self.n_pos = prompt_len + max_new_tokens
        # per layer: keys transposed [B, KV heads, D, n], values [B, KV heads, n, D]
        self.k = [buf.empty(emb, batch, s[1], s[3], n) for *_, s, _, _ in layers]
        self.v = [buf.empty(emb, batch, s[1], n, s[3]) for *_, s, _, _ in layers]
        self.kv3 = [(k.flatten(0, 1), v.flatten(0, 1)) for k, v in zip(self.k, self.v)]
        self.table = table  # cos + i sin of every position, [n, 1, D/2]
        self.bias: Tensor | None = None  # additive mask [B * KV heads, 1, n], at step 1

    @classmethod
    @torch.no_grad()
    def build(
        cls, model: Any, batch: int, prompt_len: int, max_new_tokens: int
    ) -> LeanDecoder | None:
        """The decoder for `batch` rows, or None where `model` is not one it computes
        exactly (the module docstring's conditions; the caller keeps StaticDecoder)."""
        if not supported(model):
            return None
        base = _base(model)
        inner, head = base.model, base.lm_head
        emb = inner.embed_tokens
        if type(emb) is not torch.nn.Embedding or emb.weight.shape[1] > FUSE_MAX_HIDDEN:
            return None
        if type(head) is not torch.nn.Linear or head.bias is not None:
            return None
        if type(inner.norm).__name__ not in RMS_NORMS:
            return None
        if getattr(inner.rotary_emb, "rope_type", "default") not in STATIC_ROPE:
            return None
        if torch.is_autocast_enabled(emb.weight.device.type):
            return None
        if any(p.dtype != torch.float32 for p in base.parameters()) or not _no_hooks(base):
            return None
        table = _rotation(inner, torch.arange(prompt_len + max_new_tokens)[:, None])
        if table is None:
            return None
        with _SPARE_LOCK:  # (a concurrent call on the same model allocates its own)
            buf = _Buffers(_SPARE.pop(base, {}))
        layers = [_layer(x, emb.weight.shape[1], buf) for x in inner.layers]
        if any(x is None for x in layers):
            return None
        if any(2 * table.shape[-1] != x[5][3] for x in layers):  # type: ignore[index]
            return None  # a rotary embedding over part of each head only
        return cls(model, layers, table, batch, prompt_len, max_new_tokens, buf)  # type: ignore[arg-type]

    def release(self) -> None:
        """Done: this decoder's buffers go to the model's next one (its outputs, the
        logits, are not among them); it cannot be used after this."""
        with _SPARE_LOCK:
            _SPARE[self.base] = self.buf.kept()
        self.layers, self.k, self.v, self.kv3 = [], [], [], []

    def prefill(self, ids: Tensor, attn: Tensor, pos: Tensor, inv: Tensor | None) -> Tensor:
        """Logits `[B, V]` of the last column of the left-padded prompts `ids` `[U, P]`
        (positions `pos`), their keys and values written to the cache; `inv`: the row
        of `ids` of each of the B rows (the distinct prompts once), or None (U = B)."""
        U, P = ids.shape
        H = self.emb.shape[1]
        cis = self.table[pos]  # [U, P, 1, D/2]
        # key j is seen from query i when j <= i and j is not padding; a padding query
        # sees itself too (its output is never used, but must stay finite)
        key = torch.arange(P, device=ids.device)
        seen = (key[None, :] <= key[:, None]) & attn.bool()[:, None, :]
        seen |= torch.eye(P, dtype=torch.bool, device=ids.device)
        bias = torch.zeros(seen.shape, dtype=self.emb.dtype, device=ids.device)
        bias = bias.masked_fill_(~seen, float("-inf"))[:, None, :, None]  # [U, 1, P, 1, P]
        h = F.embedding(ids.reshape(-1), self.emb)  # [U * P, H]
        for i, (w, b, wo, wgu, wdn, sizes, eps, scale) in enumerate(self.layers):
            n_qk, hkv, g, D, inter = sizes
            last = i == len(self.layers) - 1  # only the last position goes on
            x = _norm(h, eps[0])
            y = torch.mm(x, w) if b is None else torch.addmm(b, x, w)
            qk = _rotate(y[:, :n_qk].view(U, P, -1), cis).view(U, P, hkv, 1 + g, D)
            k, v = qk[:, :, :, 0], y[:, n_qk:].view(U, P, hkv, D)
            kc, vc = (k if inv is None else k[inv]), (v if inv is None else v[inv])
            self.k[i][..., :P] = kc.permute(0, 2, 3, 1)
            self.v[i][:, :, :P] = vc.transpose(1, 2)
            if inv is None:  # the attention reads them from the cache
                kT, v = self.kv3[i][0][..., :P], self.kv3[i][1][:, :P]
            else:
                kT = k.permute(0, 2, 3, 1).reshape(U * hkv, D, P)
                v = v.transpose(1, 2).reshape(U * hkv, P, D)
            q = qk[:, -1:, :, 1:] if last else qk[:, :, :, 1:]
            Q = q.shape[1]
            s = torch.baddbmm(
                bias[:, :, -Q:].expand(U, hkv, Q, g, P).reshape(U * hkv, Q * g, P),
                q.transpose(1, 2).reshape(U * hkv, Q * g, D),
                kT,
                alpha=scale,
            )
            o = torch.bmm(_softmax(s), v)
            o = o.view(U, hkv, Q, g * D).transpose(1, 2).reshape(U * Q, -1)
            h = h.view(U, P, H)[:, -1] if last else h
            h = torch.addmm(h, o, wo)
            # the widest activations in kept buffers, in place (`_SPARE`)
            gu = torch.mm(_norm(h, eps[1]), wgu, out=self.buf.empty(h, h.shape[0], 2 * inter))
            gate, up = gu.chunk(2, 1)
            h = torch.addmm(h, F.silu(gate, inplace=True).mul_(up), wdn)
        logits = torch.mm(_norm(h, self.eps), self.head)
        return logits if inv is None else logits[inv]

    def step(self, tok: Tensor, pos: Tensor, col: int, mask: Tensor) -> Tensor:
        """Logits `[B, V]` after token `tok` `[B, 1]` at position `pos` `[B, 1]`, written to
        cache column `col`; `mask` `[B, 1, 1, n]` bool, True = attend (the same tensor at
        every step), as `decoder.StaticDecoder.step`."""
        B = tok.shape[0]
        if self.bias is None:  # the additive mask, one row per KV head: [B * Hkv, 1, n]
            bias = torch.zeros(B, 1, mask.shape[-1], dtype=self.emb.dtype, device=tok.device)
            bias.masked_fill_(~mask.reshape(bias.shape).bool(), float("-inf"))
            self.bias = bias.repeat_interleave(self.k[0].shape[1], 0)
        cis = self.table[pos.view(-1)]  # [B, 1, D/2]
        bias, n = self.bias[..., : col + 1], col + 1
        h = F.embedding(tok.view(-1), self.emb)  # [B, H]
        for (w, b, wo, wgu, wdn, sizes, eps, scale), kc, vc, (k3, v3) in zip(
            self.layers, self.k, self.v, self.kv3
        ):
            n_qk, hkv, g, D, inter = sizes
            x = _norm(h, eps[0])
            y = torch.mm(x, w) if b is None else torch.addmm(b, x, w)
            # apply_rotary_pos_emb; per KV head: its k, then its g queries
            qk = _rotate(y[:, :n_qk], cis).view(B, hkv, 1 + g, D)
            kc[..., col] = qk[:, :, 0]
            vc[:, :, col] = y[:, n_qk:].view(B, hkv, D)
            s = torch.baddbmm(bias, qk[:, :, 1:].view(B * hkv, g, D), k3[..., :n], alpha=scale)
            o = torch.bmm(_softmax(s), v3[:, :n])
            h = torch.addmm(h, o.view(B, -1), wo)
            gu = torch.mm(_norm(h, eps[1]), wgu)
            h = torch.addmm(h, F.silu(gu[:, :inter]) * gu[:, inter:], wdn)
        return torch.mm(_norm(h, self.eps), self.head)
