"""Labels (display order <-> response indices) and the pairs export."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlfoundry.feedback.export import ItemJudgments, to_pairs
from rlfoundry.feedback.labels import (
    LabelError,
    agreement_units,
    from_display,
    gold_match,
    pair_outcome,
    to_display,
    validate_label,
)


def test_compare_label_maps_through_the_shown_order():
    # Response 1 was shown on the left (A), response 0 on the right (B).
    assert from_display("compare", [1, 0], {"choice": "A"}) == 1
    assert from_display("compare", [1, 0], {"choice": "B"}) == 0
    assert from_display("compare", [1, 0], {"choice": "tie"}) == "tie"
    assert to_display("compare", [1, 0], 0) == {"choice": "B"}
    with pytest.raises(LabelError):
        from_display("compare", [0, 1], {"choice": "C"})


def test_rank_and_rate_labels():
    order = [2, 0, 1]  # A = response 2, B = response 0, C = response 1
    assert from_display("rank", order, {"ranking": ["B", "C", "A"]}) == [0, 1, 2]
    ratings = from_display("rate", order, {"ratings": {"A": 5, "B": "2", "C": 3}})
    assert ratings == [2, 3, 5]
    assert to_display("rate", order, ratings) == {"ratings": {"A": 5, "B": 2, "C": 3}}
    for bad in (["A", "B"], ["A", "A", "B"], "ABC", ["A", "B", "D"]):
        with pytest.raises(LabelError):
            from_display("rank", order, {"ranking": bad})
    for bad in ({"A": 6, "B": 1, "C": 1}, {"A": 1, "B": 1}, {"A": True, "B": 1, "C": 1}):
        with pytest.raises(LabelError):
            from_display("rate", order, {"ratings": bad})


@settings(max_examples=50, deadline=None)
@given(st.permutations(list(range(4))), st.permutations(list("ABCD")))
def test_rank_round_trip(order, ranking):
    label = from_display("rank", order, {"ranking": ranking})
    assert sorted(label) == [0, 1, 2, 3]
    assert to_display("rank", order, label) == {"ranking": ranking}


def test_pair_outcomes_and_units():
    assert pair_outcome("compare", 1, 0, 1) == "j"
    assert pair_outcome("compare", "both_bad", 0, 1) == "both_bad"
    assert pair_outcome("rank", [2, 0, 1], 0, 2) == "j"
    assert pair_outcome("rate", [3, 3, 1], 0, 1) == "tie"
    assert pair_outcome("rate", [3, 3, 1], 1, 2) == "i"
    assert agreement_units("rank", [2, 0, 1]) == {(0, 1): 0, (0, 2): 2, (1, 2): 2}
    assert agreement_units("rate", [4, 2]) == {(0,): 4, (1,): 2}


def test_gold_validation_and_match():
    validate_label("compare", 2, 0)
    validate_label("rank", 3, [2, 0, 1])
    validate_label("rate", 2, [5, 1])
    for kind, n, bad in (("compare", 2, 2), ("rank", 3, [0, 1]), ("rate", 2, [0, 5])):
        with pytest.raises(LabelError):
            validate_label(kind, n, bad)
    assert gold_match("rank", [2, 1, 0], [2, 0, 1])  # same best response
    assert gold_match("rate", [4, 2], [5, 1]) and not gold_match("rate", [3, 2], [5, 1])


def item(kind, responses, judgments, **kw):
    return ItemJudgments("i1", "P", responses, kind, judgments, project="p", **kw)


def test_compare_majority_pair():
    pairs, summary = to_pairs([item("compare", ["r0", "r1"], [("a", 1), ("b", 1), ("c", 0)])])
    assert len(pairs) == 1
    p = pairs[0]
    assert (p["prompt"], p["chosen"], p["rejected"]) == ("P", "r1", "r0")
    assert (p["votes_chosen"], p["votes_rejected"], p["n_annotators"]) == (2, 1, 3)
    assert p["agreement"] == pytest.approx(2 / 3, abs=1e-4)  # rounded to 4 places
    assert summary.pairs == 1 and summary.items == 1


def test_split_ties_and_both_bad():
    split = item("compare", ["r0", "r1"], [("a", 0), ("b", 1)])
    tie = item("compare", ["r0", "r1"], [("a", "tie"), ("b", "tie"), ("c", 0)])
    bad = item("compare", ["r0", "r1"], [("a", "both_bad")])
    pairs, s = to_pairs([split, tie, bad])
    assert pairs == []
    assert (s.skipped_split, s.skipped_tie, s.skipped_both_bad) == (1, 1, 1)
    pairs, s = to_pairs([split, tie, bad], ties="both")
    assert [(p["chosen"], p["rejected"], p["tie"]) for p in pairs] == [
        ("r0", "r1", True),
        ("r1", "r0", True),
    ]
    assert s.skipped_both_bad == 1


def test_ranking_gives_all_pairs():
    pairs, _ = to_pairs([item("rank", ["r0", "r1", "r2"], [("a", [2, 0, 1])])])
    got = {(p["chosen"], p["rejected"]) for p in pairs}
    assert got == {("r2", "r0"), ("r2", "r1"), ("r0", "r1")}  # K(K-1)/2 = 3


def test_ratings_give_pairs_where_they_differ():
    pairs, s = to_pairs([item("rate", ["r0", "r1", "r2"], [("a", [5, 3, 3])])])
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {("r0", "r1"), ("r0", "r2")}
    assert s.skipped_tie == 1


def test_aggregate_none_min_agreement_and_gold():
    judged = item("compare", ["r0", "r1"], [("a", 1), ("b", 1), ("c", 0)])
    pairs, _ = to_pairs([judged], aggregate="none")
    assert sorted((p["annotator"], p["chosen"]) for p in pairs) == [
        ("a", "r1"),
        ("b", "r1"),
        ("c", "r0"),
    ]
    pairs, s = to_pairs([judged], min_agreement=0.9)
    assert pairs == [] and s.skipped_low_agreement == 1
    gold = item("compare", ["r0", "r1"], [("a", 0)], is_gold=True)
    assert to_pairs([gold])[0] == []
    assert len(to_pairs([gold], include_gold=True)[0]) == 1
    with pytest.raises(ValueError):
        to_pairs([judged], ties="half")
