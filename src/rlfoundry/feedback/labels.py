"""Judgment labels: from what the annotator saw (A/B/...) to response indices, and back.

An assignment shows an item's responses in a random order ``order`` (``order[0]`` is
the response shown as A). Labels are stored in response-index terms so that different
annotators' judgments of one item are comparable:

* compare: ``0`` or ``1`` (index of the better response), ``"tie"`` or ``"both_bad"``;
* rank: a list of response indices, best first (a permutation of ``range(K)``);
* rate: a list of K integer ratings 1-5, ``label[i]`` rating response ``i``;
* rewrite: ``{"best": i, "text": "..."}``, the better response's index and the
  annotator's edited version of it (an SFT example, see ``formats.to_sft``).

Every function here is pure.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

LETTERS = string.ascii_uppercase
NO_PREFERENCE = ("tie", "both_bad")
RATING_MIN, RATING_MAX = 1, 5
MAX_REASON = 5000  # characters of the optional free-text reason
MAX_REWRITE = 20_000  # characters of an edited completion


class LabelError(ValueError):
    """A submitted judgment that does not fit the item (shown to the annotator as is)."""


def letter(pos: int) -> str:
    return LETTERS[pos]


def from_display(kind: str, order: list[int], payload: Mapping[str, Any]) -> Any:
    """Validate a submission in display terms and return the stored label.

    ``payload`` holds ``choice`` ("A", "B", "tie", "both_bad") for compare, ``ranking``
    (letters best first) for rank, ``ratings`` ({letter: 1-5}) for rate.
    """
    k = len(order)
    letters = [letter(p) for p in range(k)]
    if kind == "compare":
        choice = payload.get("choice")
        if choice in NO_PREFERENCE:
            return choice
        if choice in letters[:2]:
            return order[letters.index(choice)]
        raise LabelError("Choose A, B, tie or both bad.")
    if kind == "rank":
        ranking = payload.get("ranking")
        if not isinstance(ranking, list) or sorted(map(str, ranking)) != letters:
            raise LabelError(f"Rank every response exactly once ({', '.join(letters)}).")
        return [order[letters.index(x)] for x in ranking]
    if kind == "rate":
        ratings = payload.get("ratings")
        if not isinstance(ratings, Mapping) or sorted(ratings) != letters:
            raise LabelError(f"Rate every response ({', '.join(letters)}) from 1 to 5.")
        label = [0] * k
        for pos, name in enumerate(letters):
            value = ratings[name]
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise LabelError(f"Rating of {name} must be a whole number from 1 to 5.")
            if not RATING_MIN <= value <= RATING_MAX:
                raise LabelError(f"Rating of {name} must be from 1 to 5, got {value}.")
            label[order[pos]] = value
        return label
    if kind == "rewrite":
        choice = payload.get("choice")
        if choice not in letters:
            raise LabelError(f"Choose the better response ({', '.join(letters)}) to rewrite.")
        return {"best": order[letters.index(choice)], "text": check_rewrite(payload.get("rewrite"))}
    raise LabelError(f"Unknown task kind '{kind}'.")


def check_rewrite(text: Any) -> str:
    """The edited completion: non-blank text of at most :data:`MAX_REWRITE` characters."""
    if not isinstance(text, str) or not text.strip():
        raise LabelError("Write the improved response in the rewrite box.")
    if len(text) > MAX_REWRITE:
        raise LabelError(
            f"The rewrite is {len(text)} characters long; the limit is {MAX_REWRITE}, shorten it."
        )
    return text.replace("\r\n", "\n")


def check_reason(reason: Any) -> str:
    """The free-text reason as stored: refused when over :data:`MAX_REASON` characters
    (an annotator's text is never cut silently)."""
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise LabelError("The reason must be text.")
    if len(reason) > MAX_REASON:
        raise LabelError(
            f"The reason is {len(reason)} characters long; the limit is {MAX_REASON}, shorten it."
        )
    return reason


def to_display(kind: str, order: list[int], label: Any) -> dict[str, Any]:
    """Inverse of :func:`from_display` for one annotator's own view."""
    pos_of = {idx: pos for pos, idx in enumerate(order)}
    if kind == "compare":
        return {"choice": label if label in NO_PREFERENCE else letter(pos_of[label])}
    if kind == "rank":
        return {"ranking": [letter(pos_of[i]) for i in label]}
    if kind == "rewrite":
        return {"choice": letter(pos_of[label["best"]]), "rewrite": label["text"]}
    return {"ratings": {letter(pos_of[i]): r for i, r in enumerate(label)}}


def validate_label(kind: str, n: int, label: Any) -> None:
    """Check a stored-form label (used for gold answers in import files)."""
    if kind == "rewrite":
        raise LabelError("a rewrite project takes no gold items")
    if kind == "compare":
        ok = label in NO_PREFERENCE or (type(label) is int and 0 <= label < 2)
        msg = 'compare gold must be 0, 1, "tie" or "both_bad"'
    elif kind == "rank":
        ok = isinstance(label, list) and sorted(label) == list(range(n))
        msg = f"rank gold must be a permutation of 0..{n - 1}, best first"
    else:
        ok = (
            isinstance(label, list)
            and len(label) == n
            and all(type(r) is int and RATING_MIN <= r <= RATING_MAX for r in label)
        )
        msg = f"rate gold must be a list of {n} ratings from 1 to 5"
    if not ok:
        raise LabelError(msg)


def pair_outcome(kind: str, label: Any, i: int, j: int) -> str:
    """What one judgment says about responses ``i < j``: "i", "j", "tie" or "both_bad".

    Rankings say ``i`` wins when it is placed higher; ratings when it is rated higher
    (equal ratings are a tie).
    """
    if kind == "compare":
        if label in NO_PREFERENCE:
            return label
        return "i" if label == i else "j"
    if kind == "rank":
        return "i" if label.index(i) < label.index(j) else "j"
    if kind == "rewrite":  # the response picked for rewriting beats the other (K <= 2)
        return "i" if label["best"] == i else "j"
    if label[i] == label[j]:
        return "tie"
    return "i" if label[i] > label[j] else "j"


def agreement_units(kind: str, label: Any) -> dict[Any, Any]:
    """Split a judgment into the units that inter-annotator agreement is measured on.

    compare: one unit (the label); rewrite: one unit (which response is better). rank: one unit per response pair ``(i, j)``, valued by
    the winner's index. rate: one unit per response, valued by its rating (ordinal).
    """
    if kind == "compare":
        return {(): str(label)}
    if kind == "rewrite":
        return {(): label["best"]}
    if kind == "rank":
        n = len(label)
        return {
            (i, j): i if pair_outcome(kind, label, i, j) == "i" else j
            for i in range(n)
            for j in range(i + 1, n)
        }
    return {(i,): r for i, r in enumerate(label)}


def gold_match(kind: str, label: Any, gold: Any) -> bool:
    """Did an annotator pass an attention check?

    compare: same label. rank: same top response (full rankings of K>2 rarely match
    exactly, the best one should). rate: every rating within 1 of the gold rating.
    """
    if kind == "compare":
        return label == gold
    if kind == "rewrite":
        return label["best"] == gold["best"]
    if kind == "rank":
        return label[0] == gold[0]
    return all(abs(a - b) <= 1 for a, b in zip(label, gold))
