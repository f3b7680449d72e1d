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
) -> Rollout:
    """Sample `group_size` completions for each prompt with the policy's KV-cache sampler."""
    rep = [p for p in prompts for _ in range(group_size)]
    out = generate(
        model,
        tok,
        rep,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        generator=generator,
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
    """Log-probs `[b, T]` of the sampled completion tokens under `model` (with grad)."""
    cm = torch.zeros_like(ro.attention_mask[rows], dtype=torch.bool)
    cm[:, ro.prompt_len :] = ro.completion_mask[rows]
    logp = policy_logprobs(
        model, ro.input_ids[rows], ro.attention_mask[rows], cm, temperature=temperature
    )
    return logp[:, ro.prompt_len :]
