"""What the headless-Chromium tests share: the browser, a live server, logging in.

Chromium is Debian's (``apt-get install chromium``; ``./run.sh test`` installs it).
Outside CI a test module that calls :func:`need_chromium` skips when it is missing; in CI
(``CI`` set) it must run.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

IN_CI = bool(os.environ.get("CI"))
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Counts the DOM nodes that could run script: <script>, <iframe>, <object>, <embed>, <svg>,
# <img>, an on* attribute, a javascript: URL, a style attribute.
ACTIVE_JS = """root => [...root.querySelectorAll('*')].filter(e =>
    ['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'SVG', 'IMG'].includes(e.tagName.toUpperCase()) ||
    [...e.attributes].some(a => a.name.startsWith('on') || a.name === 'style' ||
        /^\\s*javascript:/i.test(a.value))).length"""


def need_chromium() -> None:
    """Skip the calling test module unless Chromium and Playwright are there (not in CI)."""
    if CHROMIUM is None and not IN_CI:
        pytest.skip(
            "Debian chromium is not installed (apt-get install chromium); CI installs it",
            allow_module_level=True,
        )
    if not IN_CI:
        pytest.importorskip("playwright", reason="needs playwright (pip install -e '.[dev]')")


class ServerThread:
    """uvicorn on an already-bound 127.0.0.1 socket (no port race), in a daemon thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def new_page(browser, dialogs: list):
    """A page in a fresh context (its own cookies) that records any dialog a script opens."""
    page = browser.new_context().new_page()
    page.set_default_timeout(10_000)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page


def login(page, url: str, token: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=token]", token)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == url + "/", page.url
