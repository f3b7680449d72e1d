"""``rlfoundry feedback generate``: sample K responses per prompt into a project.

Sampling is done by :mod:`rlfoundry.llm` (``models.load_model`` and batched sampling in
``generation``); this module only reads prompts and turns samples into import items.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback.store import ParsedItem


def read_prompts(path: str | Path) -> list[tuple[str, str]]:
    """``[(id, prompt)]`` from a text file (one prompt a line) or JSONL ({id?, prompt})."""
    path = Path(path)
    if not path.is_file():
        raise RLFoundryError(f"Prompts file '{path}' does not exist; check the path.")
    out: list[tuple[str, str]] = []
    errors = []
    jsonl = path.suffix == ".jsonl"
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if not jsonl:
            out.append((f"p{lineno}", line.rstrip("\n").replace("\\n", "\n")))
            continue
        try:
            obj = json.loads(line)
            prompt = obj["prompt"]
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            errors.append(f"line {lineno}")
            continue
        out.append((str(obj.get("id", f"p{lineno}")), prompt))
    if errors:
        raise RLFoundryError(
            f'{path}: {", ".join(errors[:10])} are not JSON objects with a non-empty "prompt"; '
            "fix them (or use a plain text file with one prompt a line)."
        )
    if not out:
        raise RLFoundryError(f"Prompts file '{path}' is empty; put one prompt per line.")
    return out


def generate_items(
    model: str,
    prompts: str | Path,
    *,
    n: int = 2,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    device: str | None = None,
) -> list[ParsedItem]:
    if n < 1:
        raise RLFoundryError(f"-n must be at least 1, got {n}.")
    read_prompts(prompts)  # report a bad prompts file before loading anything
    try:
        from rlfoundry.llm import generation, models  # noqa: F401
    except ImportError:
        raise RLFoundryError(
            "`rlfoundry feedback generate` needs rlfoundry.llm, which is not available in this "
            "installation; generate responses elsewhere and use `rlfoundry feedback import`."
        ) from None
    raise RLFoundryError(
        "`rlfoundry feedback generate` needs rlfoundry.llm's sampling API, which this version "
        "does not wire up yet; use `rlfoundry feedback import` instead."
    )
