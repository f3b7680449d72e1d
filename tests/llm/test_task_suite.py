"""The seeds' task list (code, extractive QA, summarisation, dialogue): scores against
hand-computed values, held-out splits, the trivial policies' scores, and evaluation
through `rlfoundry llm eval`. Learning tests: tests/llm/test_task_learning.py."""

from __future__ import annotations

import json
import sys

import pytest

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.codegen import run_tests
from rlfoundry.llm.dialogue import EXAMPLE_EXPORT
from rlfoundry.llm.qa import exact_match, f1, normalize_answer
from rlfoundry.llm.summarize import rouge
from rlfoundry.llm.tasks import TASKS, Task, get_task

NEW = ("code", "qa", "summarize", "dialogue")


@pytest.mark.parametrize("name", NEW)
def test_registered_with_disjoint_held_out_splits(name):
    task = get_task(name)
    assert name in TASKS and isinstance(task, Task) and task.name == name
    train, test = task.prompts("train", 300, seed=1), task.prompts("test", 50, seed=2)
    assert not set(train) & set(test)
    assert task.prompts("test", 20, seed=0) == task.prompts("test", 20, seed=0)
    for p, c in task.sft_examples("test", 5):
        assert p in task.prompts("test", 5)
        if name != "dialogue":  # dialogue's score needs a reward model
            assert task.is_correct(p, c) and task.reward(p, c) == 1.0


@pytest.mark.parametrize("name", ("code", "qa", "summarize"))
def test_the_completion_budget_holds_every_reference_and_its_eos(name):
    # summarize's first budget, 16 tokens, cut a third of its summaries short of the EOS
    from rlfoundry.llm.tokenizer import tiny_tokenizer

    task, tok = get_task(name), tiny_tokenizer()
    refs = [c for _, c in task.sft_examples("train", 2000) + task.sft_examples("test", 500)]
    longest = max(len(tok(c)["input_ids"]) + 1 for c in refs)
    assert longest <= task.max_new_tokens, (longest, task.max_new_tokens)


def test_squad_scores_by_hand():
    # the SQuAD v1.1 normalisation: case, punctuation, articles, whitespace
    assert normalize_answer("The  Great Pizza!") == "great pizza"
    assert exact_match("the great pizza.", "Great pizza") == 1.0
    assert exact_match("pizza", "great pizza") == 0.0
    # P = 1/1, R = 1/2 -> F1 = 2 * 0.5 / 1.5
    assert f1("pizza", "the great pizza") == pytest.approx(2 / 3)
    # P = 2/3, R = 2/2 -> 0.8; no shared token -> 0; both empty -> 1
    assert f1("great big pizza", "great pizza") == pytest.approx(0.8)
    assert f1("soup", "great pizza") == 0.0 and f1("the", "a") == 1.0


def test_squad_verifiers_read_the_answer_column():
    from rlfoundry.llm.rewards import parse_reward

    reward = parse_reward(["squad_f1", "squad_em"])
    scores = reward(["q", "q"], [" The great pizza.", " pizza"], answer=["great pizza"] * 2)
    assert scores == [2.0, pytest.approx(2 / 3)]
    assert reward.accuracy(["q", "q"], [" The great pizza.", " pizza"]) == {"accuracy": 0.5}


def test_qa_reward_is_f1_and_position_guesses_are_right_one_time_in_facts():
    task = get_task("qa:facts=3")
    p = "The soup was really great. The phone was not loud. The view was very dull. Q: How was the phone? A:"
    assert task.reference(p) == " not loud"
    assert task.reward(p, " loud<eos>junk") == pytest.approx(2 / 3)
    assert task.is_correct(p, " Not loud.") and not task.is_correct(p, " really great")
    for facts in (2, 3):
        task = get_task(f"qa:facts={facts}")
        prompts = task.prompts("test", 400, seed=0)
        for k in range(facts):  # always answer with the k-th fact: the trivial policies
            guess = [" " + " ".join(p.split(". ")[k].split()[3:]).rstrip(".") for p in prompts]
            em = sum(task.is_correct(p, g) for p, g in zip(prompts, guess)) / len(prompts)
            assert abs(em - 1 / facts) < 0.08, (facts, k, em)


def test_summarize_rouge_by_hand():
    task = get_task("summarize")
    p = "Anna said the pizza was great on Monday. The staff was slow. Summary:"
    assert task.reference(p) == " Anna said the pizza was great."
    assert task.reward(p, " Anna said the pizza was great.") == 1.0
    # the untrimmed lead sentence: LCS 6 of 8 predicted and 6 reference words
    lead = task.scores(p, " Anna said the pizza was great on Monday.")
    assert lead["rougeL"] == pytest.approx(2 * (6 / 8) / (6 / 8 + 1))
    assert not task.is_correct(p, " Anna said the pizza was great on Monday.")
    # one word short: P = 1, R = 5/6 -> 0.909 passes the 0.9 bar
    assert task.is_correct(p, " Anna said the pizza was great")
    assert task.is_correct(p, " said the pizza was great.")
    assert rouge("the staff was slow", "anna said the pizza was great")["rouge2"] == 0.0
    with pytest.raises(RLFoundryError, match="lead sentence"):
        task.reference("Summary:")


def test_summarize_trivial_policies_score_low():
    task = get_task("summarize")
    prompts = task.prompts("test", 100)
    docs = [" " + p.removesuffix(" Summary:") for p in prompts]
    whole = sum(task.reward(p, d) for p, d in zip(prompts, docs)) / len(prompts)
    # the template with fixed words: 'said', 'the', 'was' always match (LCS >= 3 of 6)
    fixed = sum(task.reward(p, " Tom said the food was great.") for p in prompts) / len(prompts)
    assert whole < 0.6 and fixed < 0.6, (whole, fixed)
    assert not any(task.is_correct(p, d) for p, d in zip(prompts, docs))


@pytest.mark.skipif(sys.platform == "win32", reason="the sandbox needs POSIX")
def test_code_reward_runs_the_unit_tests_in_the_sandbox(tmp_path):
    task = get_task("code")
    p = task.prompts("test", 1)[0]
    fn = p.split("(")[0].removeprefix("def ")
    assert task.tests(p)[0].startswith(f"assert {fn}(0) == ")
    target = tmp_path / "escape.txt"
    completions = [
        task.reference(p),  # all three tests pass
        " " + p.split("(")[1].split(")")[0],  # returns its argument
        " 1\n    while True: pass",  # never returns: the time limit
        " [0] * 10**10",  # runs out of memory
        f" open({str(target)!r}, 'w')",  # writes outside: refused
        " print('@@0@@[1.0, 1.0]')",  # prints a fake result line
        " (",  # a syntax error
    ]
    scores = task.rewards([p] * len(completions), completions)
    assert scores[0] == 1.0 and max(scores[1:]) < 1.0, scores
    assert scores[2:] == [0.0] * 5 and not target.exists()
    assert task.are_correct([p, p], completions[:2]) == [True, False]


@pytest.mark.skipif(sys.platform == "win32", reason="the sandbox needs POSIX")
def test_a_batch_whose_process_dies_is_rerun_one_by_one():
    crash = ("import os\nos._exit(3)\n", ["assert True"])
    fine = ("def f(x):\n    return x\n", ["assert f(1) == 1", "assert f(2) == 3"])
    assert run_tests([fine, crash, fine]) == [0.5, 0.0, 0.5]


def test_code_trivial_policies_fail_every_held_out_prompt():
    task = get_task("code")
    prompts = task.prompts("test")
    for const in (" 0", " True", " False"):
        assert not any(task.are_correct(prompts, [const] * len(prompts))), const


def test_dialogue_reads_the_shipped_feedback_export():
    rows = [json.loads(line) for line in EXAMPLE_EXPORT.read_text().splitlines()]
    assert len(rows) >= 300 and {"prompt", "chosen", "rejected", "agreement", "item_id"} <= set(
        rows[0]
    )
    task = get_task("dialogue")
    pairs = task.pairs("train")
    test_prompts = set(task.prompts("test"))
    assert pairs and not {r["prompt"] for r in pairs} & test_prompts
    assert len(task.pairs("train")) + len(task.pairs("test")) == len(rows)
    p = task.prompts("test")[0]  # the preferred reply wins most of its pairs
    assert sum(r["chosen"] == task.reference(p) for r in rows if r["prompt"] == p) >= 1


def test_the_shipped_export_is_what_the_generator_writes():
    pytest.importorskip("sqlalchemy")
    sys.path.insert(0, str(EXAMPLE_EXPORT.parents[3] / "benchmarks"))
    from make_dialogue_feedback import build

    text = "".join(json.dumps(p) + "\n" for p in build(0))
    assert text == EXAMPLE_EXPORT.read_text()


def test_dialogue_without_a_reward_model_fails_before_training(tmp_path):
    from rlfoundry.api import train

    ov = {"model": "tiny", "task": "dialogue", "rollout_size": 8, "group_size": 4}
    with pytest.raises(RLFoundryError, match="reward-model --task dialogue"):
        train("llm-grpo", steps=1, out=tmp_path / "r", overrides=ov, progress=False)
    assert not (tmp_path / "r" / "config.yaml").exists()
    with pytest.raises(RLFoundryError, match="no reward model"):
        get_task(f"dialogue:rm={tmp_path}").check()
    with pytest.raises(RLFoundryError, match="does not exist"):
        get_task(f"dialogue:export={tmp_path / 'none.jsonl'}")


def test_dialogue_scores_equal_the_rm_reward_source(tmp_path):
    from rlfoundry.llm.rewards import parse_reward
    from rlfoundry.llm.scoring import build_reward_model

    model, tok = build_reward_model("tiny")
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    task = get_task(f"dialogue:rm={tmp_path}")
    prompts = task.prompts("test", 4)
    comps = [" Thanks!", " Go away.", "", " Sorry about that. Let me help."]
    ours = task.rewards(prompts, comps)
    theirs = parse_reward(f"rm:{tmp_path}")(prompts, comps)
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert task.is_correct(prompts[0], task.reference(prompts[0]))  # a tie counts


def test_llm_eval_scores_the_new_tasks(tmp_path, capsys):
    from rlfoundry.cli.main import main
    from rlfoundry.llm.models import load_model, load_tokenizer

    load_model("tiny").save_pretrained(tmp_path / "m")
    load_tokenizer("tiny").save_pretrained(tmp_path / "m")
    for name in ("qa", "summarize", "code"):
        assert main(["llm", "eval", str(tmp_path / "m"), "--task", name, "-n", "8", "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["n"] == 8 and res["accuracy"] == 0.0  # a random model answers nothing
        args = ["llm", "eval", str(tmp_path / "m"), "--task", name, "--reward", "task", "-n", "8"]
        assert main([*args, "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["reward"] == f"task:{name}" and 0.0 <= res["mean_reward"] < 0.5
