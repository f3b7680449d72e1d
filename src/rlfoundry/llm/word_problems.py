"""Arithmetic word problems from templates, for chat models: a verifiable task that a
small instruct model can partly solve.

    task = get_task("word_problems")                   # or "word_problems:max_steps=3"
    task.prompts("test", n=200)     # ["Tom buys 3 pens at 4 dollars each and ...", ...]
    task.messages(prompt)           # [system, user]: rendered with the model's chat template
    task.reward(rendered, "... so 20 - 12 = 8. Answer: 8")   # 1.0

Each problem is one template (shopping, ages, speed and time, sharing, saving, boxes,
...) filled with names, items and small integers; a template takes 1, 2 or 3
arithmetic steps (`min_steps`..`max_steps`) and its answer is a whole number >= 0.

The verifier reads the completion's final number (`answers.final_answer`: the number
after the last 'Answer:' / '####' marker, else the last number; commas, '$' and units
are ignored) and compares it with the answer. The answer is recomputed from the
prompt's text: every template is also a regular expression, so a prompt still matches
after a chat template has wrapped it in system and role markers. Rewards and accuracy
therefore work on the rendered prompts that the RL stages and evaluation hand them.

The split is by a hash of the problem text (`splits.held_out`), as for the other
generated tasks: held-out problems are never drawn for training.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.answers import final_answer
from rlfoundry.llm.splits import check_split, held_out

SYSTEM = (
    "You are a careful math tutor. Solve the problem in one or two short sentences, "
    "then write the final line as 'Answer: N' where N is a number."
)

_NAMES = ["Tom", "Anna", "Sam", "Mia", "Leo", "Emma", "Ben", "Lily", "Max", "Zoe", "Noah", "Ella"]
_ITEMS = ["apples", "pens", "stickers", "marbles", "books", "cookies", "cards", "oranges"]
_VEHICLES = ["car", "bus", "train", "truck"]
_WORDS = {"name": _NAMES, "name2": _NAMES, "item": _ITEMS, "item2": _ITEMS, "vehicle": _VEHICLES}


@dataclass(frozen=True)
class Template:
    """A problem text with `{field}` slots, its number of steps, a sampler of its
    numbers (`rng, hi -> {field: int}`) and the answer from those numbers."""

    text: str
    steps: int
    sample: Callable[[np.random.Generator, int], dict[str, int]]
    answer: Callable[[dict[str, int]], int]
    work: str
    """The worked solution, formatted with the numbers and `ans` (SFT targets, corpus)."""

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """The text as a regular expression: words match any word, numbers any integer;
        a slot used twice must hold the same text both times."""
        out, seen = [], set()
        for literal, name, _, _ in string.Formatter().parse(self.text):
            out.append(re.escape(literal))
            if name is None:
                continue
            if name in seen:
                out.append(f"(?P={name})")
            else:
                seen.add(name)
                out.append(f"(?P<{name}>[A-Za-z]+)" if name in _WORDS else f"(?P<{name}>\\d+)")
        return re.compile("".join(out))


def _ints(rng: np.random.Generator, lo: int, hi: int, n: int) -> list[int]:
    return [int(v) for v in rng.integers(lo, hi + 1, size=n)]


def _change(rng: np.random.Generator, hi: int) -> dict[str, int]:
    a, p = _ints(rng, 2, max(2, hi // 2), 2)
    return {"a": a, "p": p, "bill": next(b for b in (10, 20, 50, 100, 200, 500) if b >= a * p)}


def _change3(rng: np.random.Generator, hi: int) -> dict[str, int]:
    a, p, b, q = _ints(rng, 2, max(2, hi // 2), 4)
    cost = a * p + b * q
    return {"a": a, "p": p, "b": b, "q": q, "bill": next(x for x in (20, 50, 100, 200, 500) if x >= cost)}  # fmt: skip


def _share(rng: np.random.Generator, hi: int) -> dict[str, int]:
    k, each = _ints(rng, 2, max(2, hi // 2), 2)
    a = int(rng.integers(1, k * each))
    return {"a": a, "b": k * each - a, "k": k}


def _less(rng: np.random.Generator, hi: int) -> dict[str, int]:
    a, b = sorted(_ints(rng, 1, hi, 2), reverse=True)
    return {"a": a, "b": b}


def _product_less(rng: np.random.Generator, hi: int) -> dict[str, int]:
    a, b = _ints(rng, 2, hi, 2)
    return {"a": a, "b": b, "c": int(rng.integers(1, a * b))}


TEMPLATES: list[Template] = [
    Template(
        "{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?",
        1, lambda r, hi: dict(zip("ab", _ints(r, 1, hi, 2))), lambda v: v["a"] + v["b"],
        "{a} + {b} = {ans}.",
    ),
    Template(
        "{name} has {a} {item} and gives away {b} of them. How many {item} does {name} have left?",
        1, _less, lambda v: v["a"] - v["b"], "{a} - {b} = {ans}.",
    ),
    Template(
        "There are {a} bags with {b} {item} in each bag. How many {item} are there in all?",
        1, lambda r, hi: dict(zip("ab", _ints(r, 2, hi, 2))), lambda v: v["a"] * v["b"],
        "{a} x {b} = {ans}.",
    ),
    Template(
        "{name} buys {a} {item} at {p} dollars each and pays with a {bill} dollar bill. "
        "How many dollars of change does {name} get?",
        2, _change, lambda v: v["bill"] - v["a"] * v["p"], "{bill} - {a} x {p} = {ans}.",
    ),
    Template(
        "{name} is {a} years old. {name2} is {b} years older than {name}. "
        "How old will {name2} be in {c} years?",
        2, lambda r, hi: dict(zip("abc", _ints(r, 1, hi, 3))), lambda v: v["a"] + v["b"] + v["c"],
        "{a} + {b} + {c} = {ans}.",
    ),
    Template(
        "A {vehicle} travels at {s} km per hour for {h} hours and then {k} km more. "
        "How many km does the {vehicle} travel in all?",
        2, lambda r, hi: {"s": 10 * int(r.integers(2, 10)), "h": int(r.integers(2, 5)), "k": int(r.integers(1, hi + 1))},  # fmt: skip
        lambda v: v["s"] * v["h"] + v["k"], "{s} x {h} + {k} = {ans}.",
    ),
    Template(
        "{name} has {a} {item} and buys {b} more, then shares them equally among {k} friends. "
        "How many {item} does each friend get?",
        2, _share, lambda v: (v["a"] + v["b"]) // v["k"], "({a} + {b}) / {k} = {ans}.",
    ),
    Template(
        "There are {a} boxes with {b} {item} in each box, and {c} of the {item} are broken. "
        "How many {item} are not broken?",
        2, _product_less, lambda v: v["a"] * v["b"] - v["c"], "{a} x {b} - {c} = {ans}.",
    ),
    Template(
        "{name} saves {a} dollars a week for {b} weeks and then spends {c} dollars. "
        "How many dollars does {name} have left?",
        2, _product_less, lambda v: v["a"] * v["b"] - v["c"], "{a} x {b} - {c} = {ans}.",
    ),
    Template(
        "{name} buys {a} {item} at {p} dollars each and {b} {item2} at {q} dollars each, "
        "and pays with a {bill} dollar bill. How many dollars of change does {name} get?",
        3, _change3, lambda v: v["bill"] - v["a"] * v["p"] - v["b"] * v["q"],
        "{bill} - {a} x {p} - {b} x {q} = {ans}.",
    ),
    Template(
        "{name} reads {a} pages a day for {b} days and {c} pages on the last day. "
        "The book has {d} pages more than that. How many pages does the book have?",
        3, lambda r, hi: dict(zip("abcd", _ints(r, 2, hi, 4))),
        lambda v: v["a"] * v["b"] + v["c"] + v["d"], "{a} x {b} + {c} + {d} = {ans}.",
    ),
]  # fmt: skip


@dataclass
class WordProblemTask:
    """Template word problems with a numeric answer; reward 1.0 when the completion's
    final number is the answer, else 0.0."""

    min_steps: int = 1
    """Fewest arithmetic steps of a problem's template (1..3)."""
    max_steps: int = 2
    """Most arithmetic steps of a problem's template (1..3)."""
    max_value: int = 12
    """Largest operand (counts, prices, ages) in a problem."""
    system: str = SYSTEM
    """System message sent with each problem to a chat model (empty = none)."""
    max_new_tokens: int = 96
    """Completion budget in tokens: room for a short working and 'Answer: N'."""
    test_fraction: float = 0.2
    """Share of problems held out (by problem-text hash)."""
    name: str = "word_problems"

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps <= 3:
            raise RLFoundryError(
                f"word_problems needs 1 <= min_steps <= max_steps <= 3, got "
                f"min_steps={self.min_steps}, max_steps={self.max_steps}."
            )
        if not 2 <= self.max_value <= 1000:
            raise RLFoundryError(f"word_problems max_value must be 2..1000, got {self.max_value}.")
        self._templates = [t for t in TEMPLATES if self.min_steps <= t.steps <= self.max_steps]

    def _problem(self, rng: np.random.Generator) -> str:
        t = self._templates[int(rng.integers(len(self._templates)))]
        values: dict[str, Any] = t.sample(rng, self.max_value)
        for slot, words in _WORDS.items():
            values[slot] = words[int(rng.integers(len(words)))]
        while values["name2"] == values["name"]:
            values["name2"] = _NAMES[int(rng.integers(len(_NAMES)))]
        while values["item2"] == values["item"]:
            values["item2"] = _ITEMS[int(rng.integers(len(_ITEMS)))]
        return t.text.format(**values)

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """`n` (default 10,000) distinct problems of `split`, drawn in an order set by `seed`."""
        check_split(split)
        want_test = split == "test"
        rng = np.random.default_rng(seed)
        n = 10_000 if n is None else n
        out: list[str] = []
        seen: set[str] = set()
        for _ in range(200 * n + 1000):  # a bound, in case the space is smaller than n
            if len(out) >= n:
                break
            p = self._problem(rng)
            if p not in seen and held_out(p, self.test_fraction) == want_test:
                seen.add(p)
                out.append(p)
        return out

    def messages(self, prompt: str) -> list[dict[str, str]]:
        """The conversation a chat model is given: the system message, then the problem."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": prompt}]

    def _match(self, prompt: str) -> tuple[Template, dict[str, Any]]:
        for t in TEMPLATES:
            m = t.pattern.search(prompt)
            if m is not None:
                values = {k: int(v) if v.isdigit() else v for k, v in m.groupdict().items()}
                return t, values
        raise RLFoundryError(
            f"No word-problem template matches the prompt {prompt[-120:]!r}; score "
            "word_problems completions against prompts from its own generator."
        )

    def answer(self, prompt: str) -> int:
        """The answer of a problem, from its text (plain or rendered in a chat template)."""
        t, values = self._match(prompt)
        return t.answer(values)

    def is_correct(self, prompt: str, completion: str) -> bool:
        got = final_answer(completion)
        return got is not None and abs(got - self.answer(prompt)) < 1e-6

    def reward(self, prompt: str, completion: str) -> float:
        return float(self.is_correct(prompt, completion))

    def reference(self, prompt: str) -> str:
        """A short worked solution ending in 'Answer: N'."""
        t, values = self._match(prompt)
        ans = t.answer(values)
        return f"{t.work.format(**values, ans=ans)}\nAnswer: {ans}"

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        return [(p, self.reference(p)) for p in self.prompts(split, n, seed)]

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        return [f"{p} {c}" for p, c in self.sft_examples(split, n, seed)]
