"""Inter-annotator agreement, as pure functions of a label table.

A *table* maps each unit (an item, or an item's response pair / response, see
``labels.agreement_units``) to ``{annotator: value}``; units one annotator skipped are
simply absent from its row. Values are hashable labels (strings or ints).

References: Cohen (1960), "A coefficient of agreement for nominal scales";
Krippendorff (2011), "Computing Krippendorff's alpha-reliability" (computed here with
the ``krippendorff`` package).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations

Table = Mapping[Hashable, Mapping[Hashable, Hashable]]


def percent_agreement(table: Table) -> float:
    """Mean over units with 2+ labels of the fraction of annotator pairs that agree.

    A unit labelled (x, x, y) has 3 pairs of which 1 agrees, so it scores 1/3. Returns
    ``nan`` when no unit has two labels.
    """
    scores = []
    for row in table.values():
        values = list(row.values())
        if len(values) < 2:
            continue
        pairs = list(combinations(values, 2))
        scores.append(sum(a == b for a, b in pairs) / len(pairs))
    return sum(scores) / len(scores) if scores else math.nan


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two annotators' labels on the same units.

    kappa = (p_o - p_e) / (1 - p_e), with p_o the observed agreement and
    p_e = sum_c p_a(c) p_b(c) the agreement expected from each annotator's own label
    frequencies. ``nan`` when undefined (no units, or p_e = 1: both always gave the same
    single label).
    """
    if len(a) != len(b):
        raise ValueError("cohen_kappa needs two label lists of the same length")
    n = len(a)
    if n == 0:
        return math.nan
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[c] * cb[c] for c in ca) / (n * n)
    if p_e == 1:
        return math.nan
    return (p_o - p_e) / (1 - p_e)


def pairwise_kappa(table: Table, min_units: int = 1) -> dict[tuple[Hashable, Hashable], dict]:
    """Cohen's kappa for every annotator pair on the units both labelled.

    Returns ``{(a, b): {"kappa": k, "agreement": p_o, "n": units}}`` for pairs sharing at
    least ``min_units`` units, with ``a < b`` in sorted order.
    """
    annotators = sorted({ann for row in table.values() for ann in row}, key=str)
    out = {}
    for a, b in combinations(annotators, 2):
        la, lb = [], []
        for row in table.values():
            if a in row and b in row:
                la.append(row[a])
                lb.append(row[b])
        if len(la) >= min_units:
            p_o = sum(x == y for x, y in zip(la, lb)) / len(la)
            out[(a, b)] = {"kappa": cohen_kappa(la, lb), "agreement": p_o, "n": len(la)}
    return out


def krippendorff_alpha(table: Table, level: str = "nominal") -> float:
    """Krippendorff's alpha over all annotators (``level``: "nominal" or "ordinal").

    Handles missing labels and any number of annotators. Nominal values are mapped to
    integer codes; ordinal values must already be numbers in their natural order.
    ``nan`` when undefined (fewer than two labels in every unit, or one value overall).
    """
    import numpy as np
    from krippendorff import alpha

    units = [row for row in table.values() if len(row) >= 2]
    if not units:
        return math.nan
    annotators = sorted({ann for row in units for ann in row}, key=str)
    values = sorted({v for row in units for v in row.values()}, key=str)
    if len(values) < 2:
        return math.nan
    if level == "nominal":
        code = {v: float(c) for c, v in enumerate(values)}
    elif level == "ordinal":
        code = {v: float(v) for v in values}
    else:
        raise ValueError(f"level must be 'nominal' or 'ordinal', got {level!r}")
    data = np.full((len(annotators), len(units)), np.nan)
    row_of = {ann: r for r, ann in enumerate(annotators)}
    for u, row in enumerate(units):
        for ann, v in row.items():
            data[row_of[ann], u] = code[v]
    return float(alpha(reliability_data=data, level_of_measurement=level))


def vs_majority(table: Table) -> dict[Hashable, dict]:
    """How often each annotator agrees with the majority of the *other* annotators.

    Leaving the annotator out keeps their own vote from inflating the score (with two
    annotators the "majority" would otherwise include themself). Units where the others
    have no strict majority, or where no one else labelled, are not counted.
    Returns ``{annotator: {"agreement": fraction or nan, "n": units counted}}``.
    """
    hits: Counter = Counter()
    counts: Counter = Counter()
    annotators = {ann for row in table.values() for ann in row}
    for row in table.values():
        for ann, value in row.items():
            others = Counter(v for a, v in row.items() if a != ann)
            top = others.most_common(2)
            if not top or (len(top) == 2 and top[0][1] == top[1][1]):
                continue
            counts[ann] += 1
            hits[ann] += top[0][0] == value
    return {
        ann: {"agreement": hits[ann] / counts[ann] if counts[ann] else math.nan, "n": counts[ann]}
        for ann in sorted(annotators, key=str)
    }


def summarize(table: Table, level: str = "nominal") -> dict:
    """All of the above for one table, in a JSON-friendly dict (nan -> None)."""

    def clean(x: float) -> float | None:
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 4)

    pairs = pairwise_kappa(table)
    majority = vs_majority(table)
    return {
        "units": sum(1 for row in table.values() if len(row) >= 2),
        "percent_agreement": clean(percent_agreement(table)),
        "krippendorff_alpha": clean(krippendorff_alpha(table, level)),
        "alpha_level": level,
        "pairwise_kappa": [
            {
                "a": a,
                "b": b,
                "kappa": clean(v["kappa"]),
                "agreement": clean(v["agreement"]),
                "n": v["n"],
            }
            for (a, b), v in pairs.items()
        ],
        "vs_majority": {
            ann: {"agreement": clean(v["agreement"]), "n": v["n"]} for ann, v in majority.items()
        },
    }
