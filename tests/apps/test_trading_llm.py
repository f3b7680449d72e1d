"""The LLM order reviewer, through its real client code.

The model side is a loopback OpenAI-compatible HTTP server started here. It is a
stand-in *server* with a transparent rule, documented in ``_rule``: it reads the RSI
and the proposed action from the prompt it receives and vetoes buying into an
overbought market. Everything on the rlfoundry side (prompt building, the HTTP call,
parsing, the disk cache, filter and shaping inside the env, the backtest row) is the
real code. A second test runs a real (tiny, untrained) local transformers model.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from apps_helpers import random_walk, write_bars
from needs import need

from rlfoundry.apps.trading.backtest import run_suite, write_report
from rlfoundry.apps.trading.env import BUY, SELL, TradingEnv
from rlfoundry.apps.trading.llm_evaluator import (
    LLMEvaluator,
    OpenAIEndpoint,
    parse_verdict,
)
from rlfoundry.errors import RLFoundryError


def _rule(prompt: str) -> dict:
    """Veto BUY when RSI(14) > 60; otherwise approve with score 0.5, risk 0.2."""
    rsi = float(re.search(r"RSI\(14\)=([\d.]+)", prompt).group(1))
    buying = "Proposed action: BUY" in prompt
    if buying and rsi > 60:
        return {"score": -0.8, "risk": 0.9, "veto": True, "reason": "buying an overbought market"}
    return {"score": 0.5, "risk": 0.2, "veto": False, "reason": "fine"}


class _Server:
    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions"
                assert body["temperature"] == 0.0
                prompt = body["messages"][-1]["content"]
                outer.prompts.append(prompt)
                outer.bodies.append(body)
                verdict = _rule(prompt)
                if "response_format" in body:  # a constrained decision: JSON, nothing else
                    enum = body["response_format"]["json_schema"]["schema"]["properties"]
                    assert enum["decision"]["enum"] == ["approve", "veto"]
                    text = json.dumps({"decision": "veto" if verdict["veto"] else "approve"})
                else:  # prose around the JSON, as chat models often reply
                    text = "Here is my review: " + json.dumps(verdict) + " Thanks."
                reply = {"choices": [{"message": {"role": "assistant", "content": text}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    return write_bars(tmp_path / "bars.csv", random_walk(400, seed=3))


def _evaluator(server: _Server, cache: Path, **kw) -> LLMEvaluator:
    return LLMEvaluator(OpenAIEndpoint(server.url, "stand-in"), cache_dir=cache, **kw)


def _bar_with_rsi(env: TradingEnv, above: bool) -> None:
    """Move the env (flat) to a decision bar whose RSI is above/below 60."""
    env.reset(seed=0)
    while (env.features(1)["rsi"].iloc[-1] * 50 + 50 > 60) != above:
        env.step(SELL)


def test_review_over_http_and_disk_cache(server: _Server, csv: Path, tmp_path: Path):
    env = TradingEnv(str(csv), "all", episode_length=0)
    _bar_with_rsi(env, above=True)
    ev = _evaluator(server, tmp_path / "cache")
    verdict = ev.review(env, BUY)
    assert verdict.veto and verdict.parsed
    assert (verdict.score, verdict.risk) == (-1.0, 1.0)  # a decision without probabilities
    assert len(server.prompts) == 1 and "response_format" in server.bodies[0]
    assert server.prompts[0].endswith("Answer with one word: approve or veto.")

    # A fresh evaluator with the same cache answers without asking the server again.
    again = _evaluator(server, tmp_path / "cache")
    assert again.review(env, BUY) == verdict
    assert len(server.prompts) == 1 and again.stats["cache_hits"] == 1
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 1

    # A different question (SELL) is a different cache entry.
    assert not again.review(env, SELL).veto
    assert len(server.prompts) == 2


def test_prompt_holds_nothing_dated_at_or_after_the_fill_bar(
    server: _Server, csv: Path, tmp_path: Path
):
    env = TradingEnv(str(csv), "all", episode_length=0)
    dates = env.bars.index
    news = pd.DataFrame(
        {
            "date": dates[[100, 149, 150, 151, 200]],
            "text": ["N-old", "N-eve", "N-fill", "N-next", "N-late"],
        }
    )
    ev = _evaluator(server, tmp_path / "cache", news=news)
    env.reset(seed=0)
    while env.t < 149:
        env.step(SELL)
    prompt = ev.build_prompt(env, BUY)  # decision after bar 149, fills at bar 150's open
    fill_date = dates[150]
    shown = [pd.Timestamp(d) for d in re.findall(r"\d{4}-\d{2}-\d{2}", prompt)]
    assert shown and max(shown) < fill_date
    assert str(dates[149].date()) in prompt
    assert "N-old" in prompt and "N-eve" in prompt
    assert "N-fill" not in prompt and "N-next" not in prompt and "N-late" not in prompt
    # No price of the fill bar or later (opens are skipped: here open[t] == close[t-1]).
    for col in ("high", "low", "close"):
        for t in (150, 151):
            assert f"{env.bars[col].iloc[t]:.5g}" not in prompt

    # The prompts the server received during a run obey the same rule at every bar.
    env = TradingEnv(str(csv), "all", episode_length=0, llm=ev)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        n_before = len(server.prompts)
        fill_date = dates[env.t + 1]
        _, _, term, trunc, _ = env.step(int(rng.integers(3)))
        for p in server.prompts[n_before:]:
            assert max(pd.Timestamp(d) for d in re.findall(r"\d{4}-\d{2}-\d{2}", p)) < fill_date
        done = term or trunc
    assert len(server.prompts) > 20


def test_filter_turns_vetoed_orders_into_hold(server: _Server, csv: Path, tmp_path: Path):
    cfg = {"endpoint": server.url, "model": "stand-in", "cache_dir": str(tmp_path / "c")}
    env = TradingEnv(str(csv), "all", episode_length=0, llm={**cfg, "mode": "filter"})
    _bar_with_rsi(env, above=True)
    _, _, _, _, info = env.step(BUY)
    assert info["llm_veto"] and info["proposed_action"] == BUY and info["action"] != BUY
    assert info["traded"] == 0.0 and info["exposure"] == 0.0

    _bar_with_rsi(env, above=False)
    _, _, _, _, info = env.step(BUY)
    assert not info["llm_veto"] and info["exposure"] > 0.9


def test_shaping_adds_the_score(server: _Server, csv: Path, tmp_path: Path):
    cfg = {
        "endpoint": server.url,
        "cache_dir": str(tmp_path / "c"),
        "mode": "shaping",
        "decision": "free_text",  # the open verdict, whose score and risk are graded
    }
    plain = TradingEnv(str(csv), "all", episode_length=0)
    shaped = TradingEnv(
        str(csv), "all", episode_length=0, llm={**cfg, "coef": 0.3, "risk_coef": 1.0}
    )
    _bar_with_rsi(plain, above=True)
    _bar_with_rsi(shaped, above=True)
    _, r0, *_ = plain.step(BUY)
    _, r1, _, _, info = shaped.step(BUY)
    assert info["exposure"] > 0.9  # shaping alone never blocks the order
    assert r1 - r0 == pytest.approx(0.3 * -0.8 - 1.0 * 0.9)
    assert info["llm_shaping"] == pytest.approx(-1.14)


def test_backtest_reports_the_llm_effect(server: _Server, csv: Path, tmp_path: Path):
    llm = {"endpoint": server.url, "cache_dir": str(tmp_path / "c")}
    momentum = lambda env: lambda obs: BUY if obs[-10] > 0 else SELL  # noqa: E731  last bar's return
    results = run_suite({"agent": [momentum]}, {"data": str(csv)}, "all", 2, llm=llm)
    assert list(results) == ["agent", "agent + LLM", "buy_and_hold", "ma_crossover", "random"]
    with_llm = results["agent + LLM"][0]
    assert with_llm.llm["vetoes"] > 0
    assert with_llm.metrics()["trades"] < results["agent"][0].metrics()["trades"]
    table = write_report(results, tmp_path / "rep", "llm")
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "| agent + LLM | 1 |" in report and "vetoed" in report
    assert table["agent + LLM"]["llm_vetoes"]["mean"] > 0


def test_endpoint_down_is_one_clear_error(csv: Path, tmp_path: Path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ev = LLMEvaluator(OpenAIEndpoint(f"http://127.0.0.1:{port}", timeout=2), cache_dir=tmp_path)
    env = TradingEnv(str(csv), "all", episode_length=0)
    env.reset(seed=0)
    with pytest.raises(RLFoundryError, match="did not answer"):
        ev.review(env, BUY)
    with pytest.raises(RLFoundryError, match="endpoint=URL"):
        LLMEvaluator.from_config({"mode": "filter"})


def test_parse_verdict_variants():
    v = parse_verdict('ok {"score": 2, "risk": -1, "veto": "yes", "reason": "x"} done')
    assert (v.score, v.risk, v.veto, v.parsed) == (1.0, 0.0, True, True)
    v = parse_verdict("Score: -0.4, risk = 0.7; veto: no")
    assert (v.score, v.risk, v.veto, v.parsed) == (-0.4, 0.7, False, True)
    v = parse_verdict("I cannot say.")
    assert (v.score, v.risk, v.veto, v.parsed) == (0.0, 0.0, False, False)


def _tiny_model_dir(tmp_path: Path) -> Path:
    """A real transformers model directory: a tiny GPT-2 with random weights."""
    transformers = need("transformers", "llm")
    tokenizers = need("tokenizers", "llm")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["[UNK]", "<eos>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(['score risk veto buy sell hold 0123456789 {}":,.'] * 10, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")
    model_dir = tmp_path / "tiny"
    fast.save_pretrained(model_dir)
    cfg = transformers.GPT2Config(
        vocab_size=fast.vocab_size, n_positions=4096, n_embd=16, n_layer=1, n_head=2
    )
    transformers.GPT2LMHeadModel(cfg).save_pretrained(model_dir)
    return model_dir


def test_real_local_model_free_text(tmp_path: Path, csv: Path):
    """The open question through LocalModel: an untrained model writes no verdict, so the
    review falls back to neutral and says so (``parsed`` is False)."""
    model_dir = _tiny_model_dir(tmp_path)
    ev = LLMEvaluator.from_config(
        {
            "model_dir": str(model_dir),
            "max_tokens": 8,
            "cache_dir": str(tmp_path / "c"),
            "decision": "free_text",
        }
    )
    env = TradingEnv(str(csv), "all", episode_length=0)
    env.reset(seed=0)
    verdict = ev.review(env, BUY)
    assert not verdict.parsed and not verdict.veto and verdict.score == 0.0
    assert ev.review(env, BUY) == verdict and ev.stats["cache_hits"] == 1


def test_logprob_scorer_always_decides(tmp_path: Path, csv: Path):
    """A random tiny model scored by log-probability answers every order with one of
    the options, and its probabilities match a full forward pass of each option."""
    import torch

    from rlfoundry.apps.trading.llm_choice import LogProbModel

    model_dir = _tiny_model_dir(tmp_path)
    scorer = LogProbModel(model_dir)
    env = TradingEnv(str(csv), "all", episode_length=0)
    env.reset(seed=0)
    for decision, options in (
        ("approve_veto", ("approve", "veto")),
        ("actions", ("sell", "hold", "buy")),
    ):
        ev = LLMEvaluator(scorer, decision=decision, cache_dir=tmp_path / decision)
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        for _ in range(8):
            act = BUY if env.exposure() < 0.5 else SELL
            v = ev.review(env, act)
            assert v.parsed and -1.0 <= v.score <= 1.0 and 0.0 <= v.risk <= 1.0
            assert json.loads(v.reason)["decision"] in options
            env.step(int(rng.integers(3)))
        assert ev.stats["reviews"] == 8 and ev.stats["unparsed"] == 0

    # The KV-cached scores equal log p(option | prompt) from one plain forward pass.
    system, prompt = "Decide.", "Proposed action: BUY."
    got = scorer.logprobs(system, prompt, ("approve", "veto", "buy sell hold"))
    tok, model = scorer._tok, scorer._model
    head = tok(scorer.prompt_text(system, prompt), add_special_tokens=False)["input_ids"]
    for option, value in got.items():
        tail = tok(option, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([head + tail])).logits[0], -1)
        want = sum(float(logp[len(head) - 1 + j, t]) for j, t in enumerate(tail))
        assert value == pytest.approx(want, abs=1e-4)
    with pytest.raises(RLFoundryError, match="closed questions"):
        LLMEvaluator(scorer, decision="free_text")


def test_calibration_and_decision_parsing():
    from rlfoundry.apps.trading.llm_choice import calibrate, parse_decision

    opts = ("approve", "veto")
    raw = json.dumps({"logprobs": {"approve": -1.0, "veto": -2.0}})
    free = json.dumps({"logprobs": {"approve": -0.5, "veto": -3.0}})
    # Content-free prefers approve by 2.5 nats; here only by 1: calibrated, veto wins.
    assert parse_decision(raw, opts).choice == "approve"
    d = parse_decision(calibrate(raw, free), opts)
    assert d.choice == "veto" and d.probs["veto"] == pytest.approx(1 / (1 + np.exp(-1.5)))
    assert parse_decision('{"decision": "VETO"}', opts).choice == "veto"
    assert parse_decision("I would approve it.", opts).choice == "approve"
    assert parse_decision("no idea", opts).choice is None
    assert calibrate("not json", free) == "not json"
