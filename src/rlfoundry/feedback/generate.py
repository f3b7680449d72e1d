"""``rlfoundry feedback generate``: sample K responses per prompt into a project.

Sampling is done by :mod:`rlfoundry.llm` (``models.load_model`` and batched sampling in
``generation``); this module only reads prompts and turns samples into import items.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback.projects import ParsedItem


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


def check_n_fits(kind: str, n: int) -> None:
    """A compare project takes exactly 2 responses per item, a rank project at least 2,
    a rewrite project 1 or 2."""
    if n < 1:
        raise RLFoundryError(f"-n must be at least 1, got {n}.")
    if kind == "compare" and n != 2:
        raise RLFoundryError(f"A compare project needs -n 2, got -n {n}; use --kind rank or rate.")
    if kind == "rank" and n < 2:
        raise RLFoundryError(f"A rank project needs -n 2 or more, got -n {n}; or use --kind rate.")
    if kind == "rewrite" and n > 2:
        raise RLFoundryError(f"A rewrite project needs -n 1 or 2, got -n {n}; or use --kind rank.")


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
    """``n`` sampled responses for every prompt of ``prompts``, as import items.

    ``model``: a model directory (or an ``rlfoundry llm`` run directory holding
    ``model/``), a built-in ``tiny:...`` name, or a hub name already in the local
    cache. ``batch_size`` prompts (x ``n`` completions) are sampled per call of
    ``rlfoundry.llm.generation.generate``; ``temperature`` 0 is greedy (then all ``n``
    responses are equal). The model's name goes into each response's hidden
    ``model`` field; annotators never see it.
    """
    if n < 1:
        raise RLFoundryError(f"-n must be at least 1, got {n}.")
    if batch_size < 1:
        raise RLFoundryError(f"--batch-size must be at least 1, got {batch_size}.")
    rows = read_prompts(prompts)  # report a bad prompts file before loading anything
    try:
        import torch

        from rlfoundry.llm.generation import generate
        from rlfoundry.llm.models import load_model, load_tokenizer, resolve_model_dir
    except ImportError:
        raise RLFoundryError(
            "`rlfoundry feedback generate` needs rlfoundry.llm and its extra "
            "(pip install 'rlfoundry[llm]'); or generate responses elsewhere and use "
            "`rlfoundry feedback import`."
        ) from None
    local = resolve_model_dir(model)  # raises for a local path that does not exist
    tok = load_tokenizer(local or model)
    lm = load_model(local or model).eval()
    if device:
        lm = lm.to(device)
    # the hidden model name: the run's name for an rlfoundry run directory (DIR/model)
    name = (local.parent.name if local.name == "model" else local.name) if local else model
    dev = next(lm.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    seen: dict[str, int] = {}
    items: list[ParsedItem] = []
    for b0 in range(0, len(rows), batch_size):
        batch = rows[b0 : b0 + batch_size]
        out = generate(
            lm,
            tok,
            [p for _, p in batch for _ in range(n)],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            generator=gen,
        )
        for j, (pid, prompt) in enumerate(batch):
            k = seen[pid] = seen.get(pid, 0) + 1  # repeated ids in the prompts file
            ext = pid if k == 1 else f"{pid}-{k}"
            texts = out.texts[j * n : (j + 1) * n]
            items.append(ParsedItem(b0 + j + 1, ext, prompt, list(texts), [name] * n))
    return items
