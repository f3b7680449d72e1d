"""Agreement statistics against numbers worked out by hand."""

import math

import pytest

from rlfoundry.feedback.agreement import (
    cohen_kappa,
    krippendorff_alpha,
    pairwise_kappa,
    percent_agreement,
    summarize,
    vs_majority,
)


def test_cohen_kappa_textbook_example():
    # Wikipedia's "Cohen's kappa" example: 50 proposals, yes/no by readers A and B:
    # 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no.
    a = ["yes"] * 20 + ["yes"] * 5 + ["no"] * 10 + ["no"] * 15
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    # p_o = 35/50 = 0.7; A says yes 25/50, B 30/50; p_e = .5*.6 + .5*.4 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_three_labels():
    # 10 units; confusion (rows A, cols B) over x,y,z: [[3,1,0],[0,3,0],[1,0,2]]
    pairs = [("x", "x")] * 3 + [("x", "y")] + [("y", "y")] * 3 + [("z", "x")] + [("z", "z")] * 2
    a, b = zip(*pairs)
    # p_o = 8/10; A: x4 y3 z3, B: x4 y4 z2; p_e = (16 + 12 + 6) / 100 = 0.34
    # kappa = (0.8 - 0.34) / 0.66 = 0.696969...
    assert cohen_kappa(a, b) == pytest.approx(0.46 / 0.66)


def test_cohen_kappa_edges():
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))  # p_e = 1: undefined
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError):
        cohen_kappa(["a"], [])


def test_percent_agreement_by_hand():
    table = {
        1: {"ann": "x", "bob": "x", "cy": "y"},  # 3 pairs, 1 agrees: 1/3
        2: {"ann": "x", "bob": "x"},  # 1
        3: {"ann": "z"},  # one label: not counted
        4: {"bob": "x", "cy": "y"},  # 0
    }
    assert percent_agreement(table) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert math.isnan(percent_agreement({1: {"a": 1}}))


def test_krippendorff_alpha_nominal_by_hand():
    # 2 coders, units (a,a), (a,b), (b,b), (b,b). Coincidences: o_aa=2, o_ab=o_ba=1,
    # o_bb=4; n_a=3, n_b=5, n=8. alpha = 1 - (n-1)(o_ab+o_ba) / (2 n_a n_b)
    # = 1 - 7*2/30 = 8/15.
    table = {1: {"p": "a", "q": "a"}, 2: {"p": "a", "q": "b"}, 3: {"p": "b", "q": "b"}}
    table[4] = {"p": "b", "q": "b"}
    assert krippendorff_alpha(table, "nominal") == pytest.approx(8 / 15)


def test_krippendorff_alpha_missing_labels_and_single_label_units():
    # A unit with one label carries no pairable value and must not change alpha.
    table = {1: {"p": "a", "q": "a"}, 2: {"p": "a", "q": "b"}, 3: {"p": "b", "q": "b"}}
    table[4] = {"p": "b", "q": "b"}
    with_single = {**table, 5: {"r": "a"}, 6: {"p": "b"}}
    assert krippendorff_alpha(with_single) == pytest.approx(8 / 15)


def test_krippendorff_alpha_ordinal_by_hand():
    # Ratings 1 and 2 by two coders on two units: (1,1), (1,2). Values n_1 = 3, n_2 = 1,
    # n = 4. Ordinal metric between 1 and 2: (n_1/2 + n_2/2)^2 = (1.5 + 0.5)^2 = 4.
    # D_o = (o_12 + o_21) * 4 / n = 2*4/4 = 2; D_e = 2 * n_1 n_2 * 4 / (n (n-1)) = 24/12 = 2.
    # alpha = 1 - D_o / D_e = 0.
    table = {1: {"p": 1, "q": 1}, 2: {"p": 1, "q": 2}}
    assert krippendorff_alpha(table, "ordinal") == pytest.approx(0.0, abs=1e-12)
    perfect = {1: {"p": 1, "q": 1}, 2: {"p": 5, "q": 5}, 3: {"p": 3, "q": 3}}
    assert krippendorff_alpha(perfect, "ordinal") == pytest.approx(1.0)


def test_krippendorff_alpha_undefined():
    assert math.isnan(krippendorff_alpha({1: {"p": "a", "q": "a"}}))  # one value overall
    assert math.isnan(krippendorff_alpha({1: {"p": "a"}, 2: {"q": "b"}}))  # nothing pairable
    with pytest.raises(ValueError):
        krippendorff_alpha({1: {"p": 1, "q": 2}}, "ratio")


def test_pairwise_kappa_uses_shared_units_only():
    table = {
        1: {"a": "x", "b": "x", "c": "y"},
        2: {"a": "y", "b": "y"},
        3: {"a": "x", "c": "x"},
    }
    got = pairwise_kappa(table)
    assert got[("a", "b")] == {"kappa": pytest.approx(1.0), "agreement": 1.0, "n": 2}
    # a vs c on units 1 and 3: (x,y), (x,x): p_o = .5; a: x2, c: x1 y1; p_e = 2*1/4 = .5
    assert got[("a", "c")]["agreement"] == 0.5
    assert got[("a", "c")]["kappa"] == pytest.approx(0.0)
    assert got[("b", "c")]["n"] == 1


def test_vs_majority_leaves_the_annotator_out():
    table = {
        1: {"a": "x", "b": "x", "c": "x"},  # everyone agrees with the others
        2: {"a": "x", "b": "y", "c": "y"},  # a: others (y,y) -> y, miss; b: others (x,y) tie
        3: {"a": "x", "b": "x"},  # a vs b's x: hit; b vs a's x: hit
        4: {"c": "z"},  # alone: not counted
    }
    got = vs_majority(table)
    assert got["a"] == {"agreement": pytest.approx(2 / 3), "n": 3}
    assert got["b"] == {"agreement": 1.0, "n": 2}  # unit 2: others split x/y, skipped
    assert got["c"] == {"agreement": 1.0, "n": 1}  # unit 1 only; unit 2 also tie -> skipped


def test_summarize_is_json_friendly():
    out = summarize({1: {"a": "x"}})
    assert out["percent_agreement"] is None and out["krippendorff_alpha"] is None
    assert out["units"] == 0
