"""Reward sources: functions (plain, batched, from a file), an OpenAI-compatible judge on
a loopback HTTP server started here, weights, and the errors a broken reward gives."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.rewards import (
    Composite,
    FunctionReward,
    HTTPJudge,
    batched,
    parse_reward,
)


def length_reward(prompt: str, completion: str) -> float:
    return float(len(completion))


def nan_on_b(prompt: str, completion: str) -> float:
    return math.nan if "b" in completion else 1.0


def raise_on_b(prompt: str, completion: str) -> float:
    if "b" in completion:
        raise ZeroDivisionError("division by zero")
    return 1.0


def per_batch(prompts, completions):
    return [1.0 if c.startswith(p) else 0.0 for p, c in zip(prompts, completions)]


@batched
def short_list(p, c):
    return [0.0]


def test_plain_and_batched_functions():
    r = parse_reward([f"{__name__}:length_reward"])
    assert r(["p", "q"], ["ab", "abcd"]) == [2.0, 4.0]
    fb = FunctionReward(f"{__name__}:per_batch")
    assert fb.batched
    assert fb(["x", "y"], ["xz", "zz"]) == [1.0, 0.0]


def test_weights_sum_sources():
    r = parse_reward([f"0.5*{__name__}:length_reward", f"-2*{__name__}:per_batch"])
    assert r(["x"], ["xyz"]) == [0.5 * 3 - 2 * 1]
    assert r.means() == {
        f"reward/{__name__}:length_reward": 3.0,
        f"reward/{__name__}:per_batch": 1.0,
    }


def test_function_from_file(tmp_path):
    path = tmp_path / "my_reward.py"
    path.write_text("def score(prompt, completion):\n    return completion.count('!')\n")
    r = parse_reward(f"{path}:score")
    assert r(["p"], ["hi!!"]) == [2.0]


def test_nan_names_source_and_shows_the_pair():
    r = parse_reward([f"{__name__}:nan_on_b"])
    with pytest.raises(RLFoundryError) as err:
        r(["first prompt", "second prompt"], ["aaa", "abc"])
    msg = str(err.value)
    assert "nan_on_b" in msg and "nan" in msg
    assert "'second prompt'" in msg and "'abc'" in msg


def test_raise_names_source_and_finds_the_pair_in_a_batch():
    r = parse_reward([f"{__name__}:raise_on_b"])
    with pytest.raises(RLFoundryError) as err:
        r(["p1", "p2", "p3"], ["aa", "ab", "bb"])
    msg = str(err.value)
    assert "raise_on_b" in msg and "ZeroDivisionError" in msg and "'p2'" in msg and "'ab'" in msg


def test_wrong_count_and_bad_specs():
    with pytest.raises(RLFoundryError, match="returned 1 scores for a batch of 2"):
        FunctionReward(short_list)(["a", "b"], ["c", "d"])
    with pytest.raises(RLFoundryError, match="module:function"):
        parse_reward("no_colon_here")
    with pytest.raises(RLFoundryError, match="Cannot import reward module"):
        parse_reward("surely_not_a_module_xyz:fn")
    with pytest.raises(RLFoundryError, match="has no function"):
        parse_reward(f"{__name__}:missing_fn")
    with pytest.raises(RLFoundryError, match="not a model directory"):
        parse_reward("rm:/nonexistent/rm_dir")


def test_not_a_number():
    r = Composite([(1.0, FunctionReward(lambda p, c: "good", name="stringy"))])
    with pytest.raises(RLFoundryError, match="'stringy' returned 'good'"):
        r(["p"], ["c"])


class _Judge:
    """A loopback OpenAI-compatible server: replies 'Score: N' with N = completion length."""

    def __init__(self, reply=None):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body})
                content = body["messages"][-1]["content"]
                answer = content.split("Answer: ")[1].split("\n")[0]
                text = reply if reply is not None else f"Score: {len(answer)}"
                data = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": text}}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_judge_over_loopback():
    with _Judge() as server:
        r = parse_reward(f"judge:{server.url}", judge_model="tiny-judge")
        assert r(["q1", "q2", "q3"], ["abc", "a", "abcdefghi"]) == [3 / 9, 1 / 9, 1.0]
    assert len(server.requests) == 4  # the pre-flight request, then one per pair
    req = server.requests[1]
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "tiny-judge" and req["body"]["temperature"] == 0.0
    assert "Prompt: q" in req["body"]["messages"][0]["content"]


def test_http_judge_errors():
    # a judge that never answers in the format stops at its pre-flight request
    with _Judge(reply="I cannot say") as server, pytest.raises(RLFoundryError) as err:
        HTTPJudge(server.url)
    assert "'I cannot say' to a test request" in str(err.value) and "Score: N" in str(err.value)
    with _Judge() as server:
        url = server.url
    with pytest.raises(RLFoundryError, match="did not answer"):
        HTTPJudge(url, timeout=2, retries=0)
    with pytest.raises(RLFoundryError, match="placeholders"):
        HTTPJudge("http://127.0.0.1:1/v1", template="{question}")
