"""User data and training examples to tensors, shared by the stages.

    rows = load_jsonl("pairs.jsonl", ["prompt", "chosen", "rejected"])  # checked rows
    ids, attn, cmask = encode_pairs(tok, prompts, completions, max_len)   # [B, L] each
    rows = encode_examples(tok, [(prompt, completion), ...], max_len)    # token id lists
    ids, attn, cmask = collate(rows, pad)                                 # [B, L] each
    idx, order, cursor = next_batch(rng, order, cursor, n_examples, batch_size)
    train, held = load_pairs(cfg)                                         # preference pairs

Right padding throughout; the completion mask covers the completion and its EOS (the
model must learn to stop), never the prompt. `check_divisible` is the one-sentence
error of batch sizes that do not split evenly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.llm.models import encode_prompt
from rlfoundry.llm.tasks import get_task


def check_divisible(what: str, total: int, parts: int, fix: str) -> None:
    """Raise ConfigError unless `parts` divides `total` (one sentence: cause + fix)."""
    if parts <= 0 or total <= 0 or total % parts != 0:
        raise ConfigError(f"{what}: {total} is not a positive multiple of {parts}; {fix}.")


# ---------------------------------------------------------------------- user data


def load_jsonl(path: str | os.PathLike, required_fields: Sequence[str] = ()) -> list[dict]:
    """Rows of a JSONL file; each must be an object holding string `required_fields`.

    Blank lines are skipped. A missing file, a line that is not JSON, or a row without a
    required field raises one RLFoundryError naming the file, the line and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise RLFoundryError(f"Data file '{path}' does not exist; check the path.")
    rows: list[dict] = []
    need = ", ".join(required_fields)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RLFoundryError(
                    f"'{path}' line {lineno} is not valid JSON ({err.msg}); "
                    "write one JSON object per line."
                ) from None
            if not isinstance(row, dict):
                raise RLFoundryError(
                    f"'{path}' line {lineno} is not a JSON object; each line needs {need}."
                )
            for key in required_fields:
                if key not in row:
                    raise RLFoundryError(
                        f"'{path}' line {lineno} has no field '{key}'; every line needs {need}."
                    )
                if not isinstance(row[key], str):
                    raise RLFoundryError(
                        f"'{path}' line {lineno}: field '{key}' is "
                        f"{type(row[key]).__name__}, not a string; store it as text."
                    )
            rows.append(row)
    if not rows:
        raise RLFoundryError(f"Data file '{path}' holds no rows; add one JSON object per line.")
    return rows


# ---------------------------------------------------------------------- tokenising


def encode_pairs(
    tok: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    max_len: int,
    add_eos: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Tokenise prompt and completion separately, concatenate, right-pad.

    Separate encoding keeps the prompt/completion boundary exact (encoding the joined
    text can merge tokens across it). EOS is appended to each completion when
    `add_eos`, and it is part of the completion mask: the model must learn to stop.
    Prompts are truncated from the left, completions from the right, to `max_len`.

    Returns `input_ids [B, L]`, `attention_mask [B, L]`, `completion_mask [B, L]`.
    """
    rows, cmasks = [], []
    for p, c in zip(prompts, completions):
        pi = encode_prompt(tok, p)
        ci = tok.encode(c, add_special_tokens=False)
        if add_eos and tok.eos_token_id is not None:
            ci = ci + [tok.eos_token_id]
        ci = ci[: max(1, max_len - 1)]
        pi = pi[-(max_len - len(ci)) :] if len(pi) + len(ci) > max_len else pi
        rows.append(pi + ci)
        cmasks.append([0] * len(pi) + [1] * len(ci))
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    cmask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, cmasks)):
        ids[i, : len(r)] = torch.tensor(r)
        attn[i, : len(r)] = 1
        cmask[i, : len(r)] = torch.tensor(m, dtype=torch.bool)
    return ids, attn, cmask


def encode_examples(
    tok: Any, examples: Sequence[tuple[str, str]], max_len: int
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids + EOS) per example, truncated to `max_len` in total
    (the prompt from the left, the completion from the right)."""
    out = []
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    for prompt, completion in examples:
        c = (tok.encode(completion, add_special_tokens=False) + eos)[: max(1, max_len - 1)]
        p = encode_prompt(tok, prompt) if prompt else []
        p = p[max(0, len(p) + len(c) - max_len) :]
        out.append((p, c))
    return out


def collate(rows: Sequence[tuple[list[int], list[int]]], pad: int) -> tuple[Tensor, ...]:
    """Right-padded `input_ids`, `attention_mask`, `completion_mask`, each `[B, L]`."""
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    cmask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c)
        attn[i, :n] = 1
        cmask[i, len(p) : n] = True
    return ids, attn, cmask


# ---------------------------------------------------------------------- batches


def next_batch(
    rng: np.random.Generator, order: np.ndarray, cursor: int, n: int, size: int
) -> tuple[list[int], np.ndarray, int]:
    """The next `size` indices of epochs of seeded permutations of `n` examples.

    Returns `(indices, order, cursor)`: the permutation being consumed and the position
    in it, which go into the checkpoint so a resumed run draws the same batches. A batch
    that crosses an epoch boundary takes the end of one permutation and the start of the
    next.
    """
    idx: list[int] = []
    while len(idx) < size:
        if cursor >= len(order):
            order, cursor = rng.permutation(n), 0
        take = min(size - len(idx), len(order) - cursor)
        idx.extend(order[cursor : cursor + take].tolist())
        cursor += take
    return idx, order, cursor


# ---------------------------------------------------------------------- preference pairs


def load_pairs(cfg: Any) -> tuple[list[dict], list[dict]]:
    """(train, held-out) lists of `{prompt, chosen, rejected}`, checked before training.

    Reads `cfg.data`, `cfg.eval_data`, `cfg.task`, `cfg.eval_fraction`, `cfg.eval_pairs`
    and `cfg.seed`. A built-in task gives its train-split pairs and, held out, pairs on
    its test-split prompts (prompts never seen in training). A JSONL file (TRL's
    preference format) is split by `eval_fraction` unless `eval_data` gives the
    held-out pairs.
    """
    fields = ["prompt", "chosen", "rejected"]
    if not cfg.data:
        task = get_task(cfg.task)
        if not hasattr(task, "pairs"):  # a `PreferenceTask`
            raise RLFoundryError(
                f"Task '{cfg.task}' has no preference pairs; use task=sentiment or give "
                "data=FILE.jsonl."
            )
        held = load_jsonl(cfg.eval_data, fields) if cfg.eval_data else None
        return (
            list(task.pairs("train", seed=cfg.seed)),
            held or list(task.pairs("test", n=cfg.eval_pairs, seed=cfg.seed + 1)),
        )
    pairs = load_jsonl(cfg.data, fields)
    if cfg.eval_data:
        return pairs, load_jsonl(cfg.eval_data, fields)
    rng = np.random.default_rng(cfg.seed + 1)
    order = rng.permutation(len(pairs))
    n_eval = max(1, int(round(len(pairs) * cfg.eval_fraction)))
    if len(pairs) - n_eval < 1:
        raise RLFoundryError(
            f"Only {len(pairs)} preference pairs: too few to hold some out; add pairs or give "
            "eval_data."
        )
    held = [pairs[i] for i in order[:n_eval]]
    train = [pairs[i] for i in order[n_eval:]]
    return train, held
