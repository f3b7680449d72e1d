"""Reward sources for language-model RL, composable with weights.

A reward source scores a batch of (prompt, completion) strings:

    source(prompts: list[str], completions: list[str]) -> list[float]   # [B]

Sources, and the config string (`parse_reward`) that builds each:

    "task"                      the built-in task's reward (arithmetic: exact match, ...)
    "pkg.module:function"       a Python function `(prompt, completion) -> float`, or a
    "path/to/file.py:function"  batched one `(prompts, completions) -> list[float]`
                                (first two parameters named `prompts, completions`,
                                or decorated with `@batched`)
    "rm:DIR"                    a reward model trained by `rlfoundry llm reward-model`
                                (`scoring.py`)
    "judge:DIR"                 a local causal LM judging with a prompt template
    "judge:http://HOST/v1"      any OpenAI-compatible `/v1/chat/completions` endpoint
    "0.5*SPEC"                  a weight; several specs are summed (`Composite`)

Every score passes through `checked`: a source that raises, or returns NaN/inf or
something that is not a number, stops training with one RLFoundryError naming the
source and quoting the prompt and completion that caused it. Nothing is written on
that path, so checkpoints already on disk (written atomically by `Run`) stay intact
and the run can be resumed once the reward is fixed.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.chat import ChatClient
from rlfoundry.llm.models import load_model, load_tokenizer
from rlfoundry.llm.scoring import load_reward_model, score_texts
from rlfoundry.llm.tasks import get_task

JUDGE_TEMPLATE = (
    "Rate how well the answer responds to the prompt, from 0 (useless) to 9 (perfect).\n"
    "Prompt: {prompt}\nAnswer: {completion}\nScore (0-9):"
)
"""Default judge prompt; `{prompt}` and `{completion}` are filled in."""


def _short(text: str, n: int = 200) -> str:
    text = repr(text)
    return text if len(text) <= n else text[: n - 4] + "...'"


def batched(fn: Callable) -> Callable:
    """Mark `fn(prompts, completions) -> list[float]` as scoring a whole batch at once."""
    fn.batched = True  # type: ignore[attr-defined]
    return fn


class RewardSource:
    """Base of every source: a name for messages and logs, and a batched `score`."""

    name = "reward"

    def score(self, prompts: list[str], completions: list[str]) -> list[Any]:
        raise NotImplementedError

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        return checked(self, prompts, completions)


def _fail(source: RewardSource, what: str, prompt: str, completion: str) -> RLFoundryError:
    return RLFoundryError(
        f"Reward '{source.name}' {what} for prompt {_short(prompt)} and completion "
        f"{_short(completion)}; fix the reward so it returns a finite number for every input."
    )


def _as_float(value: Any) -> float | None:
    """A plain float from an int/float/bool/NumPy scalar/0-d tensor, else None."""
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    if isinstance(value, np.ndarray):
        return float(value.item()) if value.size == 1 else None
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "__float__") and not isinstance(value, (str, bytes)):
        return float(value)
    return None


def checked(source: RewardSource, prompts: list[str], completions: list[str]) -> list[float]:
    """`source.score(...)` with every failure turned into one RLFoundryError (see module doc)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions.")
    try:
        out = source.score(prompts, completions)
    except RLFoundryError:
        raise
    except Exception as err:
        i = _find_raising(source, prompts, completions)
        raise _fail(
            source, f"raised {type(err).__name__}: {err}", prompts[i], completions[i]
        ) from err
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().reshape(-1).tolist()
    try:
        out = list(out)
    except TypeError:
        raise _fail(
            source, f"returned {type(out).__name__}, not a list", prompts[0], completions[0]
        ) from None
    if len(out) != len(prompts):
        raise RLFoundryError(
            f"Reward '{source.name}' returned {len(out)} scores for a batch of {len(prompts)} "
            "completions; return one number per completion."
        )
    vals = []
    for p, c, v in zip(prompts, completions, out):
        f = _as_float(v)
        if f is None:
            raise _fail(source, f"returned {v!r} ({type(v).__name__}), not a number", p, c)
        if not math.isfinite(f):
            raise _fail(source, f"returned {f}", p, c)
        vals.append(f)
    return vals


def _find_raising(source: RewardSource, prompts: list[str], completions: list[str]) -> int:
    """Index of the first pair that makes `source` raise on its own (0 if none does)."""
    if len(prompts) == 1:
        return 0
    for i, (p, c) in enumerate(zip(prompts, completions)):
        try:
            source.score([p], [c])
        except Exception:
            return i
    return 0


# ---------------------------------------------------------------------- functions
class FunctionReward(RewardSource):
    """A Python function named `module:function` (or `file.py:function`)."""

    def __init__(self, spec: str | Callable, name: str | None = None) -> None:
        fn = load_function(spec) if isinstance(spec, str) else spec
        self.fn = fn
        self.name = name or (spec if isinstance(spec, str) else getattr(fn, "__name__", "fn"))
        self.batched = bool(getattr(fn, "batched", False)) or _takes_batches(fn)

    def score(self, prompts: list[str], completions: list[str]) -> list[Any]:
        if self.batched:
            return self.fn(prompts, completions)
        return [self.fn(p, c) for p, c in zip(prompts, completions)]


def _takes_batches(fn: Callable) -> bool:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return params[:2] == ["prompts", "completions"]


def load_function(spec: str) -> Callable:
    """Import `module:function` or `path/to/file.py:function`, with a clear error if absent."""
    if ":" not in spec:
        raise RLFoundryError(
            f"Reward function '{spec}' must be written module:function "
            "(e.g. mypkg.rewards:length_penalty or ./my_rewards.py:score)."
        )
    module_name, fn_name = spec.rsplit(":", 1)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise RLFoundryError(f"Reward file '{path}' does not exist; check the path.")
            mod_id = f"_rlfoundry_reward_{abs(hash(str(path.resolve())))}"
            spec_ = importlib.util.spec_from_file_location(mod_id, path)
            module = importlib.util.module_from_spec(spec_)  # type: ignore[arg-type]
            sys.modules[mod_id] = module
            spec_.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(module_name)
    except RLFoundryError:
        raise
    except Exception as err:
        raise RLFoundryError(
            f"Cannot import reward module '{module_name}' ({type(err).__name__}: {err}); "
            "make it importable (installed, or on PYTHONPATH) or give a .py file path."
        ) from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise RLFoundryError(
            f"Reward module '{module_name}' has no function '{fn_name}'; check the name after ':'."
        )
    return fn


class TaskReward(RewardSource):
    """The reward of a built-in task (`rlfoundry.llm.tasks`)."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.name = f"task:{getattr(task, 'name', 'task')}"

    def score(self, prompts: list[str], completions: list[str]) -> list[Any]:
        fn = self.task.reward
        if getattr(fn, "batched", False) or _takes_batches(fn):
            return fn(prompts, completions)
        return [fn(p, c) for p, c in zip(prompts, completions)]


# ---------------------------------------------------------------------- models
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

    def score(self, prompts: list[str], completions: list[str]) -> list[Any]:
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
        _check_template(self.template)
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
    def score(self, prompts: list[str], completions: list[str]) -> list[Any]:
        texts = [self.template.format(prompt=p, completion=c) for p, c in zip(prompts, completions)]
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


def _check_template(template: str) -> None:
    try:
        template.format(prompt="p", completion="c")
    except (KeyError, IndexError, ValueError) as err:
        raise RLFoundryError(
            f"Judge template cannot be filled ({type(err).__name__}: {err}); use only the "
            "placeholders {prompt} and {completion} and double any other braces."
        ) from None


class HTTPJudge(RewardSource):
    """An OpenAI-compatible chat endpoint as judge (vLLM, llama.cpp, Ollama, OpenAI).

    Each pair is sent as one user message (the template filled in) with temperature 0;
    the first number in the reply, divided by `max_score`, is the reward. A reply with
    no number is an error, shown with the reply. `OPENAI_API_KEY` is sent if set.
    """

    def __init__(
        self,
        url: str,
        model: str = "default",
        template: str | None = None,
        max_score: float = 9.0,
        timeout: float = 60.0,
        max_tokens: int = 16,
        workers: int = 8,
    ) -> None:
        self.client = ChatClient(url, model, timeout, max_tokens, label="Judge endpoint")
        self.url, self.model, self.max_score = self.client.url, model, max_score
        self.template = template or JUDGE_TEMPLATE
        _check_template(self.template)
        self.workers = workers
        self.name = f"judge:{self.url}"

    def _ask(self, prompt: str, completion: str) -> float:
        text = self.client.ask(self.template.format(prompt=prompt, completion=completion))
        m = re.search(r"-?\d+(?:\.\d+)?", text)
        if m is None:
            raise _fail(self, f"replied {text!r}, which holds no score", prompt, completion)
        return float(m.group(0)) / self.max_score

    def score(self, prompts: list[str], completions: list[str]) -> list[Any]:
        if len(prompts) == 1 or self.workers <= 1:
            return [self._ask(p, c) for p, c in zip(prompts, completions)]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._ask, prompts, completions))


# ---------------------------------------------------------------------- composition
class Composite(RewardSource):
    """`sum_i w_i * r_i` over weighted sources; `last` keeps each source's scores."""

    def __init__(self, parts: Sequence[tuple[float, RewardSource]]) -> None:
        if not parts:
            raise RLFoundryError("No reward source given; set reward to e.g. 'task'.")
        self.parts = list(parts)
        self.name = " + ".join(f"{w:g}*{s.name}" if w != 1 else s.name for w, s in self.parts)
        self.last: dict[str, list[float]] = {}

    def score(self, prompts: list[str], completions: list[str]) -> list[Any]:
        total = [0.0] * len(prompts)
        self.last = {}
        for w, source in self.parts:
            vals = checked(source, prompts, completions)
            self.last[source.name] = vals
            total = [t + w * v for t, v in zip(total, vals)]
        return total

    def means(self) -> dict[str, float]:
        """Mean score of each source on the last batch, for logging (`reward/NAME`)."""
        if len(self.parts) < 2:
            return {}
        return {f"reward/{k}": sum(v) / max(len(v), 1) for k, v in self.last.items()}


_WEIGHT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*(.+)$")


def parse_reward(
    specs: str | Sequence[str],
    task: Any = None,
    judge_template: str | None = None,
    judge_model: str = "default",
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
        parts.append((weight, _one_source(spec, task, judge_template, judge_model)))
    return Composite(parts)


def build_reward(cfg: Any) -> Composite:
    """The reward of an RL stage's config: `cfg.reward` over `cfg.task`, with its judge
    settings (`judge_template`, `judge_model`). Fails here, before training, when a
    source cannot be built."""
    return parse_reward(
        cfg.reward,
        task=get_task(cfg.task),
        judge_template=cfg.judge_template or None,
        judge_model=cfg.judge_model,
    )


def _one_source(spec: str, task: Any, judge_template: str | None, judge_model: str) -> RewardSource:
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
            return HTTPJudge(target, model=judge_model, template=judge_template)
        return LocalJudge(target, template=judge_template)
    return FunctionReward(spec)
