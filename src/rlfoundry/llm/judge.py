"""The LLM judge on an OpenAI-compatible endpoint: what it is asked, how its reply is read.

    judge = JudgeEndpoint("http://localhost:8000/v1", min_score=0, max_score=9)
    judge.score(["2+2="], ["4"])        # -> [1.0]; judge.metrics() -> {"judge/invalid": 0.0, ...}

The prompt asks for one `Score: N` line (`http_judge_template`); the score is read from
that format only (`parse_score`) and must lie in [min_score, max_score]. Every other
reply is invalid: counted, logged as `judge/invalid` and printed (the first few), never
turned into a number by guessing. Requests go through `rlfoundry.llm.chat.ChatClient`
(timeout, retries with backoff and jitter on timeouts and 5xx), the client the trading
app's reviewer uses too. One request before training (`preflight`) finds a dead endpoint
or a model that ignores the format while the stage is still being checked.
"""

from __future__ import annotations

import re
import string
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.chat import ChatClient


def _short(text: str, n: int = 200) -> str:
    text = repr(text)
    return text if len(text) <= n else text[: n - 4] + "...'"


def check_template(template: str) -> tuple[str, ...]:
    """The dataset columns a judge template names besides `{prompt}` and `{completion}`;
    raises (one sentence) when it cannot be filled or lacks `{completion}`."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        columns = tuple(dict.fromkeys(n for n in names if n not in ("prompt", "completion")))
        if any(not n.isidentifier() for n in columns):
            raise ValueError(f"'{{{next(n for n in columns if not n.isidentifier())}}}'")
        template.format(prompt="p", completion="c", **dict.fromkeys(columns, "x"))
    except (KeyError, IndexError, ValueError) as err:
        raise RLFoundryError(
            f"Judge template cannot be filled ({type(err).__name__}: {err}); use the "
            "placeholders {prompt}, {completion} and dataset column names, and double any "
            "other braces."
        ) from None
    if "completion" not in names:
        raise RLFoundryError(
            f"Judge template {template[:80]!r} has no {{completion}}; write the placeholders "
            "{prompt} and {completion} (and any dataset column names) into it."
        )
    return columns


def http_judge_template(min_score: float, max_score: float) -> str:
    """The default prompt of an HTTP judge: asks for one `Score: N` line in the range."""
    lo, hi = f"{min_score:g}", f"{max_score:g}"
    return (
        f"Rate how well the answer responds to the prompt, from {lo} (useless) to {hi} "
        "(perfect).\nPrompt: {prompt}\nAnswer: {completion}\n"
        f"Reply with one line of the form `Score: N`, N a number from {lo} to {hi}."
    )


#: The one reply format an HTTP judge's score is read from: `Score: N` (any case).
SCORE = re.compile(r"\bscore\s*[:=]\s*\**\s*([-+]?\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_score(text: str, min_score: float, max_score: float) -> float | None:
    """N of the first `Score: N` in `text` if it lies in [min_score, max_score], else None.

    Strict on purpose: "On a scale of 0 to 9, I give it 7" holds no `Score:` and "Score: 42"
    is out of range; both are invalid replies, never a number guessed from the text.
    """
    m = SCORE.search(text)
    if m is None:
        return None
    value = float(m.group(1))
    return value if min_score <= value <= max_score else None


class JudgeEndpoint:
    """An OpenAI-compatible chat endpoint as judge (vLLM, llama.cpp, Ollama, OpenAI);
    `rewards.HTTPJudge` is this as a reward source (`judge:http://HOST/v1`).

    Each pair is sent as one user message (the template filled in) with temperature 0,
    through `ChatClient` (timeout `timeout`, `retries` retries with backoff on timeouts
    and 5xx). The reward is `(N - min_score) / (max_score - min_score)` in [0, 1] for the
    reply's `Score: N` (`parse_score`). A reply without one, or with N out of range, is
    invalid: it scores 0 (the bottom of the range), is counted in `metrics()`
    (`judge/invalid`, logged by the RL stages with the rewards), and the first few are
    printed with the reply. `preflight` sends one request when the judge is built (in the
    stage's `check`, before the run directory is written), so a dead endpoint or a model
    that does not answer in the format stops the run before it starts.
    """

    #: Invalid replies printed in full; later ones are only counted.
    SHOWN = 3

    def __init__(
        self,
        url: str,
        model: str = "default",
        template: str | None = None,
        max_score: float = 9.0,
        timeout: float = 60.0,
        max_tokens: int = 16,
        workers: int = 8,
        min_score: float = 0.0,
        retries: int = 3,
        preflight: bool = True,
    ) -> None:
        if not min_score < max_score:
            raise RLFoundryError(
                f"judge_min_score ({min_score:g}) must be below judge_max_score "
                f"({max_score:g}); fix the range (e.g. 0 and 9)."
            )
        self.client = ChatClient(
            url, model, timeout, max_tokens, label="Judge endpoint", retries=retries
        )
        self.url, self.model = self.client.url, model
        self.min_score, self.max_score = float(min_score), float(max_score)
        self.template = template or http_judge_template(min_score, max_score)
        self.needs = check_template(self.template)
        self.workers = workers
        self.name = f"judge:{self.url}"
        self.invalid = 0  # over the judge's life
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        if preflight:
            self.preflight()

    def preflight(self) -> None:
        """One request with a sample pair: the endpoint answers, in the `Score: N` format."""
        sample = dict.fromkeys(self.needs, "4")  # a dataset column such as {answer}
        text = self.client.ask(
            self.template.format(prompt="What is 2+2?", completion="4", **sample)
        )
        if parse_score(text, self.min_score, self.max_score) is None:
            raise RLFoundryError(
                f"Judge endpoint {self.url} replied {_short(text)} to a test request, which "
                f"holds no 'Score: N' with N from {self.min_score:g} to {self.max_score:g}; "
                "use a judge model that follows the prompt, or a judge_template that asks for "
                "that format (and judge_min_score/judge_max_score for its range)."
            )

    def _ask(self, prompt: str, completion: str, fields: dict[str, Any] | None = None) -> float:
        text = self.client.ask(
            self.template.format(prompt=prompt, completion=completion, **(fields or {}))
        )
        value = parse_score(text, self.min_score, self.max_score)
        if value is None:
            with self._lock:
                self.invalid += 1
                n = self.invalid
            if n <= self.SHOWN:
                more = "" if n < self.SHOWN else " (further ones are only counted)"
                print(
                    f"judge: reply {_short(text, 120)} holds no 'Score: N' from "
                    f"{self.min_score:g} to {self.max_score:g}; scored as the minimum and "
                    f"counted in judge/invalid{more}.",
                    file=sys.stderr,
                )
            return 0.0
        return (value - self.min_score) / (self.max_score - self.min_score)

    def score(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        """Rewards of the pairs; `columns` (dataset columns, one value per pair) fill the
        template's other placeholders."""
        invalid, retried = self.invalid, self.client.retried
        fields = [{k: v[i] for k, v in columns.items() if k in self.needs} for i in range(len(prompts))]
        if len(prompts) == 1 or self.workers <= 1:
            out = [self._ask(p, c, f) for p, c, f in zip(prompts, completions, fields)]
        else:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                out = list(pool.map(self._ask, prompts, completions, fields))
        self._last = {
            "judge/invalid": float(self.invalid - invalid),
            "judge/retries": float(self.client.retried - retried),
        }
        return out

    def metrics(self) -> dict[str, float]:
        """Invalid replies and retried requests in the last batch."""
        return dict(self._last)
