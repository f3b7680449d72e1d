"""The one OpenAI-compatible client (`llm/chat.py`, used by the judge reward and the trading
reviewer) against a loopback server: the request it sends, and one clear error for each way
an endpoint can fail."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.chat import ChatClient, chat_url


class _Server:
    """Replies with `body` (bytes) and `status`; records every request."""

    def __init__(self, body: bytes | None = None, status: int = 200):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(
                    {"path": self.path, "body": data, "auth": self.headers.get("Authorization")}
                )
                reply = body
                if reply is None:
                    text = "echo: " + data["messages"][-1]["content"]
                    reply = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_chat_url_accepts_host_v1_or_full_path():
    full = "http://h:8000/v1/chat/completions"
    assert chat_url("http://h:8000") == full
    assert chat_url("http://h:8000/v1/") == full
    assert chat_url(full) == full


def test_request_shape_and_api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with _Server() as server:
        client = ChatClient(server.url + "/v1", model="m", max_tokens=7)
        assert client.ask("hello", system="be brief") == "echo: hello"
        assert client.ask("again") == "echo: again"
    first, second = server.requests
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"] == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
        "temperature": 0.0,
        "max_tokens": 7,
    }
    assert second["body"]["messages"] == [{"role": "user", "content": "again"}]


def test_no_api_key_no_header(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with _Server() as server:
        ChatClient(server.url).ask("x")
    assert server.requests[0]["auth"] is None


@pytest.mark.parametrize(
    "body,status,match",
    [
        (b'{"error": "no such model"}', 404, "answered HTTP 404"),
        (b'{"choices": []}', 200, "without choices"),
        (b"not json", 200, "without choices"),
    ],
)
def test_bad_replies_are_one_clear_error(body, status, match):
    with _Server(body, status) as server, pytest.raises(RLFoundryError, match=match) as err:
        ChatClient(server.url, label="Judge endpoint").ask("x")
    assert str(err.value).startswith(f"Judge endpoint {server.url}/v1/chat/completions")


def test_endpoint_down():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RLFoundryError, match="did not answer.*start the server"):
        ChatClient(f"http://127.0.0.1:{port}", timeout=2).ask("x")
