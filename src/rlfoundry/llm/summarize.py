"""Summarisation in the lead-sentence style of news, scored by ROUGE against a reference.

    task = get_task("summarize")                  # or "summarize:sentences=4"
    task.prompts("test", n=1)
    # ["Anna said the pizza was cheap on Monday. The staff was busy. The view was
    #   calm. Summary:"]
    task.reference(prompt)                        # " Anna said the pizza was cheap."
    task.reward(prompt, " Anna said the pizza was cheap.")   # 1.0: ROUGE-L F1

A document is `sentences` templated sentences; the first carries the news
("NAME said the NOUN was ADJ on DAY.") and the rest are filler ("The NOUN was ADJ.").
The reference summary is the lead sentence without its time clause, so copying the
whole lead sentence (the lead baseline of news summarisation) scores 0.86 ROUGE-L and
fails the 0.9 bar of `is_correct`; copying the document scores far less: what is
rewarded is choosing and trimming. Names, nouns and adjectives are all words that the
built-in tokenizer splits into a few tokens each. With whole-token adjectives (the
sentiment vocabulary's, this task's first word list) the tiny model's SFT copied names,
nouns and the one split adjective ("slow") early, but guessed the others until a sudden
jump whose step varied by seed from under 300 to beyond 600: a fixed SFT budget left
seeds either side of it, and a guessed adjective (a wrong one scores 0.83 ROUGE-L) gave
RL a one-in-fourteen signal. With split adjectives every seed learns the whole summary
between steps 75 and 150 (seeds 0, 2, 4).

Scores come from Google's `rouge-score` package (the reference implementation used by
TensorFlow Datasets and Hugging Face `evaluate`; in the `llm` extra): ROUGE-1, ROUGE-2
and ROUGE-L F1 with its default tokenizer (lower case, letters and digits) and the
Porter stemmer (Lin 2004). The reward is ROUGE-L F1; held-out accuracy counts summaries
with ROUGE-L F1 >= `pass_rouge`; `scores` gives all three for reporting. The data is
generated here (no download) and is under rlfoundry's licence (Apache-2.0). Split by a
hash of the prompt (`splits.held_out`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.splits import draw_prompts

_NAMES = ["Tom", "Anna", "Sam", "Mia", "Leo", "Emma", "Ben", "Lily", "Max", "Zoe", "Noah", "Ella"]
_NOUNS = ["movie", "food", "service", "hotel", "room", "book", "phone", "pasta", "coffee",
          "concert", "staff", "screen", "plot", "music", "show", "game", "camera", "view",
          "trip", "soup", "pizza", "album", "museum", "flight"]  # fmt: skip
_ADJS = ["cheap", "noisy", "cozy", "bland", "clean", "tasty", "fresh", "cold", "warm",
         "bright", "dark", "tiny", "busy", "calm"]  # fmt: skip
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_LEAD = re.compile(r"^(\w+ said the \w+ was \w+) on \w+\.")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@functools.lru_cache(maxsize=1)
def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise RLFoundryError(
            "The summarize task needs the rouge-score package; install it with "
            "`pip install 'rlfoundry[llm]'` (or `pip install rouge-score`)."
        ) from None
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of `prediction` against `reference` (rouge-score)."""
    res = _scorer().score(reference, prediction)  # (target, prediction)
    return {k: float(res[k].fmeasure) for k in ROUGE_TYPES}


def _cut(completion: str) -> str:
    return completion.split("<eos>", 1)[0].split("\n", 1)[0].strip()


@dataclass
class SummarizeTask:
    """Templated documents; the summary is the trimmed lead sentence; reward = ROUGE-L F1."""

    sentences: int = 3
    """Sentences per document (2..6): the lead and sentences - 1 filler."""
    pass_rouge: float = 0.9
    """ROUGE-L F1 at which a summary counts as correct (held-out accuracy): 0.9 passes a
    summary one word short of the reference, not the untrimmed lead sentence (0.86)."""
    test_fraction: float = 0.1
    """Share of documents held out (by prompt hash)."""
    max_new_tokens: int = 24
    """Completion budget in tokens: the summary and the EOS (at most 22 with the built-in
    tokenizer; 16, the first budget, cut a third of the summaries short of their EOS)."""
    name: str = "summarize"

    def __post_init__(self) -> None:
        if not 2 <= int(self.sentences) <= 6:
            raise RLFoundryError(f"summarize sentences must be 2..6, got {self.sentences}.")
        if not 0 < self.pass_rouge <= 1:
            raise RLFoundryError(f"summarize pass_rouge must be in (0, 1], got {self.pass_rouge}.")
        self.sentences = int(self.sentences)

    def _problem(self, rng: np.random.Generator) -> str:
        def pick(words: list[str]) -> str:
            return words[int(rng.integers(len(words)))]

        lead = f"{pick(_NAMES)} said the {pick(_NOUNS)} was {pick(_ADJS)} on {pick(_DAYS)}."
        rest = [f"The {pick(_NOUNS)} was {pick(_ADJS)}." for _ in range(self.sentences - 1)]
        return " ".join([lead, *rest]) + " Summary:"

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """`n` (default 10,000) distinct documents of `split`, in an order set by `seed`
        (over 10^8 documents: no bound on the draws)."""
        return draw_prompts(self._problem, split, n, seed, self.test_fraction)

    def reference(self, prompt: str) -> str:
        """The reference summary: the lead sentence without its time clause."""
        m = _LEAD.match(prompt)
        if m is None:
            raise RLFoundryError(
                f"The document {prompt[:80]!r} does not start with a summarize lead sentence; "
                "score summarize completions against prompts from its own generator."
            )
        return f" {m.group(1)}."

    def scores(self, prompt: str, completion: str) -> dict[str, float]:
        """ROUGE-1, ROUGE-2 and ROUGE-L F1 of a completion against the reference."""
        return rouge(_cut(completion), self.reference(prompt))

    def reward(self, prompt: str, completion: str) -> float:
        return self.scores(prompt, completion)["rougeL"]

    def is_correct(self, prompt: str, completion: str) -> bool:
        return self.reward(prompt, completion) >= self.pass_rouge

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        return [(p, self.reference(p)) for p in self.prompts(split, n, seed)]

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        return [p + c for p, c in self.sft_examples(split, n, seed)]
