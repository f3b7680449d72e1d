"""Markdown, code and multi-turn items: rendered (markdown-it-py, Pygments), sanitised
(nh3), and a stored-XSS attempt of each kind shown inert in a real browser."""

from __future__ import annotations

import pytest
from fb_browser import ACTIVE_JS, ServerThread, launch, login, need_chromium, new_page
from fb_helpers import bearer, load, next_task

from rlfoundry.feedback.accounts import add_annotator
from rlfoundry.feedback.render import markdown, sanitize

MD_PROMPT = (
    "**bold** <img src=x onerror=alert('md1')> [click](javascript:alert('md2')) "
    '<a href="javascript:alert(3)">a</a>'
)
MD_RESPONSES = [
    "# Title\n\n<iframe src=javascript:alert(4)></iframe>\n\n- item <svg onload=alert(5)>",
    "[ok](https://example.com) <b onmouseover=alert(6)>x</b>\n\n| a | b |\n|---|---|\n| 1 | 2 |",
]
CODE_PROMPT = "Use `<script>alert(9)</script>` inline"
CODE_RESPONSES = [
    "```python\nprint('</code></pre><script>alert(7)</script>')\n```",
    "```html\n<img src=x onerror=alert(8)>\n```\n\n    indented <script>alert(13)</script>",
]
MESSAGES = [
    {"role": "system", "content": "<script>alert(10)</script>"},
    {"role": "user", "content": "hi **there**"},
    {"role": "assistant", "content": "<img src=x onerror=alert(11)> hello"},
    {"role": "<img src=x onerror=alert(12)>", "content": "odd role"},
    {"role": "user", "content": "and now?"},
]


def test_markdown_and_code_are_rendered_and_sanitised():
    html = str(markdown("**b** *i* `x<y`\n\n```python\ndef f(): pass\n```"))
    assert "<strong>b</strong>" in html and "<em>i</em>" in html and "<code>x&lt;y</code>" in html
    assert '<span class="k">def</span>' in html  # Pygments highlighted the fenced block
    html = str(markdown(MD_PROMPT + "\n\n" + MD_RESPONSES[0]))
    assert "<img" not in html and "<iframe" not in html and "<svg" not in html
    assert "<a " not in html  # javascript: URLs stay text, never a link
    # line breaks are kept, raw HTML is shown as text
    assert str(markdown("a\nb")) == "<p>a<br>\nb</p>\n"
    assert "&lt;script&gt;" in str(markdown("<script>alert(1)</script>"))
    # the sanitiser on its own (the second wall): allowlist, URL schemes, rel
    clean = sanitize(
        '<a href="javascript:x" onclick="y">l</a><script>z</script><b style="x">b</b>'
        '<a href="https://e.com">e</a>'
    )
    assert clean == (
        '<a rel="noopener noreferrer nofollow">l</a><b>b</b>'
        '<a href="https://e.com" rel="noopener noreferrer nofollow">e</a>'
    )


need_chromium()


@pytest.fixture
def items(engine, tmp_path):
    load(
        engine,
        tmp_path,
        "md",
        "compare",
        [{"id": "m", "prompt": MD_PROMPT, "responses": MD_RESPONSES}],
        overlap=1,
        gold_every=0,
    )
    load(
        engine,
        tmp_path,
        "code",
        "compare",
        [{"id": "c", "prompt": CODE_PROMPT, "responses": CODE_RESPONSES}],
        overlap=1,
        gold_every=0,
    )
    load(
        engine,
        tmp_path,
        "chat",
        "compare",
        [{"id": "t", "messages": MESSAGES, "responses": ["<script>alert(14)</script>", "**ok**"]}],
        overlap=1,
        gold_every=0,
    )
    return {"ann": add_annotator(engine, "ann"), "rev": add_annotator(engine, "rev", reviewer=True)}


def test_stored_xss_of_each_kind_is_inert_in_the_browser(engine, client, items):
    from playwright.sync_api import sync_playwright

    from rlfoundry.feedback.app import create_app

    # the API hands the conversation back as data
    task = next_task(client, items["ann"], 3)
    assert task["messages"] == MESSAGES
    client.post(
        f"/api/assignments/{task['assignment_id']}/flag",
        headers=bearer(items["ann"]),
        json={"reason": "<svg onload=alert(15)>"},
    )
    dialogs: list[str] = []
    with ServerThread(create_app(engine)) as srv, sync_playwright() as pw:
        browser = launch(pw)
        page = new_page(browser, dialogs)
        login(page, srv.url, items["ann"])
        # markdown
        page.goto(srv.url + "/p/1")
        main = page.locator("main")
        assert main.evaluate(ACTIVE_JS) == 0
        assert page.locator("#prompt strong").inner_text() == "bold"
        assert "<img src=x onerror=alert('md1')>" in page.inner_text("#prompt")
        assert "[click](javascript:alert('md2'))" in page.inner_text("#prompt")
        assert page.locator(".resp h1").inner_text() == "Title"
        assert page.locator(".resp table td").count() == 2
        link = page.locator(".resp a", has_text="ok")
        assert link.get_attribute("href") == "https://example.com"
        assert "noopener" in link.get_attribute("rel")
        assert "<iframe src=javascript:alert(4)></iframe>" in page.inner_text("main")
        # code
        page.goto(srv.url + "/p/2")
        assert main.evaluate(ACTIVE_JS) == 0
        assert page.locator("#prompt code").inner_text() == "<script>alert(9)</script>"
        code = page.locator(".resp pre code.language-python")
        assert "print('</code></pre><script>alert(7)</script>')" in code.inner_text()
        assert code.locator("span").count() > 2  # highlighted
        pre = page.locator(".resp pre").all_inner_texts()  # responses come in random order
        assert any("<img src=x onerror=alert(8)>" in t for t in pre)
        assert any("indented <script>alert(13)</script>" in t for t in pre)
        # multi-turn: ann flagged hers, a reviewer sees the conversation in the queue
        page2 = new_page(browser, dialogs)
        login(page2, srv.url, items["rev"])
        page2.goto(srv.url + "/review/p/3")
        assert "<svg onload=alert(15)>" in page2.inner_text("#queue")
        with page2.expect_navigation():
            page2.click("#queue a")
        turns = page2.locator("#prompt .turn")
        assert turns.count() == 5
        assert [turns.nth(k).locator(".label").inner_text() for k in range(5)] == [
            "system",
            "user",
            "assistant",
            "<img src=x onerror=alert(12)>",
            "user",
        ]  # CSS may upper-case labels: compare the DOM text
        assert turns.nth(1).locator("strong").inner_text() == "there"
        assert "<script>alert(10)</script>" in turns.nth(0).inner_text()
        assert page2.locator("main").evaluate(ACTIVE_JS) == 0
        browser.close()
    assert dialogs == []
