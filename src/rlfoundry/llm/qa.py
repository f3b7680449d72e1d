"""Extractive question answering: the answer is a span of the passage, scored by exact
match and F1 after SQuAD's normalisation (Rajpurkar et al. 2016).

    task = get_task("qa")                         # or "qa:facts=4"
    task.prompts("test", n=1)
    # ["The soup was really great. The phone was not loud. Q: How was the phone? A:"]
    task.reward(prompt, " not loud")             # 1.0 (F1)
    task.reward(prompt, " loud")                 # 0.667: P = 1, R = 1/2
    task.is_correct(prompt, " Not loud.")        # True: exact match after normalisation

A passage is `facts` templated sentences "The NOUN was MOD ADJ.", each about another
noun; the question asks about one noun, and the answer is that sentence's span "MOD
ADJ". Modifiers and adjectives come from the sentiment vocabulary, which the built-in
tokenizer holds as whole tokens, so the span is two tokens to copy. Answering with a
fact chosen by its position is right 1/`facts` of the time: the trivial policies a
learning threshold has to beat.

Scores (the official SQuAD v1.1 evaluation script's definitions):
- `normalize_answer`: lower case, drop punctuation, the articles a/an/the and extra
  whitespace;
- `exact_match`: 1 when the normalised strings are equal;
- `f1`: the harmonic mean of token precision and recall of the normalised bags of
  words (0 when they share no token; 1 when both are empty).

The reward is F1 (partial credit for a partial span); held-out accuracy counts exact
matches. `squad_f1` and `squad_em` in `verifiers.py` apply the same scores to any
dataset with an `answer` column. The data is generated here (no download); it is part
of rlfoundry and under its licence (Apache-2.0). Split by a hash of the prompt
(`splits.held_out`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

import numpy as np

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.splits import draw_prompts

_NOUNS = ["movie", "phone", "book", "pizza", "camera", "game", "album", "coffee", "view",
          "soup", "screen", "class", "trip", "hotel", "music", "staff"]  # fmt: skip
_MODS = ["really", "very", "quite", "truly", "not"]
_ADJS = ["great", "boring", "lovely", "awful", "dull", "quiet", "loud", "good", "bad",
         "perfect", "fun", "sad", "weak", "old", "new"]  # fmt: skip

_QUESTION = re.compile(r"Q: How was the (\w+)\? A:\s*$")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 when the normalised prediction equals the normalised truth, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    """Token-level F1 of the normalised strings (SQuAD v1.1): 2PR / (P + R) over the
    multiset of shared tokens; 1.0 when both are empty, 0.0 when only one is."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _cut(completion: str) -> str:
    return completion.split("<eos>", 1)[0].split("\n", 1)[0].strip()


@dataclass
class QATask:
    """Templated passages with a question about one fact; reward = SQuAD F1 of the
    answer span, held-out accuracy = exact match."""

    facts: int = 2
    """Sentences per passage (2..6); a position-only guess is right 1/facts of the time."""
    test_fraction: float = 0.1
    """Share of passages held out (by prompt hash)."""
    max_new_tokens: int = 6
    """Completion budget in tokens: the span ' MOD ADJ' and the EOS."""
    name: str = "qa"

    def __post_init__(self) -> None:
        if not 2 <= int(self.facts) <= 6:
            raise RLFoundryError(f"qa facts must be 2..6, got {self.facts}.")
        self.facts = int(self.facts)

    def _problem(self, rng: np.random.Generator) -> str:
        nouns = rng.choice(len(_NOUNS), self.facts, replace=False)
        facts = []
        for i in nouns:
            mod, adj = _MODS[int(rng.integers(len(_MODS)))], _ADJS[int(rng.integers(len(_ADJS)))]
            facts.append(f"The {_NOUNS[i]} was {mod} {adj}.")
        asked = _NOUNS[nouns[int(rng.integers(self.facts))]]
        return f"{' '.join(facts)} Q: How was the {asked}? A:"

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """`n` (default 10,000) distinct passages of `split`, in an order set by `seed`
        (the space holds billions of passages: no bound on the draws)."""
        return draw_prompts(self._problem, split, n, seed, self.test_fraction)

    def reference(self, prompt: str) -> str:
        """The answer span of a passage, read back from its text: ' MOD ADJ'."""
        m = _QUESTION.search(prompt)
        if m is not None:
            for sentence in prompt[: m.start()].split("."):
                words = sentence.split()
                if len(words) == 5 and words[1] == m.group(1):
                    return " " + " ".join(words[3:])
        raise RLFoundryError(
            f"No qa passage with an answer to its question in {prompt[-120:]!r}; score qa "
            "completions against prompts from its own generator."
        )

    def reward(self, prompt: str, completion: str) -> float:
        return f1(_cut(completion), self.reference(prompt))

    def is_correct(self, prompt: str, completion: str) -> bool:
        return exact_match(_cut(completion), self.reference(prompt)) == 1.0

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        return [(p, self.reference(p)) for p in self.prompts(split, n, seed)]

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        return [p + c for p, c in self.sft_examples(split, n, seed)]
