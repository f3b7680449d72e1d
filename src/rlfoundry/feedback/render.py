"""Prompts, responses and conversations as HTML: markdown and code rendered by
markdown-it-py (CommonMark), code highlighted by Pygments, and the result sanitised
by nh3 (the Python binding of the Rust ``ammonia`` sanitiser) before it reaches a page.

Raw HTML in the text is shown as text (markdown-it's ``html=False``): a response that
*talks about* ``<div>`` or ``<script>`` must look to the annotator exactly as the model
wrote it, not vanish or run. Whatever markdown-it then produces (links, lists, tables,
highlighted code) goes through nh3's allowlist as a second wall: only the tags and
attributes below survive, links keep only http(s)/mailto URLs and get
``rel="noopener noreferrer nofollow"``; every ``on*`` attribute, ``style``,
``<script>``, ``<iframe>``, ``<img>`` and ``<svg>`` are dropped. The page's CSP (no
inline script without the nonce) is a third.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from markupsafe import Markup

TAGS = {
    *("p", "br", "hr", "blockquote", "pre", "code", "span", "div"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "u", "s", "del"),
    *("sub", "sup", "kbd", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"),
}
ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "span": {"class"},
    "div": {"class"},
    "pre": {"class"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    """Pygments HTML for a fenced block with a known language ('' keeps markdown-it's)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    if not lang:
        return ""
    try:
        lexer = get_lexer_by_name(lang)
    except ClassNotFound:
        return ""
    return highlight(code, lexer, HtmlFormatter(nowrap=True))


@lru_cache(maxsize=1)
def _md() -> Any:
    from markdown_it import MarkdownIt

    return (
        MarkdownIt(
            "commonmark", {"html": False, "breaks": True, "linkify": False, "highlight": _highlight}
        )
        .enable("table")
        .enable("strikethrough")
    )


def sanitize(html: str) -> str:
    """Untrusted HTML -> HTML with only the allowed tags, attributes and URL schemes."""
    import nh3

    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


@lru_cache(maxsize=4096)
def markdown(text: str) -> Markup:
    """Markdown (with code blocks) -> sanitised HTML, safe to put in a template."""
    return Markup(sanitize(_md().render(text)))


def code_css() -> str:
    """Pygments' colours for highlighted code, scoped to the rendered text blocks."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="default").get_style_defs(".md pre")
