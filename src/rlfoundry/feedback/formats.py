"""The other two export formats, as pure functions of judged items.

``raw``: one row per judgment per annotator, nothing aggregated and nothing dropped,
with the responses' model identities (``models``, from the import file's
``{"text": ..., "model": ...}`` responses; ``null`` where the file gave none). The label
is kept in response-index terms (see ``labels``) as JSON text so that one column holds
every task kind in CSV and Parquet alike.

``kto``: unpaired ``{prompt, completion, label}`` rows for TRL's ``KTOTrainer``
(Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization"),
``label`` true for a desirable completion. One judgment says, of each response:

* rate: rating >= 4 desirable, <= 2 undesirable, 3 nothing (the response is dropped);
* compare: the winner desirable, the loser undesirable; "both bad" both undesirable;
  a tie nothing;
* rank: the first-ranked response desirable, the last-ranked undesirable, the ones in
  between nothing (with 2 responses this is the same as compare).

* rewrite: nothing (an edit says the chosen response needed work, not that it was
  good); its product is ``sft``.

``aggregate="majority"`` (default) writes one row per response: the annotators' signals
vote and a strict majority of desirable over undesirable (or the reverse) decides; a
draw is dropped (``split``). An item with a reviewer's decision takes its signals from
the decision alone (``adjudicated: true``). ``aggregate="none"`` writes one row per
annotator signal.

``sft``: the rewrite task's product, ``{prompt, completion}`` rows that
``rlfoundry llm sft --data`` trains on (``prompt`` is the conversation, a list of
messages, for a multi-turn item). One row per annotator's rewrite, or only the
reviewer's rewrite when the item has a decision.

``raw`` also carries the reviewer's decision beside the votes: ``review`` (the decision's
label as JSON text, ``"discard"``, or null) and ``reviewer``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rlfoundry.feedback.export import ItemJudgments

GOOD_RATING, BAD_RATING = 4, 2  # rate: >= GOOD desirable, <= BAD undesirable


def _model(item: ItemJudgments, idx: int) -> str | None:
    return item.models[idx] if idx < len(item.models) else None


def to_raw(items: list[ItemJudgments]) -> list[dict[str, Any]]:
    """One row per (item, annotator) judgment, in the order given."""
    rows = []
    for it in items:
        models = [_model(it, k) for k in range(len(it.responses))]
        if it.reviewer is None:
            review = None
        else:
            review = "discard" if it.discarded else json.dumps(it.review)
        for ann, label in it.judgments:
            rows.append(
                {
                    "project": it.project,
                    "item_id": it.item_id,
                    "kind": it.kind,
                    "annotator": ann,
                    "label": json.dumps(label),
                    "prompt": it.prompt,
                    "responses": list(it.responses),
                    "models": models,
                    "n_votes": len(it.judgments),
                    "is_gold": it.is_gold,
                    "review": review,
                    "reviewer": it.reviewer,
                }
            )
    return rows


def kto_signals(kind: str, label: Any, n: int) -> dict[int, bool]:
    """``{response index: desirable?}`` of one judgment; indices absent say nothing."""
    if kind == "rate":
        out = {}
        for i, r in enumerate(label):
            if r >= GOOD_RATING:
                out[i] = True
            elif r <= BAD_RATING:
                out[i] = False
        return out
    if kind == "compare":
        if label == "both_bad":
            return {i: False for i in range(n)}
        if label == "tie":
            return {}
        return {label: True, 1 - label: False}
    if kind == "rank":
        return {label[0]: True, label[-1]: False}
    if kind == "rewrite":
        return {}
    raise ValueError(f"unknown task kind {kind!r}")


def _kto_row(it: ItemJudgments, k: int, good: bool, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": it.prompt,
        "completion": it.responses[k],
        "label": good,
        "project": it.project,
        "item_id": it.item_id,
        "response_index": k,
        "model": _model(it, k),
        "source": it.kind,
        **extra,
    }


def to_kto(
    items: list[ItemJudgments], *, aggregate: str = "majority"
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """KTO rows and counts of what was dropped: ``{"neutral", "split"}``."""
    if aggregate not in ("majority", "none"):
        raise ValueError(f"aggregate must be 'majority' or 'none', got {aggregate!r}")
    rows: list[dict[str, Any]] = []
    dropped = {"neutral": 0, "split": 0}
    for it in items:
        n = len(it.responses)
        per_resp: dict[int, list[tuple[str, bool]]] = {k: [] for k in range(n)}
        adjudicated = it.reviewer is not None
        for ann, label in it.final if aggregate == "majority" else it.judgments:
            sig = kto_signals(it.kind, label, n)
            dropped["neutral"] += n - len(sig)
            for k, good in sig.items():
                per_resp[k].append((ann, good))

        for k in range(n):
            if aggregate == "none":
                rows.extend(_kto_row(it, k, good, annotator=ann) for ann, good in per_resp[k])
                continue
            votes = Counter(good for _, good in per_resp[k])
            if not votes:
                continue
            if votes[True] == votes[False]:
                dropped["split"] += 1
                continue
            good = votes[True] > votes[False]
            rows.append(
                _kto_row(
                    it,
                    k,
                    good,
                    votes_desirable=votes[True],
                    votes_undesirable=votes[False],
                    n_annotators=len(it.judgments),
                    adjudicated=adjudicated,
                )
            )
    return rows, dropped


def to_sft(items: list[ItemJudgments]) -> tuple[list[dict[str, Any]], int]:
    """SFT rows from rewrite judgments, and how many items had no rewrite."""
    rows, without = [], 0
    for it in items:
        if it.kind != "rewrite":
            continue
        final = it.final
        if not final:
            without += 1
        for ann, label in final:
            rows.append(
                {
                    "prompt": it.prompt,
                    "completion": label["text"],
                    "project": it.project,
                    "item_id": it.item_id,
                    "annotator": ann,
                    "source_index": label["best"],
                    "edited": label["text"] != it.responses[label["best"]],
                    "adjudicated": it.reviewer is not None,
                }
            )
    return rows, without
