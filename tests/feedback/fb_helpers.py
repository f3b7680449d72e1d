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


def web_login(client, token: str) -> str:
    """Log ``client`` in with ``token`` (cookie session); returns the page's CSRF token."""
    import re

    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)


def next_task(client, token: str, project_id: int) -> dict:
    r = client.post(f"/api/projects/{project_id}/next", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()


def judge(client, token: str, project_id: int, **payload) -> dict:
    """Take the next item of ``project_id`` and judge it (``payload`` in display terms,
    or a callable of the task giving it)."""
    task = next_task(client, token, project_id)
    r = client.post(
        f"/api/assignments/{task['assignment_id']}/judgment", headers=bearer(token), json=payload
    )
    assert r.status_code == 201, r.text
    return {**task, "judgment_id": r.json()["id"]}
