"""Built-in verifiers: rewards that check a completion against a dataset column.

    reward: [numeric_match]      # in a config; the prompts' dataset has an `answer` column
    rlfoundry llm eval DIR --data test.parquet --reward numeric_match

Each takes the `answer` column (TRL's convention: a reward function's extra parameters
are dataset columns) and returns 1.0 or 0.0, so `llm eval` reports its accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlfoundry.llm import qa
from rlfoundry.llm.answers import last_number
from rlfoundry.llm.reward_base import verifier

__all__ = ["BUILTIN", "exact_match", "last_number", "numeric_match", "squad_em", "squad_f1"]


@verifier
def numeric_match(prompt: str, completion: str, answer: Any) -> float:
    """1.0 when the last number in the completion equals the last number in `answer`
    (to a relative 1e-6), else 0.0; 0.0 too when either holds no number."""
    want, got = last_number(answer), last_number(completion)
    if want is None or got is None:
        return 0.0
    return float(abs(got - want) <= 1e-6 * max(1.0, abs(want)))


@verifier
def exact_match(prompt: str, completion: str, answer: Any) -> float:
    """1.0 when the completion, stripped of surrounding whitespace, is `answer`, else 0.0."""
    return float(completion.strip() == str(answer).strip())


@verifier
def squad_em(prompt: str, completion: str, answer: Any) -> float:
    """SQuAD exact match (`qa.exact_match`: case, punctuation and articles ignored) of the
    completion's first line against `answer`."""
    return qa.exact_match(completion.strip().split("\n", 1)[0], str(answer))


def squad_f1(prompt: str, completion: str, answer: Any) -> float:
    """SQuAD token F1 (`qa.f1`) of the completion's first line against `answer`: partial
    credit, so not a verifier."""
    return qa.f1(completion.strip().split("\n", 1)[0], str(answer))


#: Reward names that need no `module:` prefix in a reward spec.
BUILTIN: dict[str, Callable[..., float]] = {
    "numeric_match": numeric_match,
    "exact_match": exact_match,
    "squad_em": squad_em,
    "squad_f1": squad_f1,
}
