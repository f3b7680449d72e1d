"""Projects and their items: create and look up projects, parse and validate import
files (JSONL), and insert the parsed items in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback.db import KINDS, Item, Project, Response, read_session, write_session
from rlfoundry.feedback.labels import LabelError, validate_label

# ---------------------------------------------------------------- projects


def create_project(
    engine: Engine,
    name: str,
    kind: str,
    *,
    overlap: int = 2,
    gold_every: int = 10,
    guidelines: str = "",
) -> int:
    if kind not in KINDS:
        raise RLFoundryError(f"Project kind '{kind}' is unknown; use one of {', '.join(KINDS)}.")
    if overlap < 1:
        raise RLFoundryError(
            f"Overlap must be at least 1, got {overlap}; pass --overlap 1 or more."
        )
    if gold_every < 0:
        raise RLFoundryError(f"--gold-every must be 0 (off) or positive, got {gold_every}.")
    with write_session(engine) as s:
        if s.scalar(select(Project.id).where(Project.name == name)) is not None:
            raise RLFoundryError(f"Project '{name}' already exists; pick another name.")
        p = Project(
            name=name, kind=kind, overlap=overlap, gold_every=gold_every, guidelines=guidelines
        )
        s.add(p)
        s.flush()
        return p.id


def get_project(engine: Engine, name: str) -> Project:
    with read_session(engine) as s:
        p = s.scalar(select(Project).where(Project.name == name))
    if p is None:
        raise RLFoundryError(
            f"No project named '{name}'; create it with `rlfoundry feedback create-project` "
            "or import into it with `rlfoundry feedback import FILE --project NAME`."
        )
    return p


def list_projects(engine: Engine) -> list[Project]:
    with read_session(engine) as s:
        return list(s.scalars(select(Project).order_by(Project.id)))


def project_by_id(engine: Engine, project_id: int) -> Project | None:
    with read_session(engine) as s:
        return s.get(Project, project_id)


# ---------------------------------------------------------------- items: parse and import


MAX_ERRORS_SHOWN = 10


@dataclass
class ParsedItem:
    line: int
    external_id: str
    prompt: str
    responses: list[str]
    models: list[str | None]
    gold: Any = None
    is_gold: bool = False
    messages: list[dict[str, str]] | None = None


MAX_ROLE = 32


def parse_messages(raw: Any) -> list[dict[str, str]]:
    """A ``messages`` field: a non-empty list of ``{role, content}`` with string values."""
    if not isinstance(raw, list) or not raw:
        raise ValueError('"messages" must be a non-empty list of {"role", "content"}')
    out = []
    for k, m in enumerate(raw):
        if not isinstance(m, dict):
            raise ValueError(f'messages[{k}] must be an object {{"role", "content"}}')
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not 0 < len(role) <= MAX_ROLE:
            raise ValueError(f"messages[{k}].role must be a string of 1-{MAX_ROLE} characters")
        if not isinstance(content, str):
            raise ValueError(f"messages[{k}].content must be a string")
        out.append({"role": role, "content": content})
    return out


def messages_text(messages: list[dict[str, str]]) -> str:
    """The plain-text ``prompt`` stored beside a conversation (what the CLI shows)."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _parse_line(line: str, kind: str | None) -> ParsedItem:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object {id, prompt, responses}")
    ext = obj.get("id")
    if isinstance(ext, bool) or not isinstance(ext, (str, int)) or str(ext).strip() == "":
        raise ValueError('"id" must be a non-empty string or integer')
    messages = None
    if obj.get("messages") is not None:
        if obj.get("prompt") is not None:
            raise ValueError('give "prompt" or "messages", not both')
        messages = parse_messages(obj["messages"])
        prompt = messages_text(messages)
    else:
        prompt = obj.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError('"prompt" must be a non-empty string (or give "messages")')
    raw = obj.get("responses")
    if not isinstance(raw, list) or not raw:
        raise ValueError('"responses" must be a non-empty list')
    texts, models = [], []
    for r in raw:
        if isinstance(r, str):
            texts.append(r)
            models.append(None)
        elif isinstance(r, dict) and isinstance(r.get("text"), str):
            texts.append(r["text"])
            model = r.get("model")
            models.append(None if model is None else str(model))
        else:
            raise ValueError('each response must be a string or {"text": ..., "model": ...}')
    if len(texts) > 26:
        raise ValueError(f"{len(texts)} responses; at most 26 per item")
    if kind == "compare" and len(texts) != 2:
        raise ValueError(f"a compare project needs exactly 2 responses, got {len(texts)}")
    if kind == "rank" and len(texts) < 2:
        raise ValueError("a rank project needs at least 2 responses")
    if kind == "rewrite" and len(texts) > 2:
        raise ValueError(f"a rewrite project needs 1 or 2 responses, got {len(texts)}")
    item = ParsedItem(0, str(ext), prompt, texts, models, messages=messages)
    if "gold" in obj and obj["gold"] is not None:
        if kind == "rewrite":
            raise ValueError("a rewrite project takes no gold items")
        if kind is None:
            raise ValueError('"gold" needs the project kind; pass --kind')
        try:
            validate_label(kind, len(texts), obj["gold"])
        except LabelError as err:
            raise ValueError(str(err)) from None
        item.gold, item.is_gold = obj["gold"], True
    return item


def infer_kind(path: str | Path) -> str:
    """compare when every line has 2 responses, else rank (used for new projects)."""
    sizes = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            sizes.add(len(json.loads(line).get("responses") or []))
        except (json.JSONDecodeError, AttributeError):
            continue
    return "compare" if sizes == {2} else "rank"


def parse_jsonl(path: str | Path, kind: str | None) -> list[ParsedItem]:
    """Parse and validate a whole import file; raise one error listing every bad line."""
    path = Path(path)
    if not path.is_file():
        raise RLFoundryError(f"Import file '{path}' does not exist; check the path.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RLFoundryError(
            f"Import file '{path}' is not UTF-8 text; re-save it as UTF-8."
        ) from None
    return parse_text(text, kind, path)


def parse_text(text: str, kind: str | None, path: str | Path) -> list[ParsedItem]:
    """:func:`parse_jsonl` of text already read (``path`` names it in errors)."""
    path = Path(path)
    items: list[ParsedItem] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = _parse_line(line, kind)
        except ValueError as err:
            errors.append(f"line {lineno}: {err}")
            continue
        item.line = lineno
        if item.external_id in first_line:
            errors.append(
                f"line {lineno}: id '{item.external_id}' repeats line {first_line[item.external_id]}"
            )
            continue
        first_line[item.external_id] = lineno
        items.append(item)
    if errors:
        raise_bad_lines(path, errors)
    if not items:
        raise RLFoundryError(
            f"Import file '{path}' has no items; add {{id, prompt, responses}} lines."
        )
    return items


def raise_bad_lines(path: Path, errors: list[str]) -> None:
    shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
    more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
    raise RLFoundryError(
        f"{path}: {len(errors)} malformed line(s), nothing was imported: {shown}{more}; "
        "fix these lines and import the file again."
    )


def import_items(engine: Engine, project_name: str, items: list[ParsedItem], source: Path) -> int:
    """Insert parsed items in one transaction: all of them, or none."""
    with write_session(engine) as s:
        project = s.scalar(select(Project).where(Project.name == project_name))
        if project is None:
            raise RLFoundryError(f"No project named '{project_name}'; create it first.")
        existing = set(
            s.scalars(
                select(Item.external_id).where(
                    Item.project_id == project.id,
                    Item.external_id.in_([it.external_id for it in items]),
                )
            )
        )
        errors = [
            f"line {it.line}: id '{it.external_id}' is already in project '{project_name}'"
            for it in items
            if it.external_id in existing
        ]
        errors += [
            f"line {it.line}: {len(it.responses)} responses do not fit a {project.kind} project"
            for it in items
            if (project.kind == "compare" and len(it.responses) != 2)
            or (project.kind == "rank" and len(it.responses) < 2)
            or (project.kind == "rewrite" and len(it.responses) > 2)
        ]
        for it in items:
            if it.is_gold:
                try:
                    validate_label(project.kind, len(it.responses), it.gold)
                except LabelError as err:
                    errors.append(f"line {it.line}: {err}")
        if errors:
            raise_bad_lines(source, errors)
        rows = [
            Item(
                project_id=project.id,
                external_id=it.external_id,
                prompt=it.prompt,
                n_responses=len(it.responses),
                is_gold=it.is_gold,
                gold_json=json.dumps(it.gold) if it.is_gold else None,
                messages_json=None if it.messages is None else json.dumps(it.messages),
            )
            for it in items
        ]
        s.add_all(rows)
        s.flush()  # one batched INSERT ... RETURNING for the ids
        s.add_all(
            Response(item_id=row.id, idx=k, text=t, model=m)
            for row, it in zip(rows, items)
            for k, (t, m) in enumerate(zip(it.responses, it.models))
        )
    return len(items)
