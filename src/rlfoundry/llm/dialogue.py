"""Dialogue: reply to a user's turn; the reward is a reward model trained on the
preference pairs that the feedback app exports.

    rlfoundry llm reward-model --task dialogue --out runs/rm-dialogue    # on the export
    rlfoundry llm grpo --task dialogue:rm=runs/rm-dialogue --out runs/chat
    rlfoundry llm eval runs/chat --task dialogue:rm=runs/rm-dialogue   # win rate

    task = get_task("dialogue:rm=runs/rm-dialogue")          # or export=my_pairs.jsonl
    task.prompts("test")            # ["User: My phone is broken. Assistant:", ...]
    task.pairs("train")             # the export's {prompt, chosen, rejected} records
    task.reward(prompt, " Sorry to hear that. ...")          # the reward model's score

Data: a JSONL file in the pairs format of `rlfoundry feedback export` (TRL's
`{prompt, chosen, rejected}` plus the export's fields: project, item_id, agreement,
...). Without `export`, the task reads the small example export shipped with
rlfoundry (`data/dialogue_feedback_pairs.jsonl`): templated one-turn conversations
about everyday things, judged by simulated annotators in the feedback app's ranking
format and exported with `feedback.export.to_pairs` (majority vote, ties skipped);
`benchmarks/make_dialogue_feedback.py` regenerates it. It is rlfoundry's own data,
under rlfoundry's licence (Apache-2.0). Point `export` at your own project's export
to train on your annotators' judgments instead.

The prompts are the export's distinct prompts, split by a hash of the prompt
(`splits.held_out`): the pairs of held-out prompts train no reward model and their
prompts no policy. `reward` and `is_correct` need a reward model (`rm`), trained on
the train-split pairs by `rlfoundry llm reward-model --task dialogue` (held-out pairs
give its pairwise accuracy). `is_correct` is the win rate against the annotators:
the completion scores at least as high as the reply they preferred most for that prompt.

The reward model is read as a standard transformers sequence classifier (what the
reward-model stage saves in `DIR/model`): its head reads the last non-pad token, the
appended EOS, as `scoring.sequence_rewards` does when pad and EOS differ (they do in
the built-in tokenizer). A reward model saved as a LoRA adapter alone, or with pad
equal to EOS, is a reward source instead: `reward: rm:DIR`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.splits import check_split, held_out

EXAMPLE_EXPORT = Path(__file__).resolve().parents[1] / "data" / "dialogue_feedback_pairs.jsonl"
"""The example export shipped with rlfoundry (package data)."""


def _cut(completion: str) -> str:
    return completion.split("<eos>", 1)[0].rstrip()


@dataclass
class DialogueTask:
    """User turns from a feedback export; reward = a Bradley-Terry reward model's score
    (`rm`), held-out accuracy = win rate against the annotators' preferred reply."""

    rm: str = ""
    """Reward model: a run directory of `rlfoundry llm reward-model` (or its model/)."""
    export: str = ""
    """Pairs JSONL exported by `rlfoundry feedback export`; empty = the shipped example."""
    test_fraction: float = 0.2
    """Share of prompts held out (by prompt hash)."""
    max_new_tokens: int = 24
    """Completion budget in tokens: one short reply and the EOS."""
    batch_size: int = 64
    """Completions scored per reward-model forward pass."""
    name: str = "dialogue"
    _records: list[dict] = field(default_factory=list, repr=False, compare=False)
    _scorer: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        path = Path(self.export) if self.export else EXAMPLE_EXPORT
        if not path.is_file():
            raise RLFoundryError(
                f"dialogue export '{path}' does not exist; pass the JSONL written by "
                "`rlfoundry feedback export --format pairs`, or leave export empty for the example."
            )
        for i, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            rec = json.loads(line)
            if not all(isinstance(rec.get(k), str) for k in ("prompt", "chosen", "rejected")):
                raise RLFoundryError(
                    f"Line {i + 1} of {path} is not a preference pair (string prompt, chosen "
                    "and rejected); export the project with `--format pairs`."
                )
            self._records.append(rec)
        if not self._records:
            raise RLFoundryError(f"dialogue export '{path}' holds no pairs.")
        self._best = _preferred_replies(self._records)

    def _in(self, prompt: str, split: str) -> bool:
        return held_out(prompt, self.test_fraction) == (split == "test")

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """The export's distinct prompts of `split` in a seeded order; `n` larger than the
        split repeats it."""
        check_split(split)
        pool = sorted({r["prompt"] for r in self._records if self._in(r["prompt"], split)})
        if not pool:
            raise RLFoundryError(
                f"The dialogue export has no {split} prompts; it needs more distinct prompts."
            )
        order = np.random.default_rng(seed).permutation(len(pool))
        n = len(pool) if n is None else n
        return [pool[order[i % len(pool)]] for i in range(n)]

    def pairs(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[dict]:
        """The export's `{prompt, chosen, rejected}` records of `split`, seeded order."""
        check_split(split)
        rows = [
            {k: r[k] for k in ("prompt", "chosen", "rejected")}
            for r in self._records
            if self._in(r["prompt"], split)
        ]
        order = np.random.default_rng(seed).permutation(len(rows))
        return [rows[i] for i in order[: len(rows) if n is None else n]]

    def reference(self, prompt: str) -> str:
        """The reply the annotators preferred most often for `prompt`."""
        if prompt not in self._best:
            raise RLFoundryError(
                f"The prompt {prompt[:80]!r} is not in the dialogue export; score dialogue "
                "completions against the export's prompts."
            )
        return self._best[prompt]

    def scores(self, prompts: list[str], completions: list[str]) -> list[float]:
        """The reward model's scores of (prompt, completion) pairs, in batches."""
        import torch

        model, tok = self._reward_model()
        out: list[float] = []
        for i in range(0, len(prompts), self.batch_size):
            rows = [
                tok.encode(p, add_special_tokens=False)
                + tok.encode(_cut(c), add_special_tokens=False)
                + [tok.eos_token_id]
                for p, c in zip(
                    prompts[i : i + self.batch_size], completions[i : i + self.batch_size]
                )
            ]
            width = max(map(len, rows))
            ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
            attn = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            with torch.no_grad():
                out += model(input_ids=ids, attention_mask=attn).logits[:, 0].float().tolist()
        return out

    def rewards(self, prompts: list[str], completions: list[str]) -> list[float]:
        """Reward-model scores of a batch (what the RL stages call: `rewards.TaskReward`)."""
        return self.scores(prompts, completions)

    def are_correct(self, prompts: list[str], completions: list[str]) -> list[bool]:
        """Whether each completion scores at least as high as the annotators' preferred
        reply (within 1e-4: the same text in another batch can differ in the last bits)."""
        mine = self.scores(prompts, completions)
        theirs = self.scores(prompts, [self.reference(p) for p in prompts])
        return [a >= b - 1e-4 for a, b in zip(mine, theirs)]

    def reward(self, prompt: str, completion: str) -> float:
        return self.scores([prompt], [completion])[0]

    def is_correct(self, prompt: str, completion: str) -> bool:
        return self.are_correct([prompt], [completion])[0]

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        """Prompts with the annotators' preferred reply."""
        return [(p, self.reference(p)) for p in self.prompts(split, n, seed)]

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """Every judged reply after its prompt, preferred or not."""
        texts = [
            r["prompt"] + r[k]
            for r in self.pairs(split, None, seed)
            for k in ("chosen", "rejected")
        ]
        texts = list(dict.fromkeys(texts))
        return texts if n is None else [texts[i % len(texts)] for i in range(n)]

    def _reward_model(self) -> tuple[Any, Any]:
        if self._scorer is None:
            if not self.rm:
                raise RLFoundryError(
                    "The dialogue task is scored by a reward model and none is set; train one "
                    "with `rlfoundry llm reward-model --task dialogue --out runs/rm-dialogue` "
                    "and use task dialogue:rm=runs/rm-dialogue."
                )
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            path = Path(self.rm)
            path = path / "model" if (path / "model" / "config.json").is_file() else path
            if not (path / "config.json").is_file():
                raise RLFoundryError(
                    f"'{self.rm}' holds no reward model (no config.json in it or in its model/); "
                    "pass the --out of `rlfoundry llm reward-model`."
                )
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a tiny model loads in milliseconds
            model = AutoModelForSequenceClassification.from_pretrained(path).eval()
            if model.config.num_labels != 1:
                raise RLFoundryError(
                    f"'{self.rm}' has {model.config.num_labels} outputs, not 1; pass a reward "
                    "model trained by `rlfoundry llm reward-model`."
                )
            self._scorer = (model, AutoTokenizer.from_pretrained(path))
        return self._scorer

    def check(self) -> None:
        """Load the reward model now, so that a missing one fails before training."""
        self._reward_model()


def _preferred_replies(records: list[dict]) -> dict[str, str]:
    """Per prompt, the reply with the most wins minus losses over its pairs."""
    net: dict[str, Counter] = {}
    for r in records:
        c = net.setdefault(r["prompt"], Counter())
        c[r["chosen"]] += 1
        c[r["rejected"]] -= 1
    return {p: max(c, key=lambda k: (c[k], k)) for p, c in net.items()}
