"""Regenerate the example feedback export of the dialogue task:
src/rlfoundry/data/dialogue_feedback_pairs.jsonl.

    python benchmarks/make_dialogue_feedback.py [--out FILE] [--seed 0]

What a small feedback-app project would export: one-turn conversations (a user's turn
about an everyday thing, three candidate replies) ranked by three annotators, exported
as preference pairs by the export itself (`feedback.export.to_pairs`: majority vote
over the annotators, ties skipped, the agreement kept). The replies come in three
kinds, and the simulated annotators rank them helpful and polite > curt > rude or off
topic, each swapping two neighbouring replies with probability `--noise`, so some pairs
are contested (agreement 2/3) and a few are split and dropped, as with real annotators.
Deterministic for a seed. The text is written here, for rlfoundry, under its licence
(Apache-2.0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rlfoundry.feedback.export import ItemJudgments, to_pairs

OUT = Path(__file__).resolve().parents[1] / "src/rlfoundry/data/dialogue_feedback_pairs.jsonl"

NOUNS = ["movie", "food", "hotel", "room", "book", "phone", "pasta", "coffee", "concert",
         "screen", "battery", "music", "game", "camera", "trip", "soup", "app", "keyboard",
         "flight", "pizza", "album", "museum", "class", "view"]  # fmt: skip
TURNS = [
    "User: My {} is broken. Assistant:",
    "User: Can you recommend a good {}? Assistant:",
    "User: I did not enjoy the {}. Assistant:",
    "User: How was the {}? Assistant:",
    "User: I love my new {}! Assistant:",
]
GOOD = [
    " Thanks for telling me! I hope the {} is great for you.",
    " Sorry about that. Let me help you with the {}.",
    " That is lovely to hear. Enjoy the {}!",
    " Happy to help! A good {} makes a great day.",
    " Thank you for asking. The {} was wonderful.",
]
CURT = [" ok.", " Maybe.", " I do not know.", " The {} is fine.", " Sure."]
BAD = [
    " Not my problem.",
    " Whatever, I like trains.",
    " That is a stupid {}.",
    " Go away.",
    " Your {} is boring and awful.",
]


def build(seed: int = 0, noise: float = 0.15, annotators: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for t, turn in enumerate(TURNS):
        for noun in NOUNS:
            replies = [
                kind[int(rng.integers(len(kind)))].format(noun) for kind in (GOOD, CURT, BAD)
            ]
            order = rng.permutation(3)  # shown to annotators in a random order
            shown = [replies[i] for i in order]
            best_first = [int(np.where(order == q)[0][0]) for q in range(3)]  # indices in `shown`
            judgments = []
            for a in range(annotators):
                rank = list(best_first)
                for k in range(2):
                    if rng.random() < noise:
                        rank[k], rank[k + 1] = rank[k + 1], rank[k]
                judgments.append((f"annotator{a + 1}", rank))
            items.append(
                ItemJudgments(
                    item_id=f"d{t}-{noun}",
                    prompt=turn.format(noun),
                    responses=shown,
                    kind="rank",
                    judgments=judgments,
                    project="dialogue-example",
                    overlap=annotators,
                )
            )
    pairs, _ = to_pairs(items, aggregate="majority", ties="skip")
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.15)
    args = ap.parse_args()
    pairs = build(args.seed, args.noise)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    print(f"{len(pairs)} pairs -> {args.out}")


if __name__ == "__main__":
    main()
