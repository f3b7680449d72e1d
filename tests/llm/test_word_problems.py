"""The word-problem task: seeded generation, disjoint splits, answers worked out by hand,
the numeric verifier on hand-written completions, and chat-template rendering."""

from __future__ import annotations

import pytest

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.answers import final_answer
from rlfoundry.llm.chat_format import task_texts
from rlfoundry.llm.tasks import TASKS, Task, get_task
from rlfoundry.llm.word_problems import TEMPLATES, WordProblemTask


def test_registered_and_a_task():
    assert TASKS["word_problems"] is WordProblemTask
    task = get_task("word_problems:max_steps=3,max_value=9")
    assert isinstance(task, Task) and (task.max_steps, task.max_value) == (3, 9)


def test_generation_is_seeded_and_distinct():
    task = WordProblemTask(max_steps=3)
    a, b = task.prompts("train", 300, seed=4), task.prompts("train", 300, seed=4)
    assert a == b and len(set(a)) == 300
    assert task.prompts("train", 300, seed=5) != a
    assert task.prompts("test", 50, seed=0) == WordProblemTask(max_steps=3).prompts("test", 50)


def test_splits_are_disjoint_whatever_the_seed():
    task = WordProblemTask(max_steps=3)
    test = set(task.prompts("test", 1000, seed=0))
    for seed in (0, 1, 2):
        assert not test & set(task.prompts("train", 3000, seed=seed))
    assert len(test) == 1000


def test_steps_select_templates():
    one = WordProblemTask(min_steps=1, max_steps=1)
    steps = {one._match(p)[0].steps for p in one.prompts("train", 200)}
    assert steps == {1}
    every = WordProblemTask(min_steps=1, max_steps=3)
    used = {every._match(p)[0].text for p in every.prompts("train", 2000)}
    assert used == {t.text for t in TEMPLATES}


@pytest.mark.parametrize(
    "prompt, answer",
    [
        ("Tom buys 3 pens at 4 dollars each and pays with a 20 dollar bill. "
         "How many dollars of change does Tom get?", 8),
        ("Anna is 7 years old. Ben is 5 years older than Anna. How old will Ben be in 4 years?", 16),
        ("A bus travels at 30 km per hour for 2 hours and then 5 km more. "
         "How many km does the bus travel in all?", 65),
        ("Mia has 9 cards and buys 3 more, then shares them equally among 4 friends. "
         "How many cards does each friend get?", 3),
        ("Leo has 12 apples and gives away 5 of them. How many apples does Leo have left?", 7),
        ("Zoe buys 2 pens at 3 dollars each and 4 books at 5 dollars each, and pays with a "
         "50 dollar bill. How many dollars of change does Zoe get?", 24),
    ],
)  # fmt: skip
def test_answers_by_hand(prompt, answer):
    task = WordProblemTask(max_steps=3)
    assert task.answer(prompt) == answer
    assert task.reference(prompt).endswith(f"Answer: {answer}")


def test_every_generated_answer_is_a_whole_number_at_least_zero():
    task = WordProblemTask(max_steps=3)
    for p in task.prompts("train", 1000):
        assert task.answer(p) >= 0 and task.is_correct(p, task.reference(p))


@pytest.mark.parametrize(
    "completion, ok",
    [
        ("20 - 3 x 4 = 8.\nAnswer: 8", True),
        ("Answer: 8 dollars", True),
        ("The change is $8.", True),
        ("so 3 x 4 = 12 and 20 - 12 = 8", True),
        ("#### 8", True),
        ("The answer is 8. (3 x 4 = 12)", True),  # the number after the marker, not the last
        ("Answer: 8.0", True),
        ("Answer: 12", False),
        ("3 x 4 = 12, 20 - 12", False),  # no answer stated: the last number is 12
        ("Answer: N", False),  # the placeholder copied from the system prompt
        ("", False),
    ],
)
def test_verifier_on_hand_written_completions(completion, ok):
    prompt = (
        "Tom buys 3 pens at 4 dollars each and pays with a 20 dollar bill. "
        "How many dollars of change does Tom get?"
    )
    task = WordProblemTask()
    assert task.is_correct(prompt, completion) is ok
    assert task.reward(prompt, completion) == float(ok)


def test_final_answer_reads_commas_and_units():
    assert final_answer("Answer: $1,200 in total") == 1200.0
    assert final_answer("we get 1,234 apples") == 1234.0
    assert final_answer("Answer: N. So 5 + 2 = 7") == 7.0  # a marker with no number after it
    assert final_answer("no number") is None


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class _Tok:
    """Just enough of a tokenizer for rendering: a chat template, no BOS."""

    chat_template = CHATML
    bos_token = None

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        import jinja2

        t = jinja2.Template(self.chat_template)
        return t.render(messages=messages, add_generation_prompt=add_generation_prompt)


def test_rendered_prompts_are_scored_like_plain_ones():
    task = WordProblemTask()
    plain = task.prompts("test", 20)
    rendered = task_texts(task, _Tok(), plain)
    assert all(r.startswith("<|im_start|>system\n") and p in r for p, r in zip(plain, rendered))
    assert all(r.endswith("<|im_start|>assistant\n") for r in rendered)
    for p, r in zip(plain, rendered):
        assert task.answer(r) == task.answer(p)
    # without a chat template: the system message and the problem as plain text
    assert task_texts(task, None, plain[:1]) == [f"{task.system}\n{plain[0]}"]
    # other tasks pass through unchanged
    assert task_texts(get_task("arithmetic"), _Tok(), ["1+2="]) == ["1+2="]


def test_bad_settings_and_foreign_prompts():
    with pytest.raises(RLFoundryError, match="min_steps"):
        get_task("word_problems:min_steps=2,max_steps=1")
    with pytest.raises(RLFoundryError, match="max_value"):
        WordProblemTask(max_value=1)
    with pytest.raises(RLFoundryError, match="No word-problem template"):
        WordProblemTask().reward("17+25=", "42")


def test_rl_prompts_of_a_conversational_task_are_rendered():
    import argparse

    from rlfoundry.llm.prompts import load_prompts

    cfg = argparse.Namespace(prompts="", task="word_problems:max_steps=1", seed=3)
    rendered = load_prompts(cfg, _Tok())
    plain = WordProblemTask(max_steps=1).prompts("train", None, 3)
    assert len(rendered) == len(plain) == 10_000
    assert rendered[0] == task_texts(WordProblemTask(), _Tok(), plain[:1])[0]
