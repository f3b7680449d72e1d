"""Numbers in model output: the final answer of a completion, tolerant of how it is written.

    last_number("so 3 x 4 = 12 apples")     # 12.0
    final_answer("... Answer: $1,200.")      # 1200.0 (the number after the last marker)

Plain Python (no torch): tasks and verifiers both read answers with it.
"""

from __future__ import annotations

import re
from typing import Any

# 1,234,567.5 | -12 | 3.25 | .5: a thousands-separated number first, so "1,234" is one
NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
# "Answer: 12", "answer is 12", "#### 12" (GSM8K), "\boxed{12}"
MARKER = re.compile(r"answer\s*(?:is|:|=)|####|\\boxed\{", re.I)
# what may stand between a marker and its number: spaces, "$", ":", "*" (markdown bold)
_AFTER = re.compile(r"[^\w\n]{0,5}?(" + NUMBER.pattern + ")")


def _value(token: str) -> float:
    return float(token.replace(",", ""))


def last_number(text: Any) -> float | None:
    """The last number written in `text` (commas as thousands separators), or None.
    GSM8K's answers end with '#### 72', and models state the result last."""
    found = NUMBER.findall(str(text))
    return _value(found[-1]) if found else None


def final_answer(text: Any) -> float | None:
    """The number a completion gives as its answer: the number right after the last
    answer marker ('Answer: N', 'the answer is N', '#### N', '\\boxed{N}') that has one,
    else the last number of the text; units, '$' and thousands commas around it are
    ignored. None when the text holds no number."""
    text = str(text)
    for m in reversed(list(MARKER.finditer(text))):
        found = _AFTER.match(text, m.end())
        if found is not None:
            return _value(found.group(1))
    return last_number(text)


def cut_at_eos(text: str, eos: str | None = "<eos>") -> str:
    """The completion up to its first `eos` marker (the built-in tokenizer's), stripped."""
    if eos and eos in text:
        text = text.split(eos, 1)[0]
    return text.strip()
