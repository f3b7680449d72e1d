"""Which item an annotator sees next.

Rules (the pure part is :func:`choose_item`):

* a regular item is given to at most ``overlap`` annotators (done or still open), so each
  item ends with exactly ``overlap`` judgments once the project is finished;
* an annotator never gets the same item twice (also a unique constraint in the schema),
  nor one they skipped or flagged (``db.Mark``);
* among open items, the one closest to complete goes first, so finished items (with
  full overlap, usable for agreement and export) accumulate from the start instead of
  every item being half-done;
* every ``gold_every``-th assignment of an annotator is a gold (attention-check) item
  they have not seen, while gold items remain; gold items have no overlap cap;
* an annotator with an open assignment gets it again (reloading the page does not hand
  out a new item); an open assignment older than the lease is reclaimed for others.

:func:`next_assignment` claims a slot with a conditional UPDATE inside a short write
transaction (serialized on SQLite by ``BEGIN IMMEDIATE``), so two concurrent requests
cannot both take the last slot of an item.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlfoundry.feedback.db import (
    Assignment,
    Item,
    Mark,
    Project,
    read_session,
    utcnow,
    write_session,
)

LEASE = timedelta(minutes=30)
CANDIDATES = 64  # items the database hands to choose_item per call
SPREAD = 8  # optimistic claims pick among this many best items (fewer lost races)


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
    spread: int = 1,
) -> int | None:
    """The item to assign next, or ``None`` when this annotator has nothing left to do.

    ``n_assigned``: assignments this annotator already holds in the project (gold too).
    ``spread``: pick at random among this many best regular items instead of the very
    best, so that concurrent requests do not all race for the same slot.
    """
    regular = [
        c for c in candidates if not c.is_gold and c.item_id not in seen and c.taken < overlap
    ]
    if not regular:
        return None  # gold items are mixed into real work, never served on their own
    gold = [c for c in candidates if c.is_gold and c.item_id not in seen]
    if gold and gold_every > 0 and (n_assigned + 1) % gold_every == 0:
        return rng.choice(gold).item_id
    regular.sort(key=lambda c: (-c.taken, c.item_id))
    return rng.choice(regular[: max(1, spread)]).item_id


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


def _reclaim_stale(s: Session, project_id: int, now: datetime, lease: timedelta) -> int:
    """Delete open assignments older than the lease, freeing their slots."""
    stale = s.execute(
        select(Assignment.id, Assignment.item_id).where(
            Assignment.project_id == project_id,
            Assignment.done_at.is_(None),
            Assignment.assigned_at < now - lease,
        )
    ).all()
    for assignment_id, item_id in stale:
        s.execute(delete(Assignment).where(Assignment.id == assignment_id))
        s.execute(update(Item).where(Item.id == item_id).values(n_assigned=Item.n_assigned - 1))
    return len(stale)


def release_open(s: Session, annotator_id: int, project_id: int | None = None) -> int:
    """Give an annotator's open assignments (in one project, or all) back to the pool.

    Used when an annotator is disabled or leaves a project, so their unfinished items
    reach ``overlap`` through others without waiting for the lease.
    """
    cond = [Assignment.annotator_id == annotator_id, Assignment.done_at.is_(None)]
    if project_id is not None:
        cond.append(Assignment.project_id == project_id)
    rows = s.execute(select(Assignment.id, Assignment.item_id).where(*cond)).all()
    for assignment_id, item_id in rows:
        s.execute(delete(Assignment).where(Assignment.id == assignment_id))
        s.execute(update(Item).where(Item.id == item_id).values(n_assigned=Item.n_assigned - 1))
    return len(rows)


def taken_or_marked(project_id: int, annotator_id: int):
    """Items an annotator may not be given: held (done or open), skipped or flagged."""
    return (
        select(Assignment.item_id)
        .where(Assignment.project_id == project_id, Assignment.annotator_id == annotator_id)
        .union_all(
            select(Mark.item_id).where(
                Mark.project_id == project_id, Mark.annotator_id == annotator_id
            )
        )
    )


def _candidates(
    s: Session, project: Project, annotator_id: int
) -> tuple[set[int], list[Candidate], dict[int, int]]:
    """(items this annotator holds, candidate items, {item: number of responses})."""
    mine = select(Assignment.item_id).where(
        Assignment.project_id == project.id, Assignment.annotator_id == annotator_id
    )
    seen = set(s.scalars(mine))
    base = select(Item.id, Item.n_assigned, Item.is_gold, Item.n_responses).where(
        Item.project_id == project.id, Item.id.not_in(taken_or_marked(project.id, annotator_id))
    )
    regular = s.execute(
        base.where(Item.is_gold.is_(False), Item.n_assigned < project.overlap)
        .order_by(Item.n_assigned.desc(), Item.id)
        .limit(CANDIDATES)
    ).all()
    gold = s.execute(base.where(Item.is_gold.is_(True)).limit(CANDIDATES)).all()
    rows = [*regular, *gold]
    return seen, [Candidate(i, n, g) for i, n, g, _ in rows], {i: k for i, _, _, k in rows}


def _claim(
    s: Session,
    project: Project,
    annotator_id: int,
    item_id: int,
    n_responses: int,
    *,
    is_gold: bool,
    rng: random.Random,
) -> Assignment | None:
    """Take one slot of ``item_id`` if it still has one; ``None`` if someone was faster.

    The conditional UPDATE is the overlap guard: it only succeeds while
    ``n_assigned < overlap``, and it runs in the same transaction as the INSERT, so
    the counter and the rows cannot drift apart. The INSERT can still hit a unique
    constraint (a concurrent request of the same annotator); the savepoint undoes both.
    """
    cond = [Item.id == item_id, Item.project_id == project.id]
    if not is_gold:  # gold items have no overlap cap
        cond.append(Item.n_assigned < project.overlap)
    order = list(range(n_responses))
    rng.shuffle(order)  # left/right position must not leak which model wrote what
    try:
        with s.begin_nested():
            res = s.execute(update(Item).where(*cond).values(n_assigned=Item.n_assigned + 1))
            if res.rowcount != 1:
                return None
            a = Assignment(
                project_id=project.id,
                item_id=item_id,
                annotator_id=annotator_id,
                order_json=json.dumps(order),
                assigned_at=utcnow(),
            )
            s.add(a)
            s.flush()
    except IntegrityError:
        return None
    return a


def _decide(
    s: Session,
    project: Project,
    annotator_id: int,
    rng: random.Random,
    exclude: set[int],
    spread: int = 1,
) -> tuple[int | None, bool, int]:
    seen, cands, n_resp = _candidates(s, project, annotator_id)
    item_id = choose_item(
        [c for c in cands if c.item_id not in exclude],
        seen=seen,
        overlap=project.overlap,
        n_assigned=len(seen),
        gold_every=project.gold_every,
        rng=rng,
        spread=spread,
    )
    if item_id is None:
        return None, False, 0
    is_gold = next(c.is_gold for c in cands if c.item_id == item_id)
    return item_id, is_gold, n_resp[item_id]


def assign_in_session(
    s: Session,
    project: Project,
    annotator_id: int,
    *,
    rng: random.Random,
    lease: timedelta = LEASE,
) -> Assignment | None:
    """The whole decision inside one transaction that holds the write lock."""
    current = _open_assignment(s, project.id, annotator_id)
    if current is not None:
        return current
    _reclaim_stale(s, project.id, utcnow(), lease)
    item_id, is_gold, n = _decide(s, project, annotator_id, rng, set())
    if item_id is None:
        return None
    return _claim(s, project, annotator_id, item_id, n, is_gold=is_gold, rng=rng)


def next_assignment(
    engine: Engine,
    project_id: int,
    annotator_id: int,
    *,
    rng: random.Random | None = None,
    lease: timedelta = LEASE,
    attempts: int = 4,
    project: Project | None = None,
) -> Assignment | None:
    """Open (or return the already open) assignment of an annotator.

    Optimistic first: choose an item in a read transaction (readers run in parallel),
    then claim it in a short write transaction with the conditional UPDATE of
    :func:`_claim`; if another request took the slot meanwhile, choose again. After
    ``attempts`` lost races the decision is made entirely under the write lock
    (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` of the project row
    elsewhere). Either way no item gets more than ``overlap`` assignments.
    ``project``: the already loaded project row, to save a query.
    """
    rng = rng or random.Random()
    if project is None:
        with read_session(engine) as s:
            project = s.get(Project, project_id)
        if project is None:
            return None
    lost: set[int] = set()
    for _ in range(attempts):
        now = utcnow()
        with read_session(engine) as s:
            current = _open_assignment(s, project.id, annotator_id)
            if current is not None:
                return current
            has_stale = s.scalar(
                select(Assignment.id)
                .where(
                    Assignment.project_id == project.id,
                    Assignment.done_at.is_(None),
                    Assignment.assigned_at < now - lease,
                )
                .limit(1)
            )
            item_id, is_gold, n = _decide(s, project, annotator_id, rng, lost, SPREAD)
        if has_stale:
            break  # reclaiming changes the candidates: decide under the lock
        if item_id is None:
            return None
        with write_session(engine) as s:
            a = _claim(s, project, annotator_id, item_id, n, is_gold=is_gold, rng=rng)
        if a is not None:
            return a
        lost.add(item_id)
    with write_session(engine) as s:
        locked = s.scalar(select(Project).where(Project.id == project_id).with_for_update())
        return assign_in_session(s, locked, annotator_id, rng=rng, lease=lease)
