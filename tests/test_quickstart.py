"""The main job (`./run.sh main` = `rlfoundry quickstart`) end to end on small budgets:
every stage runs through the same code, REPORT.md gets its table, and the console says
what a newcomer needs (issue 14: numbered stages, a labelled progress bar per run drawn
once, SFT's stop on its target, advice for a used --out that quickstart accepts)."""

from __future__ import annotations

import io
import re
import shlex
import sys

import pytest

from rlfoundry import api
from rlfoundry.cli.main import main


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that tqdm draws its bars into it."""

    def isatty(self) -> bool:
        return True


def _short_budgets(monkeypatch):
    real = api.train

    def short(algo, **kw):  # the shipped configs, on a budget that fits a test
        return real(algo, steps=1_000, **kw)

    monkeypatch.setattr(api, "train", short)  # quickstart imports it when it runs


def test_quickstart_without_llm_numbers_three_stages_and_refuses_a_used_out(
    tmp_path, monkeypatch, capsys
):
    _short_budgets(monkeypatch)
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--no-llm", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    stages = re.findall(r"^\[(\d)/(\d)\]", printed, re.M)
    assert {total for _, total in stages} == {"3"} and stages[-1][0] == "3", printed
    report = (out / "REPORT.md").read_text()
    for name in ("qlearning", "dyna_q", "ppo", "dqn"):
        assert f"| {name} |" in report
    before = sorted(p.name for p in out.iterdir())
    assert main(["quickstart", "--out", str(out), "--no-llm", "--no-progress"]) == 2
    err = capsys.readouterr().err
    advice = re.search(r"`rlfoundry (quickstart [^`]*)`", err)
    assert advice is not None and "--overwrite" in advice.group(1), err
    assert sorted(p.name for p in out.iterdir()) == before  # refused before any stage
    # the advice is a command quickstart accepts
    assert main([*shlex.split(advice.group(1)), "--no-llm", "--no-progress"]) == 0


@pytest.mark.slow
def test_the_main_job_with_the_language_model_on_a_reduced_budget(tmp_path, monkeypatch):
    """Four stages, a labelled bar per run (each drawn on one line), SFT's stop on its
    target said on the console, the LLM line and the report."""
    from rlfoundry.llm import pipeline, supervised

    _short_budgets(monkeypatch)
    tiny = {"total_steps": 20, "batch_size": 8, "eval_size": 16}
    monkeypatch.setattr(pipeline, "PRETRAIN_DEFAULTS", {"eval_every": 0, **tiny})
    monkeypatch.setattr(
        pipeline, "SFT_DEFAULTS", {"eval_every": 0, **tiny, "total_steps": 40, "check_every": 10}
    )
    grpo = {"total_steps": 2, "rollout_size": 16, "group_size": 4, "minibatch_size": 16}
    monkeypatch.setattr(pipeline, "GRPO_DEFAULTS", {**grpo, "eval_every": 2, "eval_size": 16})
    # the SFT stop on reaching its target, without training to it
    monkeypatch.setattr(supervised, "_train_accuracy", lambda *a: 0.5)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["quickstart", "--out", str(tmp_path / "qs")]) == 0
    printed, err = stdout.getvalue(), terminal.getvalue()
    assert [t for _, t in re.findall(r"^\[(\d)/(\d)\]", printed, re.M)] == ["4"] * 6
    for label in ("qlearning", "dyna_q", "ppo", "dqn", "llm-pretrain", "llm-sft", "llm-grpo"):
        bars = [ln for ln in err.split("\n") if re.match(rf"{label}: +\d+%\|", ln.split("\r")[-1])]
        assert len(bars) == 1, (label, bars)  # drawn once: no second final bar
    assert "llm-sft: stopped at step 10 of 40 on purpose" in err
    assert "Language model, held-out arithmetic exact match" in printed
    assert (tmp_path / "qs" / "REPORT.md").is_file()
