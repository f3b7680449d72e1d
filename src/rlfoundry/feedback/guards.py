"""What stands in front of the app: security headers, the request body limit and the
limit on failed token attempts. No database, no FastAPI: pure ASGI and pure Python.

The two middlewares are plain ASGI rather than ``@app.middleware("http")`` because
that one (Starlette's ``BaseHTTPMiddleware``) sits inside ``ServerErrorMiddleware``: a
500 would leave without headers, and it only runs once routing has begun.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[..., Any]

DEFAULT_MAX_BODY = 1_000_000  # bytes; a judgment with a 5000-character reason is ~20 kB
DEFAULT_LOGIN_LIMIT = 10  # failed token attempts per client per LOGIN_WINDOW
LOGIN_WINDOW = 60.0  # seconds


def csp(nonce: str) -> str:
    """The Content-Security-Policy: only this response's nonce runs a script or style."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def security_headers(nonce: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", csp(nonce).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    ]


async def send_json(send: Any, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Adds the headers of :func:`security_headers` to every HTTP response, including
    error pages, and turns an unhandled exception into a 500 that carries them too.

    The per-request CSP nonce is put in ``scope["state"]["nonce"]``, where templates
    read it as ``request.state.nonce``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["nonce"] = nonce
        extra = security_headers(nonce)
        names = {name for name, _ in extra}
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + extra}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:  # Starlette's own 500 would be sent outside this middleware
                await send_json(send_with_headers, 500, "Internal server error.")
            raise  # still logged by the server


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413, before routing, auth or parsing.

    A declared ``Content-Length`` over the limit is answered at once, without reading
    a byte of the body. Otherwise (chunked uploads, or a client that sends more than it
    declared) the bytes are counted as the app reads them; at the limit the 413 is sent
    and the app is told the client went away, so it never holds more than the limit.
    The 413 does not close the connection: uvicorn drops body data that arrives after
    the response, and a client that writes its whole body before reading (httpx and
    requests do) still reads the 413 and its sentence instead of a broken pipe.
    ``max_bytes=None`` turns the limit off.
    """

    def __init__(self, app: ASGIApp, max_bytes: int | None = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return (
            f"The request body is over the server's limit of {self.max_bytes} bytes; "
            "send less (the limit is `rlfoundry feedback serve --max-body-size`)."
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        limit = self.max_bytes
        if scope["type"] != "http" or limit is None:
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            declared = value.strip() if name.lower() == b"content-length" else b""
            if declared.isdigit() and int(declared) > limit:
                return await send_json(send, 413, self._too_large())
        received = 0
        started = refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await send_json(send, 413, self._too_large())
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # our 413 went out; whatever the app answers to "disconnect" is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class FailureLimiter:
    """At most ``limit`` failed attempts per client in any ``window`` seconds.

    A sliding window of failure times per client key (the IP address). Successes do not
    reset it, so one valid token cannot be used to keep guessing others. ``limit=0``
    turns it off. Thread-safe: the app checks tokens in worker threads.
    """

    def __init__(
        self,
        limit: int = DEFAULT_LOGIN_LIMIT,
        window: float = LOGIN_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.limit, self.window, self.clock, self.max_clients = limit, window, clock, max_clients
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._fails.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._fails[key]
            return None
        return times

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or ``None`` if it may now."""
        if self.limit <= 0:
            return None
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            if times is None or len(times) < self.limit:
                return None
            return max(1, math.ceil(times[-self.limit] + self.window - now))

    def fail(self, key: str) -> None:
        if self.limit <= 0:
            return
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            if times is None:
                if len(self._fails) >= self.max_clients:
                    self._prune(now)
                times = self._fails[key] = deque(maxlen=self.limit)
            times.append(now)

    def _prune(self, now: float) -> None:
        """Forget expired clients; if the table is still full, the oldest entries."""
        for key in list(self._fails):
            self._recent(key, now)
        while len(self._fails) >= self.max_clients:
            del self._fails[next(iter(self._fails))]
