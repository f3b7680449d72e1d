"""Evaluation of a model: greedy generation, scored by a task or by any reward.

    evaluate_accuracy(model, tok, "arithmetic", n=200)   # share of held-out prompts solved
    task_accuracy(model, tok, cfg)                       # {"eval_accuracy": ...} of an RL stage
    score_prompts(model, tok, prompts, reward, columns)  # mean reward (+ accuracy) on a dataset

Kept apart from `tasks.py` (the data) because it needs the sampler: tasks stay plain
Python that the tokenizer can read, and the sampler never imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rlfoundry.llm.chat_format import task_texts
from rlfoundry.llm.generation import generate
from rlfoundry.llm.multiturn import tool_rollout
from rlfoundry.llm.tasks import Task, get_task
from rlfoundry.llm.tools import Tool, load_tool


def evaluate_accuracy(
    model: Any,
    tok: Any,
    task: str | Task,
    n: int = 200,
    split: str = "test",
    seed: int = 0,
    batch_size: int = 100,
    max_new_tokens: int | None = None,
    tool: Tool | None = None,
    max_turns: int = 3,
) -> float:
    """Share of `n` prompts of `split` whose greedy completion `task.is_correct` accepts
    (a conversational task's prompts rendered with the chat template, `task_texts`; with
    `tool`: greedy multi-turn episodes that may call it, `multiturn.tool_rollout`)."""
    task = get_task(task)
    prompts = task_texts(task, tok, task.prompts(split, n, seed))
    max_new = max_new_tokens or task.max_new_tokens
    was_training = model.training
    model.eval()
    hits = 0
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        if tool is None:
            texts = generate(model, tok, chunk, max_new_tokens=max_new, temperature=0.0).texts
        else:
            ro = tool_rollout(model, tok, chunk, 1, max_new, 0.0, None, tool, max_turns)
            texts = ro.completions
        if hasattr(task, "are_correct"):  # a batch at once (code: one sandbox run)
            hits += sum(task.are_correct(chunk, texts))
        else:
            hits += sum(task.is_correct(p, c) for p, c in zip(chunk, texts))
    model.train(was_training)
    return hits / max(1, len(prompts))


def tool_options(cfg: Any) -> dict[str, Any]:
    """`evaluate_accuracy`'s `tool` and `max_turns` from a stage's config (its `tool`
    field, if it has one); `{}` without a tool."""
    if not getattr(cfg, "tool", ""):
        return {}
    return {"tool": load_tool(cfg.tool), "max_turns": getattr(cfg, "max_turns", 3)}


def task_accuracy(model: Any, tok: Any, cfg: Any) -> dict[str, float]:
    """Held-out greedy accuracy of an RL stage's task (`cfg.task`, `cfg.eval_size` prompts,
    `cfg.max_new_tokens`) as `{"eval_accuracy": ...}`; `{}` when eval_size is 0."""
    if cfg.eval_size <= 0:
        return {}
    acc = evaluate_accuracy(
        model,
        tok,
        get_task(cfg.task),
        n=cfg.eval_size,
        max_new_tokens=cfg.max_new_tokens or None,
        **tool_options(cfg),
    )
    return {"eval_accuracy": acc}


def score_prompts(
    model: Any,
    tok: Any,
    prompts: Sequence[str],
    reward: Any,
    columns: dict[str, list[Any]] | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    temperature: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Complete every prompt (greedy at temperature 0) and score it with `reward` (a
    `rewards.Composite`), passing it the dataset `columns` (one value per prompt).

    Returns `mean_reward`, the verifiers' `accuracy` (`Composite.accuracy`; absent for
    rewards that are no verifier), `n`, and per prompt its `completions` and `rewards`.
    """
    columns = columns or {}
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    completions: list[str] = []
    scores: list[float] = []
    hits: dict[str, float] = {}
    for i in range(0, len(prompts), batch_size):
        chunk = list(prompts[i : i + batch_size])
        out = generate(
            model, tok, chunk, max_new_tokens=max_new_tokens, temperature=temperature, generator=gen
        )
        cols = {k: list(v[i : i + batch_size]) for k, v in columns.items()}
        scores += reward(chunk, out.texts, **cols)
        for k, v in reward.accuracy(chunk, out.texts).items():
            hits[k] = hits.get(k, 0.0) + v * len(chunk)
        completions += out.texts
    model.train(was_training)
    n = len(completions)
    return {
        "mean_reward": sum(scores) / max(1, n),
        **{k: v / max(1, n) for k, v in hits.items()},
        "n": n,
        "completions": completions,
        "rewards": scores,
    }
