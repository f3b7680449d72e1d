"""Custom rewards for the RL stages and `rlfoundry llm eval`, with a dataset column.

    rlfoundry llm grpo --model DIR --data examples/grpo_prompts.csv \
        --reward examples/my_reward.py:close_to_answer --reward 0.1*examples/my_reward.py:brevity
    rlfoundry llm eval DIR --data examples/grpo_prompts.csv --reward examples/my_reward.py:close_to_answer

A function's first two parameters are the prompt and the completion (text); every
further parameter is filled from the dataset column of that name (`answer` here), so a
dataset without it fails before training. Named `prompts, completions`, the function
scores a whole batch and gets one list per column (TRL's convention); `**kwargs` takes
every column.
"""

from __future__ import annotations

import re


def close_to_answer(prompt: str, completion: str, answer: float) -> float:
    """1 for the exact number, falling as the last number written moves away from it."""
    numbers = re.findall(r"-?\d+(?:\.\d+)?", completion)
    if not numbers:
        return 0.0
    return 1.0 / (1.0 + abs(float(numbers[-1]) - float(answer)))


def brevity(prompts: list[str], completions: list[str], **columns: list) -> list[float]:
    """Batched, TRL-style: minus the length in characters beyond 20, per completion."""
    return [-max(0, len(c) - 20) / 20 for c in completions]
