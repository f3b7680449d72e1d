"""Train/held-out splits of generated tasks, decided by a hash of the prompt.

A held-out ("test") prompt can never be drawn for training, whatever seeds or sizes are
asked for: membership depends on the prompt text alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from rlfoundry.errors import RLFoundryError

SPLITS = ("train", "test")


def held_out(key: str, fraction: float) -> bool:
    """True for the `fraction` of keys (prompts) that belong to the held-out split.

    A stable hash (not Python's salted `hash`), so the split is the same in every
    process and every version.
    """
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise RLFoundryError(f"Unknown split '{split}'; use one of {', '.join(SPLITS)}.")


def draw_prompts(
    problem: Callable[[np.random.Generator], str],
    split: str,
    n: int | None,
    seed: int,
    fraction: float,
) -> list[str]:
    """`n` (default 10,000) distinct prompts of `split`, drawn by `problem(rng)` in an
    order set by `seed`, for tasks whose prompt space is far larger than `n` (no bound
    on the draws)."""
    check_split(split)
    want_test = split == "test"
    rng = np.random.default_rng(seed)
    n = 10_000 if n is None else n
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        p = problem(rng)
        if p not in seen and held_out(p, fraction) == want_test:
            seen.add(p)
            out.append(p)
    return out
