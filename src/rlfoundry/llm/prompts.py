"""The inputs of an RL stage: its prompts, its completion-length budget, their check.

    prompts = load_prompts(cfg)     # cfg.prompts (JSONL of {prompt}) or the task's train split
    cfg = with_task_budget(cfg)     # max_new_tokens 0 -> the task's budget
    check_rl_inputs(cfg)            # model path, prompts file, reward sources: before training

They read only `model`, `prompts`, `task`, `seed`, `max_new_tokens` and the reward
fields of the config, so PPO, GRPO and RLOO share them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rlfoundry.llm.data import load_jsonl
from rlfoundry.llm.models import check_model_path
from rlfoundry.llm.rewards import build_reward
from rlfoundry.llm.tasks import get_task


def load_prompts(cfg: Any) -> list[str]:
    """Training prompts: the `prompt` field of every line of `cfg.prompts`, or the task's
    train split in the order of `cfg.seed`. Raises on a bad file before training."""
    if cfg.prompts:
        return [r["prompt"] for r in load_jsonl(cfg.prompts, ["prompt"])]
    return list(get_task(cfg.task).prompts("train", None, cfg.seed))


def with_task_budget(cfg: Any) -> Any:
    """`cfg` with `max_new_tokens` 0 replaced by the task's completion budget."""
    if cfg.max_new_tokens > 0:
        return cfg
    return dataclasses.replace(cfg, max_new_tokens=int(get_task(cfg.task).max_new_tokens))


def check_rl_inputs(cfg: Any) -> None:
    """Fail before training: the model path, the prompts file's fields, the reward
    sources (imports the functions, finds the model directories, checks templates)."""
    check_model_path(cfg.model)
    load_prompts(cfg)
    build_reward(cfg)
