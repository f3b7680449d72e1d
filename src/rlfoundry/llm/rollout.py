"""Sampling completions from the policy, and their log-probs: what every LLM-RL stage collects.

    ro = rollout(model, tok, prompts, group_size, max_new_tokens, temperature, generator)
    ro.old_logp                                   # [B, T] log pi_old at sampling time
    logp = completion_logprobs(model, ro, rows, temperature)   # [b, T] with grad

A rollout is prompt-major: the `group_size` completions of a prompt are adjacent rows.
The sampling log-probs come from the generation pass itself (`generation.generate`),
so pi_old costs no extra forward pass; `completion_logprobs` recomputes the same
numbers in the training forward pass (tests/llm/test_grpo_correctness.py checks they
agree), so the first probability ratio of an update is 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rlfoundry.llm.generation import generate
from rlfoundry.llm.models import policy_logprobs
from rlfoundry.llm.prefix import shared_prompt_logprobs


@dataclass
class Rollout:
    """One batch of sampled completions, prompt-major (the G completions of a prompt adjacent)."""

    prompts: list[str]
    completions: list[str]
    input_ids: Tensor  # [B, P + T]  left-padded prompt, then the completion
    attention_mask: Tensor  # [B, P + T]
    completion_mask: Tensor  # [B, T]  1 on completion tokens up to and including EOS
    old_logp: Tensor  # [B, T]  log-probs of the sampled tokens at sampling time
    truncated: Tensor  # [B]  bool: no EOS within max_new_tokens

    @property
    def prompt_len(self) -> int:
        return self.input_ids.shape[1] - self.completion_mask.shape[1]

    def select(self, rows: slice | Tensor) -> Rollout:
        """The rows `rows` (a slice, or index tensor for shuffled mini-batches)."""
        pick = rows.tolist() if isinstance(rows, Tensor) else range(len(self.prompts))[rows]
        return Rollout(
            prompts=[self.prompts[i] for i in pick],
            completions=[self.completions[i] for i in pick],
            input_ids=self.input_ids[rows],
            attention_mask=self.attention_mask[rows],
            completion_mask=self.completion_mask[rows],
            old_logp=self.old_logp[rows],
            truncated=self.truncated[rows],
        )


@torch.no_grad()
def rollout(
    model: Any,
    tok: Any,
    prompts: list[str],
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator | None = None,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    static_cache: bool = True,
) -> Rollout:
    """Sample `group_size` completions for each prompt with the policy's KV-cache sampler
    (top_k, top_p and repetition_penalty: `generation.sample_tokens`; `static_cache`:
    `generation.sample`'s, False = the model's own forward at every token)."""
    rep = [p for p in prompts for _ in range(group_size)]
    out = generate(
        model,
        tok,
        rep,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        generator=generator,
        repetition_penalty=repetition_penalty,
        static_cache=static_cache,
    )
    return Rollout(
        prompts=rep,
        completions=out.texts,
        input_ids=out.input_ids,
        attention_mask=out.attention_mask,
        completion_mask=out.completion_mask,
        old_logp=out.logp,
        truncated=out.truncated,
    )


def completion_logprobs(model: Any, ro: Rollout, rows: slice, temperature: float) -> Tensor:
    """Log-probs `[b, T]` of the sampled completion tokens under `model` (with grad), 0
    outside the completion mask; each group's prompt computed once where the model
    allows it (`prefix.shared_prompt_logprobs`), else one plain forward pass."""
    P = ro.prompt_len
    shared = shared_prompt_logprobs(
        model, ro.input_ids[rows], ro.attention_mask[rows], P, temperature
    )
    if shared is not None:
        return shared.masked_fill(~ro.completion_mask[rows].bool(), 0.0)
    cm = torch.zeros_like(ro.attention_mask[rows], dtype=torch.bool)
    cm[:, ro.prompt_len :] = ro.completion_mask[rows]
    logp = policy_logprobs(
        model, ro.input_ids[rows], ro.attention_mask[rows], cm, temperature=temperature
    )
    return logp[:, ro.prompt_len :]


def concat_rollouts(parts: list[Rollout], pad_token_id: int) -> Rollout:
    """One rollout from several sampled apart (dynamic sampling's extra rounds): prompts
    left-padded and completions right-padded to the widest, padding masked out."""
    if len(parts) == 1:
        return parts[0]
    P = max(r.prompt_len for r in parts)
    T = max(r.completion_mask.shape[1] for r in parts)

    def widen(x: Tensor, left: int, right: int, fill: float) -> Tensor:
        shape = (x.shape[0], left + x.shape[1] + right)
        out = torch.full(shape, fill, dtype=x.dtype, device=x.device)
        out[:, left : left + x.shape[1]] = x
        return out

    ids, attn, cmask, logp = [], [], [], []
    for r in parts:
        p, t = r.prompt_len, r.completion_mask.shape[1]
        ids.append(widen(r.input_ids, P - p, T - t, pad_token_id))
        attn.append(widen(r.attention_mask, P - p, T - t, 0))
        cmask.append(widen(r.completion_mask, 0, T - t, False))
        logp.append(widen(r.old_logp, 0, T - t, 0.0))
    return Rollout(
        prompts=[p for r in parts for p in r.prompts],
        completions=[c for r in parts for c in r.completions],
        input_ids=torch.cat(ids),
        attention_mask=torch.cat(attn),
        completion_mask=torch.cat(cmask),
        old_logp=torch.cat(logp),
        truncated=torch.cat([r.truncated for r in parts]),
    )
