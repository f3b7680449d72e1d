"""Code generation: complete a small Python function; the reward is the share of its unit
tests that pass, run in the sandbox (`sandbox.run_python`).

    task = get_task("code")
    p = task.prompts("test", n=1)[0]
    # def add_17(x):
    #     '''Return x plus 17.'''      (in triple double quotes)
    #     return
    task.reward(p, " x + 17")        # 1.0: all three tests pass
    task.reward(p, " x")             # 0.0
    task.tests(p)                    # ['assert add_17(0) == 17', ...]

Each prompt is a function header and docstring from one of a few templates (plus,
minus, times, remainder, greater than, equals, squared plus) with a number k and an
argument name; the policy writes the body after `return`. The program run is the
prompt, the completion and three asserts on fixed inputs (0, k and 2k + 1) whose
expected values come from the template's reference solution. The inputs are chosen so
that returning the argument, a constant or the reference of another template fails
some test. Reward = passed / 3; held-out accuracy counts completions passing all three
(pass@1 of greedy decoding, as in HumanEval, Chen et al. 2021).

A batch of completions runs in one sandboxed interpreter (one process start per batch,
not per completion); each program gets its own namespace, its own stdout and a wall
limit of `time_limit` seconds (SIGALRM). When the batch process itself dies (memory,
CPU), each program of the batch is rerun alone, so one runaway completion cannot zero
the others. The harness marks its result line with a random token the programs cannot
see in advance; like the sandbox, this guards against accidents and crude reward
hacks, not against a determined attacker.

The data is generated here (no download) and is under rlfoundry's licence
(Apache-2.0). Split by a hash of the prompt (`splits.held_out`).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.sandbox import run_python
from rlfoundry.llm.splits import check_split, held_out

# name prefix, docstring, reference body, reference function of (x, k)
_TEMPLATES: list[tuple[str, str, str, Callable[[int, int], object]]] = [
    ("add", "Return {x} plus {k}.", "{x} + {k}", lambda x, k: x + k),
    ("sub", "Return {x} minus {k}.", "{x} - {k}", lambda x, k: x - k),
    ("times", "Return {x} times {k}.", "{x} * {k}", lambda x, k: x * k),
    ("mod", "Return the remainder of {x} divided by {k}.", "{x} % {k}", lambda x, k: x % k),
    ("above", "Return True if {x} is greater than {k}.", "{x} > {k}", lambda x, k: x > k),
    ("is", "Return True if {x} equals {k}.", "{x} == {k}", lambda x, k: x == k),
    ("square", "Return {x} squared plus {k}.", "{x} * {x} + {k}", lambda x, k: x * x + k),
]  # fmt: skip
_ARGS = ["x", "n", "a", "v"]
_HEADER = re.compile(r'def (\w+)_(\d+)\((\w+)\):\n    """(.*)"""\n    return$')

_HARNESS = r"""
import contextlib, io, json, signal
def _alarm(*_):
    raise TimeoutError("time limit")
signal.signal(signal.SIGALRM, _alarm)
_results = []
for _src, _tests in json.loads(PROGRAMS):
    _passed = 0
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            signal.setitimer(signal.ITIMER_REAL, LIMIT)
            _ns = {"__name__": "solution"}
            exec(compile(_src, "<solution>", "exec"), _ns)
            for _t in _tests:
                try:
                    exec(_t, _ns)
                    _passed += 1
                except Exception:
                    pass
    except BaseException:  # SyntaxError, the time limit, SystemExit, MemoryError, ...
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    _results.append(_passed / len(_tests))
print(MARK + json.dumps(_results))
"""


def _cut(completion: str) -> str:
    return completion.split("<eos>", 1)[0].rstrip()


def run_tests(programs: list[tuple[str, list[str]]], time_limit: float = 1.0) -> list[float]:
    """Share of asserts passed by each `(source, asserts)` program, run together in one
    sandbox process (module docstring); a batch whose process dies is rerun one by one."""
    if not programs:
        return []
    mark = f"@@{secrets.token_hex(8)}@@"
    code = (
        f"PROGRAMS = {json.dumps(json.dumps(programs))}\nLIMIT = {time_limit}\nMARK = {mark!r}\n"
        + _HARNESS
    )
    budget = time_limit * len(programs) + 5
    res = run_python(code, timeout=budget + 5, cpu_seconds=int(budget) + 1, max_output=10**7)
    tail = res.output.rsplit(mark, 1)
    if res.ok and len(tail) == 2:
        return [float(v) for v in json.loads(tail[1])]
    if len(programs) == 1:
        return [0.0]
    return [run_tests([p], time_limit)[0] for p in programs]


@dataclass
class CodeTask:
    """Small templated Python functions; reward = share of three unit tests passed in
    the sandbox, held-out accuracy = all three pass."""

    max_k: int = 99
    """Largest number k in a docstring (2..999)."""
    time_limit: float = 1.0
    """Wall seconds each completion's program may run before it fails."""
    test_fraction: float = 0.2
    """Share of prompts held out (by prompt hash)."""
    max_new_tokens: int = 12
    """Completion budget in tokens: an expression and the EOS."""
    name: str = "code"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 2 <= int(self.max_k) <= 999:
            raise RLFoundryError(f"code max_k must be 2..999, got {self.max_k}.")
        self.max_k = int(self.max_k)

    def all_prompts(self) -> list[str]:
        out = []
        for prefix, doc, _, _ in _TEMPLATES:
            for k in range(2, self.max_k + 1):
                for x in _ARGS:
                    text = doc.format(x=x, k=k)
                    out.append(f'def {prefix}_{k}({x}):\n    """{text}"""\n    return')
        return out

    def prompts(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        """Distinct prompts of `split` in a seeded order; `n` larger than the split repeats it."""
        check_split(split)
        pool = [
            p for p in self.all_prompts() if held_out(p, self.test_fraction) == (split == "test")
        ]
        order = np.random.default_rng(seed).permutation(len(pool))
        n = len(pool) if n is None else n
        return [pool[order[i % len(pool)]] for i in range(n)]

    def _parse(self, prompt: str) -> tuple[str, int, str, tuple]:
        m = _HEADER.search(prompt)
        if m is not None:
            for t in _TEMPLATES:
                if t[0] == m.group(1):
                    return f"{m.group(1)}_{m.group(2)}", int(m.group(2)), m.group(3), t
        raise RLFoundryError(
            f"No code template matches the prompt {prompt[-120:]!r}; score code completions "
            "against prompts from its own generator."
        )

    def reference(self, prompt: str) -> str:
        _, k, x, t = self._parse(prompt)
        return " " + t[2].format(x=x, k=k)

    def tests(self, prompt: str) -> list[str]:
        """The three asserts a completion of `prompt` must pass."""
        fn, k, _, t = self._parse(prompt)
        return [f"assert {fn}({i}) == {t[3](i, k)!r}" for i in (0, k, 2 * k + 1)]

    def rewards(self, prompts: list[str], completions: list[str]) -> list[float]:
        """Share of tests passed by each completion, one sandbox run for the whole batch
        (what the RL stages call: `rewards.TaskReward`); results are cached."""
        keys = [(p, _cut(c)) for p, c in zip(prompts, completions)]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        scores = run_tests([(p + c + "\n", self.tests(p)) for p, c in todo], self.time_limit)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache.update(zip(todo, scores))
        return [self._cache[k] for k in keys]

    def are_correct(self, prompts: list[str], completions: list[str]) -> list[bool]:
        """`is_correct` of a batch in one sandbox run (what evaluation calls)."""
        return [r == 1.0 for r in self.rewards(prompts, completions)]

    def reward(self, prompt: str, completion: str) -> float:
        return self.rewards([prompt], [completion])[0]

    def is_correct(self, prompt: str, completion: str) -> bool:
        return self.reward(prompt, completion) == 1.0

    def sft_examples(
        self, split: str = "train", n: int | None = None, seed: int = 0
    ) -> list[tuple[str, str]]:
        return [(p, self.reference(p)) for p in self.prompts(split, n, seed)]

    def corpus(self, split: str = "train", n: int | None = None, seed: int = 0) -> list[str]:
        return [p + c for p, c in self.sft_examples(split, n, seed)]
