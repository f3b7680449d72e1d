"""Conversations to the text a model reads: its chat template, or plain text without one.

    render_prompt(tok, [{"role": "user", "content": "2+3="}])  # + the generation prompt
    task_texts(task, tok, prompts)     # a conversational task's prompts, rendered
    segments(tok, messages)            # [(text, is_target), ...]: SFT trains on the targets
    split_pair(tok, prompt, chosen)    # (prompt text, completion text) of a pair

A prompt or completion given as plain text stays plain text (TRL does the same). A list
of `{role, content}` messages is rendered with `tok.apply_chat_template` when the
tokenizer has a template (the generation prompt added for a prompt), and otherwise as
plain text: the turns' contents in order, a non-assistant turn after the first starting
on a new line, an assistant turn following its prompt directly (so a one-turn
conversation reads exactly like its prompt + completion pair).

The target of an assistant turn is located by rendering the conversation up to it twice,
with and without that turn: the text the turn adds after the generation prompt is the
target (TRL's `assistant_only_loss` reads the same span from `{% generation %}` marks,
which most templates lack). A turn whose rendering is not a prefix of the full
conversation (templates that rewrite earlier turns, e.g. dropping reasoning) is kept as
context, not trained on. The end-of-sequence token closing a target is cut from its text:
the encoders append EOS to every target (the model must learn to stop), so it is there
once either way.
"""

from __future__ import annotations

from typing import Any

from rlfoundry.errors import RLFoundryError

Messages = list[dict[str, Any]]


def has_chat_template(tok: Any) -> bool:
    return bool(getattr(tok, "chat_template", None))


def as_messages(value: str | Messages, role: str) -> Messages:
    """A conversation from a plain string (one `role` turn) or a list of messages."""
    return [{"role": role, "content": value}] if isinstance(value, str) else list(value)


def _template(tok: Any, messages: Messages, generation_prompt: bool) -> str:
    try:
        text = tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    except Exception as err:
        raise RLFoundryError(
            f"The model's chat template cannot render the conversation "
            f"({type(err).__name__}: {err}); check the roles and order of its messages."
        ) from None
    return _drop_bos(tok, text)


def _drop_bos(tok: Any, text: str) -> str:
    """Templates that write BOS themselves (Llama 3) and tokenizers that add it on encode
    would give it twice: the encoder adds it, so the text goes without."""
    bos = getattr(tok, "bos_token", None)
    if bos and text.startswith(bos) and tok.bos_token_id in tok.encode("", add_special_tokens=True):
        return text[len(bos) :]
    return text


def _plain_segments(messages: Messages, first_target: int) -> list[tuple[str, bool]]:
    out = []
    for i, m in enumerate(messages):
        assistant = m["role"] == "assistant"
        text = m["content"] if assistant or i == 0 else "\n" + m["content"]
        out.append((text, assistant and i >= first_target))
    return out


def render_prompt(tok: Any, prompt: str | Messages) -> str:
    """The text a model continues: plain text as it is, messages rendered (with the
    generation prompt when the model has a chat template)."""
    if isinstance(prompt, str):
        return prompt
    if tok is not None and has_chat_template(tok):
        return _template(tok, prompt, generation_prompt=True)
    return "".join(t for t, _ in _plain_segments(prompt, len(prompt)))


def task_texts(task: Any, tok: Any, prompts: list[str]) -> list[str]:
    """The texts a model continues for a task's prompts: a conversational task's (one
    with a `messages(prompt)` method) rendered like any messages prompt, with `tok`'s
    chat template when it has one; other tasks' prompts unchanged."""
    to_messages = getattr(task, "messages", None)
    if to_messages is None:
        return list(prompts)
    return [render_prompt(tok, to_messages(p)) for p in prompts]


def segments(tok: Any, messages: Messages, first_target: int = 0) -> list[tuple[str, bool]]:
    """`messages` as consecutive `(text, is_target)` pieces whose texts join into the whole
    rendered conversation; the targets are the assistant turns at index >= first_target
    (their closing EOS text cut, see the module). Raises when there is none."""
    if tok is None or not has_chat_template(tok):
        pieces = _plain_segments(messages, first_target)
    else:
        full = _template(tok, messages, generation_prompt=False)
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant" or i < first_target:
                continue
            before = _template(tok, messages[:i], generation_prompt=True) if i else ""
            after = _template(tok, messages[: i + 1], generation_prompt=False)
            nested = after.startswith(before) and full.startswith(after)
            if nested and len(after) > len(before) and (not spans or len(before) >= spans[-1][1]):
                spans.append((len(before), len(after)))
        pieces, pos = [], 0
        for start, end in spans:
            pieces += [(full[pos:start], False), (full[start:end], True)]
            pos = end
        pieces.append((full[pos:], False))
    out: list[tuple[str, bool]] = []
    carry = ""  # text after a cut EOS, which belongs to the next context piece
    eos = getattr(tok, "eos_token", None) if tok is not None else None
    for text, target in pieces:
        if carry and target:
            out.append((carry, False))
        elif carry:
            text = carry + text
        carry = ""
        if target and eos and (k := text.rfind(eos)) >= 0 and not text[k + len(eos) :].strip():
            text, carry = text[:k], text[k + len(eos) :]
        out.append((text, target))
    if carry:
        out.append((carry, False))
    out = [(t, target) for t, target in out if t or target]
    if not any(target for _, target in out):
        raise RLFoundryError(
            "A conversation has no assistant turn to train on (or the chat template hides "
            "where it is); end each conversation with an assistant message, or give "
            "prompt/completion data."
        )
    return out


def split_pair(tok: Any, prompt: str | Messages, completion: str | Messages) -> tuple[str, str]:
    """(prompt text, completion text) of a pair given as text or messages (TRL's
    conversational prompt + completion, or prompt + chosen/rejected). Two strings pass
    through unchanged; otherwise the completion's text is what its turns add after the
    prompt's generation prompt, its closing EOS cut (the encoders append one)."""
    if isinstance(prompt, str) and isinstance(completion, str):
        return prompt, completion
    p = as_messages(prompt, "user")
    c = as_messages(completion, "assistant")
    pieces = segments(tok, p + c, first_target=len(p))
    marks = [i for i, (_, target) in enumerate(pieces) if target]
    head = "".join(t for t, _ in pieces[: marks[0]])
    tail = "".join(t for t, _ in pieces[marks[0] : marks[-1] + 1])
    return head, tail


def implicit_prompt(chosen: Messages, rejected: Messages) -> tuple[Messages, Messages, Messages]:
    """TRL's implicit-prompt preference rows: (prompt, chosen, rejected) from two
    conversations whose shared leading turns are the prompt."""
    k = 0
    while k < min(len(chosen), len(rejected)) - 1 and chosen[k] == rejected[k]:
        k += 1
    return chosen[:k], chosen[k:], rejected[k:]
