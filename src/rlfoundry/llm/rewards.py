"""Reward sources for language-model RL, composable with weights.

A reward source scores a batch of (prompt, completion) strings, and may read the other
columns of the prompts' dataset by name (TRL's convention; `reward_base`):

    source(prompts: list[str], completions: list[str], **columns) -> list[float]   # [B]

Sources, and the config string (`parse_reward`) that builds each:

    "task"                      the built-in task's reward (arithmetic: exact match, ...)
    "numeric_match"             a built-in verifier (`verifiers.py`): the last number of
    "exact_match"               the completion against the `answer` column, or the
                                whole stripped completion
    "pkg.module:function"       a Python function `(prompt, completion[, COLUMN...]) ->
    "path/to/file.py:function"  float`, or a batched one `(prompts, completions[, COLUMN...])
                                -> list[float]` (first two parameters named `prompts,
                                completions`, or decorated `@batched`); its other
                                parameters receive the dataset columns of those names,
                                `**kwargs` all of them; `@verifier` marks 1/0 correctness
    "rm:DIR"                    a reward model trained by `rlfoundry llm reward-model`
    "judge:DIR"                 a local causal LM judging with a prompt template
    "judge:http://HOST/v1"      any OpenAI-compatible `/v1/chat/completions` endpoint:
                                checked by one request before training, retried on
                                timeouts and 5xx, the reply read as `Score: N` within
                                [judge_min_score, judge_max_score] (`judge.py`;
                                templates may name dataset columns too)
    "0.5*SPEC"                  a weight; several specs are summed (`Composite`)

Every score passes through `reward_base.checked`: a source that raises, or returns
NaN/inf or something that is not a number, stops training with one RLFoundryError naming
the source and quoting the prompt and completion that caused it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.judges import JUDGE_TEMPLATE, HTTPJudge, LocalJudge, RewardModelReward
from rlfoundry.llm.reward_base import (
    RewardSource,
    batched,
    call_with_columns,
    checked,
    needed_columns,
    row,
    takes_batches,
    verifier,
)
from rlfoundry.llm.tasks import get_task
from rlfoundry.llm.verifiers import BUILTIN
from rlfoundry.runtime.plugins import import_callable

__all__ = [
    "JUDGE_TEMPLATE",
    "Composite",
    "FunctionReward",
    "HTTPJudge",
    "LocalJudge",
    "RewardModelReward",
    "RewardSource",
    "TaskReward",
    "batched",
    "build_reward",
    "check_reward_columns",
    "checked",
    "load_function",
    "parse_reward",
    "verifier",
]


# ---------------------------------------------------------------------- functions
class FunctionReward(RewardSource):
    """A Python function named `module:function` (or `file.py:function`), or a built-in
    verifier's name; it receives the dataset columns it names (`reward_base`)."""

    def __init__(self, spec: str | Callable, name: str | None = None) -> None:
        fn = load_function(spec) if isinstance(spec, str) else spec
        self.fn = fn
        self.name = name or (spec if isinstance(spec, str) else getattr(fn, "__name__", "fn"))
        self.batched = takes_batches(fn)
        self.needs = needed_columns(fn)
        self.verifier = bool(getattr(fn, "verifier", False))

    def score(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        cols = call_with_columns(self.fn, columns)
        if self.batched:
            return self.fn(prompts, completions, **cols)
        return [self.fn(p, c, **row(cols, i)) for i, (p, c) in enumerate(zip(prompts, completions))]

    def hits(self, prompts: list[str], completions: list[str], scores: list[float]) -> Any:
        return [s >= 1.0 for s in scores] if self.verifier else None


def load_function(spec: str) -> Callable:
    """Import `module:function` or `path/to/file.py:function`, with a clear error if absent."""
    if ":" not in spec:
        raise RLFoundryError(
            f"Reward '{spec}' is neither a built-in ({', '.join(['task', *BUILTIN])}) nor "
            "written module:function (e.g. mypkg.rewards:length_penalty or ./my_rewards.py:score)."
        )
    return import_callable(spec, "Reward")


class TaskReward(RewardSource):
    """The reward of a built-in task (`rlfoundry.llm.tasks`); its `is_correct` makes it
    a verifier."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.name = f"task:{getattr(task, 'name', 'task')}"
        if hasattr(task, "check"):  # load what scoring needs (a reward model) before training
            task.check()

    def score(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        if hasattr(self.task, "rewards"):  # a task that scores a batch at once (code: one sandbox run)
            return self.task.rewards(prompts, completions)
        fn = self.task.reward
        if takes_batches(fn):
            return fn(prompts, completions)
        return [fn(p, c) for p, c in zip(prompts, completions)]

    def hits(self, prompts: list[str], completions: list[str], scores: list[float]) -> Any:
        return [bool(self.task.is_correct(p, c)) for p, c in zip(prompts, completions)]


# ---------------------------------------------------------------------- composition
class Composite(RewardSource):
    """`sum_i w_i * r_i` over weighted sources; `last` keeps each source's scores."""

    def __init__(self, parts: Sequence[tuple[float, RewardSource]]) -> None:
        if not parts:
            raise RLFoundryError("No reward source given; set reward to e.g. 'task'.")
        self.parts = list(parts)
        self.name = " + ".join(f"{w:g}*{s.name}" if w != 1 else s.name for w, s in self.parts)
        self.last: dict[str, list[float]] = {}

    def score(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        total = [0.0] * len(prompts)
        self.last = {}
        for w, source in self.parts:
            vals = checked(source, prompts, completions, columns)
            self.last[source.name] = vals
            total = [t + w * v for t, v in zip(total, vals)]
        return total

    def means(self) -> dict[str, float]:
        """Mean score of each source on the last batch, for logging (`reward/NAME`), and
        each source's own `metrics()` (a judge's `judge/invalid`)."""
        out: dict[str, float] = {}
        if len(self.parts) >= 2:
            out = {f"reward/{k}": sum(v) / max(len(v), 1) for k, v in self.last.items()}
        for _, source in self.parts:
            out.update(source.metrics())
        return out

    def accuracy(self, prompts: list[str], completions: list[str]) -> dict[str, float]:
        """Share of the last batch each verifier source accepts: `{"accuracy": ...}` for
        one verifier, `{"accuracy/NAME": ...}` each for several, `{}` for none."""
        out = {}
        for _, source in self.parts:
            hits = source.hits(prompts, completions, self.last.get(source.name, []))
            if hits is not None:
                out[source.name] = sum(hits) / max(len(hits), 1)
        if len(out) == 1:
            return {"accuracy": next(iter(out.values()))}
        return {f"accuracy/{k}": v for k, v in out.items()}

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys(c for _, s in self.parts for c in s.needs))


_WEIGHT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*(.+)$")


def parse_reward(
    specs: str | Sequence[str],
    task: Any = None,
    judge_template: str | None = None,
    judge_model: str = "default",
    **judge: Any,
) -> Composite:
    """Build a `Composite` from config strings (see the module docstring for the forms).

    Everything that can fail (imports, missing directories, bad templates) fails here,
    before any training starts.
    """
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    parts: list[tuple[float, RewardSource]] = []
    for raw in specs:
        m = _WEIGHT.match(raw)
        weight, spec = (float(m.group(1)), m.group(2).strip()) if m else (1.0, raw.strip())
        parts.append((weight, _one_source(spec, task, judge_template, judge_model, judge)))
    return Composite(parts)


def build_reward(cfg: Any) -> Composite:
    """The reward of an RL stage's config: `cfg.reward` over `cfg.task`, with its judge
    settings (`judge_template`, `judge_model`, `judge_timeout`, `judge_retries`,
    `judge_min_score`, `judge_max_score`). Fails here, before training, when a source
    cannot be built."""
    judge = {
        key: getattr(cfg, f"judge_{key}")
        for key in ("timeout", "retries", "min_score", "max_score")
        if hasattr(cfg, f"judge_{key}")
    }
    return parse_reward(
        cfg.reward,
        task=get_task(cfg.task),
        judge_template=cfg.judge_template or None,
        judge_model=cfg.judge_model,
        **judge,
    )


def _one_source(
    spec: str,
    task: Any,
    judge_template: str | None,
    judge_model: str,
    judge: dict[str, Any] | None = None,
) -> RewardSource:
    if spec == "task":
        if task is None:
            raise RLFoundryError("Reward 'task' needs a built-in task; set task or another reward.")
        return TaskReward(task)
    if spec.startswith("task:"):
        return TaskReward(get_task(spec[5:]))
    if spec.startswith("rm:"):
        return RewardModelReward(spec[3:])
    if spec.startswith("judge:"):
        target = spec[6:]
        if target.startswith(("http://", "https://")):
            return HTTPJudge(target, model=judge_model, template=judge_template, **(judge or {}))
        return LocalJudge(target, template=judge_template)
    if spec in BUILTIN:
        return FunctionReward(BUILTIN[spec], name=spec)
    return FunctionReward(spec)


def check_reward_columns(reward: Composite, columns: Sequence[str], source: str) -> None:
    """Raise, before training, when a reward source needs a dataset column that the
    prompts (from `source`) do not have."""
    for _, part in reward.parts:
        missing = [c for c in part.needs if c not in columns]
        if missing:
            have = ", ".join(columns) if columns else "none besides prompt"
            raise RLFoundryError(
                f"Reward '{part.name}' needs the dataset column(s) {', '.join(missing)}, and "
                f"the prompts of {source} have {have}; give prompts with that column "
                "(e.g. a CSV with prompt,answer) or choose another reward."
            )
