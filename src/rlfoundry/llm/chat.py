"""One client for OpenAI-compatible chat endpoints (vLLM, llama.cpp, Ollama, OpenAI).

    client = ChatClient("http://localhost:8000/v1", model="qwen", max_tokens=16)
    client.ask("Rate this answer ...")                       # -> the reply's text
    client.ask("Review this order ...", system="You are the risk officer ...")

Used by the LLM judge reward (`rewards.HTTPJudge`) and the trading app's order
reviewer (`apps/trading/llm_evaluator.py`). Standard-library HTTP only, so it imports
neither torch nor transformers. Requests are deterministic (temperature 0); the key in
`OPENAI_API_KEY`, when set, is sent as a bearer token.

A transient failure (a timeout, a refused or dropped connection, HTTP 408, 429 or any
5xx) is retried up to `retries` times, after exponential backoff with jitter: attempt k
waits between d/2 and d, d = min(backoff * 2^k, max_backoff) (AWS's "equal jitter", so
many workers that failed together do not retry together). The jitter has its own
generator: retries never move the global random streams of a seeded run. What is left
(a failure on every attempt, another HTTP error, a reply without
`choices[0].message.content`) is one RLFoundryError that names the endpoint and the fix.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request

from rlfoundry.errors import RLFoundryError

#: HTTP statuses worth another try: request timeout, rate limit, and every 5xx.
RETRY_STATUS = frozenset({408, 429})


def chat_url(url: str) -> str:
    """`http://host`, `http://host/v1` or the full URL -> `.../v1/chat/completions`."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


class _Transient(Exception):
    """A failure that another attempt may not see; `message` is the sentence if none does."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ChatClient:
    """Requests to one `/v1/chat/completions` endpoint; `label` names it in errors.

    `retries` more attempts follow a transient failure (see the module docstring);
    `retried` counts them over the client's life (a metric for callers).
    """

    def __init__(
        self,
        url: str,
        model: str = "default",
        timeout: float = 60.0,
        max_tokens: int = 16,
        label: str = "LLM endpoint",
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        if retries < 0 or timeout <= 0:
            raise RLFoundryError(
                f"{label} needs retries >= 0 and a timeout > 0 s, got {retries} and {timeout}; "
                "fix the setting (e.g. judge_retries=3, judge_timeout=60)."
            )
        self.url = chat_url(url)
        self.model, self.timeout, self.max_tokens, self.label = model, timeout, max_tokens, label
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.retried = 0
        self._rng = random.Random()  # jitter only; never the global generator
        self._lock = threading.Lock()

    def ask(self, prompt: str, system: str | None = None, extra: dict | None = None) -> str:
        """The reply to one user message, after an optional system message."""
        messages = [{"role": "system", "content": system}] if system is not None else []
        return self.chat([*messages, {"role": "user", "content": prompt}], extra)

    def chat(self, messages: list[dict[str, str]], extra: dict | None = None) -> str:
        """The text of the first choice for `messages` (OpenAI's `{role, content}` list).

        `extra` adds request fields, e.g. a `response_format` JSON schema that constrains
        the reply (OpenAI structured outputs; vLLM, llama.cpp and Ollama accept it too).
        """
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
            **(extra or {}),
        }
        for attempt in range(self.retries + 1):
            try:
                return self._post(body)
            except _Transient as err:
                if attempt == self.retries:
                    tries = f" ({attempt + 1} attempts)" if attempt else ""
                    raise RLFoundryError(err.message.replace("; ", f"{tries}; ", 1)) from None
                with self._lock:
                    self.retried += 1
                    delay = min(self.backoff * 2**attempt, self.max_backoff)
                    delay = delay / 2 + self._rng.uniform(0, delay / 2)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _post(self, body: dict) -> str:
        headers = {"Content-Type": "application/json"}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        req = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                reply = json.loads(resp.read().decode())
            return str(reply["choices"][0]["message"]["content"])
        except urllib.error.HTTPError as err:  # before URLError, its base class
            message = (
                f"{self.label} {self.url} answered HTTP {err.code} ({err.reason}); check the "
                "URL, the model name and OPENAI_API_KEY."
            )
            if err.code in RETRY_STATUS or 500 <= err.code < 600:
                raise _Transient(message) from None
            raise RLFoundryError(message) from None
        except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as err:
            raise _Transient(
                f"{self.label} {self.url} did not answer ({err}); start the server or fix "
                f"the URL (or raise the timeout of {self.timeout:g} s)."
            ) from None
        except (KeyError, IndexError, TypeError, ValueError):
            raise RLFoundryError(
                f"{self.label} {self.url} sent a reply without choices[0].message.content; "
                "point it at an OpenAI-compatible /v1/chat/completions server."
            ) from None
