"""Pre-training and SFT on a tiny budget: the run-directory contract, exact resume, the
completion-only loss, bad input rejected before training, and CLI smoke runs of
`rlfoundry llm pretrain|sft|generate|eval`."""

from __future__ import annotations

import json

import pytest
import torch

from rlfoundry.api import train
from rlfoundry.cli.main import main
from rlfoundry.errors import RLFoundryError
from rlfoundry.llm import supervised
from rlfoundry.llm.data import collate, encode_examples
from rlfoundry.llm.models import encode_prompt, load_model, load_tokenizer
from rlfoundry.llm.tasks import get_task
from rlfoundry.runtime.run import load_checkpoint_file

torch.set_num_threads(1)

TINY = {"total_steps": 3, "batch_size": 8, "eval_every": 2, "eval_size": 8}


def _greedy_exact_match(model_dir, n: int, seed: int = 0) -> float:
    """Held-out exact match of the saved model on arithmetic, computed here without the
    package's batched generate: one prompt at a time, argmax token by token, no cache."""
    tok, model = load_tokenizer(model_dir), load_model(model_dir).eval()
    task = get_task("arithmetic")
    prompts = task.prompts("test", n, seed)
    hits = 0
    for p in prompts:
        ids = encode_prompt(tok, p)
        start = len(ids)
        with torch.no_grad():
            for _ in range(task.max_new_tokens):
                nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
                ids.append(nxt)
                if nxt == tok.eos_token_id:
                    break
        hits += task.is_correct(p, tok.decode(ids[start:], skip_special_tokens=True))
    return hits / len(prompts)


def _contract(out):
    for name in ("config.yaml", "metrics.csv", "checkpoint.safetensors", "summary.json"):
        assert (out / name).is_file(), name
    assert (out / "learning_curve.png").is_file()
    assert (out / "model" / "config.json").is_file()
    assert list((out / "model").glob("*.safetensors"))
    assert list((out / "tb").iterdir())
    return json.loads((out / "summary.json").read_text())


def test_completion_only_loss_by_hand():
    tok = load_tokenizer("tiny")
    rows = encode_examples(tok, [("12+7=", "19"), ("", "1+1=2")], max_len=32)
    assert rows[0] == (tok.encode("12+7="), tok.encode("19") + [tok.eos_token_id])
    assert rows[1][0] == [] and rows[1][1][-1] == tok.eos_token_id
    ids, attn, cmask = collate(rows, tok.pad_token_id)
    assert cmask[0].tolist() == [False] * 5 + [True] * 3 + [False] * 0
    assert cmask[1, :6].all() and attn[1].sum() == 6
    torch.manual_seed(0)
    model = load_model("tiny").eval()
    with torch.no_grad():
        s, n = supervised.nll(model, ids[:1], attn[:1], cmask[:1])
        logp = torch.log_softmax(model(ids[:1]).logits[0], -1)
    want = -sum(float(logp[t - 1, ids[0, t]]) for t in (5, 6, 7))
    assert int(n) == 3 and float(s) == pytest.approx(want, abs=1e-4)
    # truncation keeps the end of the prompt and the start of the completion
    ((p, c),) = encode_examples(tok, [("123456789+1=", "123456")], max_len=8)
    assert len(p) + len(c) == 8 and c == tok.encode("123456") + [tok.eos_token_id]
    assert p == tok.encode("123456789+1=")[-1:]


@pytest.mark.parametrize("name", ["llm-pretrain", "llm-sft"])
def test_stage_writes_the_run_directory_and_resumes_exactly(tmp_path, name):
    straight = tmp_path / "straight"
    s = train(name, out=straight, progress=False, **{**TINY, "total_steps": 4})
    assert s["status"] == "finished"
    summary = _contract(straight)
    assert summary["algo"] == name
    assert summary["eval_loss"] > 0
    # the reported accuracy is the saved model's, on eval_size held-out prompts
    assert summary["eval_accuracy"] == _greedy_exact_match(straight / "model", TINY["eval_size"])
    cut = tmp_path / "cut"
    s = train(name, out=cut, progress=False, stop_at_step=2, **{**TINY, "total_steps": 4})
    assert s["status"] == "interrupted" and "--resume" in s["resume_command"]
    train(resume=cut, progress=False)
    a, _ = load_checkpoint_file(straight / "checkpoint.safetensors")
    b, _ = load_checkpoint_file(cut / "checkpoint.safetensors")
    for k in a:
        if k.startswith("model/"):
            assert torch.equal(a[k], b[k]), k
    lines = lambda d: (d / "metrics.csv").read_text().splitlines()  # noqa: E731
    assert lines(straight) == lines(cut)
    with pytest.raises(RLFoundryError, match="already holds a run"):
        train(name, out=straight, progress=False, **TINY)


def test_sft_stops_at_the_target_accuracy(tmp_path, monkeypatch):
    calls = []

    def fake(model, tok, task, n=200, split="test", **kw):
        calls.append(split)
        return 0.5 if split == "train" and len(calls) >= 2 else 0.0

    monkeypatch.setattr(supervised, "evaluate_accuracy", fake)
    s = train(
        "llm-sft",
        out=tmp_path / "r",
        progress=False,
        **{**TINY, "total_steps": 10, "eval_every": 0, "check_every": 2, "target_accuracy": 0.4},
    )
    assert s["step"] == 4 and s["reached_target_accuracy"] is True
    assert calls[:2] == ["train", "train"]  # the stop never looks at held-out prompts
    _contract(tmp_path / "r")


def test_sft_with_lora_on_a_jsonl_dataset(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": f"{i}+1=", "completion": str(i + 1)}) + "\n" for i in range(30)
        )
    )
    out = tmp_path / "lora"
    s = train("llm-sft", out=out, progress=False, data=str(data), task="", lora_rank=4, **TINY)
    assert s["status"] == "finished" and "eval_loss" in s and "eval_accuracy" not in s
    merged = load_model(out)  # saved merged: a plain transformers model
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_bad_inputs_fail_before_anything_is_written(tmp_path):
    bad = tmp_path / "d.jsonl"
    bad.write_text('{"prompt": "1+1=", "completion": "2"}\n{"prompt": "2+2="}\n')
    with pytest.raises(RLFoundryError, match="line 2 has no field 'completion'"):
        train("llm-sft", out=tmp_path / "a", progress=False, data=str(bad))
    with pytest.raises(RLFoundryError, match="does not exist"):
        train("llm-sft", out=tmp_path / "b", progress=False, model=str(tmp_path / "no-model"))
    with pytest.raises(RLFoundryError, match="Unknown task 'poetry'"):
        train("llm-pretrain", out=tmp_path / "c", progress=False, task="poetry")
    with pytest.raises(RLFoundryError, match="Unknown config key"):
        train("llm-sft", out=tmp_path / "d", progress=False, stepz=3)
    with pytest.raises(RLFoundryError, match="total_steps must be at least 1"):
        train("llm-sft", out=tmp_path / "e", progress=False, steps=0)
    for name in "abcde":
        assert not (tmp_path / name).exists()


def test_cli_sft_generate_eval(tmp_path, capsys):
    out = tmp_path / "sft"
    args = ["llm", "sft", "--task", "arithmetic", "--model", "tiny:nano", "--steps", "3"]
    rc = main([*args, "--out", str(out), "--set", "batch_size=8", "--set", "eval_size=8"])
    assert rc == 0
    _contract(out)
    capsys.readouterr()
    assert (
        main(["llm", "generate", str(out), "--prompt", "12+7=", "--prompt", "3+4=", "--json"]) == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["12+7=", "3+4="]
    gen = ["llm", "generate", str(out), "--prompt", "1+1=", "-n", "3", "--temperature", "1"]
    assert main([*gen, "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["llm", "eval", str(out), "--task", "arithmetic", "-n", "10"]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    assert main(["llm", "eval", str(out), "--n", "10", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 10 and res["accuracy"] == _greedy_exact_match(out / "model", 10)
    # errors: one line on stderr, exit code 2, nothing written
    assert main(["llm", "generate", str(tmp_path / "nope"), "--prompt", "1"]) != 0
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(["llm", "sft", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) != 0
    )
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_cli_stage_flags_come_from_the_registry(tmp_path, capsys):
    from rlfoundry.runtime.config import load_yaml

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"{i}+1="}) + "\n" for i in range(8)))
    out = tmp_path / "g"
    argv = ["llm", "grpo", "--model", "tiny:nano", "--data", str(prompts), "--steps", "1"]
    for kv in ("rollout_size=8", "group_size=4", "eval_every=0", "eval_size=8"):
        argv += ["--set", kv]
    assert main([*argv, "--out", str(out), "--no-progress", "--json"]) == 0
    saved = load_yaml(out / "config.yaml")
    assert saved["algo"] == "llm-grpo" and saved["prompts"] == str(prompts)
    assert saved["total_steps"] == 1
    capsys.readouterr()
    # `rlfoundry train` is for gym algorithms; LLM stages are `rlfoundry llm STAGE`
    assert main(["train", "llm-grpo", "--out", str(tmp_path / "x")]) == 2
    assert "train it with `rlfoundry llm grpo`" in capsys.readouterr().err
    assert main(["train", "sft", "--out", str(tmp_path / "x")]) == 2
    assert "did you mean llm-sft?" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_default_recipe_leaves_room_for_rl(tmp_path):
    """The measured recipe (Config defaults): pre-train + SFT of the nano model on
    arithmetic reaches the 30% training-prompt target within the SFT budget, and the
    held-out exact match says the model generalises (>= 20%: the pre-trained model
    answers 2-14%) while leaving RL at least 40 points (<= 60%).

    Measured on seeds 0-4, each also with other floating-point rounding (AVX2 kernels,
    MKL compatibility mode), 15 runs: the target is reached after 175-775 of the 2000
    steps, held-out 26.5-50% (200 prompts; the check every 25 steps overshoots the 30%
    during the jump in accuracy). Margins: 2.6x the slowest run's steps, 6.5 points
    below, 10 above. Seed 0 here: step 625, 36%, 20 CPU seconds in all."""
    pre = train("llm-pretrain", out=tmp_path / "pre", task="arithmetic", seed=0, progress=False)
    s = train(
        "llm-sft",
        out=tmp_path / "sft",
        task="arithmetic",
        model=pre["run_dir"],
        seed=0,
        progress=False,
    )
    assert s["reached_target_accuracy"], s
    assert 0.20 <= s["eval_accuracy"] <= 0.60, s
