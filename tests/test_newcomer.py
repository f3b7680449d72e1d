"""A newcomer's first hour (issue 14), in the README's order: install, activate, `--help`,
the main job on a reduced budget, one command on each example file; and the console text
each of those steps showed a new user, checked point by point.

The install itself is the venv these tests run in (CI installs it with `./run.sh test`);
what it prints is read from run.sh."""

from __future__ import annotations

import argparse
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rlfoundry import api, registry
from rlfoundry.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLES = ROOT / "examples"
JARGON = re.compile(r"seed 00\d")


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that tqdm draws its bars into it."""

    def isatty(self) -> bool:
        return True


# --------------------------------------------------------------------- 1. install, activate


def test_install_says_what_it_does_and_how_to_get_the_command():
    run_sh = (ROOT / "run.sh").read_text()
    assert "installing rlfoundry and its dependencies" in run_sh
    assert "source .venv/bin/activate" in run_sh  # printed once the install is done
    assert Path(sys.executable).with_name("rlfoundry").exists()  # the venv's command
    assert "source .venv/bin/activate" in README
    assert "apt-get" in README and "Chromium" in README  # ./run.sh test as root
    setup = README[README.index("## Set-up") : README.index("<!-- quickstart-output -->")]
    for step in ("install", "`./run.sh main`", "`./run.sh test`"):
        row = next(line for line in setup.splitlines() if line.startswith(f"| {step}"))
        assert re.search(r"\d+(-\d+)? min", row), row  # each step's expected time


# --------------------------------------------------------------------- 3. start-up


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys; print(' '.join(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return set(res.stdout.split())


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_load_neither_torch_nor_gymnasium(flag):
    # benchmarks/startup.py measures the seconds (RESULTS.md): under 1 s
    code = f"from rlfoundry.cli.main import main\ntry:\n    main([{flag!r}])\nexcept SystemExit:\n    pass"
    assert not {"torch", "gymnasium", "transformers"} & _modules_after(code)


# --------------------------------------------------------------------- 4. help and messages


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_help_describes_every_argument_without_jargon():
    commands = _subparsers(build_parser())
    for name in ("eval", "plot", "list", "solve", "quickstart", "train"):
        for action in commands[name]._actions:
            if action.help is not argparse.SUPPRESS:
                assert action.help, f"rlfoundry {name}: {action.dest} has no help"
    texts = [build_parser().format_help()] + [p.format_help() for p in commands.values()]
    for p in commands.values():
        texts += [sub.format_help() for sub in _subparsers(p).values()]
    assert not [t for t in texts if JARGON.search(t)]
    assert not JARGON.search(README)
    plot = commands["plot"].format_help()
    assert "learning_curve-<UTC time>.png" in plot and "current directory" in plot
    serve = _subparsers(commands["feedback"])["serve"].format_help()
    assert re.search(r"--port PORT\s+port to listen on \(default 8000\)", serve)
    assert "may be omitted" in commands["train"].format_help()


def test_list_shows_choices_and_shipped_configs_without_jargon(capsys):
    assert main(["list"]) == 0
    assert not JARGON.search(capsys.readouterr().out)
    assert main(["list", "ppo"]) == 0
    out = capsys.readouterr().out
    assert "'tanh' | 'relu'" in out  # a Literal with its choices
    assert "envs with a tuned ppo config" in out and "configs/ppo/CartPole-v1.yaml" in out


def test_algorithm_names_misspelt_or_hyphenated(capsys, tmp_path):
    assert registry.get("q-learning").name == "qlearning"
    assert registry.get("selfplay-ppo").name == "selfplay_ppo"
    assert registry.get("Expected-SARSA").name == "expected_sarsa"
    assert main(["train", "qlearnin", "--out", str(tmp_path / "a")]) == 2
    assert "did you mean qlearning?" in capsys.readouterr().err
    assert main(["train", "pp0", "--out", str(tmp_path / "a")]) == 2
    assert "did you mean ppo?" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_bad_steps_and_a_tabular_algorithm_on_cartpole_read_as_sentences(capsys, tmp_path):
    for steps in ("-5", "0"):
        assert main(["train", "qlearning", "--steps", steps, "--out", str(tmp_path / "a")]) == 2
        err = capsys.readouterr().err
        assert f"--steps {steps} " in err and "at least 1" in err
    assert main(["train", "qlearning", "--env", "CartPole-v1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "Box(" not in err and "inf" not in err and "a Box of 4 floats" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_train_without_env_names_the_env_it_uses(capsys, tmp_path):
    argv = ["train", "q-learning", "--steps", "50", "--out", str(tmp_path / "q"), "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "no --env given: training on rlfoundry/GridWorld-v0" in err


# --------------------------------------------------------------------- 2. the main job
# (the quickstart itself, with and without the language model: tests/test_quickstart.py)


def test_progress_bars_are_labelled_and_end_at_their_total(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    api.train("ppo", env="CartPole-v1", steps=3000, out=tmp_path / "p", evaluate_after=False)
    lines = [ln for ln in terminal.getvalue().split("\n") if "ppo:" in ln]
    assert len(lines) == 1, lines  # one bar, drawn on one line (redraws use \r)
    last = lines[0].split("\r")[-1]
    # 3000 steps are rounded down to whole rollouts of 8 x 32: the bar ends at that end
    assert re.search(r"ppo: 100%.*\b2816/2816\b", last), last


def test_a_run_stopped_on_purpose_says_so(tmp_path, monkeypatch):
    from rlfoundry.runtime.run import Run

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    with Run(tmp_path / "r", 1000, label="llm-sft", tensorboard=False) as run:
        run.progress(300, loss=1.0)
        run.stopped_early(325, "greedy accuracy 31% reached target_accuracy 30%")
    text = terminal.getvalue()
    assert "llm-sft: stopped at step 325 of 1000 on purpose: greedy accuracy 31%" in text
    assert "stopped early" in text.split("\n")[0]  # on the bar itself


def test_learning_curves_name_their_steps(tmp_path):
    from rlfoundry.runtime.config import save_yaml
    from rlfoundry.runtime.plotting import step_unit

    for algo, unit in (
        ("ppo", "environment steps"),
        ("llm-grpo", "iterations (rollout + update)"),
        ("llm-sft", "optimizer steps"),
    ):
        save_yaml(tmp_path / algo / "config.yaml", {"algo": algo})
        assert step_unit(tmp_path / algo) == unit


# --------------------------------------------------------------------- 5. first own data


def _readme_example_commands() -> list[str]:
    table = README[README.index("### Your own data") :].split("\n\n")[1]
    return [c for c in re.findall(r"`(rlfoundry [^`]+)`", table)]


#: What each README command gets added in a test: a tiny budget and a temporary --out.
_BUDGET = {
    "feedback": ["--db", "{tmp}/fb.db"],
    "llm": ["--steps", "1", "--out", "{tmp}/{n}", "--no-progress"],
    "train": ["--steps", "64", "--out", "{tmp}/{n}", "--no-progress"],
}
_SETTINGS = {  # smaller batches than the defaults, so that one step takes a second
    "sft": ["--set", "batch_size=4", "--set", "eval_size=4"],
    "reward-model": ["--set", "batch_size=4"],
    "grpo": ["--set", "rollout_size=8", "--set", "group_size=4", "--set", "minibatch_size=8"],
    "ppo": ["--set", "num_envs=1", "--set", "num_steps=64", "--set", "eval_episodes=1"],
}


def test_every_example_file_with_the_readme_command(tmp_path, monkeypatch, capsys):
    commands = _readme_example_commands()
    used = {name for c in commands for name in re.findall(r"examples/([\w.]+)", c)}
    shipped = {p.name for p in EXAMPLES.iterdir() if p.is_file()}
    named_in_readme = {n for n in shipped if f"`{n}`" in README or f"examples/{n}" in README}
    assert named_in_readme == shipped  # every example file is in the README's table
    assert {"feedback_items.jsonl", "sft_pairs.jsonl", "preferences.jsonl"} <= used
    assert {"grpo_prompts.csv", "my_reward.py", "prices.csv"} <= used
    monkeypatch.chdir(ROOT)  # the README's paths are relative to the checkout
    for n, command in enumerate(commands):
        argv = shlex.split(command)[1:]
        extra = _BUDGET[argv[0]] + _SETTINGS.get(argv[1], [])
        argv += [a.format(tmp=tmp_path, n=n) for a in extra]
        assert main(argv) == 0, (command, capsys.readouterr().err[-2000:])
        err = capsys.readouterr().err
        if argv[:2] == ["llm", "reward-model"]:
            assert "warning: only 7 training pairs" in err  # below the sensible minimum


def test_every_example_file_is_read_by_a_test():
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    tests += " ".join(_readme_example_commands())  # run by the test above
    missing = [p.name for p in EXAMPLES.rglob("*") if p.is_file() and p.name not in tests]
    assert missing == []


# --------------------------------------------------------------------- 6. Python users


@pytest.mark.parametrize(
    "order",
    ["import rlfoundry\nimport gymnasium as gym", "import gymnasium as gym\nimport rlfoundry"],
)
def test_import_rlfoundry_registers_its_envs_with_gymnasium(order):
    code = (
        f"{order}\nenv = gym.make('rlfoundry/Trading-v0')\nenv = gym.make('rlfoundry/GridWorld-v0')"
    )
    loaded = _modules_after(code)
    assert "torch" not in loaded


def test_import_rlfoundry_alone_still_loads_no_gymnasium():
    assert not {"torch", "gymnasium"} & _modules_after("import rlfoundry")
