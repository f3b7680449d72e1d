"""What every benchmark script shares: the RESULTS.md section writer and the machine line."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from rlfoundry.runtime.config import atomic_write_text


def write_marked_section(path: str | os.PathLike, name: str, section: str) -> None:
    """Put ``section`` in the Markdown file ``path`` in place of the text from
    ``<!-- name -->`` to ``<!-- /name -->`` (``section`` carries both markers), or append
    it. Re-reads the file right before writing, since other writers own other sections
    (benchmarks/RESULTS.md), and writes atomically."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    section = section.strip("\n")
    if start not in section or end not in section:
        raise ValueError(f"section for {name!r} must contain the markers {start} and {end}")
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    i = text.find(start)
    j = text.find(end, i) if i >= 0 else -1
    if j >= 0:
        text = text[:i] + section + text[j + len(end) :]
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n"
    atomic_write_text(path, text)


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"model name\s*:\s*(.+)", text)
        cpu = m.group(1).strip() if m else cpu
        n = text.count("processor\t:")
    except OSError:
        n = 0
    return f"{cpu}, {n} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"
