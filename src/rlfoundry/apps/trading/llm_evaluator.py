"""An LLM that reviews the trading agent's orders (seed 000: "use LLM to evaluate the
input from environment and output of actions").

Before an order fills, :meth:`LLMEvaluator.review` shows a language model the market
state the agent saw (recent bars, indicators, position), optional news, and the
proposed action, and asks a closed question (``decision``):

- ``approve_veto`` (default): approve or veto the order;
- ``actions``: which of buy / hold / sell is best now (the order is vetoed when the
  model's choice differs from it; SELL/HOLD/BUY envs only);
- ``free_text``: the old open question, a JSON verdict ``{"score": -1..1, "risk": 0..1,
  "veto": bool, "reason": str}`` parsed from free text (small models rarely write one).

The closed questions always get an answer (:mod:`.llm_choice`): a local model scores
each option by its log-probability, a server is asked for JSON constrained to the
options. The verdict's ``score`` is ``p(approve) - p(veto)`` (or ``2 p(proposed) - 1``)
and its ``risk`` ``p(veto)`` (or ``1 - p(proposed)``). With ``calibrate=True`` the
log-probabilities are first corrected by those of a content-free prompt (the order
without the market, Zhao et al. 2021), since a small model prefers one word whatever
it is shown. The env uses it in one of two switchable ways:

- ``mode="filter"``: a veto (or ``risk >= veto_risk``) turns the order into HOLD;
- ``mode="shaping"``: ``coef * score - risk_coef * risk`` is added to the reward;
- ``mode="both"``.

Only orders that would trade are reviewed (HOLD cannot be vetoed into anything safer).

No look-ahead: the prompt holds bars up to the decision bar ``t`` and news dated
strictly before bar ``t+1``, the bar whose open fills the order. Responses are cached
on disk under the SHA-256 of (backend, prompt), so a backtest or a replayed training
run asks each question once and stays deterministic.

Backends: an OpenAI-compatible ``/v1/chat/completions`` endpoint (``endpoint=URL``,
through :mod:`rlfoundry.llm.chat`, standard-library HTTP, ``OPENAI_API_KEY`` sent if
set; the same retries with backoff on timeouts and 5xx as the LLM judge, ``retries``
and ``timeout`` keys), or a local transformers model directory (``model_dir=PATH``:
log-probability scoring, or greedy decoding for ``free_text``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from rlfoundry.apps.trading.llm_choice import (
    ACTIONS,
    APPROVE_VETO,
    LogProbModel,
    calibrate,
    load_local_model,
    parse_decision,
    response_format,
)
from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.chat import ChatClient


class MarketView(Protocol):
    """What the evaluator reads of a :class:`rlfoundry.apps.trading.env.TradingEnv` at its
    current bar (a protocol, so the env, which owns an evaluator, is not imported here)."""

    t: int
    data_name: str
    cash: float
    bars: pd.DataFrame

    def value(self, t: int | None = None) -> float: ...
    def exposure(self) -> float: ...
    def history(self, bars: int | None = None) -> pd.DataFrame: ...
    def features(self, bars: int = 1) -> pd.DataFrame: ...
    def target_exposure(self, action: int) -> float | None: ...
    def action_name(self, action: int) -> str: ...


SYSTEM_PROMPT = (
    "You are the risk officer of a trading desk. You review one proposed order from an "
    "automated trading agent, using only the information given. Reply with one JSON "
    'object and nothing else: {"score": <number from -1 (bad order) to 1 (good order)>, '
    '"risk": <number from 0 (safe) to 1 (reckless)>, "veto": <true to block the order>, '
    '"reason": "<one short sentence>"}.'
)

#: System prompt and closing question of each closed ``decision``, and its options.
DECISIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "approve_veto": (
        "You are the risk officer of a trading desk. You review one proposed order from "
        "an automated trading agent, using only the information given. Approve the order "
        "if it looks sensible; veto it if it looks harmful. Reply with one word: approve "
        "or veto.",
        "Approve or veto this order? Answer with one word: approve or veto.",
        APPROVE_VETO,
    ),
    "actions": (
        "You are a trader. Using only the information given, choose the best action now. "
        "Reply with one word: buy, hold or sell.",
        "Which action is best now? Answer with one word: buy, hold or sell.",
        ACTIONS,
    ),
}


@dataclass(frozen=True)
class Verdict:
    """The evaluator's answer about one proposed order."""

    score: float
    """How good the order looks, in [-1, 1] (0 when the answer could not be parsed)."""
    risk: float
    """How risky it looks, in [0, 1]."""
    veto: bool
    """True if the order should be blocked."""
    reason: str
    """The model's one-line explanation (or the raw text when unparsed)."""
    parsed: bool
    """False if the reply held no usable verdict; the neutral verdict is used then."""


def parse_verdict(text: str) -> Verdict:
    """Read a verdict from a model reply: the first JSON object, else ``key: value`` pairs.

    Missing fields default to the neutral verdict (score 0, risk 0, no veto).
    """
    data: dict[str, Any] = {}
    match = re.search(r"\{.*?\}", text, re.S)
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = {}
    if not isinstance(data, dict) or not data:
        data = {}
        for key in ("score", "risk"):
            m = re.search(rf"{key}\W{{0,3}}?\s*[:=]?\s*(-?\d+(?:\.\d+)?)", text, re.I)
            if m:
                data[key] = float(m.group(1))
        m = re.search(r"veto\W{0,3}(true|false|yes|no)", text, re.I)
        if m:
            data["veto"] = m.group(1).lower() in ("true", "yes")
    parsed = any(k in data for k in ("score", "risk", "veto"))

    def num(key: str, lo: float, hi: float) -> float:
        try:
            return min(hi, max(lo, float(data.get(key, 0.0))))
        except (TypeError, ValueError):
            return 0.0

    veto = data.get("veto", False)
    veto = veto.strip().lower() in ("true", "yes") if isinstance(veto, str) else bool(veto)
    reason = str(data.get("reason", "" if parsed else text.strip()[:200]))
    return Verdict(num("score", -1.0, 1.0), num("risk", 0.0, 1.0), veto, reason, parsed)


# ---------------------------------------------------------------------- backends
class OpenAIEndpoint(ChatClient):
    """An OpenAI-compatible server (vLLM, llama.cpp, Ollama, OpenAI) as the reviewer,
    through rlfoundry's one chat client (`rlfoundry.llm.chat`)."""

    def __init__(
        self,
        url: str,
        model: str = "default",
        timeout: float = 60.0,
        max_tokens: int = 96,
        retries: int = 3,
    ) -> None:
        super().__init__(url, model, timeout, max_tokens, label="LLM endpoint", retries=retries)

    @property
    def identity(self) -> str:
        return f"openai:{self.url}:{self.model}:{self.max_tokens}"

    def complete(self, system: str, prompt: str, options: tuple[str, ...] | None = None) -> str:
        """The reply; with ``options``, constrained to ``{"decision": <option>}``."""
        return self.ask(prompt, system=system, extra=response_format(options) if options else None)


class LocalModel:
    """A causal language model from a local transformers directory, greedy decoding."""

    def __init__(self, model_dir: str | Path, max_new_tokens: int = 96) -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise RLFoundryError(
                f"'{model_dir}' is not a transformers model directory (no config.json); "
                "pass a saved model or use an endpoint."
            )
        from rlfoundry.llm.models import check_weights

        check_weights(self.model_dir)  # weights cut short: one sentence now, not at the first bar
        self.max_new_tokens = max_new_tokens
        self._model: Any = None
        self._tok: Any = None

    @property
    def identity(self) -> str:
        return f"local:{self.model_dir.resolve()}:{self.max_new_tokens}"

    def _load(self) -> None:
        self._tok, self._model = load_local_model(self.model_dir)

    def complete(self, system: str, prompt: str, options: tuple[str, ...] | None = None) -> str:
        import torch

        if self._model is None:
            self._load()
        tok = self._tok
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                tokenize=False,
                add_generation_prompt=True,
            )
        else:
            text = f"{system}\n\n{prompt}\n\nAnswer: "
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            out = self._model.generate(
                **ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id or tok.eos_token_id,
            )
        return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


# ---------------------------------------------------------------------- evaluator
def load_news(news: str | Path | pd.DataFrame | None) -> pd.DataFrame | None:
    """News items as a frame with a sorted ``date`` index and a ``text`` column.

    A CSV needs a ``date`` column and a ``text`` (or ``headline``) column.
    """
    if news is None:
        return None
    df = news.copy() if isinstance(news, pd.DataFrame) else None
    if df is None:
        path = Path(news)  # type: ignore[arg-type]
        if not path.is_file():
            raise RLFoundryError(f"News file '{news}' does not exist; pass a CSV with date,text.")
        df = pd.read_csv(path)
    cols = {c.lower(): c for c in df.columns}
    text_col = cols.get("text") or cols.get("headline")
    if "date" not in cols or text_col is None:
        raise RLFoundryError("News needs a 'date' column and a 'text' (or 'headline') column.")
    out = pd.DataFrame({"text": df[text_col].astype(str).to_numpy()})
    out.index = pd.DatetimeIndex(pd.to_datetime(df[cols["date"]]), name="date")
    return out.sort_index()


class LLMEvaluator:
    """Reviews proposed orders with an LLM; see the module docstring."""

    def __init__(
        self,
        backend: OpenAIEndpoint | LocalModel | LogProbModel,
        mode: str = "filter",
        decision: str = "approve_veto",
        calibrate: bool = False,
        coef: float = 0.1,
        risk_coef: float = 0.0,
        veto_risk: float | None = None,
        news: str | Path | pd.DataFrame | None = None,
        history_bars: int = 10,
        news_items: int = 5,
        cache_dir: str | Path | None = None,
        asset: str | None = None,
    ) -> None:
        if mode not in ("filter", "shaping", "both"):
            raise RLFoundryError(f"LLM mode '{mode}' is unknown; use filter, shaping or both.")
        if decision not in (*DECISIONS, "free_text"):
            raise RLFoundryError(
                f"LLM decision '{decision}' is unknown; use approve_veto, actions or free_text."
            )
        if decision == "free_text" and isinstance(backend, LogProbModel):
            raise RLFoundryError(
                "A log-probability scorer answers closed questions only; use "
                "decision=approve_veto or actions, or a generating backend for free_text."
            )
        self.backend = backend
        self.mode = mode
        self.decision = decision
        self.calibrate = calibrate
        self.coef, self.risk_coef, self.veto_risk = coef, risk_coef, veto_risk
        self.news = load_news(news)
        self.history_bars, self.news_items = history_bars, news_items
        default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache / "rlfoundry" / "llm_eval"
        self.asset = asset
        self.stats = {"reviews": 0, "cache_hits": 0, "vetoes": 0, "unparsed": 0}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> LLMEvaluator:
        """Build from a dict (the env's ``llm=`` kwarg or YAML): ``endpoint`` + ``model``,
        or ``model_dir`` (scored by log-probability unless ``decision=free_text``), plus
        any keyword of :class:`LLMEvaluator`."""
        cfg = dict(cfg)
        endpoint, model_dir = cfg.pop("endpoint", None), cfg.pop("model_dir", None)
        model = cfg.pop("model", "default")
        max_tokens = int(cfg.pop("max_tokens", 96))
        retries, timeout = int(cfg.pop("retries", 3)), float(cfg.pop("timeout", 60.0))
        if endpoint:
            backend: OpenAIEndpoint | LocalModel | LogProbModel = OpenAIEndpoint(
                endpoint, model, timeout, max_tokens=max_tokens, retries=retries
            )
        elif model_dir and cfg.get("decision") == "free_text":
            backend = LocalModel(model_dir, max_new_tokens=max_tokens)
        elif model_dir:
            backend = LogProbModel(model_dir)
        else:
            raise RLFoundryError(
                "The LLM evaluator needs endpoint=URL (OpenAI-compatible) or model_dir=PATH."
            )
        try:
            return cls(backend, **cfg)
        except TypeError as err:
            raise RLFoundryError(f"Unknown LLM evaluator option: {err}.") from None

    @property
    def filter(self) -> bool:
        return self.mode in ("filter", "both")

    def shaping_reward(self, verdict: Verdict) -> float:
        if self.mode not in ("shaping", "both"):
            return 0.0
        return self.coef * verdict.score - self.risk_coef * verdict.risk

    # ------------------------------------------------------------------ prompt
    def build_prompt(self, env: MarketView, action: int) -> str:
        """The user message for ``action`` at the env's current decision bar.

        Holds bars up to bar ``t`` and news dated before bar ``t+1``; nothing later.
        """
        t = env.t
        bars = env.history(self.history_bars)
        feats = env.features(1).iloc[-1]
        date_t = bars.index[-1]
        lines = [
            f"Asset: {self.asset or env.data_name}.",
            f"The agent decides after the close of the bar dated {_fmt(date_t)}; "
            "its order fills at the open of the next bar.",
            "",
            "Recent bars (date, open, high, low, close, volume):",
        ]
        for ts, row in bars.iterrows():
            lines.append(
                f"{_fmt(ts)}, {row.open:.5g}, {row.high:.5g}, {row.low:.5g}, {row.close:.5g}, {row.volume:.4g}"
            )
        close = env.history(21)["close"].to_numpy()
        ret20 = close[-1] / close[0] - 1.0 if len(close) > 1 else 0.0
        lines += [
            "",
            f"Indicators at {_fmt(date_t)}: RSI(14)={50 * (feats['rsi'] + 1):.1f}, "
            f"Bollinger %b={feats['bb'] + 0.5:.2f}, MACD histogram (vol-scaled)={feats['macd']:.2f}, "
            f"20-bar return={ret20:+.2%}.",
            f"Current position: {env.exposure():+.0%} of a portfolio worth {env.value(t):,.2f} "
            f"(cash {env.cash:,.2f}).",
        ]
        if self.news is not None:
            decision = env.bars.index[t + 1]
            items = self.news[self.news.index < decision].tail(self.news_items)
            lines += ["", "News published before the order:"]
            lines += [f"- {_fmt(ts)}: {txt}" for ts, txt in items["text"].items()] or ["- (none)"]
        target = env.target_exposure(action)
        what = "keep the position" if target is None else f"move to {target:+.0%} exposure"
        lines += ["", f"Proposed action: {env.action_name(action)} ({what})."]
        return "\n".join(lines)

    def content_free(self, env: MarketView, action: int) -> str:
        """The prompt with the market withheld, for ``calibrate`` (one per action)."""
        target = env.target_exposure(action)
        what = "keep the position" if target is None else f"move to {target:+.0%} exposure"
        return (
            f"Asset: {self.asset or env.data_name}.\n\n(Market data withheld.)\n\n"
            f"Proposed action: {env.action_name(action)} ({what})."
        )

    # ------------------------------------------------------------------ review
    def question(self) -> tuple[str, str, tuple[str, ...] | None]:
        """``(system prompt, closing question, options)`` of this evaluator's ``decision``."""
        if self.decision == "free_text":
            return SYSTEM_PROMPT, "", None
        return DECISIONS[self.decision]

    def cache_key(self, prompt: str) -> str:
        system, _, options = self.question()
        parts = [self.backend.identity, system, prompt] + ([list(options)] if options else [])
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def ask(self, prompt: str) -> str:
        """The model's reply to ``prompt``, from the disk cache when it was asked before."""
        key = self.cache_key(prompt)
        path = self.cache_dir / key[:2] / f"{key}.json"
        if path.is_file():
            self.stats["cache_hits"] += 1
            return json.loads(path.read_text())["response"]
        system, _, options = self.question()
        if options is None:
            reply = self.backend.complete(system, prompt)
        else:
            reply = self.backend.complete(system, prompt, options)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"backend": self.backend.identity, "response": reply}))
        tmp.replace(path)
        return reply

    def review(self, env: MarketView, action: int) -> Verdict:
        """The verdict on ``action`` at the env's current bar (veto includes ``veto_risk``)."""
        _, closing, options = self.question()
        prompt = self.build_prompt(env, action)
        if options is None:
            verdict = parse_verdict(self.ask(prompt))
        else:
            reply = self.ask(f"{prompt}\n\n{closing}")
            if self.calibrate:
                reply = calibrate(reply, self.ask(f"{self.content_free(env, action)}\n\n{closing}"))
            verdict = self._decide(reply, options, env, action)
        if self.veto_risk is not None and verdict.risk >= self.veto_risk and not verdict.veto:
            verdict = Verdict(verdict.score, verdict.risk, True, verdict.reason, verdict.parsed)
        self.stats["reviews"] += 1
        self.stats["vetoes"] += int(verdict.veto)
        self.stats["unparsed"] += int(not verdict.parsed)
        return verdict

    def _decide(
        self, reply: str, options: tuple[str, ...], env: MarketView, action: int
    ) -> Verdict:
        d = parse_decision(reply, options)
        if options == APPROVE_VETO:
            p_bad = d.probs["veto"]
            return Verdict(
                d.probs["approve"] - p_bad,
                p_bad,
                d.choice == "veto",
                reply[:200],
                d.choice is not None,
            )
        proposed = env.action_name(action).lower()
        if proposed not in options:
            raise RLFoundryError(
                f"decision=actions reviews SELL/HOLD/BUY orders, not '{proposed}'; use "
                "decision=approve_veto with the position-size variant."
            )
        p_ok = d.probs[proposed]
        veto = d.choice is not None and d.choice != proposed
        return Verdict(2.0 * p_ok - 1.0, 1.0 - p_ok, veto, reply[:200], d.choice is not None)


def _fmt(ts: pd.Timestamp) -> str:
    return str(ts.date()) if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")
