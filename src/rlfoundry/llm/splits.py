"""Train/held-out splits of generated tasks, decided by a hash of the prompt.

A held-out ("test") prompt can never be drawn for training, whatever seeds or sizes are
asked for: membership depends on the prompt text alone.
"""

from __future__ import annotations

import hashlib

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
