"""Adjudication: which items a reviewer should look at, what they see, and their decision.

The review queue of a project holds its regular items that

* have two or more judgments whose agreement is below the chosen threshold (default
  1.0: any disagreement), agreement being the item's percent agreement over its units
  (``labels.agreement_units``: the choice of a comparison, every response pair of a
  ranking, every response's rating), or
* were flagged by an annotator (``db.Mark``) after the item's last review;

a decided item comes back only with news: a flag, or (with low agreement) a vote cast
or edited after the decision (:func:`needs_review`). A decision (``db.Review``) is the
item's final label, entered with the same widgets an annotator uses, or "discard";
reviews are appended (the latest wins) and never touch the annotators' judgments.
Exports read the latest review (``reports.items_for_export``): see ``export``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from rlfoundry.feedback.accounts import Who
from rlfoundry.feedback.agreement import percent_agreement
from rlfoundry.feedback.db import (
    Annotator,
    Item,
    Judgment,
    Mark,
    Membership,
    Project,
    Response,
    Review,
    read_session,
    write_session,
)
from rlfoundry.feedback.judgments import NotFound
from rlfoundry.feedback.labels import (
    LabelError,
    agreement_units,
    check_reason,
    from_display,
    letter,
    to_display,
)


def item_agreement(kind: str, labels: list[Any]) -> float | None:
    """Percent agreement of one item's judgments (``None`` with fewer than two)."""
    if len(labels) < 2:
        return None
    table: dict[Any, dict[int, Any]] = defaultdict(dict)
    for k, label in enumerate(labels):
        for unit, value in agreement_units(kind, label).items():
            table[unit][k] = value
    return round(percent_agreement(table), 4)


def reviewable_projects(engine: Engine, who: Who) -> list[Project]:
    """Admins review every project, reviewers the projects they are members of."""
    with read_session(engine) as s:
        q = select(Project).order_by(Project.id)
        if not who.is_admin:
            q = q.join(Membership, Membership.project_id == Project.id).where(
                Membership.annotator_id == who.id
            )
        return list(s.scalars(q)) if who.may_review else []


def _reviewable(s: Any, who: Who, project_id: int) -> Project:
    if who.may_review:
        q = select(Project).where(Project.id == project_id)
        if not who.is_admin:
            q = q.join(Membership, Membership.project_id == Project.id).where(
                Membership.annotator_id == who.id
            )
        project = s.scalar(q)
        if project is not None:
            return project
    raise NotFound("No such project to review.")


def needs_review(
    kind: str,
    votes: list[tuple[Any, datetime]],
    flags: list[tuple[str, datetime]],
    reviewed_at: datetime | None,
    below: float,
) -> tuple[bool, float | None, list[str]]:
    """Is an item in the review queue? Returns (yes, its agreement, the flag reasons
    that count). Pure: ``votes`` are (label, last edited), ``flags`` (reason, time).

    Flags count when they came after the last decision; low agreement counts when a
    vote was cast or edited after it (so a decided item comes back only with news).
    """
    agree = item_agreement(kind, [label for label, _ in votes])
    new_flags = [r for r, t in flags if reviewed_at is None or t > reviewed_at]
    news = reviewed_at is None or any(t > reviewed_at for _, t in votes)
    low = agree is not None and agree < below and news
    return bool(low or new_flags), agree, new_flags


def review_queue(
    engine: Engine, who: Who, project_id: int, below: float = 1.0
) -> tuple[Project, list[dict[str, Any]], int]:
    """(project, the items to review, how many items are already reviewed). Gold items
    never enter the queue (their answer is fixed; their flags show on the admin page)."""
    with read_session(engine) as s:
        project = _reviewable(s, who, project_id)
        regular = (Item.project_id == project.id) & Item.is_gold.is_(False)
        votes: dict[int, list[tuple[Any, datetime]]] = defaultdict(list)
        for item_id, label_json, updated in s.execute(
            select(Judgment.item_id, Judgment.label_json, Judgment.updated_at)
            .join(Item, Item.id == Judgment.item_id)
            .where(regular)
        ):
            votes[item_id].append((json.loads(label_json), updated))
        flags: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
        for item_id, reason, created in s.execute(
            select(Mark.item_id, Mark.reason, Mark.created_at)
            .join(Item, Item.id == Mark.item_id)
            .where(regular, Mark.kind == "flag")
        ):
            flags[item_id].append((reason, created))
        reviewed = dict(
            s.execute(
                select(Review.item_id, func.max(Review.created_at))
                .where(Review.project_id == project.id)
                .group_by(Review.item_id)
            ).all()
        )
        names = dict(s.execute(select(Item.id, Item.external_id).where(regular)).all())
    queue = []
    for item_id in sorted(set(votes) | set(flags)):
        due, agree, new_flags = needs_review(
            project.kind, votes[item_id], flags[item_id], reviewed.get(item_id), below
        )
        if due:
            queue.append(
                {
                    "item_id": item_id,
                    "external_id": names[item_id],
                    "votes": len(votes[item_id]),
                    "agreement": agree,
                    "flags": new_flags,
                }
            )
    queue.sort(key=lambda r: (not r["flags"], r["agreement"] if r["agreement"] is not None else 1))
    return project, queue, len(reviewed)


def review_view(engine: Engine, who: Who, item_id: int) -> dict[str, Any]:
    """What the reviewer sees: the item, every vote with its reason, flags and skips,
    and the latest decision. Responses are in import order (A = response 0)."""
    with read_session(engine) as s:
        item = s.get(Item, item_id)
        if item is None:
            raise NotFound("No such item.")
        project = _reviewable(s, who, item.project_id)
        texts = list(
            s.scalars(
                select(Response.text).where(Response.item_id == item.id).order_by(Response.idx)
            )
        )
        votes = s.execute(
            select(Judgment, Annotator.name)
            .join(Annotator, Annotator.id == Judgment.annotator_id)
            .where(Judgment.item_id == item.id)
            .order_by(Judgment.id)
        ).all()
        marks = s.execute(
            select(Mark, Annotator.name)
            .join(Annotator, Annotator.id == Mark.annotator_id)
            .where(Mark.item_id == item.id)
            .order_by(Mark.id)
        ).all()
        last = s.execute(
            select(Review, Annotator.name)
            .join(Annotator, Annotator.id == Review.reviewer_id)
            .where(Review.item_id == item.id)
            .order_by(Review.id.desc())
            .limit(1)
        ).first()
    order = list(range(len(texts)))
    kind = project.kind
    return {
        "project": project,
        "item_id": item.id,
        "external_id": item.external_id,
        "prompt": item.prompt,
        "messages": item.messages,
        "responses": [{"letter": letter(k), "text": t} for k, t in enumerate(texts)],
        "votes": [
            {"annotator": name, "reason": j.reason, **to_display(kind, order, j.label)}
            for j, name in votes
        ],
        "agreement": item_agreement(kind, [j.label for j, _ in votes]),
        "marks": [{"annotator": name, "kind": m.kind, "reason": m.reason} for m, name in marks],
        "decision": None
        if last is None
        else {
            "reviewer": last[1],
            "discard": last[0].discard,
            "note": last[0].note,
            **({} if last[0].discard else to_display(kind, order, last[0].label)),
        },
    }


def decide(engine: Engine, who: Who, item_id: int, payload: dict[str, Any]) -> int:
    """Store a reviewer's decision on an item (``payload``: the label in display terms
    with A = response 0, or ``{"discard": true}``; ``note`` optional). Returns its id."""
    with write_session(engine) as s:
        item = s.get(Item, item_id)
        if item is None:
            raise NotFound("No such item.")
        project = _reviewable(s, who, item.project_id)
        if item.is_gold:
            raise LabelError("Gold items have a fixed answer; there is nothing to review.")
        discard = payload.get("discard") in (True, "1", "on", "true")
        label = (
            None if discard else from_display(project.kind, list(range(item.n_responses)), payload)
        )
        r = Review(
            project_id=project.id,
            item_id=item.id,
            reviewer_id=who.id,
            label_json=None if label is None else json.dumps(label),
            discard=discard,
            note=check_reason(payload.get("note")),
        )
        s.add(r)
        s.flush()
        return r.id


def latest_reviews(s: Any, project_id: int) -> dict[int, tuple[Review, str]]:
    """``{item id: (latest review, reviewer name)}`` of a project (for exports)."""
    out: dict[int, tuple[Review, str]] = {}
    for r, name in s.execute(
        select(Review, Annotator.name)
        .join(Annotator, Annotator.id == Review.reviewer_id)
        .where(Review.project_id == project_id)
        .order_by(Review.id)
    ):
        out[r.item_id] = (r, name)
    return out


def review_counts(engine: Engine, project_id: int) -> dict[str, int]:
    """Skips, flags and reviewed items of a project (the admin's progress page)."""
    with read_session(engine) as s:
        marks = dict(
            s.execute(
                select(Mark.kind, func.count(Mark.id))
                .where(Mark.project_id == project_id)
                .group_by(Mark.kind)
            ).all()
        )
        reviewed = s.scalar(
            select(func.count(func.distinct(Review.item_id))).where(Review.project_id == project_id)
        )
    return {"skips": marks.get("skip", 0), "flags": marks.get("flag", 0), "reviewed": reviewed}
