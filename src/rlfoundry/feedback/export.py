"""Judgments -> preference pairs in TRL's format: ``{prompt, chosen, rejected, ...}``.

Every judgment is first reduced to per-pair outcomes (``labels.pair_outcome``): a
comparison gives one pair, a ranking of K responses all K(K-1)/2 pairs, ratings a
preference wherever two ratings differ (a tie where they are equal). With
``aggregate="majority"`` the annotators of an item then vote on each pair and the
outcome with a strict plurality wins; the record keeps the vote counts and the
agreement (winning votes / votes) so that low-agreement pairs can be filtered later.

Ties: skipped by default. ``ties="both"`` writes a majority tie as both orderings,
each marked ``"tie": true``; for a Bradley-Terry reward model the two records together
have the same gradient as one pair with target probability 1/2. "Both bad" carries no
information about which response is better and is never turned into a pair.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rlfoundry.feedback.labels import pair_outcome


@dataclass
class ItemJudgments:
    """One item with every judgment of it, labels in response-index terms."""

    item_id: str
    prompt: str
    responses: list[str]
    kind: str
    judgments: list[tuple[str, Any]]  # (annotator name, label)
    project: str = ""
    is_gold: bool = False


@dataclass
class ExportSummary:
    pairs: int = 0
    items: int = 0
    skipped_tie: int = 0
    skipped_both_bad: int = 0
    skipped_split: int = 0  # no strict plurality among annotators
    skipped_low_agreement: int = 0
    notes: list[str] = field(default_factory=list)


def _record(item: ItemJudgments, win: int, lose: int, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": item.prompt,
        "chosen": item.responses[win],
        "rejected": item.responses[lose],
        "project": item.project,
        "item_id": item.item_id,
        "source": item.kind,
        "chosen_index": win,
        "rejected_index": lose,
        **extra,
    }


def to_pairs(
    items: list[ItemJudgments],
    *,
    aggregate: str = "majority",
    ties: str = "skip",
    min_agreement: float = 0.0,
    include_gold: bool = False,
) -> tuple[list[dict[str, Any]], ExportSummary]:
    """Preference pairs from judged items, and counts of what was skipped and why.

    ``aggregate``: "majority" (one record per item pair) or "none" (one record per
    annotator per pair). ``ties``: "skip" or "both". ``min_agreement``: drop majority
    pairs whose winning share of votes is below it.
    """
    if aggregate not in ("majority", "none"):
        raise ValueError(f"aggregate must be 'majority' or 'none', got {aggregate!r}")
    if ties not in ("skip", "both"):
        raise ValueError(f"ties must be 'skip' or 'both', got {ties!r}")
    out: list[dict[str, Any]] = []
    summary = ExportSummary()
    for item in items:
        if (item.is_gold and not include_gold) or not item.judgments:
            continue
        summary.items += 1
        n = len(item.responses)
        for i in range(n):
            for j in range(i + 1, n):
                votes = [
                    (ann, pair_outcome(item.kind, label, i, j)) for ann, label in item.judgments
                ]
                if aggregate == "none":
                    for ann, outcome in votes:
                        if outcome in ("i", "j"):
                            win, lose = (i, j) if outcome == "i" else (j, i)
                            out.append(_record(item, win, lose, annotator=ann, tie=False))
                        elif outcome == "tie" and ties == "both":
                            out.append(_record(item, i, j, annotator=ann, tie=True))
                            out.append(_record(item, j, i, annotator=ann, tie=True))
                        elif outcome == "tie":
                            summary.skipped_tie += 1
                        else:
                            summary.skipped_both_bad += 1
                    continue
                counts = Counter(outcome for _, outcome in votes)
                top = counts.most_common(2)
                if len(top) == 2 and top[0][1] == top[1][1]:
                    summary.skipped_split += 1
                    continue
                outcome, n_top = top[0]
                total = len(votes)
                agreement = n_top / total
                if agreement < min_agreement:
                    summary.skipped_low_agreement += 1
                    continue
                fields = {
                    "n_annotators": total,
                    "votes_tie": counts["tie"],
                    "votes_both_bad": counts["both_bad"],
                    "agreement": round(agreement, 4),
                }
                if outcome in ("i", "j"):
                    win, lose = (i, j) if outcome == "i" else (j, i)
                    out.append(
                        _record(
                            item,
                            win,
                            lose,
                            tie=False,
                            votes_chosen=counts[outcome],
                            votes_rejected=counts["j" if outcome == "i" else "i"],
                            **fields,
                        )
                    )
                elif outcome == "tie" and ties == "both":
                    for win, lose, a, b in ((i, j, "i", "j"), (j, i, "j", "i")):
                        out.append(
                            _record(
                                item,
                                win,
                                lose,
                                tie=True,
                                votes_chosen=counts[a],
                                votes_rejected=counts[b],
                                **fields,
                            )
                        )
                elif outcome == "tie":
                    summary.skipped_tie += 1
                else:
                    summary.skipped_both_bad += 1
    summary.pairs = len(out)
    return out, summary


#: 1-5 ratings -> KTO labels: 4 and 5 are desirable, 1 and 2 undesirable, 3 says neither.
KTO_DESIRABLE_MIN = 4.0
KTO_UNDESIRABLE_MAX = 2.0


def to_kto(
    items: list[ItemJudgments], *, aggregate: str = "majority", include_gold: bool = False
) -> tuple[list[dict[str, Any]], ExportSummary]:
    """Rated responses as KTO's unpaired examples ``{prompt, completion, label}``
    (``rlfoundry llm kto --data FILE``).

    Each rated response's rating (with ``aggregate="majority"`` the mean over its
    annotators, with "none" each annotator's own) maps to a label: >= 4 desirable
    (``label: true``), <= 2 undesirable, a mean strictly between (a 3, or a 2 and a 4)
    is left out and counted as a tie. Comparisons and rankings carry no absolute
    judgment: they are skipped (counted as split), export them as pairs, which
    ``llm-kto`` also reads (chosen desirable, rejected undesirable).
    """
    if aggregate not in ("majority", "none"):
        raise ValueError(f"aggregate must be 'majority' or 'none', got {aggregate!r}")
    out: list[dict[str, Any]] = []
    summary = ExportSummary()
    for item in items:
        if (item.is_gold and not include_gold) or not item.judgments:
            continue
        summary.items += 1
        if item.kind != "rate":
            summary.skipped_split += 1
            continue
        for i, response in enumerate(item.responses):
            ratings = [(ann, float(label[i])) for ann, label in item.judgments]
            if aggregate == "majority":
                mean = sum(r for _, r in ratings) / len(ratings)
                ratings = [("", mean)]
            for ann, rating in ratings:
                if KTO_UNDESIRABLE_MAX < rating < KTO_DESIRABLE_MIN:
                    summary.skipped_tie += 1
                    continue
                rec = {"prompt": item.prompt, "completion": response}
                rec.update(label=rating >= KTO_DESIRABLE_MIN, rating=round(rating, 4))
                rec.update(project=item.project, item_id=item.item_id, response_index=i)
                rec["n_annotators"] = len(item.judgments)
                if ann:
                    rec["annotator"] = ann
                out.append(rec)
    summary.pairs = len(out)
    return out, summary
