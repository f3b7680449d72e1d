"""Helpers of the feedback tests (a unique module name: tests/*/conftest.py may collide)."""

from __future__ import annotations

import json
from pathlib import Path

from rlfoundry.feedback.projects import create_project, import_items, parse_jsonl


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def load(engine, tmp_path: Path, name: str, kind: str, rows: list, **project) -> None:
    """Create project ``name`` and import ``rows`` ({id, prompt, responses, gold?})."""
    create_project(engine, name, kind, **project)
    src = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    import_items(engine, name, parse_jsonl(src, kind), src)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
