"""What admins read out of a project: agreement statistics, gold accuracy and time per
annotator, and every item with its judgments for export.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, func, select

from rlfoundry.feedback import agreement
from rlfoundry.feedback.db import Annotator, Item, Judgment, Response, read_session
from rlfoundry.feedback.export import ItemJudgments
from rlfoundry.feedback.labels import agreement_units, gold_match
from rlfoundry.feedback.projects import get_project
from rlfoundry.feedback.review import latest_reviews


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
    """Every item of a project with its judgments (latest versions), models and the
    latest reviewer decision; a multi-turn item's prompt is its list of messages."""
    project = get_project(engine, project_name)
    with read_session(engine) as s:
        items = list(s.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.id)))
        responses: dict[int, list[str]] = defaultdict(list)
        models: dict[int, list[str | None]] = defaultdict(list)
        for r in s.scalars(
            select(Response)
            .join(Item, Item.id == Response.item_id)
            .where(Item.project_id == project.id)
            .order_by(Response.item_id, Response.idx)
        ):
            responses[r.item_id].append(r.text)
            models[r.item_id].append(r.model)
        reviews = latest_reviews(s, project.id)
        judged: dict[int, list[tuple[str, Any]]] = defaultdict(list)
        for j, name in s.execute(
            select(Judgment, Annotator.name)
            .join(Annotator, Annotator.id == Judgment.annotator_id)
            .where(Judgment.project_id == project.id)
            .order_by(Judgment.id)
        ):
            judged[j.item_id].append((name, j.label))
    out = []
    for it in items:
        review, reviewer = reviews.get(it.id, (None, None))
        out.append(
            ItemJudgments(
                item_id=it.external_id,
                prompt=it.prompt if it.messages is None else it.messages,
                responses=responses[it.id],
                kind=project.kind,
                judgments=judged[it.id],
                project=project.name,
                is_gold=it.is_gold,
                models=models[it.id],
                overlap=project.overlap,
                review=None if review is None else review.label,
                reviewer=reviewer,
                discarded=review is not None and review.discard,
            )
        )
    return out
