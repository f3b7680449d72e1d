"""The inputs of an RL stage: its prompts, their extra columns, the completion-length
budget, their check.

    prompts = load_prompts(cfg, tok)   # cfg.prompts (a dataset with `prompt`) or the task's
    prompts[i]                         # the text the model continues (chat template applied)
    prompts.columns(idx, group_size)   # the other columns of rows idx, for the reward
    cfg = with_task_budget(cfg)        # max_new_tokens 0 -> the task's budget
    check_rl_inputs(cfg)               # model path, prompts file, reward sources: before training

They read only `model`, `prompts`, `task`, `seed`, `max_new_tokens` and the reward
fields of the config, so PPO, GRPO and RLOO share them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlfoundry.errors import ConfigError
from rlfoundry.llm.chat_format import render_prompt, task_texts
from rlfoundry.llm.datasets import load_table, require
from rlfoundry.llm.models import check_model_path
from rlfoundry.llm.policy import ModelOptions
from rlfoundry.llm.rewards import build_reward, check_reward_columns
from rlfoundry.llm.tasks import get_task


@dataclass
class RLInputs(ModelOptions):
    """What every RL stage's Config (GRPO, RLOO, PPO) takes besides its algorithm: the
    prompts, the reward sources and the settings of a judge reward."""

    task: str = "arithmetic"
    """Built-in task giving the prompts, the 'task' reward and the held-out evaluation."""
    prompts: str = ""
    """Dataset of training prompts (column `prompt`, text or messages; its other columns
    go to the reward functions by name): .jsonl/.json/.csv/.parquet, a save_to_disk
    directory or a hub name; empty = the task's prompts."""
    reward: list[str] = field(default_factory=lambda: ["task"])
    """Reward sources, summed: 'task', 'numeric_match', 'exact_match', 'module:function',
    'rm:DIR', 'judge:DIR', 'judge:http://HOST/v1', each optionally 'WEIGHT*SOURCE' (see
    llm/rewards.py)."""
    judge_template: str = ""
    """Prompt template of a judge reward with {prompt}, {completion} and any dataset
    column such as {answer}; empty = default."""
    judge_model: str = "default"
    """Model name sent to an HTTP judge endpoint."""
    judge_timeout: float = 60.0
    """Seconds an HTTP judge may take to answer one request before it is retried."""
    judge_retries: int = 3
    """Retries of an HTTP judge request after a timeout, a dropped connection or a 5xx
    (exponential backoff with jitter); 0 = none."""
    judge_min_score: float = 0.0
    """Lowest score an HTTP judge may give (its reply must hold 'Score: N'); reward 0."""
    judge_max_score: float = 9.0
    """Highest score an HTTP judge may give (reward 1); a reply outside the range or
    without 'Score: N' scores 0 and is counted in the judge/invalid metric."""
    top_k: int = 0
    """Sample each token from the top_k most likely ones only; 0 = all. The loss's
    log-probs stay those of the unfiltered policy (TRL's and OpenRLHF's convention)."""
    top_p: float = 1.0
    """Nucleus sampling: sample from the smallest set of most likely tokens whose
    probability reaches top_p (after top_k); 1 = all."""
    repetition_penalty: float = 1.0
    """CTRL repetition penalty while sampling: logits of tokens already in the prompt or
    completion are divided by it (multiplied when negative); 1 = none."""


@dataclass
class PromptSet(Sequence[str]):
    """Rendered prompts, and the dataset's other columns (one value per prompt)."""

    texts: list[str]
    extra: dict[str, list[Any]] = field(default_factory=dict)
    source: str = "the task"

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: Any) -> Any:
        return self.texts[i]

    def columns(self, idx: Sequence[int], repeat: int = 1) -> dict[str, list[Any]]:
        """The extra columns of rows `idx`, each value repeated `repeat` times in a row
        (prompt-major, like a rollout's `group_size` completions per prompt)."""
        return {k: [v[int(i)] for i in idx for _ in range(repeat)] for k, v in self.extra.items()}


def load_prompts(cfg: Any, tok: Any = None) -> PromptSet:
    """Training prompts: the `prompt` column of the `cfg.prompts` dataset (text, or
    messages rendered with `tok`'s chat template; plain text without `tok`) with its
    other columns, or the task's train split in the order of `cfg.seed` (a conversational
    task's rendered with `tok`'s chat template, `chat_format.task_texts`). Raises on a
    bad dataset before training."""
    if cfg.prompts:
        table = load_table(cfg.prompts)
        require(table, "prompts")
        texts = [render_prompt(tok, p) for p in table.column("prompt")]
        extra = {c: table.column(c) for c in table.columns if c != "prompt"}
        return PromptSet(texts, extra, table.source)
    task = get_task(cfg.task)
    return PromptSet(task_texts(task, tok, task.prompts("train", None, cfg.seed)))


def sampling_options(cfg: Any) -> dict[str, Any]:
    """The sampler's keyword arguments of an RL config: top_k, top_p, repetition_penalty."""
    return {"top_k": cfg.top_k, "top_p": cfg.top_p, "repetition_penalty": cfg.repetition_penalty}


def check_sampling(cfg: Any) -> None:
    """Raise ConfigError on sampling settings out of range (called by each validate())."""
    if cfg.top_k < 0:
        raise ConfigError(f"top_k must be >= 0 (0 = no top-k filter), got {cfg.top_k}.")
    if not 0 < cfg.top_p <= 1:
        raise ConfigError(f"top_p must lie in (0, 1] (1 = no nucleus filter), got {cfg.top_p}.")
    if cfg.repetition_penalty <= 0:
        raise ConfigError(
            f"repetition_penalty must be positive (1 = none), got {cfg.repetition_penalty}."
        )


def with_task_budget(cfg: Any) -> Any:
    """`cfg` with `max_new_tokens` 0 replaced by the task's completion budget."""
    if cfg.max_new_tokens > 0:
        return cfg
    return dataclasses.replace(cfg, max_new_tokens=int(get_task(cfg.task).max_new_tokens))


def check_rl_inputs(cfg: Any) -> None:
    """Fail before training: the model path, the prompts file's fields, the reward
    sources (imports the functions, finds the model directories, checks templates) and
    the dataset columns the reward functions ask for."""
    check_model_path(cfg.model)
    prompts = load_prompts(cfg)
    check_reward_columns(build_reward(cfg), list(prompts.extra), prompts.source)
