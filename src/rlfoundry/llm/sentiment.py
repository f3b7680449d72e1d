"""Sentiment-steered generation: continue a review opening ("The pasta was") positively.

The reward is VADER's compound score of the continuation (the vaderSentiment wheel, so
it works offline); preference pairs are two templated continuations whose scores differ
by at least `min_gap`. One of the built-in tasks (`tasks.get_task("sentiment")`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlfoundry.llm.answers import cut_at_eos as _cut_at_eos
from rlfoundry.llm.splits import check_split as _check_split
from rlfoundry.llm.splits import held_out

_OPENERS = [
    "The {} was",
    "I thought the {} was",
    "Honestly, the {} is",
    "My experience with the {} was",
    "Overall, the {} felt",
    "To be fair, the {} seemed",
    "In my opinion the {} is",
    "We all agreed the {} was",
]
_NOUNS = [
    "movie", "food", "service", "hotel", "room", "book", "phone", "pasta", "coffee",
    "concert", "staff", "screen", "battery", "plot", "ending", "music", "show", "game",
    "camera", "price", "view", "trip", "soup", "class", "app", "keyboard", "flight",
    "pizza", "album", "museum",
]  # fmt: skip
_POSITIVE = [
    "great", "wonderful", "excellent", "amazing", "lovely", "fantastic", "good", "enjoyable",
    "delightful", "brilliant", "perfect", "fun", "beautiful", "superb", "pleasant",
]  # fmt: skip
_NEGATIVE = [
    "terrible", "awful", "boring", "horrible", "bad", "disappointing", "dull", "poor",
    "annoying", "ugly", "painful", "sad", "awkward", "weak", "stupid",
]  # fmt: skip
_NEUTRAL = ["okay", "ordinary", "long", "short", "loud", "quiet", "new", "old", "small", "big"]
_MODIFIERS = ["", "really ", "very ", "quite ", "not ", "a bit ", "so ", "truly "]
_ENDINGS = [".", "!", " and I loved it.", " and I hated it.", ", to be honest.", " overall."]


@dataclass
class SentimentTask:
    """Continue a review opening; reward = VADER compound score of the continuation."""

    test_fraction: float = 0.2
    """Share of prompts held out (by prompt hash)."""
    min_gap: float = 0.3
    """Minimum compound-score gap between `chosen` and `rejected` in `pairs`."""
    max_new_tokens: int = 12
    name: str = "sentiment"
    _analyzer: Any = field(default=None, repr=False, compare=False)

    def _vader(self) -> Any:
        if self._analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self._analyzer = SentimentIntensityAnalyzer()
        return self._analyzer

    def all_prompts(self) -> list[str]:
        return [o.format(n) for o in _OPENERS for n in _NOUNS]

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """Distinct prompts of `split` in a seeded order; `n` larger than the split repeats it."""
        _check_split(split)
        pool = [
            p for p in self.all_prompts() if held_out(p, self.test_fraction) == (split == "test")
        ]
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(pool))
        n = len(pool) if n is None else n
        return [pool[order[i % len(pool)]] for i in range(n)]

    @staticmethod
    def continuation(rng: np.random.Generator, mood: str | None = None) -> str:
        """One templated continuation " really great!" (mood: positive/negative/neutral)."""
        mood = mood or ("positive", "negative", "neutral")[int(rng.integers(3))]
        words = {"positive": _POSITIVE, "negative": _NEGATIVE, "neutral": _NEUTRAL}[mood]
        mod = _MODIFIERS[int(rng.integers(len(_MODIFIERS)))]
        end = _ENDINGS[int(rng.integers(len(_ENDINGS)))]
        return f" {mod}{words[int(rng.integers(len(words)))]}{end}"

    def reference(self, prompt: str) -> str:
        """A positive continuation, fixed per prompt."""
        rng = np.random.default_rng(int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16))
        return f" {_POSITIVE[int(rng.integers(len(_POSITIVE)))]}!"

    def score(self, text: str) -> float:
        return float(self._vader().polarity_scores(text)["compound"])

    def reward(self, prompt: str, completion: str) -> float:
        return self.score(_cut_at_eos(completion))

    def is_correct(self, prompt: str, completion: str) -> bool:
        """Positive by VADER's usual threshold (compound >= 0.05)."""
        return self.reward(prompt, completion) >= 0.05

    def pairs(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[dict]:
        """`n` (default 2000) `{prompt, chosen, rejected}`; chosen has the higher VADER score
        by at least `min_gap`."""
        prompts = self.prompts(split, None, seed)
        rng = np.random.default_rng(seed + 7919)
        n = 2000 if n is None else n
        out: list[dict] = []
        while len(out) < n:
            p = prompts[int(rng.integers(len(prompts)))]
            a, b = self.continuation(rng), self.continuation(rng)
            sa, sb = self.score(a), self.score(b)
            if abs(sa - sb) < self.min_gap:
                continue
            chosen, rejected = (a, b) if sa > sb else (b, a)
            out.append({"prompt": p, "chosen": chosen, "rejected": rejected})
        return out

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        """Prompts with positive continuations (SFT towards the preferred behaviour)."""
        rng = np.random.default_rng(seed + 1)
        return [(p, self.continuation(rng, "positive")) for p in self.prompts(split, n, seed)]

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """Reviews of every mood: pre-training sees the language, not the preference."""
        rng = np.random.default_rng(seed + 2)
        n = 4000 if n is None else n
        return [p + self.continuation(rng) for p in self.prompts(split, n, seed)]
