"""Decisions an LLM always gives: score each allowed answer instead of parsing free text.

A small model asked for a JSON verdict mostly writes something unreadable (all 53
replies of SmolLM2-135M-Instruct were, issue 17), so the evaluator asks a closed
question with a fixed set of answers (``approve``/``veto``, or ``buy``/``hold``/``sell``)
and reads the decision in one of two ways that cannot fail:

- a local model (:class:`LogProbModel`) scores every option by its log-probability as
  the assistant's reply, ``log p(option | prompt) = sum_j log p(o_j | prompt, o_<j)``,
  and the highest wins (as in multiple-choice evaluation, e.g. the lm-evaluation-harness);
- a server is asked for JSON constrained to the options (:func:`response_format`, an
  OpenAI structured-output schema with an ``enum``, which vLLM, llama.cpp and Ollama
  accept); a server that ignores it is read for the first option word it names.

:func:`parse_decision` turns either reply into a :class:`Decision`.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlfoundry.errors import RLFoundryError

APPROVE_VETO: tuple[str, ...] = ("approve", "veto")
ACTIONS: tuple[str, ...] = ("sell", "hold", "buy")


@dataclass(frozen=True)
class Decision:
    """The chosen option and the probability of each (1 for the chosen one when the
    backend gave no probabilities)."""

    choice: str | None
    """The option chosen, or None when a server's reply named none."""
    probs: dict[str, float]
    """Probability of each option, normalised over the options."""


def response_format(options: tuple[str, ...]) -> dict[str, Any]:
    """An OpenAI ``response_format`` that allows only ``{"decision": <one option>}``."""
    schema = {
        "type": "object",
        "properties": {"decision": {"type": "string", "enum": list(options)}},
        "required": ["decision"],
        "additionalProperties": False,
    }
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "decision", "strict": True, "schema": schema},
        }
    }


def softmax(logps: dict[str, float]) -> dict[str, float]:
    """``p_i = exp(l_i) / sum_j exp(l_j)``, computed stably."""
    top = max(logps.values())
    w = {k: math.exp(v - top) for k, v in logps.items()}
    total = sum(w.values())
    return {k: v / total for k, v in w.items()}


def parse_decision(text: str, options: tuple[str, ...]) -> Decision:
    """The decision in a reply: ``{"logprobs": {...}}`` (local scorer), ``{"decision": X}``
    (constrained server), else the first option word in the text (None if there is none)."""
    data: Any = None
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = None
    if isinstance(data, dict) and isinstance(data.get("logprobs"), dict):
        probs = softmax({o: float(data["logprobs"][o]) for o in options})
        return Decision(max(options, key=lambda o: probs[o]), probs)
    if isinstance(data, dict) and str(data.get("decision", "")).lower() in options:
        choice = str(data["decision"]).lower()
        return Decision(choice, {o: float(o == choice) for o in options})
    words = re.findall(r"[a-z]+", text.lower())
    for w in words:
        if w in options:
            return Decision(w, {o: float(o == w) for o in options})
    return Decision(None, {o: 1.0 / len(options) for o in options})


def calibrate(reply: str, content_free: str) -> str:
    """Contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): subtract from
    each option's log-probability its log-probability for a content-free prompt, so a
    model's fixed preference for one word no longer decides. Replies without
    log-probabilities (a server's) are returned unchanged."""
    try:
        a, b = json.loads(reply), json.loads(content_free)
        adjusted = {o: float(a["logprobs"][o]) - float(b["logprobs"][o]) for o in a["logprobs"]}
    except (json.JSONDecodeError, KeyError, TypeError):
        return reply
    return json.dumps({"decision": max(adjusted, key=adjusted.get), "logprobs": adjusted})


def load_local_model(model_dir: Path) -> tuple[Any, Any]:
    """(tokenizer, causal LM in eval mode) of a local transformers model directory."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise RLFoundryError(
            "A local LLM needs transformers; install it with `pip install rlfoundry[llm]`."
        ) from None
    from rlfoundry.llm.models import check_weights

    check_weights(model_dir)  # weights cut short: one sentence, not a SafetensorError
    tok = AutoTokenizer.from_pretrained(model_dir)
    return tok, AutoModelForCausalLM.from_pretrained(model_dir).eval()


class LogProbModel:
    """A local transformers causal LM that scores fixed options by log-probability.

    ``complete(system, prompt, options)`` returns ``{"decision", "logprobs"}`` as JSON,
    so the evaluator's disk cache stores it like any other reply. Deterministic: no
    sampling; one forward pass over the prompt, then each option's remaining tokens from
    a copy of its key-value cache.
    """

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise RLFoundryError(
                f"'{model_dir}' is not a transformers model directory (no config.json); "
                "pass a saved model (e.g. from `rlfoundry llm import-gguf`) or use an endpoint."
            )
        self._model: Any = None
        self._tok: Any = None

    @property
    def identity(self) -> str:
        return f"logprob:{self.model_dir.resolve()}"

    def _load(self) -> None:
        self._tok, self._model = load_local_model(self.model_dir)

    def prompt_text(self, system: str, prompt: str) -> str:
        """The text the options continue: the chat template up to the assistant's turn."""
        tok = self._tok
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(
                [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                tokenize=False,
                add_generation_prompt=True,
            )
        return f"{system}\n\n{prompt}\n\nAnswer: "

    def logprobs(self, system: str, prompt: str, options: tuple[str, ...]) -> dict[str, float]:
        """``{option: log p(option | prompt)}``, summed over the option's tokens."""
        import torch

        if self._model is None:
            self._load()
        tok = self._tok
        head = tok(self.prompt_text(system, prompt), add_special_tokens=False)["input_ids"]
        tails = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
        if any(not t for t in tails):
            raise RLFoundryError(f"An option of {options} encodes to no tokens; use words.")
        with torch.no_grad():
            # One pass over the shared prompt; each option continues from its KV cache.
            out = self._model(input_ids=torch.tensor([head]), use_cache=True)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # [V]
            scores = {}
            for o, t in zip(options, tails):
                total = float(first[t[0]])
                if len(t) > 1:
                    past = {self._cache_arg(): copy.deepcopy(out.past_key_values)}
                    rest = self._model(input_ids=torch.tensor([t[:-1]]), **past)
                    logp = torch.log_softmax(rest.logits[0].float(), dim=-1)  # [len(t) - 1, V]
                    total += float(logp[torch.arange(len(t) - 1), torch.tensor(t[1:])].sum())
                scores[o] = total
        return scores

    def _cache_arg(self) -> str:
        # transformers >= 5.2x names the KV cache argument `cache`; older ones
        # `past_key_values` (the newer ones still accept it, with a FutureWarning).
        params = inspect.signature(self._model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def complete(self, system: str, prompt: str, options: tuple[str, ...] = APPROVE_VETO) -> str:
        scores = self.logprobs(system, prompt, options)
        return json.dumps({"decision": max(options, key=scores.get), "logprobs": scores})
