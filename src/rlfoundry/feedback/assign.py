"""Which item an annotator sees next.

Rules (the pure part is :func:`choose_item`):

* a regular item is given to at most ``overlap`` annotators (done or still open), so each
  item ends with exactly ``overlap`` judgments once the project is finished;
* an annotator never gets the same item twice (also a unique constraint in the schema);
* among open items, the one closest to complete goes first, so finished items (with
  full overlap, usable for agreement and export) accumulate from the start instead of
  every item being half-done;
* every ``gold_every``-th assignment of an annotator is a gold (attention-check) item
  they have not seen, while gold items remain; gold items have no overlap cap;
* an annotator with an open assignment gets it again (reloading the page does not hand
  out a new item); an open assignment older than the lease is reclaimed for others.

:func:`next_assignment` applies these rules inside one write transaction, so two
concurrent requests cannot both take the last slot of an item.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from rlfoundry.feedback.db import Assignment, Item, Project, utcnow, write_session

LEASE = timedelta(minutes=30)
CANDIDATES = 64  # items the database hands to choose_item per call


@dataclass(frozen=True)
class Candidate:
    item_id: int
    taken: int  # assignments held on the item, done or open
    is_gold: bool = False


def choose_item(
    candidates: Sequence[Candidate],
    *,
    seen: set[int] | frozenset[int],
    overlap: int,
    n_assigned: int,
    gold_every: int,
    rng: random.Random,
) -> int | None:
    """The item to assign next, or ``None`` when this annotator has nothing left to do.

    ``n_assigned``: assignments this annotator already holds in the project (gold too).
    """
    regular = [
        c for c in candidates if not c.is_gold and c.item_id not in seen and c.taken < overlap
    ]
    if not regular:
        return None  # gold items are mixed into real work, never served on their own
    gold = [c for c in candidates if c.is_gold and c.item_id not in seen]
    if gold and gold_every > 0 and (n_assigned + 1) % gold_every == 0:
        return rng.choice(gold).item_id
    best = max(regular, key=lambda c: (c.taken, -c.item_id))
    return best.item_id


def expected_gold(n_assigned: int, regular_left: int, gold_left: int, gold_every: int) -> int:
    """How many gold items :func:`choose_item` will mix into the next ``regular_left``
    regular assignments (so progress totals do not jump when a gold item appears).

    Positions ``n + 1 ... n + R + G`` will be handed out and every multiple of
    ``gold_every`` among them is gold while gold lasts (the last position is a multiple
    only once gold has run out), so G is the least fixed point of
    ``G = min(gold_left, #multiples of gold_every in (n, n + R + G])``, reached from 0.
    """
    if regular_left <= 0 or gold_left <= 0 or gold_every <= 0:
        return 0
    g = 0
    while True:
        last = n_assigned + regular_left + g
        nxt = min(gold_left, last // gold_every - n_assigned // gold_every)
        if nxt == g:
            return g
        g = nxt


def _open_assignment(s: Session, project_id: int, annotator_id: int) -> Assignment | None:
    return s.scalar(
        select(Assignment)
        .where(
            Assignment.project_id == project_id,
            Assignment.annotator_id == annotator_id,
            Assignment.done_at.is_(None),
        )
        .order_by(Assignment.id)
        .limit(1)
    )


def assign_in_session(
    s: Session,
    project: Project,
    annotator_id: int,
    *,
    rng: random.Random,
    lease: timedelta = LEASE,
) -> Assignment | None:
    """Body of :func:`next_assignment`; ``s`` must hold the write lock."""
    current = _open_assignment(s, project.id, annotator_id)
    if current is not None:
        return current
    now = utcnow()
    stale = s.execute(
        select(Assignment.id, Assignment.item_id).where(
            Assignment.project_id == project.id,
            Assignment.done_at.is_(None),
            Assignment.assigned_at < now - lease,
        )
    ).all()
    for assignment_id, item_id in stale:  # reclaim abandoned work for other annotators
        s.execute(delete(Assignment).where(Assignment.id == assignment_id))
        s.execute(update(Item).where(Item.id == item_id).values(n_assigned=Item.n_assigned - 1))
    mine = select(Assignment.item_id).where(
        Assignment.project_id == project.id, Assignment.annotator_id == annotator_id
    )
    seen = set(s.scalars(mine))
    base = select(Item.id, Item.n_assigned, Item.is_gold).where(
        Item.project_id == project.id, Item.id.not_in(mine)
    )
    regular = s.execute(
        base.where(Item.is_gold.is_(False), Item.n_assigned < project.overlap)
        .order_by(Item.n_assigned.desc(), Item.id)
        .limit(CANDIDATES)
    ).all()
    gold = s.execute(base.where(Item.is_gold.is_(True)).limit(CANDIDATES)).all()
    cands = [Candidate(i, n, g) for i, n, g in [*regular, *gold]]
    item_id = choose_item(
        cands,
        seen=seen,
        overlap=project.overlap,
        n_assigned=len(seen),
        gold_every=project.gold_every,
        rng=rng,
    )
    if item_id is None:
        return None
    n = s.scalar(select(Item.n_responses).where(Item.id == item_id))
    s.execute(update(Item).where(Item.id == item_id).values(n_assigned=Item.n_assigned + 1))
    order = list(range(n or 0))
    rng.shuffle(order)  # left/right position must not leak which model wrote what
    a = Assignment(
        project_id=project.id,
        item_id=item_id,
        annotator_id=annotator_id,
        order_json=json.dumps(order),
        assigned_at=now,
    )
    s.add(a)
    s.flush()
    return a


def next_assignment(
    engine: Engine,
    project_id: int,
    annotator_id: int,
    *,
    rng: random.Random | None = None,
    lease: timedelta = LEASE,
) -> Assignment | None:
    """Open (or return the already open) assignment of an annotator, transactionally.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``; on other databases the
    project row is locked with ``SELECT ... FOR UPDATE``. Either way assignment
    decisions within a project happen one at a time.
    """
    rng = rng or random.Random()
    with write_session(engine) as s:
        project = s.scalar(select(Project).where(Project.id == project_id).with_for_update())
        if project is None:
            return None
        a = assign_in_session(s, project, annotator_id, rng=rng, lease=lease)
        if a is not None:
            _ = a.item  # loaded before the session closes
        return a
