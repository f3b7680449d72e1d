"""User data and training examples to tensors, shared by the stages.

    examples = load_examples("chat.parquet")                             # SFT (prompt, completion)
    texts = load_texts("corpus.csv")                                      # pre-training documents
    train, held = load_pairs(cfg)                                         # preference pairs
    ids, attn, cmask = encode_pairs(tok, prompts, completions, max_len)   # [B, L] each
    rows = encode_examples(tok, [(prompt, completion), ...], max_len)    # token id lists
    ids, attn, cmask = collate(rows, pad)                                 # [B, L] each
    idx, order, cursor = next_batch(rng, order, cursor, n_examples, batch_size)

Files are read by `datasets.load_table` (JSONL, JSON, CSV, Parquet, a save_to_disk
directory, a hub name) in the formats `datasets.FORMATS` names. A prompt or completion
may be text or a list of messages; the encoders render messages for the tokenizer
(`chat_format`: its chat template, or plain text), so the stages keep passing rows.
Right padding throughout; the completion mask covers the completion and its EOS (the
model must learn to stop), never the prompt, and in a conversation only the assistant
turns. `check_divisible` is the one-sentence error of batch sizes that do not split
evenly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.llm.chat_format import as_messages, implicit_prompt, segments, split_pair
from rlfoundry.llm.datasets import is_conversation, load_table, require
from rlfoundry.llm.models import encode_prompt
from rlfoundry.llm.tasks import get_task


def check_divisible(what: str, total: int, parts: int, fix: str) -> None:
    """Raise ConfigError unless `parts` divides `total` (one sentence: cause + fix)."""
    if parts <= 0 or total <= 0 or total % parts != 0:
        raise ConfigError(f"{what}: {total} is not a positive multiple of {parts}; {fix}.")


# ---------------------------------------------------------------------- user data


def load_jsonl(path: str | os.PathLike, required_fields: Sequence[str] = ()) -> list[dict]:
    """Rows of a data file (`datasets.load_table`) whose `required_fields` are all text.

    A missing file, a line that is not JSON, or a row without a required field raises
    one RLFoundryError naming the file, the line and the fix.
    """
    table = load_table(path)
    need = ", ".join(required_fields)
    for i, row in enumerate(table.rows):
        for key in required_fields:
            if row.get(key) is None:
                raise RLFoundryError(
                    f"'{table.source}' {table.where(i)} has no field '{key}'; every line "
                    f"needs {need}."
                )
            if not isinstance(row[key], str):
                raise RLFoundryError(
                    f"'{table.source}' {table.where(i)}: field '{key}' is "
                    f"{type(row[key]).__name__}, not a string; store it as text."
                )
    return table.rows


Example = tuple[Any, Any]
"""`(prompt, completion)`: each text or a list of messages; `([], messages)` is a whole
conversation trained on its assistant turns, `("", text)` a document trained on every
token."""


def load_examples(source: str | os.PathLike) -> list[Example]:
    """SFT examples of a dataset in the `messages`, `prompt`+`completion` or `text`
    format (`datasets.FORMATS["sft"]`); raises before training on anything else."""
    table = load_table(source)
    cols = require(table, "sft")
    if cols == ("messages",):
        return [([], r["messages"]) for r in table.rows]
    if cols == ("text",):
        return [("", r["text"]) for r in table.rows]
    return [(r["prompt"], r["completion"]) for r in table.rows]


def load_texts(source: str | os.PathLike) -> list[str]:
    """The `text` column of a dataset: pre-training documents."""
    table = load_table(source)
    require(table, "text")
    return table.column("text")


# ---------------------------------------------------------------------- tokenising


def encode_pairs(
    tok: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    max_len: int,
    add_eos: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Tokenise prompt and completion separately, concatenate, right-pad.

    A prompt or completion given as messages is rendered first (`chat_format.split_pair`).
    Separate encoding keeps the prompt/completion boundary exact (encoding the joined
    text can merge tokens across it). EOS is appended to each completion when
    `add_eos`, and it is part of the completion mask: the model must learn to stop.
    Prompts are truncated from the left, completions from the right, to `max_len`.

    Returns `input_ids [B, L]`, `attention_mask [B, L]`, `completion_mask [B, L]`.
    """
    rows, cmasks = [], []
    for p, c in zip(prompts, completions):
        p, c = split_pair(tok, p, c)  # messages -> the model's chat format
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


def encode_examples(tok: Any, examples: Sequence[Example], max_len: int) -> list[tuple]:
    """Token ids of each example, truncated to `max_len` in total (the prompt from the
    left, the rest from the right).

    Text pairs give `(prompt ids, completion ids + EOS)`. An example with messages is
    rendered into pieces (`chat_format.segments`): the first context piece is the
    prompt, and the rest comes with a mask of its target tokens, `(prompt ids, ids,
    mask)`, so a conversation trains on its assistant turns only (each + EOS).
    """
    out: list[tuple] = []
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    for prompt, completion in examples:
        if isinstance(prompt, str) and isinstance(completion, str):
            c = (tok.encode(completion, add_special_tokens=False) + eos)[: max(1, max_len - 1)]
            p = encode_prompt(tok, prompt) if prompt else []
            p = p[max(0, len(p) + len(c) - max_len) :]
            out.append((p, c))
            continue
        conv = as_messages(prompt, "user") + as_messages(completion, "assistant")
        pieces = segments(tok, conv, first_target=len(as_messages(prompt, "user")))
        p: list[int] = []
        if not pieces[0][1]:
            p = encode_prompt(tok, pieces[0][0])
            pieces = pieces[1:]
        ids: list[int] = []
        mask: list[bool] = []
        for text, target in pieces:
            piece = tok.encode(text, add_special_tokens=False) + (eos if target else [])
            ids += piece
            mask += [target] * len(piece)
        keep = max(1, max_len - 1)
        ids, mask = ids[:keep], mask[:keep]
        p = p[max(0, len(p) + len(ids) - max_len) :]
        out.append((p, ids) if all(mask) else (p, ids, mask))
    return out


def collate(rows: Sequence[tuple], pad: int) -> tuple[Tensor, ...]:
    """Right-padded `input_ids`, `attention_mask`, `completion_mask`, each `[B, L]`, of
    `(prompt ids, completion ids[, target mask])` rows (see `encode_examples`)."""
    width = max(len(r[0]) + len(r[1]) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    cmask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (p, c, *m) in enumerate(rows):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c)
        attn[i, :n] = 1
        cmask[i, len(p) : n] = torch.tensor(m[0], dtype=torch.bool) if m else True
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
    its test-split prompts (prompts never seen in training). A dataset in TRL's
    preference format (text or conversational, explicit or implicit prompt; see
    `datasets.FORMATS`) is split by `eval_fraction` unless `eval_data` gives the
    held-out pairs. Messages stay messages: `encode_pairs` renders them.
    """
    if not cfg.data:
        task = get_task(cfg.task)
        if not hasattr(task, "pairs"):  # a `PreferenceTask`
            raise RLFoundryError(
                f"Task '{cfg.task}' has no preference pairs; use task=sentiment or give "
                "data=FILE (prompt, chosen, rejected)."
            )
        held = preference_rows(cfg.eval_data) if cfg.eval_data else None
        return (
            list(task.pairs("train", seed=cfg.seed)),
            held or list(task.pairs("test", n=cfg.eval_pairs, seed=cfg.seed + 1)),
        )
    pairs = preference_rows(cfg.data)
    if cfg.eval_data:
        return pairs, preference_rows(cfg.eval_data)
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


def preference_rows(source: str | os.PathLike) -> list[dict]:
    """`{prompt, chosen, rejected}` rows of a preference dataset; an implicit-prompt row
    (two conversations) gets their shared leading turns as its prompt."""
    table = load_table(source)
    cols = require(table, "preference")
    if cols == ("prompt", "chosen", "rejected"):
        return [{k: r[k] for k in cols} for r in table.rows]
    out = []
    for i, r in enumerate(table.rows):
        if not (is_conversation(r["chosen"]) and is_conversation(r["rejected"])):
            raise RLFoundryError(
                f"'{table.source}' {table.where(i)} has chosen and rejected but no prompt, "
                "and they are not conversations sharing one; add a prompt column."
            )
        p, c, rj = implicit_prompt(r["chosen"], r["rejected"])
        out.append({"prompt": p, "chosen": c, "rejected": rj})
    return out
