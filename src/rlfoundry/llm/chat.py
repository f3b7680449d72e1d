"""One client for OpenAI-compatible chat endpoints (vLLM, llama.cpp, Ollama, OpenAI).

    client = ChatClient("http://localhost:8000/v1", model="qwen", max_tokens=16)
    client.ask("Rate this answer ...")                       # -> the reply's text
    client.ask("Review this order ...", system="You are the risk officer ...")

Used by the LLM judge reward (`rewards.HTTPJudge`) and the trading app's order
reviewer (`apps/trading/llm_evaluator.py`). Standard-library HTTP only, so it imports
neither torch nor transformers. Requests are deterministic (temperature 0); the key in
`OPENAI_API_KEY`, when set, is sent as a bearer token. Every failure (no server, an
HTTP error, a reply without `choices[0].message.content`) is one RLFoundryError that
names the endpoint and the fix.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from rlfoundry.errors import RLFoundryError


def chat_url(url: str) -> str:
    """`http://host`, `http://host/v1` or the full URL -> `.../v1/chat/completions`."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


class ChatClient:
    """Requests to one `/v1/chat/completions` endpoint; `label` names it in errors."""

    def __init__(
        self,
        url: str,
        model: str = "default",
        timeout: float = 60.0,
        max_tokens: int = 16,
        label: str = "LLM endpoint",
    ) -> None:
        self.url = chat_url(url)
        self.model, self.timeout, self.max_tokens, self.label = model, timeout, max_tokens, label

    def ask(self, prompt: str, system: str | None = None) -> str:
        """The reply to one user message, after an optional system message."""
        messages = [{"role": "system", "content": system}] if system is not None else []
        return self.chat([*messages, {"role": "user", "content": prompt}])

    def chat(self, messages: list[dict[str, str]]) -> str:
        """The text of the first choice for `messages` (OpenAI's `{role, content}` list)."""
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }
        headers = {"Content-Type": "application/json"}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        req = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                reply = json.loads(resp.read().decode())
            return str(reply["choices"][0]["message"]["content"])
        except urllib.error.HTTPError as err:  # before URLError, its base class
            raise RLFoundryError(
                f"{self.label} {self.url} answered HTTP {err.code} ({err.reason}); check the "
                "URL, the model name and OPENAI_API_KEY."
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise RLFoundryError(
                f"{self.label} {self.url} did not answer ({err}); start the server or fix the URL."
            ) from None
        except (KeyError, IndexError, TypeError, ValueError):
            raise RLFoundryError(
                f"{self.label} {self.url} sent a reply without choices[0].message.content; "
                "point it at an OpenAI-compatible /v1/chat/completions server."
            ) from None
