"""Database operations behind the CLI and the web app: projects, import, annotators
and their tokens and memberships, login sessions, judgments, progress, agreement
statistics and export loading.

Each public function opens its own transaction; writes use ``write_session`` so that
on SQLite they are serialized (see ``db.make_engine``).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback import agreement
from rlfoundry.feedback.assign import expected_gold, release_open
from rlfoundry.feedback.db import (
    KINDS,
    Annotator,
    Assignment,
    Item,
    Judgment,
    LoginSession,
    Membership,
    Project,
    Response,
    annotator_for_token,
    hash_secret,
    new_secret,
    read_session,
    utcnow,
    write_session,
)
from rlfoundry.feedback.export import ItemJudgments
from rlfoundry.feedback.labels import (
    LabelError,
    agreement_units,
    check_reason,
    from_display,
    gold_match,
    letter,
    to_display,
    validate_label,
)

SESSION_TTL = timedelta(hours=12)
MAX_ERRORS_SHOWN = 10


class NotFound(RLFoundryError):
    """Not there, or not the caller's (the app answers 404 either way)."""


class Conflict(RLFoundryError):
    """Already judged (the app answers 409)."""


# ---------------------------------------------------------------- projects and items


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


@dataclass
class ParsedItem:
    line: int
    external_id: str
    prompt: str
    responses: list[str]
    models: list[str | None]
    gold: Any = None
    is_gold: bool = False


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
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError('"prompt" must be a non-empty string')
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
    item = ParsedItem(0, str(ext), prompt, texts, models)
    if "gold" in obj and obj["gold"] is not None:
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


# ---------------------------------------------------------------- annotators and sessions


def add_annotator(
    engine: Engine, name: str, *, admin: bool = False, projects: list[str] | None = None
) -> str:
    """Create an annotator and return its token (shown once; only its hash is stored).

    ``projects``: the projects they become a member of; ``None`` means every project
    that exists now (a project created later gets members with :func:`add_members`).
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise RLFoundryError("Annotator name must be 1-200 characters; pass a short name.")
    token = new_secret()
    with write_session(engine) as s:
        if s.scalar(select(Annotator.id).where(Annotator.name == name)) is not None:
            raise RLFoundryError(f"Annotator '{name}' already exists; choose another name.")
        if projects is None:
            project_ids = list(s.scalars(select(Project.id)))
        else:
            project_ids = list(dict.fromkeys(_project_id(s, p) for p in projects))
        ann = Annotator(name=name, token_hash=hash_secret(token), is_admin=admin)
        s.add(ann)
        s.flush()
        s.add_all(Membership(project_id=p, annotator_id=ann.id) for p in project_ids)
    return token


def _project_id(s: Any, name: str) -> int:
    pid = s.scalar(select(Project.id).where(Project.name == name))
    if pid is None:
        raise RLFoundryError(
            f"No project named '{name}'; create it first (`rlfoundry feedback create-project`)."
        )
    return pid


def _annotator(s: Any, name: str) -> Annotator:
    ann = s.scalar(select(Annotator).where(Annotator.name == name))
    if ann is None:
        raise RLFoundryError(
            f"No annotator named '{name}'; `rlfoundry feedback annotators` lists them."
        )
    return ann


def _end_sessions(s: Any, annotator_id: int) -> None:
    s.execute(delete(LoginSession).where(LoginSession.annotator_id == annotator_id))


def rotate_token(engine: Engine, name: str) -> str:
    """Give ``name`` a new token (returned, shown once); the old one and every browser
    session opened with it stop working at once."""
    token = new_secret()
    with write_session(engine) as s:
        ann = _annotator(s, name)
        ann.token_hash, ann.token_revoked_at = hash_secret(token), None
        _end_sessions(s, ann.id)
    return token


def revoke_token(engine: Engine, name: str) -> None:
    """Invalidate ``name``'s token and sessions; `rotate_token` issues a new one."""
    with write_session(engine) as s:
        ann = _annotator(s, name)
        # The hash of a secret nobody is told: no token matches it, the column stays unique.
        ann.token_hash, ann.token_revoked_at = hash_secret(new_secret()), utcnow()
        _end_sessions(s, ann.id)


def set_disabled(engine: Engine, name: str, disabled: bool) -> int:
    """Disable (or enable again) an annotator; returns the open assignments released.

    A disabled annotator's token and sessions are refused from the next request on;
    their judgments stay, and their open assignments go back to the pool.
    """
    with write_session(engine) as s:
        ann = _annotator(s, name)
        if not disabled:
            ann.disabled_at = None
            return 0
        ann.disabled_at = ann.disabled_at or utcnow()
        _end_sessions(s, ann.id)
        return release_open(s, ann.id)


def add_members(engine: Engine, project: str, names: list[str]) -> list[str]:
    """Make annotators members of ``project``; returns those who were not already."""
    with write_session(engine) as s:
        pid = _project_id(s, project)
        ids = {n: _annotator(s, n).id for n in names}
        have = set(s.scalars(select(Membership.annotator_id).where(Membership.project_id == pid)))
        added = [n for n, i in ids.items() if i not in have]
        s.add_all(Membership(project_id=pid, annotator_id=ids[n]) for n in added)
    return added


def remove_members(engine: Engine, project: str, names: list[str]) -> list[str]:
    """End membership of ``project`` (their judgments stay, open assignments are released);
    returns those who were members."""
    with write_session(engine) as s:
        pid = _project_id(s, project)
        removed = []
        for n in names:
            aid = _annotator(s, n).id
            res = s.execute(
                delete(Membership).where(
                    Membership.project_id == pid, Membership.annotator_id == aid
                )
            )
            if res.rowcount:
                removed.append(n)
                release_open(s, aid, pid)
    return removed


def list_annotators(engine: Engine) -> list[dict[str, Any]]:
    """Name, role, status, projects and judgment count of every annotator."""
    with read_session(engine) as s:
        anns = list(s.scalars(select(Annotator).order_by(Annotator.id)))
        projects: dict[int, list[str]] = defaultdict(list)
        for aid, pname in s.execute(
            select(Membership.annotator_id, Project.name)
            .join(Project, Project.id == Membership.project_id)
            .order_by(Project.id)
        ):
            projects[aid].append(pname)
        done = dict(
            s.execute(
                select(Judgment.annotator_id, func.count(Judgment.id)).group_by(
                    Judgment.annotator_id
                )
            ).all()
        )
    return [
        {
            "name": a.name,
            "admin": a.is_admin,
            "status": "disabled"
            if a.disabled_at
            else "token revoked"
            if a.token_revoked_at
            else "active",
            "projects": projects[a.id],
            "judgments": done.get(a.id, 0),
        }
        for a in anns
    ]


@dataclass(frozen=True)
class Who:
    id: int
    name: str
    is_admin: bool
    csrf: str | None = None  # set for cookie logins; Bearer requests carry no ambient credential


def who_for_token(engine: Engine, token: str) -> Who | None:
    with read_session(engine) as s:
        ann = annotator_for_token(s, token)
        return None if ann is None else Who(ann.id, ann.name, ann.is_admin)


def login(engine: Engine, token: str) -> tuple[str, Who] | None:
    """Open a browser session for a valid token: returns (session key, who)."""
    with write_session(engine) as s:
        ann = annotator_for_token(s, token)
        if ann is None:
            return None
        key, csrf = new_secret(), new_secret()
        s.execute(delete(LoginSession).where(LoginSession.expires_at < utcnow()))
        s.add(
            LoginSession(
                key_hash=hash_secret(key),
                annotator_id=ann.id,
                csrf=csrf,
                expires_at=utcnow() + SESSION_TTL,
            )
        )
        return key, Who(ann.id, ann.name, ann.is_admin, csrf)


def who_for_session(engine: Engine, key: str) -> Who | None:
    if not key or len(key) > 200:
        return None
    with read_session(engine) as s:
        row = s.execute(
            select(LoginSession, Annotator)
            .join(Annotator, Annotator.id == LoginSession.annotator_id)
            .where(
                LoginSession.key_hash == hash_secret(key),
                LoginSession.expires_at > utcnow(),
                Annotator.disabled_at.is_(None),
            )
        ).first()
    if row is None:
        return None
    sess, ann = row
    return Who(ann.id, ann.name, ann.is_admin, sess.csrf)


def logout(engine: Engine, key: str) -> None:
    with write_session(engine) as s:
        s.execute(delete(LoginSession).where(LoginSession.key_hash == hash_secret(key)))


# ---------------------------------------------------------------- judgments


def _active_ms(value: Any) -> int | None:
    try:
        ms = int(value)
    except (TypeError, ValueError):
        return None
    return ms if 0 <= ms <= 86_400_000 else None


def _is_member(who: Who):
    """Join condition: the caller's membership of the row's project."""
    return (Membership.project_id == Project.id) & (Membership.annotator_id == who.id)


def submit(
    engine: Engine,
    who: Who,
    assignment_id: int,
    payload: dict[str, Any],
) -> Judgment:
    """Record the judgment of an annotator's own open assignment.

    Raises NotFound for an assignment that is not theirs (or was reclaimed after its
    lease, or of a project they are no longer a member of), Conflict when it is already
    judged, LabelError for an invalid label or an overlong reason.
    """
    with write_session(engine) as s:
        row = s.execute(
            select(Assignment, Project)
            .join(Project, Project.id == Assignment.project_id)
            .join(Membership, _is_member(who))
            .where(Assignment.id == assignment_id, Assignment.annotator_id == who.id)
        ).first()
        if row is None:
            raise NotFound(
                "This assignment is not yours or has expired; load the next item instead."
            )
        a, project = row
        if a.done_at is not None:
            raise Conflict("This item is already judged; edit the judgment instead.")
        label = from_display(project.kind, a.order, payload)
        reason = check_reason(payload.get("reason"))
        now = utcnow()
        j = Judgment(
            assignment_id=a.id,
            project_id=a.project_id,
            item_id=a.item_id,
            annotator_id=who.id,
            label_json=json.dumps(label),
            reason=reason,
            active_ms=_active_ms(payload.get("active_ms")),
            wall_ms=int((now - a.assigned_at).total_seconds() * 1000),
            created_at=now,
            updated_at=now,
        )
        a.done_at = now
        s.add(j)
        try:
            s.flush()
        except IntegrityError:
            raise Conflict("This item is already judged; edit the judgment instead.") from None
        return j


def _judgment_view(j: Judgment, a: Assignment, kind: str, item: Item, project: str) -> dict:
    return {
        "id": j.id,
        "assignment_id": j.assignment_id,
        "project": project,
        "item": item.external_id,
        "kind": kind,
        **to_display(kind, a.order, j.label),
        "reason": j.reason,
        "active_ms": j.active_ms,
        "wall_ms": j.wall_ms,
        "created_at": j.created_at.isoformat() + "Z",
        "updated_at": j.updated_at.isoformat() + "Z",
    }


def _own_query(who: Who):
    return (
        select(Judgment, Assignment, Project.kind, Item, Project.name)
        .join(Assignment, Assignment.id == Judgment.assignment_id)
        .join(Project, Project.id == Judgment.project_id)
        .join(Item, Item.id == Judgment.item_id)
        .where(Judgment.annotator_id == who.id)
    )


def own_judgments(engine: Engine, who: Who) -> list[dict]:
    """Only the caller's judgments, labels in the order the caller saw."""
    with read_session(engine) as s:
        rows = s.execute(_own_query(who).order_by(Judgment.id)).all()
        return [_judgment_view(*r) for r in rows]


def own_judgment(engine: Engine, who: Who, judgment_id: int) -> dict:
    with read_session(engine) as s:
        row = s.execute(_own_query(who).where(Judgment.id == judgment_id)).first()
        if row is None:
            raise NotFound("No such judgment of yours.")
        return _judgment_view(*row)


def update_judgment(engine: Engine, who: Who, judgment_id: int, payload: dict) -> dict:
    """Change one's own judgment in a project one is a member of (another annotator's
    is reported as not found)."""
    with write_session(engine) as s:
        row = s.execute(
            _own_query(who).join(Membership, _is_member(who)).where(Judgment.id == judgment_id)
        ).first()
        if row is None:
            raise NotFound("No such judgment of yours in a project you are a member of.")
        j, a, kind, item, project = row
        j.label_json = json.dumps(from_display(kind, a.order, payload))
        if "reason" in payload:
            j.reason = check_reason(payload.get("reason"))
        j.updated_at = utcnow()
        s.flush()
        return _judgment_view(j, a, kind, item, project)


# ---------------------------------------------------------------- progress and stats


def _progress(s: Any, p: Project, annotator_id: int, project_wide: bool) -> dict[str, int]:
    held, done = s.execute(
        select(func.count(Assignment.id), func.count(Assignment.done_at)).where(
            Assignment.project_id == p.id, Assignment.annotator_id == annotator_id
        )
    ).one()  # an assignment is done exactly when it has its judgment
    mine = select(Assignment.item_id).where(
        Assignment.project_id == p.id, Assignment.annotator_id == annotator_id
    )
    available = s.scalar(
        select(func.count(Item.id)).where(
            Item.project_id == p.id,
            Item.is_gold.is_(False),
            Item.n_assigned < p.overlap,
            Item.id.not_in(mine),
        )
    )
    gold_left = s.scalar(
        select(func.count(Item.id)).where(
            Item.project_id == p.id, Item.is_gold.is_(True), Item.id.not_in(mine)
        )
    )
    out = {
        "done": done,
        "total": held + available + expected_gold(held, available, gold_left, p.gold_every),
    }
    if project_wide:
        n_regular = s.scalar(
            select(func.count(Item.id)).where(Item.project_id == p.id, Item.is_gold.is_(False))
        )
        n_judged = s.scalar(
            select(func.count(Judgment.id))
            .join(Item, Item.id == Judgment.item_id)
            .where(Judgment.project_id == p.id, Item.is_gold.is_(False))
        )
        out.update(project_judgments=n_judged, project_target=n_regular * p.overlap)
    return out


def progress(
    engine: Engine, project_id: int, annotator_id: int, *, project_wide: bool = False
) -> dict[str, int]:
    """``done`` by this annotator and ``total`` = done + what they can still be given
    (gold items included, as they will be mixed in). ``project_wide`` adds the project's
    judgments of regular items and its target (items x overlap)."""
    with read_session(engine) as s:
        return _progress(s, s.get(Project, project_id), annotator_id, project_wide)


def project_by_id(engine: Engine, project_id: int) -> Project | None:
    with read_session(engine) as s:
        return s.get(Project, project_id)


def member_projects(engine: Engine, who: Who) -> list[Project]:
    """The projects ``who`` is a member of, in creation order."""
    with read_session(engine) as s:
        return list(
            s.scalars(
                select(Project)
                .join(Membership, Membership.project_id == Project.id)
                .where(Membership.annotator_id == who.id)
                .order_by(Project.id)
            )
        )


def member_project(engine: Engine, who: Who, project_id: int) -> Project | None:
    """Project ``project_id`` if ``who`` is a member of it (else ``None``, as if absent)."""
    with read_session(engine) as s:
        return s.scalar(
            select(Project)
            .join(Membership, Membership.project_id == Project.id)
            .where(Project.id == project_id, Membership.annotator_id == who.id)
        )


def task_view(engine: Engine, project: Project, annotator_id: int, assignment_id: int | None):
    """Progress, and (for an open assignment) what the annotator is shown: prompt and
    responses in the assignment's order, never the models. One read transaction."""
    with read_session(engine) as s:
        out: dict[str, Any] = {"progress": _progress(s, project, annotator_id, False)}
        if assignment_id is None:
            return out
        order_json, prompt = s.execute(
            select(Assignment.order_json, Item.prompt)
            .join(Item, Item.id == Assignment.item_id)
            .where(Assignment.id == assignment_id)
        ).one()
        texts = dict(
            s.execute(
                select(Response.idx, Response.text)
                .join(Assignment, Assignment.item_id == Response.item_id)
                .where(Assignment.id == assignment_id)
            ).all()
        )
    order = json.loads(order_json)
    out.update(
        assignment_id=assignment_id,
        project_id=project.id,
        kind=project.kind,
        prompt=prompt,
        responses=[{"letter": letter(pos), "text": texts[idx]} for pos, idx in enumerate(order)],
    )
    return out


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 1) if xs else None


def project_stats(engine: Engine, project_name: str) -> dict[str, Any]:
    """Agreement (regular items only), gold accuracy, time and progress per annotator."""
    project = get_project(engine, project_name)
    with read_session(engine) as s:
        rows = s.execute(
            select(Judgment, Item, Annotator.name)
            .join(Item, Item.id == Judgment.item_id)
            .join(Annotator, Annotator.id == Judgment.annotator_id)
            .where(Judgment.project_id == project.id)
        ).all()
        n_items = s.scalar(
            select(func.count(Item.id)).where(
                Item.project_id == project.id, Item.is_gold.is_(False)
            )
        )
        n_gold = s.scalar(
            select(func.count(Item.id)).where(Item.project_id == project.id, Item.is_gold.is_(True))
        )
    table: dict[Any, dict[str, Any]] = defaultdict(dict)
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"done": 0, "gold_seen": 0, "gold_passed": 0, "active_s": [], "wall_s": []}
    )
    per_item: dict[int, int] = defaultdict(int)
    for j, item, name in rows:
        st = per[name]
        st["done"] += 1
        st["wall_s"].append(j.wall_ms / 1000)
        if j.active_ms is not None:
            st["active_s"].append(j.active_ms / 1000)
        if item.is_gold:
            st["gold_seen"] += 1
            st["gold_passed"] += gold_match(project.kind, j.label, item.gold)
            continue
        per_item[item.id] += 1
        for unit, value in agreement_units(project.kind, j.label).items():
            table[(item.id, *unit)][name] = value
    level = "ordinal" if project.kind == "rate" else "nominal"
    summary = agreement.summarize(table, level)
    annotators = {}
    for name, st in sorted(per.items()):
        annotators[name] = {
            "done": st["done"],
            "gold_accuracy": round(st["gold_passed"] / st["gold_seen"], 4)
            if st["gold_seen"]
            else None,
            "gold_seen": st["gold_seen"],
            "median_active_s": _median(st["active_s"]),
            "median_wall_s": _median(st["wall_s"]),
            "vs_majority": summary["vs_majority"].get(name, {"agreement": None, "n": 0}),
        }
    complete = sum(1 for n in per_item.values() if n >= project.overlap)
    return {
        "project": project.name,
        "kind": project.kind,
        "overlap": project.overlap,
        "items": n_items or 0,
        "gold_items": n_gold or 0,
        "items_complete": complete,
        "judgments": len(rows),
        "agreement": {k: v for k, v in summary.items() if k != "vs_majority"},
        "annotators": annotators,
    }


def items_for_export(engine: Engine, project_name: str) -> list[ItemJudgments]:
    project = get_project(engine, project_name)
    with read_session(engine) as s:
        items = list(s.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.id)))
        responses: dict[int, list[str]] = defaultdict(list)
        for r in s.scalars(
            select(Response)
            .join(Item, Item.id == Response.item_id)
            .where(Item.project_id == project.id)
            .order_by(Response.item_id, Response.idx)
        ):
            responses[r.item_id].append(r.text)
        judged: dict[int, list[tuple[str, Any]]] = defaultdict(list)
        for j, name in s.execute(
            select(Judgment, Annotator.name)
            .join(Annotator, Annotator.id == Judgment.annotator_id)
            .where(Judgment.project_id == project.id)
            .order_by(Judgment.id)
        ):
            judged[j.item_id].append((name, j.label))
    return [
        ItemJudgments(
            item_id=it.external_id,
            prompt=it.prompt,
            responses=responses[it.id],
            kind=project.kind,
            judgments=judged[it.id],
            project=project.name,
            is_gold=it.is_gold,
        )
        for it in items
    ]


def assignment_view(engine: Engine, assignment_id: int) -> dict[str, Any]:
    """What an annotator is shown for one assignment (see :func:`task_view`)."""
    with read_session(engine) as s:
        a = s.get(Assignment, assignment_id)
        project = s.get(Project, a.project_id)
        annotator_id = a.annotator_id
    view = task_view(engine, project, annotator_id, assignment_id)
    view.pop("progress")
    return view
