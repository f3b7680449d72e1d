"""Tool calls in multi-turn rollouts: the calculator, plugging a tool in, and the
episode layout (environment tokens masked out of the loss, pi_old's log-probs)."""

from __future__ import annotations

import pytest
import torch

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm import multiturn
from rlfoundry.llm.models import load_model, load_tokenizer, policy_logprobs
from rlfoundry.llm.rollout import rollout
from rlfoundry.llm.tools import answer, calculator, final_answer, load_tool, pending_call

torch.set_num_threads(1)


def shout(expression: str) -> str:
    return expression.upper()


def test_calculator_is_exact_and_refuses_code():
    assert calculator("48/2") == "24"
    assert calculator("123*456") == "56088"
    assert calculator("1/3*3") == "1" and calculator("7/2") == "3.5"
    assert calculator("2**10 - (3 - 5)") == "1026" and calculator("-7 // 2") == "-4"
    assert calculator("1,000 + 1") == "1001" and calculator("10/3") == "3.333333"
    for bad in ("__import__('os')", "x + 1", "2**1000", "1/0", "", "9" * 300, "(1).real"):
        with pytest.raises((ValueError, ZeroDivisionError, SyntaxError)):
            calculator(bad)


def test_call_syntax_and_answers():
    assert pending_call("so <<12*3=") == "12*3"
    assert pending_call("so <<12*3") is None and pending_call("<<1=2>> and 3=") is None
    assert answer(calculator, "12*3") == "36>>"
    assert answer(calculator, "12*") == "error: SyntaxError>>"  # the episode goes on
    assert final_answer("<<12*3=36>> 36") == "36" and final_answer("41") == "41"


def test_tools_plug_in_like_rewards(tmp_path):
    assert load_tool("calculator") is calculator
    assert load_tool(f"{__name__}:shout")("ab") == "AB"
    f = tmp_path / "my_tools.py"
    f.write_text("def echo(e):\n    return e\n")
    assert load_tool(f"{f}:echo")("x") == "x"
    for spec, msg in [
        ("calc", "neither a built-in"),
        ("nosuchmod:fn", "Cannot import tool module"),
        (f"{__name__}:missing", "has no function 'missing'"),
        (f"{tmp_path / 'no.py'}:f", "does not exist"),
    ]:
        with pytest.raises(RLFoundryError, match=msg):
            load_tool(spec)


def test_episode_masks_the_environment_tokens(monkeypatch):
    """A scripted sampler: turn 1 writes `<<12*3=` and more (cut after the `=`), the
    calculator answers `36>>`, turn 2 writes ` 36` and EOS."""
    torch.manual_seed(0)
    model, tok = load_model("tiny").eval(), load_tokenizer("tiny")
    eos = tok.eos_token_id
    script = iter([tok.encode("<<12*3=99 junk"), tok.encode(" 36") + [eos]])

    def scripted(model, ids, attn, max_new, eos_id, pad, *args):
        new = next(script)
        comp = torch.tensor([new] * ids.shape[0])
        return comp, torch.ones_like(comp, dtype=torch.bool), torch.zeros(comp.shape)

    monkeypatch.setattr(multiturn, "sample", scripted)
    ro = multiturn.tool_rollout(model, tok, ["x="], 2, 16, 1.0, None, calculator, 3)
    assert ro.completions == ["<<12*3=36>> 36"] * 2
    n_call, n_env = len(tok.encode("<<12*3=")), len(tok.encode("36>>"))
    n_end = len(tok.encode(" 36")) + 1
    want = [True] * n_call + [False] * n_env + [True] * n_end
    assert ro.completion_mask[0].tolist() == want
    assert not ro.truncated.any()
    # pi_old: a fresh forward pass on the policy's tokens, nothing on the tool's
    cm = torch.zeros_like(ro.attention_mask, dtype=torch.bool)
    cm[:, ro.prompt_len :] = ro.completion_mask
    fresh = policy_logprobs(model, ro.input_ids, ro.attention_mask, cm)[:, ro.prompt_len :]
    assert torch.allclose(ro.old_logp, fresh, atol=1e-6)
    assert (ro.old_logp[~ro.completion_mask] == 0).all() and (
        ro.old_logp[ro.completion_mask] < 0
    ).all()


def test_episode_without_a_call_is_a_plain_rollout():
    """No tool call sampled: the same tokens, mask and log-probs as `rollout.rollout`."""
    torch.manual_seed(0)
    model, tok = load_model("tiny").eval(), load_tokenizer("tiny")
    prompts = ["12+7=", "3+30="]
    gen = torch.Generator().manual_seed(0)
    ro = multiturn.tool_rollout(model, tok, prompts, 2, 6, 1.0, gen, calculator, 3)
    plain = rollout(model, tok, prompts, 2, 6, 1.0, torch.Generator().manual_seed(0))
    assert "<<" not in "".join(ro.completions)
    assert ro.completions == plain.completions
    assert torch.equal(ro.input_ids, plain.input_ids)
    assert torch.equal(ro.completion_mask, plain.completion_mask)
    assert torch.equal(ro.truncated, plain.truncated)
    assert torch.allclose(ro.old_logp, plain.old_logp, atol=2e-5)


def test_tool_arithmetic_task_reads_the_final_answer():
    from rlfoundry.llm.tasks import get_task

    task = get_task("tool-arithmetic")
    p = task.prompts("train", 1, 0)[0]
    a, b = (int(x) for x in p[:-1].split("*"))
    assert task.is_correct(p, f"<<{a}*{b}={a * b}>> {a * b}") and task.is_correct(p, str(a * b))
    assert not task.is_correct(p, f"<<{a}*{b}={a * b}>> {a * b + 1}")
    assert task.sft_examples("train", 1, 0)[0] == (p, f"<<{a}*{b}={a * b}>> {a * b}")
    assert set(task.prompts("test", 50)).isdisjoint(task.prompts("train", 2000))


def test_greedy_evaluation_calls_the_tool(monkeypatch):
    from rlfoundry.llm.evaluation import evaluate_accuracy
    from rlfoundry.llm.tasks import ToolArithmeticTask

    torch.manual_seed(0)
    model, tok = load_model("tiny").eval(), load_tokenizer("tiny")
    task = ToolArithmeticTask(digits=1)
    prompts = task.prompts("test", 3)
    turns = []

    def scripted(model, ids, attn, max_new, eos_id, pad, temperature, *args):
        assert temperature == 0.0
        turns.append(ids.shape[0])
        if len(turns) == 1:  # every row calls the tool on its own product
            rows = [tok.encode("<<" + p) for p in prompts]
        else:  # then copies the result: the text between '=' and '>>' of its context
            rows = [
                tok.encode(" " + tok.decode(r).rsplit("=", 1)[1][:-2]) + [eos_id]
                for r in ids.tolist()
            ]
        width = max(map(len, rows))
        comp = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.bool)
        return comp, mask, torch.zeros(comp.shape)

    monkeypatch.setattr(multiturn, "sample", scripted)
    assert evaluate_accuracy(model, tok, task, n=3, split="test", tool=calculator) == 1.0
    assert turns == [3, 3]


def test_grpo_with_a_tool_runs_and_logs_tool_use(tmp_path):
    import csv

    from rlfoundry.api import train

    ov = {"model": "tiny", "task": "tool-arithmetic:digits=2", "tool": "calculator"}
    ov.update(rollout_size=8, group_size=4, eval_every=1, eval_size=4, max_turns=2)
    s = train("llm-grpo", steps=2, out=tmp_path / "r", overrides=ov, progress=False)
    assert s["status"] == "finished" and "eval_accuracy" in s
    rows = list(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))
    assert all(0 <= float(r["tool_use"]) <= 1 for r in rows if r["step"] != "0")
    with pytest.raises(RLFoundryError, match="neither a built-in"):
        train("llm-grpo", out=tmp_path / "bad", overrides={**ov, "tool": "abacus"})
    assert not (tmp_path / "bad" / "config.yaml").exists()


class _ChatML:
    """Just enough of a tokenizer for rendering: a ChatML template, no BOS."""

    chat_template = "chatml"
    bos_token = None

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def test_chat_tool_task_renders_and_recovers_the_answer():
    """`tool-arithmetic-chat` by hand: the question, the worked turns, the product read
    from the rendered conversation (not the example's), 'Answer: N' after the result."""
    from rlfoundry.llm.chat_format import task_texts
    from rlfoundry.llm.tasks import TOOL_EXAMPLES, get_task

    task = get_task("tool-arithmetic-chat")
    msgs = task.messages("813*270=")
    assert msgs[0] == {"role": "system", "content": task.system}
    assert msgs[-1] == {"role": "user", "content": "What is 813*270?"}
    assert [m["content"] for m in msgs[1:-1]] == [x for pair in TOOL_EXAMPLES for x in pair]
    rendered = task_texts(task, _ChatML(), ["813*270=", "7*5="])
    assert rendered[0].endswith("What is 813*270?<|im_end|>\n<|im_start|>assistant\n")
    assert "<<23*41=943>>" in rendered[0]  # the worked call is shown, and not the answer:
    assert (task.reference(rendered[0]), task.reference(rendered[1])) == ("219510", "35")
    assert task.reference("813*270=") == "219510"
    for completion, ok in [
        ("<<813*270=219510>>\nAnswer: 219510", True),
        ("<<813*270=219510>>\nAnswer: 219,510", True),
        ("Answer: 219510", True),  # a direct answer counts
        ("<<813*270=219510>>\nAnswer: 219511", False),
        ("<<813*270=219510>>", False),  # nothing after the result
        ("<<813*207=168291>>\nAnswer: 168291", False),  # a wrong call
        ("Answer: 943", False),
        ("Answer: 219510 <<1+1=2>>\nAnswer: 2", False),  # the last result's answer counts
    ]:
        assert task.is_correct(rendered[0], completion) is ok, completion
    assert task.sft_examples("train", 1)[0][1].endswith(">>\nAnswer: " + task.reference(
        task.sft_examples("train", 1)[0][0]))  # fmt: skip
    assert task.max_new_tokens == 24 and task.prompts("test", 5) == get_task(
        "tool-arithmetic"
    ).prompts("test", 5)
    with pytest.raises(RLFoundryError, match="not of the form"):
        task.messages("What is 2*3?")
    with pytest.raises(RLFoundryError, match="No question"):
        task.reference("<|im_start|>user\nHello<|im_end|>")


def test_chat_tool_task_episodes_on_the_tiny_model(monkeypatch):
    """Greedy episodes of the tiny model on the rendered chat prompts, scripted: turn 1
    calls the calculator on the question it reads in its context, turn 2 answers."""
    import re

    from rlfoundry.llm.evaluation import evaluate_accuracy
    from rlfoundry.llm.tasks import get_task

    torch.manual_seed(0)
    model, tok = load_model("tiny").eval(), load_tokenizer("tiny")
    task = get_task("tool-arithmetic-chat")
    turns = []

    def scripted(model, ids, attn, max_new, eos_id, pad, temperature, *args):
        turns.append(ids.shape[0])
        rows = []
        for r in ids.tolist():
            text = tok.decode(r, skip_special_tokens=True)
            if len(turns) == 1:
                a, b = re.findall(r"What is (\d+)\*(\d+)\?", text)[-1]
                rows.append(tok.encode(f"<<{a}*{b}="))
            else:  # the result the calculator appended, off by one on odd products
                got = int(text.rsplit("=", 1)[1][:-2])
                rows.append(tok.encode(f"\nAnswer: {got + got % 2}") + [eos_id])
        width = max(map(len, rows))
        comp = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.bool)
        return comp, mask, torch.zeros(comp.shape)

    monkeypatch.setattr(multiturn, "sample", scripted)
    prompts = task.prompts("test", 8)
    even = sum(int(task.reference(p)) % 2 == 0 for p in prompts) / 8
    assert 0 < even < 1
    assert evaluate_accuracy(model, tok, task, n=8, tool=calculator, max_turns=2) == even
    assert turns == [8, 8]


def test_sft_accuracy_checks_call_the_tool(tmp_path, monkeypatch):
    """With `tool` set, SFT's target_accuracy check (and its held-out accuracy) run
    episodes with that tool: tool-arithmetic is right only with the calculator answering."""
    from rlfoundry.api import train
    from rlfoundry.llm import supervised

    seen = []
    real = supervised.evaluate_accuracy

    def spy(*args, **kwargs):
        seen.append((kwargs.get("split", "test"), kwargs.get("tool"), kwargs.get("max_turns")))
        return real(*args, **kwargs)

    monkeypatch.setattr(supervised, "evaluate_accuracy", spy)
    ov = {"task": "tool-arithmetic:digits=1", "tool": "calculator", "max_turns": 2,
          "total_steps": 2, "check_every": 1, "target_accuracy": 0.99, "eval_size": 4,
          "eval_every": 0, "batch_size": 4}  # fmt: skip
    train("llm-sft", out=tmp_path / "sft", overrides=ov, progress=False)
    assert ("train", calculator, 2) in seen and ("test", calculator, 2) in seen, seen
    with pytest.raises(RLFoundryError, match="neither a built-in"):
        train("llm-sft", out=tmp_path / "bad", overrides={**ov, "tool": "abacus"})
    assert not (tmp_path / "bad" / "config.yaml").exists()
