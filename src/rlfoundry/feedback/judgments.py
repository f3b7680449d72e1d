"""Judgments: an annotator submits the judgment of their own open assignment (handed
out by :func:`rlfoundry.feedback.assign.next_assignment`), reads and edits their own,
or skips or flags it instead.

Edits never overwrite history: every submit and every edit appends a
``JudgmentRevision``; the ``judgments`` row holds the latest version, which is the one
statistics and exports read.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback.accounts import Who
from rlfoundry.feedback.db import (
    MARKS,
    Assignment,
    Item,
    Judgment,
    JudgmentRevision,
    Mark,
    Membership,
    Project,
    Response,
    read_session,
    utcnow,
    write_session,
)
from rlfoundry.feedback.labels import LabelError, check_reason, from_display, letter, to_display


class NotFound(RLFoundryError):
    """Not there, or not the caller's (the app answers 404 either way)."""


class Conflict(RLFoundryError):
    """Already judged (the app answers 409)."""


def _active_ms(value: Any) -> int | None:
    try:
        ms = int(value)
    except (TypeError, ValueError):
        return None
    return ms if 0 <= ms <= 86_400_000 else None


def _is_member(who: Who):
    """Join condition: the caller's membership of the row's project."""
    return (Membership.project_id == Project.id) & (Membership.annotator_id == who.id)


def _own_assignment(s: Any, who: Who, assignment_id: int) -> tuple[Assignment, Project]:
    """The caller's live assignment and its project, or NotFound (not theirs, reclaimed
    after its lease, or of a project they are no longer a member of)."""
    row = s.execute(
        select(Assignment, Project)
        .join(Project, Project.id == Assignment.project_id)
        .join(Membership, _is_member(who))
        .where(Assignment.id == assignment_id, Assignment.annotator_id == who.id)
    ).first()
    if row is None:
        raise NotFound("This assignment is not yours or has expired; load the next item instead.")
    return row[0], row[1]


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
        a, project = _own_assignment(s, who, assignment_id)
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
        _revise(s, j)
        return j


def _revise(s: Any, j: Judgment) -> None:
    s.add(
        JudgmentRevision(
            judgment_id=j.id,
            annotator_id=j.annotator_id,
            label_json=j.label_json,
            reason=j.reason,
            created_at=j.updated_at,
        )
    )


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
        _revise(s, j)
        s.flush()
        return _judgment_view(j, a, kind, item, project)


def judgment_history(engine: Engine, who: Who, judgment_id: int) -> list[dict]:
    """Every version of one's own judgment, oldest first, in the order one saw."""
    with read_session(engine) as s:
        row = s.execute(_own_query(who).where(Judgment.id == judgment_id)).first()
        if row is None:
            raise NotFound("No such judgment of yours.")
        j, a, kind, _, _ = row
        revs = list(
            s.scalars(
                select(JudgmentRevision)
                .where(JudgmentRevision.judgment_id == j.id)
                .order_by(JudgmentRevision.id)
            )
        )
    return [
        {
            "version": k + 1,
            **to_display(kind, a.order, json.loads(r.label_json)),
            "reason": r.reason,
            "created_at": r.created_at.isoformat() + "Z",
        }
        for k, r in enumerate(revs)
    ]


def judgment_page(engine: Engine, who: Who, judgment_id: int) -> dict[str, Any]:
    """One's own judgment with its item (in the order one saw it) and every version."""
    view = own_judgment(engine, who, judgment_id)
    with read_session(engine) as s:
        a = s.get(Assignment, view["assignment_id"])
        item = s.get(Item, a.item_id)
        texts = dict(
            s.execute(select(Response.idx, Response.text).where(Response.item_id == item.id)).all()
        )
    return {
        "j": view,
        "kind": view["kind"],
        "prompt": item.prompt,
        "messages": item.messages,
        "responses": [{"letter": letter(p), "text": texts[i]} for p, i in enumerate(a.order)],
        "history": judgment_history(engine, who, judgment_id),
    }


def version_counts(engine: Engine, who: Who) -> dict[int, int]:
    """``{judgment id: number of versions}`` of the caller's judgments."""
    with read_session(engine) as s:
        return dict(
            s.execute(
                select(JudgmentRevision.judgment_id, func.count(JudgmentRevision.id))
                .where(JudgmentRevision.annotator_id == who.id)
                .group_by(JudgmentRevision.judgment_id)
            ).all()
        )


def mark(engine: Engine, who: Who, assignment_id: int, kind: str, reason: Any) -> None:
    """Skip or flag (``kind``) the item of one's own open assignment, with a reason.

    The assignment is given back (its slot goes to another annotator) and the item never
    comes back to this annotator. A flag needs a reason: the reviewer reads it.
    """
    if kind not in MARKS:
        raise LabelError(f"Unknown action '{kind}'; use skip or flag.")
    text = check_reason(reason).strip()
    if kind == "flag" and not text:
        raise LabelError("Say why you flag this item (the reviewer reads it).")
    with write_session(engine) as s:
        a, _ = _own_assignment(s, who, assignment_id)
        if a.done_at is not None:
            raise Conflict("This item is already judged; it cannot be skipped now.")
        s.execute(delete(Assignment).where(Assignment.id == a.id))
        s.execute(update(Item).where(Item.id == a.item_id).values(n_assigned=Item.n_assigned - 1))
        s.add(
            Mark(
                project_id=a.project_id,
                item_id=a.item_id,
                annotator_id=who.id,
                kind=kind,
                reason=text,
            )
        )
