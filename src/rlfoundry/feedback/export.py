"""Judgments -> preference pairs in TRL's format: ``{prompt, chosen, rejected, ...}``.

Every judgment is first reduced to per-pair outcomes (``labels.pair_outcome``): a
comparison gives one pair, a ranking of K responses all K(K-1)/2 pairs, ratings a
preference wherever two ratings differ (a tie where they are equal). With
``aggregate="majority"`` the annotators of an item then vote on each pair and the
outcome with a strict plurality wins; the record keeps the vote counts and the
agreement (winning votes / votes) so that low-agreement pairs can be filtered later.
Agreement needs two votes: a pair judged by one annotator is written with
``agreement: null`` (not 1.0), and any ``min_agreement > 0`` drops it
(``skipped_single_vote``). ``select_items`` keeps only items with enough votes
(``--min-votes N``) or every vote the project asks for (``--complete-only``).

Reviewed items (``review``): the reviewer's latest decision is the item's outcome. A
discarded item is never exported (``select_items`` drops it); an item with a decision is
kept by ``--complete-only`` and ``--min-votes`` whatever its number of votes (the
reviewer settled it), and with ``aggregate="majority"`` each pair's outcome is read from
the decision instead of the vote (``adjudicated: true``; the vote counts and agreement
still describe the annotators). ``aggregate="none"`` writes the annotators' votes only.

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
    models: list[str | None] = field(default_factory=list)  # per response; [] = unknown
    overlap: int = 0  # votes the project asks for (0: unknown)
    review: Any = None  # the latest reviewer decision's label (response-index terms)
    reviewer: str | None = None  # who decided; None: not reviewed
    discarded: bool = False  # the reviewer's decision: leave the item out

    @property
    def final(self) -> list[tuple[str, Any]]:
        """The judgments that decide the item: the reviewer's label if there is one."""
        if self.reviewer is not None and not self.discarded:
            return [(self.reviewer, self.review)]
        return self.judgments


@dataclass
class ExportSummary:
    pairs: int = 0
    items: int = 0
    skipped_tie: int = 0
    skipped_both_bad: int = 0
    skipped_split: int = 0  # no strict plurality among annotators
    skipped_low_agreement: int = 0
    skipped_single_vote: int = 0  # agreement undefined and min_agreement > 0
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
        if (item.is_gold and not include_gold) or item.discarded:
            continue
        if not item.judgments and item.reviewer is None:
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
                adjudicated = item.reviewer is not None and not item.discarded
                if adjudicated:
                    outcome = pair_outcome(item.kind, item.review, i, j)
                    n_top = counts[outcome]
                elif len(top) == 2 and top[0][1] == top[1][1]:
                    summary.skipped_split += 1
                    continue
                else:
                    outcome, n_top = top[0]
                total = len(votes)
                # One vote agrees with nothing: agreement is undefined, not 1.0.
                agreement = n_top / total if total >= 2 else None
                if agreement is None and min_agreement > 0 and not adjudicated:
                    summary.skipped_single_vote += 1
                    continue
                if agreement is not None and agreement < min_agreement and not adjudicated:
                    summary.skipped_low_agreement += 1
                    continue
                fields = {
                    "adjudicated": adjudicated,
                    "n_annotators": total,
                    "votes_tie": counts["tie"],
                    "votes_both_bad": counts["both_bad"],
                    "agreement": None if agreement is None else round(agreement, 4),
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


def select_items(
    items: list[ItemJudgments],
    *,
    complete_only: bool = False,
    min_votes: int = 0,
    include_gold: bool = False,
) -> tuple[list[ItemJudgments], int]:
    """Items worth exporting, and how many judged items were left out for too few votes.

    ``complete_only``: an item needs at least its project's ``overlap`` judgments.
    ``min_votes``: an item needs at least that many judgments. Unjudged items,
    discarded ones and (unless ``include_gold``) gold items are never kept and never
    counted as left out; an item with a reviewer's decision is always kept.
    """
    if min_votes < 0:
        raise ValueError(f"min_votes must be 0 or more, got {min_votes}")
    kept, dropped = [], 0
    for it in items:
        if (it.is_gold and not include_gold) or it.discarded:
            continue
        if it.reviewer is not None:  # settled by a reviewer, however many votes
            kept.append(it)
            continue
        if not it.judgments:
            continue
        need = max(min_votes, it.overlap if complete_only and not it.is_gold else 0)
        if len(it.judgments) < need:
            dropped += 1
            continue
        kept.append(it)
    return kept, dropped
