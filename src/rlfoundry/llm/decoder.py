"""The decode step of Llama-family models without the generic forward's per-token work.

    dec = StaticDecoder.wrap(model, cache, prompt_len, max_new_tokens)  # None: unsupported
    logits = dec.step(tok, pos, col, mask)    # [B, V] for the token at column `col`

`generation.sample` runs the prefill through the model's own forward, then hands every
new token to `step` (small float32 models without adapters take `lean.LeanDecoder`
instead: fewer operations, the same math rounded differently). A `step` calls the same submodules the model's forward calls (the
norms, projections, MLPs, rotary embedding, LM head, so LoRA adapters and autocast act
as they do there), in the same order with the same attention call, but:

- the KV cache is preallocated once ([B, KV heads, P + T, D] per layer, the prefill's
  keys and values copied in) and written in place, instead of `torch.cat`-grown every
  token by every layer;
- the causal mask, the cache bookkeeping, the attention-interface lookup, the keyword
  plumbing and the output dataclasses of the generic forward (most of the cost of a
  token on a small model) are skipped; cos/sin come from a table made once;
- where no module has a hook: plain nn.Linear and the SiLU MLP without module calls,
  RMSNorm as `torch.nn.functional.rms_norm` (the same bits in float32), and on small
  models (hidden size <= 256) q/k/v and gate/up as one matmul each.

The arithmetic is the generic forward's: on the built-in models (also with LoRA) the
logits agree bit for bit (tests/llm/test_generation_fast.py, transformers 5.25), and so
they did on SmolLM2-135M; under transformers 5.17 the generic forward rounds a few ops
differently and they agree within 5e-7 (float32), with the same greedy tokens. Only
the exact classes whose forward this mirrors are taken (Llama, Qwen2 without sliding
windows; SDPA attention; plain or peft-wrapped, not FSDP/DDP-wrapped);
anything else falls back to the generic forward. `torch.compile` of `step` was measured
and does not pay on the CPU (docs/llm.md).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import scaled_dot_product_attention as sdpa

#: Causal-LM classes whose decoder layer `step` reproduces.
SUPPORTED = {
    "LlamaForCausalLM": ("LlamaDecoderLayer", "LlamaAttention"),
    "Qwen2ForCausalLM": ("Qwen2DecoderLayer", "Qwen2Attention"),
}
#: RoPE variants whose cos/sin depend on the position only (a table computed once).
STATIC_ROPE = {"default", "linear", "llama3", "yarn"}
#: RMSNorm classes whose forward `_rms_norm` repeats op for op.
RMS_NORMS = {"LlamaRMSNorm", "Qwen2RMSNorm"}
#: MLP and activation classes whose forward `_mlp` repeats (SiLU-gated).
MLPS = {"LlamaMLP", "Qwen2MLP"}
SILUS = {"SiLUActivation", "SiLU"}
#: Models up to this hidden size get the fused q/k/v and gate/up matmuls.
FUSE_MAX_HIDDEN = 256


def _no_hooks(model: Any) -> bool:
    """No forward hooks (module-level or global) and no instance-level forward anywhere."""
    from torch.nn.modules import module as M

    if M._global_forward_hooks or M._global_forward_pre_hooks:
        return False
    return not any(
        m._forward_hooks or m._forward_pre_hooks or "forward" in m.__dict__ for m in model.modules()
    )


def _fuse(layer: Any) -> tuple[Tensor, Tensor | None, list[int], Tensor] | None:
    """(q|k|v weight, bias, split sizes, gate|up weight) when all five are plain nn.Linear
    (not LoRA-wrapped) and the MLP is `_mlp`'s; else None."""
    a, m = layer.self_attn, layer.mlp
    lins = [a.q_proj, a.k_proj, a.v_proj]
    if not all(type(x) is torch.nn.Linear for x in [*lins, m.gate_proj, m.up_proj]):
        return None
    if type(m).__name__ not in MLPS or type(m.act_fn).__name__ not in SILUS:
        return None
    w = torch.cat([x.weight for x in lins])
    has_b = [x.bias is not None for x in lins]
    if any(has_b) and not all(has_b):
        return None
    b = torch.cat([x.bias for x in lins]) if all(has_b) else None
    sizes = [x.weight.shape[0] for x in lins]
    return w, b, sizes, torch.cat([m.gate_proj.weight, m.up_proj.weight])


def _linear(m: Any, x: Tensor) -> Tensor:
    """`m(x)`; a plain nn.Linear without the module call (LoRA layers keep theirs)."""
    if type(m) is torch.nn.Linear:
        return torch.nn.functional.linear(x, m.weight, m.bias)
    return m(x)


def _plain_lora(m: Any) -> tuple[Any, Any, Any, float] | None:
    """(base, A, B, scaling) of a peft LoRA Linear whose forward, as the adapters stand
    now, is plain LoRA: one active adapter, not merged, not disabled, no variant (DoRA),
    no dropout, nn.Linear base and factors; else None (its own forward then runs)."""
    lora_a = getattr(m, "lora_A", None)
    if lora_a is None or getattr(m, "merged", True) or getattr(m, "disable_adapters", True):
        return None
    active = m.active_adapters
    if len(active) != 1 or active[0] not in lora_a or active[0] in getattr(m, "lora_variant", {}):
        return None
    name = active[0]
    base, a, b = m.base_layer, lora_a[name], m.lora_B[name]
    plain = all(type(x) is torch.nn.Linear for x in (base, a, b))
    if not plain or type(m.lora_dropout[name]) is not torch.nn.Identity:
        return None
    if not getattr(m, "cast_input_dtype_enabled", True):
        return None
    return base, a, b, m.scaling[name]


def _lora_linear(parts: tuple[Any, Any, Any, float], x: Tensor) -> Tensor:
    """peft's `lora.Linear.forward` for one plain adapter, op for op (the same bits),
    without its per-call bookkeeping: base(x) + B(A(x)) * scaling."""
    base, a, b, scaling = parts
    F = torch.nn.functional
    result = F.linear(x, base.weight, base.bias)
    dtype = result.dtype
    if x.dtype != a.weight.dtype:  # peft's _cast_input_dtype
        x = x.to(a.weight.dtype)
    result = result + F.linear(F.linear(x, a.weight, a.bias), b.weight, b.bias) * scaling
    return result.to(dtype)


def _mlp(mlp: Any, x: Tensor, linear: Any = _linear) -> Tensor:
    """`LlamaMLP.forward`, down(silu(gate(x)) * up(x)), through `linear`."""
    if type(mlp).__name__ not in MLPS or type(mlp.act_fn).__name__ not in SILUS:
        return mlp(x)
    act = torch.nn.functional.silu(linear(mlp.gate_proj, x))
    return linear(mlp.down_proj, act * linear(mlp.up_proj, x))


def _rms_norm(norm: Any, x: Tensor) -> Tensor:
    """`LlamaRMSNorm.forward` op for op (bit-identical), without the module call and the
    `kernels` package's forward wrapper around it."""
    if x.dtype == norm.weight.dtype == torch.float32:  # the fused kernel: same bits
        return torch.nn.functional.rms_norm(
            x, norm.weight.shape, norm.weight, norm.variance_epsilon
        )
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x.to(dtype)


def _base(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supported(model: Any) -> bool:
    """True when `StaticDecoder` reproduces this model's forward exactly."""
    base = _base(model)
    names = SUPPORTED.get(type(base).__name__)
    cfg = getattr(base, "config", None)
    if names is None or cfg is None or getattr(cfg, "_attn_implementation", None) != "sdpa":
        return False
    if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or []):
        return False  # sliding-window layers: the generic forward's mask does more
    layers = base.model.layers
    return all(
        type(layer).__name__ == names[0] and type(layer.self_attn).__name__ == names[1]
        for layer in layers
    )


class StaticDecoder:
    """One-token forward passes over a preallocated KV cache (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        cache: Any,
        prompt_len: int,
        max_new_tokens: int,
        rows: Tensor | None = None,
    ) -> None:
        base = _base(model)
        self.inner, self.lm_head = base.model, base.lm_head
        self.layers = list(self.inner.layers)
        self.k: list[Tensor] = []
        self.v: list[Tensor] = []
        for layer in cache.layers:
            keys, values = layer.keys, layer.values  # [B, KV heads, P, D] after the prefill
            if rows is not None:  # the prefill ran on distinct rows: back to all rows
                keys, values = keys[rows], values[rows]
            B, H, P, D = keys.shape
            k = keys.new_empty(B, H, prompt_len + max_new_tokens, D)
            v = values.new_empty(B, H, prompt_len + max_new_tokens, D)
            k[:, :, :P] = keys
            v[:, :, :P] = values
            self.k.append(k)
            self.v.append(v)
        if len(self.k) != len(self.layers):
            raise ValueError("the prefill cache does not have one entry per layer")
        # cos/sin of every position once, from the model's own rotary module, with
        # rotate_half's sign folded into sin: rotate_half(x) * sin equals
        # x.roll(D/2) * [-sin_a, sin_b] bit for bit (a sign flip is exact)
        self.n_pos = prompt_len + max_new_tokens
        self.static_rope = getattr(self.inner.rotary_emb, "rope_type", "default") in STATIC_ROPE
        self.table: tuple[Tensor, Tensor] | None = None  # built at the first step
        self.bias: Tensor | None = None  # additive mask, built at the first step
        # the shortcuts below skip module calls, so only where no module has a hook or
        # an instance-level forward (accelerate's offloading, a user's forward hook)
        self.direct = _no_hooks(base)
        self.norm_math = self.direct and all(type(n).__name__ in RMS_NORMS for n in self._norms())
        # small models: q/k/v and gate/up as one matmul each (weights concatenated per
        # call, as they change between rollouts); at these sizes a matmul costs its call
        small = self.inner.embed_tokens.weight.shape[-1] <= FUSE_MAX_HIDDEN
        self.fused = [_fuse(x) if small and self.direct else None for x in self.layers]
        # LoRA projections: peft's forward, op for op, minus its per-call Python (on a GPU
        # the decode is launch-bound and that Python was most of a LoRA token's time)
        self.lora: dict[int, tuple[Any, Any, Any, float]] = {}
        if self.direct:
            for m in base.modules():
                if (parts := _plain_lora(m)) is not None:
                    self.lora[id(m)] = parts
        self.linear = self._linear if self.direct else (lambda m, x: m(x))
        self.mlp = (lambda m, x: _mlp(m, x, self._linear)) if self.direct else (lambda m, x: m(x))

    def _linear(self, m: Any, x: Tensor) -> Tensor:
        """`m(x)` without the module call for a plain nn.Linear or a plain LoRA layer."""
        if type(m) is torch.nn.Linear:
            return torch.nn.functional.linear(x, m.weight, m.bias)
        parts = self.lora.get(id(m))
        return m(x) if parts is None else _lora_linear(parts, x)

    def _rope(self, h: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """cos, sin `[N, 1, D]` of positions `pos` `[N, 1]` from the model's rotary module,
        sin with rotate_half's sign folded in (see `__init__`)."""
        cos, sin = self.inner.rotary_emb(h[:1].expand(pos.shape[0], -1, -1), position_ids=pos)
        half = sin.shape[-1] // 2
        sin = torch.cat([-sin[..., :half], sin[..., half:]], -1)
        return cos, sin

    def _norms(self) -> list[Any]:
        return [self.inner.norm] + [
            n for x in self.layers for n in (x.input_layernorm, x.post_attention_layernorm)
        ]

    @classmethod
    def wrap(
        cls,
        model: Any,
        cache: Any,
        prompt_len: int,
        max_new_tokens: int,
        rows: Tensor | None = None,
    ) -> StaticDecoder | None:
        """A decoder over `cache` (the prefill's DynamicCache; `rows`: the cache row of each
        batch row, when the prefill ran on distinct prompts only), or None when `model` or
        the cache is of a kind `step` does not reproduce (the caller keeps the generic
        forward)."""
        if not supported(model) or not hasattr(cache, "layers"):
            return None
        if not all(hasattr(x, "keys") and torch.is_tensor(x.keys) for x in cache.layers):
            return None
        return cls(model, cache, prompt_len, max_new_tokens, rows)

    def step(self, tok: Tensor, pos: Tensor, col: int, mask: Tensor) -> Tensor:
        """Logits `[B, V]` after token `tok` `[B, 1]` at position `pos` `[B, 1]`, written to
        cache column `col`; `mask` `[B, 1, 1, >= col + 1]` bool, True = attend (the same
        tensor at every step)."""
        h = self.inner.embed_tokens(tok)  # [B, 1, H]
        if self.static_rope:
            if self.table is None:  # every position's cos/sin, [P + T, 1, D]
                at = torch.arange(self.n_pos, device=h.device)[:, None]
                self.table = self._rope(h, at)
            cos, sin = self.table[0][pos[:, 0]], self.table[1][pos[:, 0]]  # [B, 1, D]
        else:
            cos, sin = self._rope(h, pos)
        if self.bias is None:  # the boolean mask as sdpa uses it (0 / -inf), made once
            self.bias = torch.zeros(mask.shape, dtype=h.dtype, device=h.device)
            self.bias.masked_fill_(~mask.bool(), float("-inf"))
        bias = self.bias[..., : col + 1]
        norm = _rms_norm if self.norm_math else (lambda n, x: n(x))
        B = h.shape[0]
        for layer, kc, vc, fused in zip(self.layers, self.k, self.v, self.fused):
            attn = layer.self_attn
            D, g = attn.head_dim, attn.num_key_value_groups
            hkv = kc.shape[1]
            x = norm(layer.input_layernorm, h)
            # heads as [B, heads, D] (one token: no sequence axis); rotary embedding as
            # apply_rotary_pos_emb, on q and k together where they come from one matmul
            if fused is not None:
                qkv = torch.nn.functional.linear(x, fused[0], fused[1]).view(B, -1, D)
                qk = qkv[:, :-hkv]
                qk = qk * cos + qk.roll(D // 2, -1) * sin
                q, k, v = qk[:, :-hkv], qk[:, -hkv:], qkv[:, -hkv:]
            else:
                q, k, v = (
                    self.linear(m, x).view(B, -1, D)
                    for m in (attn.q_proj, attn.k_proj, attn.v_proj)
                )
                q = q * cos + q.roll(D // 2, -1) * sin
                k = k * cos + k.roll(D // 2, -1) * sin
            kc[:, :, col] = k
            vc[:, :, col] = v
            # the g query heads sharing a KV head as g query rows (transformers' `pack_gqa`)
            o = sdpa(
                q.reshape(B, hkv, g, D),
                kc[:, :, : col + 1],
                vc[:, :, : col + 1],
                attn_mask=bias,
                dropout_p=attn.attention_dropout if attn.training else 0.0,
                scale=attn.scaling,
            )  # [B, Hkv, g, D]: heads in q's order
            h = h + self.linear(attn.o_proj, o.reshape(B, 1, -1))
            x = norm(layer.post_attention_layernorm, h)
            if fused is not None:
                gate, up = torch.nn.functional.linear(x, fused[3]).chunk(2, -1)
                h = h + self.linear(layer.mlp.down_proj, torch.nn.functional.silu(gate) * up)
            else:
                h = h + self.mlp(layer.mlp, x)
        return self.linear(self.lm_head, norm(self.inner.norm, h))[:, -1]


class Prefill:
    """The keys and values `train_logits` computed, per layer, in the shape of the
    prefill's DynamicCache as `StaticDecoder.wrap` reads it (`.layers[i].keys/.values`)."""

    def __init__(self, kv: list[tuple[Tensor, Tensor]]) -> None:
        from types import SimpleNamespace

        self.layers = [SimpleNamespace(keys=k, values=v) for k, v in kv]


@functools.cache
def _mask_cache_kw(create_causal_mask: Any) -> str:
    """The name of `create_causal_mask`'s cache argument (`past_key_values` -> `cache`,
    transformers 5.2x), read from its signature once."""
    import inspect

    params = inspect.signature(create_causal_mask).parameters
    return "cache" if "cache" in params else "past_key_values"


def train_logits(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    position_ids: Tensor,
    keep: int,
    kv: list[tuple[Tensor, Tensor]] | None = None,
) -> Tensor | None:
    """The model's forward without cache (the training pass, with grad), logits `[B, keep,
    V]` of the last `keep` positions; None where it would not be the model's own forward
    (the caller then runs that).

    The same submodules and functions in the same order as the generic forward (the
    norms and the embedding as module calls, the model's own `apply_rotary_pos_emb`, its
    causal mask and transformers' sdpa attention function; plain nn.Linear as
    `functional.linear`, which is its forward), so the logits and every gradient are the
    same bits (tests/llm/test_generation_fast.py); skipped: the decorators, keyword
    plumbing, module calls and output classes around them (~1 ms of a ~9 ms forward on
    the nano model). Only where `StaticDecoder` applies, without hooks, and without
    gradient checkpointing. `kv`: a list that receives each layer's keys and values
    (after the rotary embedding: what the KV cache of a prefill holds), for the sampler.
    """
    import sys

    try:  # transformers >= 4.53; older ones take the generic forward
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        from transformers.masking_utils import create_causal_mask
    except ImportError:
        return None
    cache_kw = _mask_cache_kw(create_causal_mask)

    base = _base(model)
    if not supported(model) or not _no_hooks(base):
        return None
    inner = base.model
    if getattr(inner, "gradient_checkpointing", False) and inner.training:
        return None
    rope = getattr(sys.modules.get(type(base).__module__), "apply_rotary_pos_emb", None)
    if rope is None:
        return None
    h = inner.embed_tokens(input_ids)
    mask = create_causal_mask(
        config=inner.config,
        inputs_embeds=h,
        attention_mask=attention_mask,
        position_ids=position_ids,
        **{cache_kw: None},
    )
    cos, sin = inner.rotary_emb(h, position_ids)
    for layer in inner.layers:
        a = layer.self_attn
        heads = (*input_ids.shape, -1, a.head_dim)
        x = layer.input_layernorm(h)
        q, k, v = (
            _linear(p, x).view(heads).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj)
        )
        q, k = rope(q, k, cos, sin)
        if kv is not None:
            kv.append((k, v))
        o, _ = sdpa_attention_forward(
            a, q, k, v, mask, dropout=a.attention_dropout if a.training else 0.0, scaling=a.scaling
        )
        h = h + _linear(a.o_proj, o.reshape(*input_ids.shape, -1).contiguous())
        h = h + _mlp(layer.mlp, layer.post_attention_layernorm(h))
    return _linear(base.lm_head, inner.norm(h)[:, -keep:, :])
