"""Assignment: overlap, no repeats, gold mixing, leases, and no over-assignment under
concurrent requests."""

import random
import threading
from collections import Counter
from datetime import timedelta

from fb_helpers import load
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from rlfoundry.feedback.accounts import add_annotator, who_for_token
from rlfoundry.feedback.assign import Candidate, choose_item, expected_gold, next_assignment
from rlfoundry.feedback.db import Assignment, Item, read_session, utcnow, write_session
from rlfoundry.feedback.judgments import NotFound, submit

RNG = random.Random(0)


def pick(cands, seen=(), overlap=2, n=0, gold_every=0):
    return choose_item(
        cands, seen=set(seen), overlap=overlap, n_assigned=n, gold_every=gold_every, rng=RNG
    )


def test_choose_item_prefers_the_item_closest_to_complete():
    cands = [Candidate(1, 0), Candidate(2, 1), Candidate(3, 1), Candidate(4, 2)]
    assert pick(cands, overlap=2) == 2  # 4 is full; 2 and 3 tie, lower id first
    assert pick(cands, seen={2}, overlap=2) == 3
    assert pick(cands, seen={2, 3}, overlap=2) == 1
    assert pick(cands, seen={1, 2, 3}, overlap=2) is None


def test_choose_item_mixes_gold_every_nth():
    cands = [Candidate(1, 0), Candidate(9, 5, is_gold=True)]
    assert pick(cands, n=0, gold_every=3) == 1
    assert pick(cands, n=2, gold_every=3) == 9  # third assignment
    assert pick(cands, n=2, gold_every=3, seen={9}) == 1  # gold already seen
    assert pick(cands, n=2, gold_every=0) == 1  # gold off
    assert pick([Candidate(9, 0, is_gold=True)], n=2, gold_every=3) is None  # no real work left


def _simulate(n, regular, gold_left, every):
    gold = 0
    while regular > 0:
        n += 1
        if gold < gold_left and every > 0 and n % every == 0:
            gold += 1
        else:
            regular -= 1
    return gold


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 60), st.integers(0, 80), st.integers(0, 15), st.integers(0, 8))
def test_expected_gold_matches_step_by_step_simulation(n, regular, gold_left, every):
    assert expected_gold(n, regular, gold_left, every) == _simulate(n, regular, gold_left, every)


def rows(k, gold=0):
    out = [{"id": f"q{i}", "prompt": f"p{i}", "responses": ["x", "y"]} for i in range(k)]
    out += [
        {"id": f"g{i}", "prompt": f"g{i}", "responses": ["x", "y"], "gold": 0} for i in range(gold)
    ]
    return out


def drain(engine, pid, who):
    """Judge items until nothing is left; returns the item ids seen."""
    seen = []
    while (a := next_assignment(engine, pid, who.id)) is not None:
        seen.append(a.item_id)
        submit(engine, who, a.id, {"choice": "A"})
    return seen


def test_overlap_is_exact_and_nobody_sees_an_item_twice(engine, tmp_path):
    load(engine, tmp_path, "p", "compare", rows(5, gold=2), overlap=2, gold_every=3)
    whos = [who_for_token(engine, add_annotator(engine, f"a{k}")) for k in range(3)]
    seen = {w.name: drain(engine, 1, w) for w in whos}
    for items in seen.values():
        assert len(items) == len(set(items))
    with read_session(engine) as s:
        gold_ids = set(s.scalars(select(Item.id).where(Item.is_gold.is_(True))))
        regular = Counter(i for items in seen.values() for i in items if i not in gold_ids)
        counters = dict(s.execute(select(Item.id, Item.n_assigned)).all())
    assert sorted(regular.values()) == [2] * 5  # 5 items x overlap 2, no more, no less
    assert all(counters[i] == n for i, n in regular.items())  # maintained counter is right
    # 10 regular slots over 3 annotators: the first gets 5 items (gold at its 3rd and 6th)
    assert any(g in seen["a0"][2:3] for g in gold_ids)


def test_reload_returns_the_open_assignment_and_leases_expire(engine, tmp_path):
    load(engine, tmp_path, "p", "compare", rows(1), overlap=1, gold_every=0)
    a, b = (who_for_token(engine, add_annotator(engine, n)) for n in "ab")
    first = next_assignment(engine, 1, a.id)
    assert next_assignment(engine, 1, a.id).id == first.id  # reload: same item
    assert next_assignment(engine, 1, b.id) is None  # the only slot is held
    with write_session(engine) as s:  # a walks away for longer than the lease
        s.get(Assignment, first.id).assigned_at = utcnow() - timedelta(hours=1)
    taken = next_assignment(engine, 1, b.id, lease=timedelta(minutes=30))
    assert taken is not None and taken.item_id == first.item_id
    # a's stale submit is refused, so the item still gets exactly one judgment
    try:
        submit(engine, a, first.id, {"choice": "A"})
        raise AssertionError("stale assignment accepted")
    except NotFound:
        pass
    submit(engine, b, taken.id, {"choice": "B"})
    with read_session(engine) as s:
        assert s.scalar(select(Item.n_assigned)) == 1


def test_concurrent_requests_never_over_assign(engine, tmp_path):
    overlap, n_items, n_ann = 3, 12, 10
    load(engine, tmp_path, "p", "compare", rows(n_items, gold=1), overlap=overlap, gold_every=4)
    whos = [who_for_token(engine, add_annotator(engine, f"a{k}")) for k in range(n_ann)]
    start = threading.Barrier(n_ann)
    errors = []

    def work(who):
        try:
            start.wait()
            drain(engine, 1, who)
        except Exception as err:  # surfaced below; a thread cannot fail the test itself
            errors.append(repr(err))

    threads = [threading.Thread(target=work, args=(w,)) for w in whos]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with read_session(engine) as s:
        per_item = dict(
            s.execute(
                select(Assignment.item_id, func.count())
                .join(Item, Item.id == Assignment.item_id)
                .where(Item.is_gold.is_(False))
                .group_by(Assignment.item_id)
            ).all()
        )
        pairs = s.execute(select(Assignment.item_id, Assignment.annotator_id)).all()
    assert len(per_item) == n_items and set(per_item.values()) == {overlap}
    assert len(pairs) == len(set(pairs))
