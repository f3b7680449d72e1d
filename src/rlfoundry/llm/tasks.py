"""Language-model tasks: the `Task` protocol and three built-in tasks.

    task = get_task("arithmetic")                 # or "arithmetic:digits=3,ops=+-"
    task.prompts("train", n=1000, seed=0)         # ["17+25=", ...]
    task.reward("17+25=", "42")                   # 1.0
    task.is_correct("17+25=", "42")               # True
    task.pairs("train", n=500, seed=0)            # sentiment: [{prompt, chosen, rejected}, ...]

A task is data: prompts, reference answers, a reward, a corpus. Anything with the
attributes of `Task` is one (see its docstring); held-out evaluation, which needs the
sampler, lives in `evaluation.py`; user data files (JSONL) are read by `data.py`.
Completions are the text the model wrote before its EOS. Built-in tasks are generated
deterministically from a seed.

Splits are decided by a hash of the prompt, not by the seed: a held-out ("test")
prompt can never be drawn for training, whatever seeds or sizes are asked for.

Tasks:

- `arithmetic`: "17+25=" -> "42", exact match. `digits` (max operand digits) and
  `ops` (any of "+-*") set the difficulty.
- `sentiment`: review openings ("The pasta was") to be continued positively. Reward =
  VADER compound score of the completion (Hutto & Gilbert 2014; the lexicon ships in
  the vaderSentiment wheel, so it works offline). Preference pairs: two templated
  continuations, the one with the higher compound score is `chosen`.
- `format`: "17+25=" -> "<answer>42</answer>". The reward counts tags (0.125 per
  `<answer>` and per `</answer>`) plus 1 for a correct answer in the first pair:
  partial format credit of the kind popular GRPO recipes use. It is hackable on
  purpose: empty tags "<answer></answer>" earn 0.25 with no answer at all, and tags
  repeated until the length limit earn more than one correct, well-formed answer
  (8 pairs = 2.0 > 1.25). GRPO finds that (tests/llm/test_tool_format_learning.py:
  sampled reward up, greedy accuracy to 0 on 5 seeds of the tiny model), and a KL
  penalty towards the SFT model does not reliably stop it (beta 0.1 did not; beta 1.0
  did, and then nothing was learnt); `strict=True` closes it (exactly one pair,
  nothing else, digits inside).
- `code`: complete a small Python function; reward = share of its unit tests passed in
  the sandbox (`codegen.py`).
- `qa`: extractive question answering on templated passages; reward = SQuAD F1,
  accuracy = exact match (`qa.py`).
- `summarize`: lead-sentence summaries of templated documents; reward = ROUGE-L F1
  (`summarize.py`, with the rouge-score package).
- `dialogue`: reply to a user's turn; reward = a reward model trained on a feedback-app
  export (`dialogue.py`; an example export ships with rlfoundry).
- `word_problems`: templated arithmetic word problems (shopping, ages, speed, sharing,
  ...) of 1-3 steps for chat models, scored on the final number (`word_problems.py`).
- `tool-arithmetic-chat`: `tool-arithmetic` asked of a chat model, with a system message
  explaining the calculator call syntax; 'Answer: N' after the tool result.
  A task with a `messages(prompt)` method is conversational: stages render its prompts
  with the model's chat template (`chat_format.task_texts`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.answers import cut_at_eos as _cut_at_eos
from rlfoundry.llm.answers import final_answer as final_number
from rlfoundry.llm.codegen import CodeTask
from rlfoundry.llm.dialogue import DialogueTask
from rlfoundry.llm.qa import QATask
from rlfoundry.llm.sentiment import SentimentTask
from rlfoundry.llm.splits import SPLITS, held_out
from rlfoundry.llm.splits import check_split as _check_split
from rlfoundry.llm.summarize import SummarizeTask
from rlfoundry.llm.tools import CALL_END, CALL_OPEN, RESULT_END, final_answer
from rlfoundry.llm.word_problems import WordProblemTask


@runtime_checkable
class Task(Protocol):
    """What the stages read from a task (`get_task` returns one; `TASKS` names the built-ins).

    Who uses what: RL stages sample `prompts("train")`, score completions with `reward`
    (the 'task' reward source, named `task:NAME`) and cap them at `max_new_tokens`;
    evaluation counts `is_correct` on greedy completions of `prompts("test")`; `sft`
    trains on `sft_examples`, `pretrain` on `corpus`. Splits must be disjoint whatever
    the seed (the built-ins split by a hash of the prompt, `held_out`).
    """

    name: str
    """Short name, used in reward names and logs."""

    @property
    def max_new_tokens(self) -> int:
        """Completion budget in tokens (EOS included) of RL sampling and evaluation."""
        ...

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """`n` prompts of `split` ("train" or "test") in an order set by `seed`."""
        ...

    def reward(self, prompt: str, completion: str) -> float:
        """Scalar reward of a completion (the text before EOS)."""
        ...

    def is_correct(self, prompt: str, completion: str) -> bool:
        """Whether a completion solves the prompt: what held-out accuracy counts."""
        ...

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        """(prompt, target completion) pairs for supervised fine-tuning."""
        ...

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """Plain documents for pre-training (the language of the task)."""
        ...

    # Optional, for tasks whose scoring pays per call (code runs a sandbox process):
    # `rewards(prompts, completions) -> list[float]` and `are_correct(prompts,
    # completions) -> list[bool]`, the batch forms of `reward` and `is_correct`, which
    # the RL stages and evaluation then call instead; and `check()`, which the reward
    # calls when it is built, so that a missing resource (dialogue's reward model) fails
    # before training.


@runtime_checkable
class PreferenceTask(Task, Protocol):
    """A task with preference pairs, for `reward-model` and `dpo` without a data file."""

    def pairs(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[dict]:
        """`{prompt, chosen, rejected}` dicts (TRL's preference format)."""
        ...


# ---------------------------------------------------------------------- arithmetic

_EXPR = re.compile(r"^\s*(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*$")


@dataclass
class ArithmeticTask:
    """`a OP b=` -> the exact result; reward 1.0 for an exact match, else 0.0."""

    digits: int = 2
    """Maximum digits of each operand (operands are uniform in [0, 10**digits))."""
    ops: str = "+"
    """Operations to draw from, any of '+-*'."""
    test_fraction: float = 0.1
    """Share of all problems held out (by prompt hash)."""
    name: str = "arithmetic"

    def __post_init__(self) -> None:
        self.digits = int(self.digits)
        if not 1 <= self.digits <= 6:
            raise RLFoundryError(f"arithmetic digits must be 1..6, got {self.digits}.")
        if not self.ops or set(self.ops) - set("+-*"):
            raise RLFoundryError(f"arithmetic ops must be made of '+-*', got '{self.ops}'.")

    @property
    def max_new_tokens(self) -> int:
        width = 2 * self.digits if "*" in self.ops else self.digits + 1
        return width + 2  # a sign and the EOS

    @property
    def space(self) -> int:
        return (10**self.digits) ** 2 * len(self.ops)

    def _problem(self, i: int) -> str:
        n = 10**self.digits
        op = self.ops[i % len(self.ops)]
        i //= len(self.ops)
        return f"{i // n}{op}{i % n}="

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """`n` distinct prompts of `split` in a seeded order (all of them if fewer exist)."""
        _check_split(split)
        want_test = split == "test"
        rng = np.random.default_rng(seed)
        n = n if n is not None else 10_000
        out: list[str] = []
        if self.space <= 400_000:  # enumerate, shuffle, filter: exact and complete
            for i in rng.permutation(self.space):
                p = self._problem(int(i))
                if held_out(p, self.test_fraction) == want_test:
                    out.append(p)
                    if len(out) >= n:
                        break
            return out
        seen: set[str] = set()
        while len(out) < n:  # rejection sampling in a space too large to enumerate
            for i in rng.integers(0, self.space, size=4 * n):
                p = self._problem(int(i))
                if p not in seen and held_out(p, self.test_fraction) == want_test:
                    seen.add(p)
                    out.append(p)
                    if len(out) >= n:
                        break
        return out

    def reference(self, prompt: str) -> str:
        m = _EXPR.match(prompt)
        if m is None:
            raise RLFoundryError(
                f"Arithmetic prompt {prompt!r} is not of the form 'A+B=' (ops + - *); "
                "fix the prompt or use another task."
            )
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        return str(a + b if op == "+" else a - b if op == "-" else a * b)

    def is_correct(self, prompt: str, completion: str) -> bool:
        return _cut_at_eos(completion) == self.reference(prompt)

    def reward(self, prompt: str, completion: str) -> float:
        return float(self.is_correct(prompt, completion))

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        return [(p, self.reference(p)) for p in self.prompts(split, n, seed)]

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """Worked equations "17+25=42", one per document."""
        return [p + c for p, c in self.sft_examples(split, n, seed)]


@dataclass
class ToolArithmeticTask(ArithmeticTask):
    """Products too long to do in one's head (`a*b=`, 3 digits each by default), meant to
    be solved with the calculator tool (`tool=calculator`): the episode
    `<<417*382=159294>> 159294` is right when the text after the last tool result is
    the product (a direct answer counts too)."""

    digits: int = 3
    """Maximum digits of each operand."""
    ops: str = "*"
    """Operations to draw from, any of '+-*'."""
    name: str = "tool-arithmetic"

    @property
    def max_new_tokens(self) -> int:
        return 2 * self.digits + 6  # per turn: a call "<<A*B=" or the answer and EOS

    def is_correct(self, prompt: str, completion: str) -> bool:
        return final_answer(_cut_at_eos(completion)) == self.reference(prompt)

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        """Worked tool calls: `(417*382=, <<417*382=159294>> 159294)`."""
        out = []
        for p in self.prompts(split, n, seed):
            ref = self.reference(p)
            out.append((p, f"{CALL_OPEN}{p[:-1]}{CALL_END}{ref}{RESULT_END} {ref}"))
        return out


TOOL_SYSTEM = (
    "You have a calculator. To compute, write <<EXPRESSION= and the calculator appends "
    "the result and >>; then write 'Answer: N'."
)
#: Worked turns shown before the question: one with a call, then one answered directly
#: (the calculator is optional). In this order SmolLM2-135M-Instruct calls it in ~12% of
#: episodes sampled at temperature 0.7 and never greedily: room for RL to raise it. In
#: the other order it calls it in ~94% of greedy episodes and solves as many.
TOOL_EXAMPLES = (
    ("What is 23*41?", "<<23*41=943>>\nAnswer: 943"),
    ("What is 3*4?", "Answer: 12"),
)
_CHAT_QUESTION = re.compile(r"What is (-?\d+)\s*([+\-*])\s*(-?\d+)\s*\?")


@dataclass
class ChatToolArithmeticTask(ToolArithmeticTask):
    """`tool-arithmetic` for chat models: the prompt `417*382=` is asked as the user turn
    "What is 417*382?" after a system message that explains the calculator syntax and
    two worked turns (`TOOL_EXAMPLES`: 23*41 with a call, 3*4 answered directly); the
    stages render it with the model's chat template.
    The product is recovered from the rendered text (the last "What is A*B?" in it, so
    the system message's example never counts), and an episode is right when the text
    after the last tool result (all of it, without a call) gives the product as its
    final number ('Answer: N', else the last number: `answers.final_answer`)."""

    system: str = TOOL_SYSTEM
    """System message sent with each problem (empty = none)."""
    examples: bool = True
    """Show the worked turns `TOOL_EXAMPLES` before the question."""
    turn_tokens: int = 24
    """Tokens per policy turn: room for a call `<<A*B=` or 'Answer: N' and EOS."""
    name: str = "tool-arithmetic-chat"

    @property
    def max_new_tokens(self) -> int:
        return self.turn_tokens

    def messages(self, prompt: str) -> list[dict[str, str]]:
        """The conversation a chat model is given: the system message, the worked turns,
        then the question."""
        m = _EXPR.match(prompt)
        if m is None:
            raise RLFoundryError(
                f"tool-arithmetic-chat prompt {prompt!r} is not of the form 'A*B='; pass "
                "the task's own prompts (task.prompts) to messages()."
            )
        head = [{"role": "system", "content": self.system}] if self.system else []
        for q, a in TOOL_EXAMPLES if self.examples else ():
            head += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        question = f"What is {m.group(1)}{m.group(2)}{m.group(3)}?"
        return [*head, {"role": "user", "content": question}]

    def reference(self, prompt: str) -> str:
        """The exact result, from a raw prompt `A*B=` or a rendered conversation."""
        if _EXPR.match(prompt):
            return super().reference(prompt)
        found = _CHAT_QUESTION.findall(prompt)
        if not found:
            raise RLFoundryError(
                f"No question 'What is A*B?' in the prompt {prompt[-120:]!r}; score "
                "tool-arithmetic-chat episodes against prompts rendered from its messages()."
            )
        a, op, b = found[-1]
        return super().reference(f"{a}{op}{b}=")

    def is_correct(self, prompt: str, completion: str) -> bool:
        got = final_number(final_answer(completion))
        return got is not None and got == int(self.reference(prompt))

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        """Worked calls in the system message's format: `<<417*382=159294>>\nAnswer: 159294`."""
        out = []
        for p in self.prompts(split, n, seed):
            ref = self.reference(p)
            out.append((p, f"{CALL_OPEN}{p[:-1]}{CALL_END}{ref}{RESULT_END}\nAnswer: {ref}"))
        return out


# ---------------------------------------------------------------------- format

_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)
_STRICT = re.compile(r"^<answer>(-?\d+)</answer>$")


@dataclass
class FormatTask:
    """`17+25=` -> `<answer>42</answer>`; a tag-counting format reward (hackable, see module)."""

    digits: int = 2
    """Operand digits of the arithmetic inside the tags."""
    strict: bool = False
    """True: reward 1 only for exactly `<answer>N</answer>` with N correct (no hack)."""
    check_answer: bool = True
    """Add 1 for a correct answer inside the first pair of tags (non-strict mode)."""
    tag_credit: float = 0.125
    """Reward per `<answer>` and per `</answer>` found (non-strict mode)."""
    test_fraction: float = 0.1
    max_new_tokens: int = 24
    name: str = "format"

    def __post_init__(self) -> None:
        self._arith = ArithmeticTask(digits=self.digits, test_fraction=self.test_fraction)

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        return self._arith.prompts(split, n, seed)

    def reference(self, prompt: str) -> str:
        return f"<answer>{self._arith.reference(prompt)}</answer>"

    def is_correct(self, prompt: str, completion: str) -> bool:
        m = _STRICT.match(_cut_at_eos(completion))
        return m is not None and m.group(1) == self._arith.reference(prompt)

    def reward(self, prompt: str, completion: str) -> float:
        text = _cut_at_eos(completion)
        if self.strict:
            return float(self.is_correct(prompt, text))
        r = self.tag_credit * (text.count("<answer>") + text.count("</answer>"))
        m = _TAG.search(text)
        if self.check_answer and m and m.group(1).strip() == self._arith.reference(prompt):
            r += 1.0
        return r

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        return [(p, self.reference(p)) for p in self.prompts(split, n, seed)]

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        return [p + c for p, c in self.sft_examples(split, n, seed)]


# ---------------------------------------------------------------------- registry

#: Built-in tasks by name: a class (or any factory) whose keyword arguments are the
#: task's settings, "arithmetic:digits=3" -> ArithmeticTask(digits=3).
TASKS: dict[str, Callable[..., Task]] = {
    "arithmetic": ArithmeticTask,
    "sentiment": SentimentTask,
    "format": FormatTask,
    "tool-arithmetic": ToolArithmeticTask,
    "tool-arithmetic-chat": ChatToolArithmeticTask,
    "word_problems": WordProblemTask,
    "code": CodeTask,
    "qa": QATask,
    "summarize": SummarizeTask,
    "dialogue": DialogueTask,
}


def get_task(spec: str | Task) -> Task:
    """A built-in task by name, with optional settings: "arithmetic:digits=3,ops=+-".

    A task object (anything satisfying `Task`) is returned unchanged.
    """
    if not isinstance(spec, str):
        return spec
    name, _, args = spec.partition(":")
    if name not in TASKS:
        raise RLFoundryError(f"Unknown task '{name}'; built-in tasks: {', '.join(TASKS)}.")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise RLFoundryError(f"Task setting '{item}' in '{spec}' is not key=value.")
        kwargs[key] = _parse_value(value)
    try:
        return TASKS[name](**kwargs)
    except TypeError as err:
        raise RLFoundryError(f"Bad setting for task '{name}' in '{spec}': {err}.") from None


def _parse_value(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for typ in (int, float):
        try:
            return typ(value)
        except ValueError:
            pass
    return value


def builtin_corpus() -> list[str]:
    """Text of every built-in task (both splits): what the built-in tokenizer is trained on."""
    texts: list[str] = []
    for d in (1, 2, 3):
        a = ArithmeticTask(digits=d, ops="+-*")
        for split in SPLITS:
            texts += a.corpus(split, 3000)
    s = SentimentTask()
    texts += s.all_prompts()
    rng = np.random.default_rng(0)
    for mood in ("positive", "negative", "neutral"):
        texts += [s.continuation(rng, mood) for _ in range(600)]
    texts += FormatTask().corpus("train", 500)
    return texts
