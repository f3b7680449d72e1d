"""The HTTP judge (`llm/judge.py`) and the chat client's retries (`llm/chat.py`), against
loopback servers: a dead endpoint fails in the stage's check before its directory is
written; timeouts and 5xx are retried with backoff and jitter (never drawing from the
global random generators), other errors are not; the score is read only from
`Score: N` within [judge_min_score, judge_max_score], and every other reply is counted
in `judge/invalid`; the trading reviewer shares the retries."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from rlfoundry.api import train
from rlfoundry.errors import RLFoundryError
from rlfoundry.llm import chat, grpo, ppo
from rlfoundry.llm.chat import ChatClient
from rlfoundry.llm.judge import http_judge_template, parse_score
from rlfoundry.llm.rewards import HTTPJudge, parse_reward


class _Server:
    """Answers each POST with the next of `script` (status, reply text, delay seconds);
    the last entry repeats. Records the prompts it was sent."""

    def __init__(self, *script: tuple[int, str, float]):
        self.script, self.prompts, lock, outer = list(script), [], threading.Lock(), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.prompts.append(body["messages"][-1]["content"])
                    i = min(len(outer.prompts), len(outer.script)) - 1
                status, text, delay = outer.script[i]
                time.sleep(delay)
                data = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout)
                    pass

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    """Retries wait 10-20 ms here instead of 0.25-0.5 s (the schedule is the same)."""
    init = ChatClient.__init__

    def fast(self, *a, **kw):
        init(self, *a, **kw)
        self.backoff = 0.02

    monkeypatch.setattr(ChatClient, "__init__", fast)


# ---------------------------------------------------------------------- the score


@pytest.mark.parametrize(
    "reply,score",
    [
        ("Score: 7", 7.0),
        ("The answer is right.\nScore: 9", 9.0),
        ("score: 0", 0.0),
        ("**Score:** 4.5", 4.5),
        ("On a scale of 0 to 9, I give it 7", None),  # the old parser read 0
        ("42", None),  # the old parser gave 42 / 9 = 4.67
        ("Score: 42", None),  # out of range
        ("Score: -1", None),
        ("I cannot judge this.", None),
    ],
)
def test_the_score_comes_only_from_score_n_within_the_range(reply, score):
    assert parse_score(reply, 0, 9) == score


def test_the_default_prompt_asks_for_the_format_and_the_range():
    text = http_judge_template(1, 5).format(prompt="2+2=", completion="4")
    assert "Score: N" in text and "from 1 to 5" in text and "Prompt: 2+2=" in text


def test_invalid_replies_are_counted_not_mapped(capsys):
    replies = [(200, "Score: 5", 0.0)]  # the pre-flight
    replies += [(200, "Score: 9", 0.0), (200, "42", 0.0), (200, "Score: 12", 0.0)]
    replies += [(200, "Score: 3", 0.0)]
    with _Server(*replies) as server:
        judge = HTTPJudge(server.url, workers=1, min_score=1, max_score=9)
        assert judge(["a", "b", "c", "d"], ["w", "x", "y", "z"]) == [1.0, 0.0, 0.0, 0.25]
    assert judge.invalid == 2 and judge.metrics() == {"judge/invalid": 2.0, "judge/retries": 0.0}
    err = capsys.readouterr().err
    assert "reply '42' holds no 'Score: N' from 1 to 9" in err and "'Score: 12'" in err


def test_the_judge_metric_reaches_the_logged_rewards():
    with _Server((200, "Score: 9", 0.0), (200, "nope", 0.0)) as server:
        r = parse_reward([f"judge:{server.url}", "0.5*task:arithmetic"])
        r(["1+1="], ["2"])
    means = r.means()
    assert means["judge/invalid"] == 1.0 and "reward/task:arithmetic" in means


def test_the_range_comes_from_the_config():
    class Cfg:
        reward, task, judge_template, judge_model = ["judge:URL"], "arithmetic", "", "m"
        judge_timeout, judge_retries, judge_min_score, judge_max_score = 5.0, 1, 1.0, 5.0

    from rlfoundry.llm.rewards import build_reward

    with _Server((200, "Score: 3", 0.0)) as server:
        Cfg.reward = [f"judge:{server.url}"]
        judge = build_reward(Cfg).parts[0][1]
        assert judge(["q"], ["a"]) == [0.5]
    assert (judge.min_score, judge.max_score, judge.client.timeout) == (1.0, 5.0, 5.0)
    assert judge.client.retries == 1 and "from 1 to 5" in server.prompts[0]


def test_a_bad_range_is_one_sentence():
    with pytest.raises(RLFoundryError, match="judge_min_score .* must be below judge_max_score"):
        HTTPJudge("http://127.0.0.1:1/v1", min_score=5, max_score=5)


# ---------------------------------------------------------------------- pre-flight


def test_a_dead_endpoint_fails_in_check_before_the_run_directory(tmp_path):
    out = tmp_path / "run"
    t0 = time.perf_counter()
    with pytest.raises(RLFoundryError, match="did not answer") as err:
        train(
            "llm-grpo", model="tiny:nano", out=out, progress=False,
            reward=[f"judge:{_dead_url()}"], judge_retries=1,
        )  # fmt: skip
    assert "Judge endpoint" in str(err.value) and "(2 attempts)" in str(err.value)
    assert not out.exists() and time.perf_counter() - t0 < 30


def test_a_judge_that_ignores_the_format_fails_its_pre_flight(tmp_path):
    with _Server((200, "Looks fine to me.", 0.0)) as server, pytest.raises(RLFoundryError) as err:
        train("llm-grpo", model="tiny:nano", out=tmp_path / "r", reward=[f"judge:{server.url}"])
    assert "'Looks fine to me.' to a test request" in str(err.value)
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------- retries


def test_5xx_and_429_are_retried_then_succeed():
    with _Server((500, "", 0.0), (503, "", 0.0), (429, "", 0.0), (200, "ok", 0.0)) as server:
        client = ChatClient(server.url, retries=3)
        assert client.ask("x") == "ok"
    assert client.retried == 3 and len(server.prompts) == 4


def test_retries_run_out_in_one_sentence():
    with _Server((502, "", 0.0)) as server, pytest.raises(RLFoundryError) as err:
        ChatClient(server.url, retries=2, label="Judge endpoint").ask("x")
    assert "answered HTTP 502" in str(err.value) and "(3 attempts)" in str(err.value)
    assert len(server.prompts) == 3


def test_a_4xx_is_not_retried():
    with _Server((401, "", 0.0)) as server, pytest.raises(RLFoundryError, match="HTTP 401"):
        ChatClient(server.url, retries=3).ask("x")
    assert len(server.prompts) == 1


def test_a_timeout_is_retried():
    with _Server((200, "slow", 1.5), (200, "fast", 0.0)) as server:
        client = ChatClient(server.url, timeout=0.3, retries=2)
        assert client.ask("x") == "fast"
    assert client.retried == 1


def test_backoff_grows_with_jitter_and_leaves_the_global_generators_alone(monkeypatch):
    waits = []
    monkeypatch.setattr(chat, "time", type("T", (), {"sleep": staticmethod(waits.append)}))
    random.seed(5), np.random.seed(5)
    expected = (random.random(), np.random.rand())
    random.seed(5), np.random.seed(5)
    with _Server((500, "", 0.0)) as server, pytest.raises(RLFoundryError):
        client = ChatClient(server.url, retries=4)
        client.backoff = 0.5
        client.ask("x")
    assert (random.random(), np.random.rand()) == expected
    assert len(waits) == 4
    for k, w in enumerate(waits):  # attempt k waits in [d/2, d], d = 0.5 * 2^k
        assert 0.25 * 2**k <= w <= 0.5 * 2**k
    assert len({round(w / 2**k, 6) for k, w in enumerate(waits)}) > 1  # jittered


def test_the_judge_settings_are_config_keys():
    for cfg in (grpo.Config(), ppo.Config()):
        assert (cfg.judge_timeout, cfg.judge_retries) == (60.0, 3)
        assert (cfg.judge_min_score, cfg.judge_max_score) == (0.0, 9.0)


def test_the_trading_reviewer_shares_the_retries(tmp_path):
    from rlfoundry.apps.trading.llm_evaluator import LLMEvaluator

    reply = '{"score": 0.5, "risk": 0.1, "veto": false, "reason": "ok"}'
    with _Server((500, "", 0.0), (200, reply, 0.0)) as server:
        ev = LLMEvaluator.from_config({"endpoint": server.url, "retries": 2, "cache_dir": tmp_path})
        assert ev.backend.complete("system", "review") == reply
    assert ev.backend.retried == 1


def test_one_openai_compatible_client_serves_the_judge_and_the_trading_reviewer():
    """Both clients are `llm.chat.ChatClient` (one place for the request, timeout, retries
    and error sentences), and no other module of the package makes HTTP requests itself."""
    import re
    from pathlib import Path

    import rlfoundry
    from rlfoundry.apps.trading.llm_evaluator import OpenAIEndpoint
    from rlfoundry.llm.judge import JudgeEndpoint

    src = Path(rlfoundry.__file__).parent
    speaks_http = re.compile(
        r"urllib\.request|http\.client|urlopen|^\s*import (requests|httpx)", re.M
    )
    users = [
        str(p.relative_to(src)) for p in src.rglob("*.py") if speaks_http.search(p.read_text())
    ]
    assert users == ["llm/chat.py"]
    assert isinstance(OpenAIEndpoint("http://127.0.0.1:1/v1"), ChatClient)
    assert isinstance(JudgeEndpoint("http://127.0.0.1:1/v1", preflight=False).client, ChatClient)


def test_a_template_column_reaches_the_judge_with_its_own_pair():
    tpl = "Q: {prompt}\nA: {completion}\nRef: {answer}\nReply `Score: N`, N from 0 to 9."
    with _Server((200, "Score: 9", 0.0)) as srv:
        r = parse_reward(f"judge:{srv.url}", judge_template=tpl)
        assert r.needs == ("answer",)
        assert r(["1+1=", "2+2="], ["2", "4"], answer=["2", "4"]) == [1.0, 1.0]
    assert srv.prompts[0].endswith("Ref: 4\nReply `Score: N`, N from 0 to 9.")  # pre-flight
    sent = {p.split("\n")[0]: p.split("\n")[2] for p in srv.prompts[1:]}  # threads: any order
    assert sent == {"Q: 1+1=": "Ref: 2", "Q: 2+2=": "Ref: 4"}
