"""Reward sources that run a model: a trained reward model and LLM judges.

    RewardModelReward("runs/rm")          # "rm:DIR": the Bradley-Terry score
    LocalJudge("models/judge")            # "judge:DIR": expected 0-9 digit, / 9
    HTTPJudge("http://localhost:8000/v1") # "judge:http://...": first number of the reply

A judge's prompt template has `{prompt}` and `{completion}`, and may name any column of
the prompts' dataset (`{answer}`, `{reference}`): the row's value is filled in, and a
dataset without that column fails before training (`rewards.check_reward_columns`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.judge import JudgeEndpoint, check_template
from rlfoundry.llm.models import load_model, load_tokenizer
from rlfoundry.llm.reward_base import RewardSource, row
from rlfoundry.llm.scoring import load_reward_model, score_texts

JUDGE_TEMPLATE = (
    "Rate how well the answer responds to the prompt, from 0 (useless) to 9 (perfect).\n"
    "Prompt: {prompt}\nAnswer: {completion}\nScore (0-9):"
)
"""Default judge prompt; `{prompt}` and `{completion}` are filled in."""


def _model_dir(path: str | os.PathLike) -> Path:
    """A run directory or the model directory inside it -> the model directory."""
    path = Path(path)
    for inner in (path / "model", path):  # full weights, or a LoRA adapter saved alone
        if (inner / "config.json").is_file() or (inner / "adapter_config.json").is_file():
            return inner
    raise RLFoundryError(
        f"'{path}' is not a model directory (no config.json in it or in {path}/model); "
        "pass the output directory of an rlfoundry llm command or a saved transformers model."
    )


class RewardModelReward(RewardSource):
    """A scalar reward model trained by `rlfoundry llm reward-model` (Bradley-Terry)."""

    def __init__(self, path: str | os.PathLike, batch_size: int = 32) -> None:
        self.path = _model_dir(path)
        self.name = f"rm:{path}"
        self.model, self.tok = load_reward_model(self.path)
        self.batch_size = batch_size

    def score(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        return score_texts(self.model, self.tok, prompts, completions, self.batch_size).tolist()


class LocalJudge(RewardSource):
    """A local causal LM as judge: the expected score under its next-token distribution.

    The template (default `JUDGE_TEMPLATE`) ends where the model should write a digit;
    the reward is `sum_d p(d) * d / 9` over the digit tokens 0..9 renormalised, in
    [0, 1]. Reading the distribution instead of a sampled reply gives a smooth,
    deterministic score and never fails to parse (G-Eval, Liu et al. 2023, weighs the
    score tokens by their probabilities the same way).
    """

    def __init__(
        self, path: str | os.PathLike, template: str | None = None, batch_size: int = 16
    ) -> None:
        self.path = _model_dir(path)
        self.name = f"judge:{path}"
        self.template = template or JUDGE_TEMPLATE
        self.needs = check_template(self.template)
        self.model = load_model(str(self.path)).eval()
        self.tok = load_tokenizer(str(self.path))
        self.batch_size = batch_size
        digit_ids = []
        for d in range(10):
            ids = self.tok.encode(str(d), add_special_tokens=False)
            if len(ids) != 1:
                raise RLFoundryError(
                    f"Judge tokenizer in '{self.path}' splits the digit {d} into {len(ids)} tokens; "
                    "use a judge whose tokenizer has single-token digits."
                )
            digit_ids.append(ids[0])
        self.digit_ids = torch.tensor(digit_ids)

    @torch.no_grad()
    def score(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        texts = [
            self.template.format(prompt=p, completion=c, **row(columns, i))
            for i, (p, c) in enumerate(zip(prompts, completions))
        ]
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            enc = [
                self.tok.encode(t, add_special_tokens=False) for t in texts[i : i + self.batch_size]
            ]
            width = max(len(e) for e in enc)
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
            # left padding: the next-token logits of every row sit at the last position
            dev = next(self.model.parameters()).device  # the stage may have moved the model
            ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=dev)
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=dev)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
            p = torch.softmax(logits.float()[:, self.digit_ids.to(dev)], dim=-1)  # [b, 10]
            out.extend((p @ torch.arange(10.0, device=dev) / 9.0).tolist())
        return out


class HTTPJudge(JudgeEndpoint, RewardSource):
    """An OpenAI-compatible chat endpoint as a reward source (`judge:http://HOST/v1`):
    `rlfoundry.llm.judge`'s `JudgeEndpoint` (pre-flight, retries, strict `Score: N` in a
    range, invalid replies counted in `judge/invalid`, templates naming dataset columns)
    with the checks every reward source gets."""
