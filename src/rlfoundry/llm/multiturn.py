"""Multi-turn rollouts with tool calls: the episode is a conversation whose environment
turns are masked out of the loss.

    ro = tool_rollout(model, tok, prompts, group_size, max_new_tokens, temperature, gen,
                      tool=calculator, max_turns=3)
    ro.completion_mask    # [B, T] 1 on the policy's own tokens, 0 on the tool's answers
    ro.completions        # the whole transcript: "<<48/2=24>> 24"

Each turn samples up to `max_new_tokens` tokens for every unfinished row, continuing
from its prompt and everything so far AS TOKEN IDS (never re-encoded text, so the ids
trained on are the ids sampled). A row whose new text ends with a tool call
(`tools.pending_call`: `<<EXPR=`) stops there; the environment's answer (`tools.answer`:
the result and `>>`) is encoded and appended, and the row takes another turn. A row
that ends without a call, or reaches `max_turns`, is finished. The reward comes at the
end, on the whole transcript.

pi_old's log-probs are recomputed in one forward pass over the finished episodes (the
sampling passes saw the same tokens, so they agree; one pass is simpler than stitching
per-turn log-probs). The environment tokens get no log-prob and no gradient: the
policy did not choose them (Schick et al. 2023, Toolformer; verl and SkyRL mask them
the same way).
"""

from __future__ import annotations

from typing import Any

import torch

from rlfoundry.llm.generation import sample
from rlfoundry.llm.models import encode_prompt
from rlfoundry.llm.rollout import Rollout, completion_logprobs
from rlfoundry.llm.tools import Tool, answer, pending_call


def _cut_at_call(tok: Any, ids: list[int]) -> tuple[int, str | None]:
    """How many of `ids` to keep, and the call they end with (None: no call, keep all)."""
    for k in range(1, len(ids) + 1):
        expr = pending_call(tok.decode(ids[:k], skip_special_tokens=True))
        if expr is not None:
            return k, expr
    return len(ids), None


@torch.no_grad()
def tool_rollout(
    model: Any,
    tok: Any,
    prompts: list[str],
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator | None,
    tool: Tool,
    max_turns: int,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
) -> Rollout:
    """Sample `group_size` episodes per prompt (see the module docstring); temperature 0
    is greedy, for evaluation (old_logp then stays 0)."""
    dev = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    eos = tok.eos_token_id
    rep = [p for p in prompts for _ in range(group_size)]
    context = [encode_prompt(tok, p) for p in rep]  # grows turn by turn
    n_prompt = [len(c) for c in context]
    is_policy: list[list[bool]] = [[] for _ in rep]  # per completion token
    ended = [False] * len(rep)  # emitted EOS
    live = list(range(len(rep)))
    for turn in range(max_turns):
        if not live:
            break
        width = max(len(context[i]) for i in live)
        ids = torch.full((len(live), width), pad, dtype=torch.long)
        attn = torch.zeros((len(live), width), dtype=torch.long)
        for r, i in enumerate(live):
            ids[r, width - len(context[i]) :] = torch.tensor(context[i])
            attn[r, width - len(context[i]) :] = 1
        comp, cmask, _ = sample(
            model, ids.to(dev), attn.to(dev), max_new_tokens, eos, pad, temperature,
            top_k, top_p, generator, 4, repetition_penalty,
        )  # fmt: skip
        still = []
        for r, i in enumerate(live):
            new = comp[r][cmask[r]].tolist()
            keep, expr = _cut_at_call(tok, new)
            context[i] += new[:keep]
            is_policy[i] += [True] * keep
            if expr is None or turn + 1 == max_turns:
                ended[i] = bool(new) and new[keep - 1] == eos
                continue
            env = tok.encode(answer(tool, expr), add_special_tokens=False)
            context[i] += env
            is_policy[i] += [False] * len(env)
            still.append(i)
        live = still
    # left-padded prompts, then right-padded episodes: the layout of a plain rollout
    P, T = max(n_prompt), max(1, max(len(m) for m in is_policy))
    input_ids = torch.full((len(rep), P + T), pad, dtype=torch.long)
    attention = torch.zeros((len(rep), P + T), dtype=torch.long)
    cmask = torch.zeros((len(rep), T), dtype=torch.bool)
    for i, c in enumerate(context):
        p, t = n_prompt[i], len(is_policy[i])
        input_ids[i, P - p : P + t] = torch.tensor(c)
        attention[i, P - p : P + t] = 1
        cmask[i, :t] = torch.tensor(is_policy[i], dtype=torch.bool)
    texts = tok.batch_decode(
        [c[n:] for c, n in zip(context, n_prompt)],
        skip_special_tokens=True,
        clean_up_tokenization_spaces=False,
    )
    ro = Rollout(
        prompts=rep,
        completions=texts,
        input_ids=input_ids.to(dev),
        attention_mask=attention.to(dev),
        completion_mask=cmask.to(dev),
        old_logp=torch.zeros(len(rep), T, device=dev),
        truncated=~torch.tensor(ended, device=dev),
    )
    if temperature > 0:
        ro.old_logp = completion_logprobs(model, ro, slice(None), temperature).float()
    return ro
