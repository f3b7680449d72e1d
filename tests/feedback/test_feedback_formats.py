"""Export filters, the raw and KTO formats, the file sinks, and the leaderboard math."""

import json
import math

import numpy as np
import pytest

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback.export import ItemJudgments, select_items, to_pairs
from rlfoundry.feedback.formats import kto_signals, to_kto, to_raw
from rlfoundry.feedback.leaderboard import (
    bootstrap,
    bradley_terry,
    games,
    leaderboard,
    win_rate,
)
from rlfoundry.feedback.writers import sink_for, to_csv


def item(kind, responses, judgments, item_id="i1", **kw):
    return ItemJudgments(item_id, "P", responses, kind, judgments, project="p", **kw)


# ---- agreement of a single vote, --complete-only, --min-votes -------------------------


def test_single_vote_agreement_is_undefined_not_one():
    one = item("compare", ["r0", "r1"], [("a", 1)], overlap=2)
    two = item("compare", ["r0", "r1"], [("a", 1), ("b", 1)], item_id="i2", overlap=2)
    pairs, s = to_pairs([one, two])
    assert [p["agreement"] for p in pairs] == [None, 1.0]
    pairs, s = to_pairs([one, two], min_agreement=0.5)
    assert [p["item_id"] for p in pairs] == ["i2"] and s.skipped_single_vote == 1


def test_select_items_complete_only_and_min_votes():
    one = item("compare", ["r0", "r1"], [("a", 1)], overlap=2)
    two = item("compare", ["r0", "r1"], [("a", 1), ("b", 0)], item_id="i2", overlap=2)
    none = item("compare", ["r0", "r1"], [], item_id="i3", overlap=2)
    gold = item("compare", ["r0", "r1"], [("a", 0)], item_id="g", overlap=2, is_gold=True)
    kept, dropped = select_items([one, two, none, gold], complete_only=True)
    assert [it.item_id for it in kept] == ["i2"] and dropped == 1
    kept, dropped = select_items([one, two, none, gold], min_votes=1)
    assert [it.item_id for it in kept] == ["i1", "i2"] and dropped == 0
    kept, _ = select_items([one, two, gold], min_votes=3, include_gold=True)
    assert kept == []
    # gold items are not held to the project's overlap
    kept, _ = select_items([gold], complete_only=True, include_gold=True)
    assert [it.item_id for it in kept] == ["g"]
    with pytest.raises(ValueError):
        select_items([one], min_votes=-1)


# ---- raw and KTO ------------------------------------------------------------------------


def test_raw_keeps_every_judgment_and_the_models():
    it = item(
        "rank", ["x", "y", "z"], [("a", [2, 0, 1]), ("b", [0, 1, 2])], models=["m1", None, "m2"]
    )
    rows = to_raw([it])
    assert [r["annotator"] for r in rows] == ["a", "b"]
    assert [json.loads(r["label"]) for r in rows] == [[2, 0, 1], [0, 1, 2]]
    assert rows[0]["models"] == ["m1", None, "m2"] and rows[0]["n_votes"] == 2
    assert to_raw([item("compare", ["x", "y"], [("a", "tie")])])[0]["models"] == [None, None]


def test_kto_signals_follow_the_documented_mapping():
    assert kto_signals("rate", [5, 3, 1, 4, 2], 5) == {0: True, 2: False, 3: True, 4: False}
    assert kto_signals("compare", 1, 2) == {1: True, 0: False}
    assert kto_signals("compare", "both_bad", 2) == {0: False, 1: False}
    assert kto_signals("compare", "tie", 2) == {}
    assert kto_signals("rank", [2, 0, 1], 3) == {2: True, 1: False}


def test_kto_majority_and_per_annotator():
    agree = item(
        "rate", ["r0", "r1", "r2"], [("a", [5, 1, 3]), ("b", [4, 2, 3])], models=["m", "n", "o"]
    )
    split = item("rate", ["r0", "r1"], [("a", [5, 1]), ("b", [1, 5])], item_id="i2")
    rows, dropped = to_kto([agree, split])
    assert [(r["item_id"], r["completion"], r["label"]) for r in rows] == [
        ("i1", "r0", True),
        ("i1", "r1", False),
    ]
    assert rows[0]["model"] == "m" and rows[0]["votes_desirable"] == 2
    assert dropped == {"neutral": 2, "split": 2}  # r2 rated 3 twice; i2 draws on both
    rows, _ = to_kto([split], aggregate="none")
    assert sorted((r["annotator"], r["completion"], r["label"]) for r in rows) == [
        ("a", "r0", True),
        ("a", "r1", False),
        ("b", "r0", False),
        ("b", "r1", True),
    ]


def test_sinks_from_suffix_and_csv_cells():
    assert [sink_for(x) for x in ("a.jsonl", "a.CSV", "a.parquet", "dir")] == [
        "jsonl",
        "csv",
        "parquet",
        "datasets",
    ]
    assert sink_for("a.txt", "csv") == "csv"
    with pytest.raises(RLFoundryError, match="suffix"):
        sink_for("a.txt")
    text = to_csv([{"a": 1, "l": ["x", None]}, {"a": 2, "b": None}])
    assert text.splitlines() == ["a,l,b", '1,"[""x"", null]",', "2,,"]


# ---- leaderboard ------------------------------------------------------------------------


def test_games_score_ties_half_and_skip_unnamed_or_same_model():
    items = [
        item("compare", ["x", "y"], [("a", 0), ("b", "tie")], models=["A", "B"]),
        item("compare", ["x", "y"], [("a", 0)], item_id="i2", models=["A", "A"]),
        item("compare", ["x", "y"], [("a", 0)], item_id="i3", models=["A", None]),
        item("rank", ["x", "y", "z"], [("a", [2, 1, 0])], item_id="i4", models=["A", "B", "C"]),
    ]
    names, mats = games(items)
    assert names == ["A", "B", "C"] and mats.shape == (2, 3, 3)
    w = mats.sum(0)
    # item 1: A beats B, then a tie (1/2 each); item 4 ranks C > B > A
    np.testing.assert_array_equal(w, [[0, 1.5, 0], [0.5 + 1, 0, 0], [1, 1, 0]])
    np.testing.assert_allclose(win_rate(w), [1.5 / 4, 1.5 / 4, 2 / 2])


def test_bradley_terry_hand_cases():
    # Two models, A wins 3 of 4: the MLE has p_A / p_B = 3.
    w = np.array([[0.0, 3.0], [1.0, 0.0]])
    s = bradley_terry(w, prior=0)
    assert s[0] - s[1] == pytest.approx(math.log(3), abs=1e-8)
    # One virtual tie adds half a win each way: 3.5 / 1.5.
    s = bradley_terry(w, prior=1)
    assert s[0] - s[1] == pytest.approx(math.log(3.5 / 1.5), abs=1e-8)
    # A chain A -2:1- B -2:1- C with no A-C games: each edge's ratio is its win ratio,
    # p = (4, 2, 1), so log p centred = (ln 2, 0, -ln 2).
    w = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(bradley_terry(w, prior=0), [math.log(2), 0, -math.log(2)], atol=1e-8)
    # Unbeaten without a prior: no finite MLE, nan; a prior makes it finite.
    w = np.array([[0.0, 2.0], [0.0, 0.0]])
    assert np.isnan(bradley_terry(w, prior=0)).all()
    assert bradley_terry(w, prior=1)[0] == pytest.approx(math.log(2.5 / 0.5) / 2, abs=1e-8)
    # A rock-paper-scissors cycle: all equal.
    w = np.array([[0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]])
    np.testing.assert_allclose(bradley_terry(w, prior=0), [0, 0, 0], atol=1e-8)


def synthetic(n_items, seed, strengths=(4.0, 2.0, 1.0)):
    """Compare items between random model pairs, won with BT probability."""
    rng = np.random.default_rng(seed)
    names = ["A", "B", "C"]
    out = []
    for g in range(n_items):
        i, j = rng.choice(3, 2, replace=False)
        first_wins = rng.random() < strengths[i] / (strengths[i] + strengths[j])
        out.append(
            item(
                "compare",
                ["x", "y"],
                [("a", 0 if first_wins else 1)],
                item_id=str(g),
                models=[names[i], names[j]],
            )
        )
    return out


def test_bootstrap_ci_orders_known_strengths_and_covers_the_truth():
    rows = {r["model"]: r for r in leaderboard(synthetic(600, 0), n_boot=300, seed=0, prior=0)}
    true_elo = {m: 1000 + 400 * math.log10(p / 2.0) for m, p in zip("ABC", (4.0, 2.0, 1.0))}
    for m in "ABC":  # geometric mean of (4, 2, 1) is 2
        assert rows[m]["elo_lo"] < true_elo[m] < rows[m]["elo_hi"]
        assert rows[m]["win_rate_lo"] < rows[m]["win_rate"] < rows[m]["win_rate_hi"]
    assert rows["A"]["elo_lo"] > rows["B"]["elo_hi"] and rows["B"]["elo_lo"] > rows["C"]["elo_hi"]
    # Fewer items: wider intervals.
    small = {r["model"]: r for r in leaderboard(synthetic(60, 0), n_boot=300, seed=0, prior=0)}
    assert small["B"]["elo_hi"] - small["B"]["elo_lo"] > rows["B"]["elo_hi"] - rows["B"]["elo_lo"]


def test_bootstrap_is_seeded():
    _, mats = games(synthetic(50, 1))
    a = bootstrap(mats, win_rate, n_boot=50, seed=3)
    b = bootstrap(mats, win_rate, n_boot=50, seed=3)
    c = bootstrap(mats, win_rate, n_boot=50, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0]) or not np.array_equal(a[1], c[1])
