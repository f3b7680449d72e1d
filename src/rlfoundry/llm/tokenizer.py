"""A small byte-level BPE tokenizer trained locally, with one token per digit.

    tok = build_tokenizer(texts, vocab_size=512)   # a transformers PreTrainedTokenizerFast
    tok.save_pretrained("DIR"); AutoTokenizer.from_pretrained("DIR")

Why these choices:

- Byte-level (GPT-2's byte alphabet): every string round-trips exactly, with no
  unknown token, whatever the user's data holds.
- Digits are split before BPE (`Digits(individual_digits=True)`), so "1234" is four
  tokens and never a merged "12" + "34". Arithmetic then has one digit per step, and
  the same digit is always the same token: BPE merges of frequent numbers make
  carrying a different problem for every number (Nogueira et al. 2021, "Investigating
  the limitations of transformers with simple arithmetic tasks"; Llama and Qwen split
  digits for the same reason).
- Plain prompts, no chat template and no BOS/EOS added by `encode`: a prompt is its
  text. `<eos>` ends every completion (the model learns to stop), `<pad>` pads, and
  `<bos>` exists for callers who want it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from rlfoundry.llm.tasks import builtin_corpus

PAD, EOS, BOS = "<pad>", "<eos>", "<bos>"
SPECIAL_TOKENS = [PAD, EOS, BOS]
TINY_VOCAB_SIZE = 512
"""Vocabulary of the built-in tokenizer (`load_tokenizer("tiny")`)."""


def build_tokenizer(
    corpus_texts: Iterable[str], vocab_size: int = TINY_VOCAB_SIZE, model_max_length: int = 512
) -> Any:
    """Train a byte-level BPE with single-digit tokens on `corpus_texts`.

    Returns a `transformers.PreTrainedTokenizerFast` with pad/eos/bos set (ids 0/1/2).
    Training is deterministic for a given corpus (sorted, de-duplicated) and vocab size.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from rlfoundry.errors import RLFoundryError

    texts = sorted(set(corpus_texts))
    if not texts:
        raise RLFoundryError("The tokenizer corpus is empty; pass at least one text.")
    base = len(SPECIAL_TOKENS) + 256
    if vocab_size < base:
        raise RLFoundryError(
            f"vocab_size {vocab_size} is below the {base} byte-level base symbols; "
            f"use vocab_size >= {base}."
        )
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer_json() -> str:
    return build_tokenizer(builtin_corpus(), TINY_VOCAB_SIZE).backend_tokenizer.to_str()


def tiny_tokenizer() -> Any:
    """The built-in tokenizer: BPE trained on the built-in tasks' text (a fresh copy).

    Built from the tasks' deterministic corpus on first use (well under a second) and
    cached as JSON, so every call and every process gets identical token ids.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tiny_tokenizer_json()),
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )
