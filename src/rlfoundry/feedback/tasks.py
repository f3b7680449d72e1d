"""What an annotator is shown: their progress in a project, and the prompt and
responses of an open assignment in the assignment's order (never the models).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, func, select

from rlfoundry.feedback.assign import expected_gold, taken_or_marked
from rlfoundry.feedback.db import Assignment, Item, Judgment, Project, Response, read_session
from rlfoundry.feedback.labels import letter


def _progress(s: Any, p: Project, annotator_id: int, project_wide: bool) -> dict[str, int]:
    held, done = s.execute(
        select(func.count(Assignment.id), func.count(Assignment.done_at)).where(
            Assignment.project_id == p.id, Assignment.annotator_id == annotator_id
        )
    ).one()  # an assignment is done exactly when it has its judgment
    mine = taken_or_marked(p.id, annotator_id)
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


def task_view(engine: Engine, project: Project, annotator_id: int, assignment_id: int | None):
    """Progress, and (for an open assignment) what the annotator is shown: prompt and
    responses in the assignment's order, never the models. One read transaction."""
    with read_session(engine) as s:
        out: dict[str, Any] = {"progress": _progress(s, project, annotator_id, False)}
        if assignment_id is None:
            return out
        order_json, prompt, messages_json = s.execute(
            select(Assignment.order_json, Item.prompt, Item.messages_json)
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
        messages=None if messages_json is None else json.loads(messages_json),
        responses=[{"letter": letter(pos), "text": texts[idx]} for pos, idx in enumerate(order)],
    )
    return out


def assignment_view(engine: Engine, assignment_id: int) -> dict[str, Any]:
    """What an annotator is shown for one assignment (see :func:`task_view`)."""
    with read_session(engine) as s:
        a = s.get(Assignment, assignment_id)
        project = s.get(Project, a.project_id)
        annotator_id = a.annotator_id
    view = task_view(engine, project, annotator_id, assignment_id)
    view.pop("progress")
    return view
