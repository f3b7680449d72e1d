"""Learning tests of `tool-arithmetic` and `format` on the built-in tiny model (seeded, CPU,
CI-sized), on the pattern of test_task_learning.py: an SFT start, GRPO, held-out
scores, and a control that must not reach the bar (the model without its calculator;
GRPO at learning_rate 0). The measured seeds are in each test's docstring.
"""

from __future__ import annotations

import json

import pytest
import torch

from rlfoundry.api import train

torch.set_num_threads(1)

_GRPO = {"rollout_size": 128, "group_size": 8, "minibatch_size": 64, "update_epochs": 2,
         "temperature": 0.7, "eval_every": 0, "eval_size": 0}  # fmt: skip


def _sft(out, task: str, steps: int, seed: int) -> None:
    ov = {"task": task, "target_accuracy": 0.0, "total_steps": steps, "eval_every": 0,
          "eval_size": 0}  # fmt: skip
    train("llm-sft", out=out, seed=seed, overrides=ov, progress=False)


def _grpo(out, start, task: str, lr: float, steps: int, seed: int, **extra) -> None:
    ov = {**_GRPO, "model": str(start), "task": task, "learning_rate": lr, **extra}
    train("llm-grpo", steps=steps, out=out, seed=seed, overrides=ov, progress=False)


@pytest.mark.slow
def test_sft_on_worked_calls_teaches_the_tiny_model_to_use_the_calculator(tmp_path):
    """SFT of the random tiny model on tool-arithmetic's worked calls (`<<47*3=141>> 141`,
    2-digit operands) for a fixed 300 steps; greedy held-out episodes with the calculator
    (`evaluate_accuracy(..., tool=calculator)`, 400 held-out products, two policy turns)
    solve at least TOOL_MIN_ACCURACY of them, and the same model without the calculator
    solves (nearly) none: the accuracy is the tool's use, not the model's arithmetic.

    Measured (deterministic), seeds 0-4, held-out greedy accuracy with the calculator:
    98.75%, 31.25%, 85.75%, 72.5%, 97.25%, tool use 100% on each; without it 0% on each.
    The bar is the lowest less two binomial standard errors of a 400-prompt share near
    0.31 (0.023): 0.3125 - 0.046, rounded down to 0.25. The step count matters: 200
    steps gave 2.5% (seeds 1 and 4): copying the operands and the result comes in a jump
    between 200 and 300 steps. With 3-digit operands most seeds had not made it by 300
    steps (84.5%, 14%, 43.75%, 0%, 0.25%), hence 2 digits.

    GRPO from these fixed-length SFT models did not lift reliably (30 steps x 128
    episodes, temperature 0.7, lr 3e-4, held-out sampled accuracy: 0.968 -> 0.820, 0.045
    -> 0.008, 0.708 -> 0.693, 0.640 -> 0.608, 0.695 -> 0.730, seeds 0-4; 100 steps with
    lr decaying to 3e-5: +0.003, -0.025 with the tool unlearned on seed 1 (tool use 100%
    -> 7.5%), +0.075, +0.058, +0.205): the start decides, hence the GRPO test below
    stops SFT at a target accuracy of episodes with the calculator instead. The tool-use
    rate cannot be a bar of either test: it is 96-100% once the model writes a
    well-formed call, before any episode is right (3 digits, seed 0, 100 SFT steps: 100%
    calls, 0% right), so no SFT length leaves it room to rise with a reward to learn
    from. 35 s wall on a 2-core machine at load 4.4 (SFT 300 steps; each
    evaluation under 1 s)."""
    from rlfoundry.llm.evaluation import evaluate_accuracy
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.tools import calculator

    task = "tool-arithmetic:digits=2"
    _sft(tmp_path / "sft", task, 300, 0)
    tok, model = load_tokenizer(tmp_path / "sft"), load_model(tmp_path / "sft").eval()
    with_tool = evaluate_accuracy(model, tok, task, n=400, tool=calculator, max_turns=2)
    without = evaluate_accuracy(model, tok, task, n=400)
    print(json.dumps({"with_tool": with_tool, "without": without}))
    assert with_tool >= TOOL_MIN_ACCURACY, (with_tool, without)
    assert without <= 0.02, (with_tool, without)


TOOL_MIN_ACCURACY = 0.25  # seeds 0-4: 31.25%..98.75%, less two standard errors (0.046)


def format_run(tmp_path, capsys, seed: int = 0, sft_steps: int = 150,
               grpo_steps: int = 30) -> dict:  # fmt: skip
    """SFT of the random tiny model on format's examples for a fixed `sft_steps`, then GRPO
    on the task's reward (`grpo_steps` x 128 completions, 16 prompts x 8, temperature 0.7,
    lr 3e-4, no KL penalty) and the control at learning_rate 0 (5 steps). Returns each
    model's held-out mean reward of sampled completions (`rlfoundry llm eval --reward task
    --temperature 0.7`, 400 prompts, one sampling seed) and greedy accuracy (exactly
    `<answer>N</answer>` with N right, 400 prompts)."""
    task = "format"
    _sft(tmp_path / "sft", task, sft_steps, seed)
    for lr, steps, name in ((3e-4, grpo_steps, "grpo"), (0.0, 5, "lr0")):
        _grpo(tmp_path / name, tmp_path / "sft", task, lr, steps, seed)
    res = {"seed": seed}
    res.update(_scores(tmp_path, task, capsys))
    print(json.dumps(res))
    return res


def _scores(tmp_path, task: str, capsys) -> dict:
    """Held-out mean reward of sampled completions and greedy accuracy of the runs
    sft, grpo and lr0 under `tmp_path`."""
    sampled = ("--reward", "task", "--temperature", "0.7", "--batch-size", "100")
    out = {}
    for name in ("sft", "grpo", "lr0"):
        reward = _llm_eval(tmp_path / name, task, capsys, *sampled)["mean_reward"]
        acc = _llm_eval(tmp_path / name, task, capsys)["accuracy"]
        out[name] = {"reward": reward, "accuracy": acc}
    return out


def _llm_eval(run_dir, task: str, capsys, *options: str) -> dict:
    """`rlfoundry llm eval RUN --task TASK -n 400 [OPTIONS] --json`."""
    from rlfoundry.cli.main import main

    capsys.readouterr()
    assert main(["llm", "eval", str(run_dir), "--task", task, "-n", "400", *options, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_grpo_raises_the_held_out_format_reward_and_finds_its_hack(tmp_path, capsys):
    """`format_run`: GRPO raises the held-out mean format reward of sampled completions
    (400 held-out prompts, temperature 0.7) over the 150-step SFT model's, and it does so
    by the hack the task documents (tasks.py, `format`): tags repeated for 0.125 each
    instead of one well-formed right answer, so the greedy held-out accuracy (exactly
    `<answer>N</answer>`, N right) does not rise. The control
    (learning_rate 0) returns the SFT model's figures exactly.

    Measured (deterministic), seeds 0-4, held-out sampled mean reward after SFT -> after
    GRPO: 0.266 -> 0.910 (+0.644), 0.265 -> 0.998 (+0.734), 0.270 -> 0.998 (+0.728),
    0.267 -> 0.750 (+0.483), 0.272 -> 0.748 (+0.476); greedy accuracy 3.25%, 3.0%, 1.25%,
    1.5%, 1.25% -> 0% on every seed (completions such as
    `<answer></answer><answer><answer>...` to the length limit). The SFT model writes
    `<answer>N</answer>` (0.25 of tag credit) with N right 1-3% of the time: a 150-step
    model cannot add two 2-digit numbers yet, and 30 GRPO steps do not teach it, so the
    tags are the only reward within reach. The bar is the lowest lift less two
    seed-to-seed standard deviations (0.127): 0.476 - 0.25 = 0.2 (two binomial standard
    errors of a 400-prompt mean would allow 0.45; the wider margin is for other CPUs'
    rounding). With learning_rate 0 (5 steps) reward and accuracy are exactly the SFT
    model's on all five seeds. About 15 CPU seconds (SFT 150 steps, GRPO 30 steps x 128,
    six evaluations); 24-32 s wall on a 2-core machine at load 4.5."""
    res = format_run(tmp_path, capsys)
    assert res["grpo"]["reward"] >= res["sft"]["reward"] + FORMAT_MIN_LIFT, res
    assert res["grpo"]["accuracy"] <= res["sft"]["accuracy"], res  # the documented hack
    assert res["lr0"] == res["sft"], res


FORMAT_MIN_LIFT = 0.2  # seeds 0-4: +0.476..+0.734, less two seed-to-seed sd (0.25)


def _tool_episodes(run_dir, task: str, temperature: float, n: int = 400) -> dict:
    """Held-out episodes with the calculator (`n` test prompts, one episode each, at most
    two policy turns, sampling seed 0; temperature 0 = greedy): the share that called the
    tool (`tools.tool_use`) and the share the task accepts."""
    from rlfoundry.llm.models import load_model, load_tokenizer
    from rlfoundry.llm.multiturn import tool_rollout
    from rlfoundry.llm.tasks import get_task
    from rlfoundry.llm.tools import calculator, tool_use

    t = get_task(task)
    tok, model = load_tokenizer(run_dir), load_model(run_dir).eval()
    prompts = t.prompts("test", n, 0)
    gen = torch.Generator().manual_seed(0)
    ro = tool_rollout(model, tok, prompts, 1, t.max_new_tokens, temperature, gen, calculator, 2)
    acc = sum(t.is_correct(p, c) for p, c in zip(prompts, ro.completions)) / len(prompts)
    return {"tool_use": tool_use(ro.completions), "accuracy": acc}


def tool_grpo_run(tmp_path, seed: int = 0, target: float = 0.5, grpo_steps: int = 100) -> dict:
    """SFT of the random tiny model on 2-digit worked calls until greedy episodes with the
    calculator solve `target` of 100 training prompts (checked every 25 steps, at most
    800), then GRPO with the calculator (`grpo_steps` x 128 episodes, 16 prompts x 8,
    temperature 0.7, lr 3e-4 decaying to 3e-5) and the control at learning_rate 0 (5
    steps). Returns each model's held-out figures, sampled at 0.7 and greedy."""
    task = "tool-arithmetic:digits=2"
    ov = {"task": task, "target_accuracy": target, "total_steps": 800, "eval_every": 0,
          "eval_size": 100, "check_every": 25, "tool": "calculator", "max_turns": 2}  # fmt: skip
    sft = train("llm-sft", out=tmp_path / "sft", seed=seed, overrides=ov, progress=False)
    res = {"seed": seed, "sft_steps": sft["step"]}
    for lr, steps, name in ((3e-4, grpo_steps, "grpo"), (0.0, 5, "lr0")):
        _grpo(tmp_path / name, tmp_path / "sft", task, lr, steps, seed, tool="calculator",
              max_turns=2, min_lr_ratio=0.1)  # fmt: skip
    for name in ("sft", "grpo", "lr0"):
        res[name] = {k: _tool_episodes(tmp_path / name, task, t) for k, t in (("sampled", 0.7),
                     ("greedy", 0.0))}  # fmt: skip
    print(json.dumps(res))
    return res


@pytest.mark.slow
def test_grpo_with_the_calculator_raises_held_out_tool_arithmetic_accuracy(tmp_path):
    """`tool_grpo_run`: GRPO with the calculator raises the held-out accuracy of sampled
    episodes (400 held-out 2-digit products, temperature 0.7) over the SFT model's, the
    policy keeps calling the tool, and the control (learning_rate 0) returns the SFT
    model's figures exactly.

    Measured (deterministic), seeds 0-4: SFT stopped at step 150, 250, 200, 175, 225;
    held-out sampled accuracy after SFT -> after GRPO 0.550 -> 0.855 (+0.305), 0.528 ->
    0.863 (+0.335), 0.215 -> 0.835 (+0.620), 0.128 -> 0.570 (+0.443), 0.403 -> 0.860
    (+0.458); greedy accuracy 84.8% -> 91.5%, 92.8% -> 95.5%, 60.0% -> 98.3%, 64.5% ->
    70.3%, 85.5% -> 95.5%; sampled tool use 99.5-100% before and after on every seed.
    The bar is the lowest lift less two binomial standard errors of the difference of
    two 400-prompt shares (0.031): 0.305 - 0.062, rounded down to 0.2. With learning_rate
    0 (5 steps) every figure is exactly the SFT model's on all five seeds. About 43 CPU
    seconds (SFT 150-250 steps with a check every 25, GRPO 100 steps, six evaluations);
    45-70 s wall on a 2-core machine at load 4.5."""
    res = tool_grpo_run(tmp_path)
    before, after = res["sft"]["sampled"], res["grpo"]["sampled"]
    assert after["accuracy"] >= before["accuracy"] + TOOL_GRPO_MIN_LIFT, res
    assert after["tool_use"] >= 0.95, res  # seeds 0-4: 99.5-100%
    assert res["lr0"] == res["sft"], res


TOOL_GRPO_MIN_LIFT = 0.2  # seeds 0-4: +0.305..+0.620, less two standard errors (0.062)


def format_strict_run(tmp_path, capsys, seed: int = 0, grpo_steps: int = 100) -> dict:
    """SFT of the random tiny model on format's examples until 30% of 100 training
    prompts are answered exactly `<answer>N</answer>` (checked every 25 steps, at most
    800), then GRPO on `format:strict=true` (`grpo_steps` x 128 completions, 16 prompts x
    8, temperature 0.7, lr 3e-4 decaying to 3e-5) and the control at learning_rate 0 (5
    steps). Returns each model's held-out mean strict reward of sampled completions and
    greedy accuracy (400 prompts)."""
    task = "format:strict=true"
    ov = {"task": task, "target_accuracy": 0.3, "total_steps": 800, "eval_every": 0,
          "eval_size": 100, "check_every": 25}  # fmt: skip
    sft = train("llm-sft", out=tmp_path / "sft", seed=seed, overrides=ov, progress=False)
    for lr, steps, name in ((3e-4, grpo_steps, "grpo"), (0.0, 5, "lr0")):
        _grpo(tmp_path / name, tmp_path / "sft", task, lr, steps, seed, min_lr_ratio=0.1)
    res = {"seed": seed, "sft_steps": sft["step"]}
    res.update(_scores(tmp_path, task, capsys))
    print(json.dumps(res))
    return res


@pytest.mark.slow
def test_grpo_raises_the_held_out_strict_format_reward_and_accuracy(tmp_path, capsys):
    """`format_strict_run`: on `format:strict=true` (reward 1 only for exactly
    `<answer>N</answer>` with N right: no tags to farm) GRPO raises both the held-out mean
    reward of sampled completions (400 prompts, temperature 0.7) and the greedy held-out
    accuracy over the SFT model's; the control (learning_rate 0) returns the SFT model's
    figures exactly.

    Measured (deterministic), seeds 0-4: SFT stopped at step 475, 450, 350, 425, 600;
    held-out sampled reward after SFT -> after GRPO 0.240 -> 0.495 (+0.255), 0.353 ->
    0.518 (+0.165), 0.245 -> 0.578 (+0.333), 0.263 -> 0.470 (+0.208), 0.270 -> 0.448
    (+0.178); greedy accuracy 34.8% -> 70.5%, 49.3% -> 74.3%, 34.8% -> 86.3%, 42.8% ->
    77.5%, 37.8% -> 63.0% (+25.0 to +51.5 points). The bars are the lowest lifts less two
    binomial standard errors of the difference of two 400-prompt shares (0.035): reward
    0.165 - 0.07, rounded down to 0.08; accuracy 0.25 - 0.07, rounded down to 0.15. With
    learning_rate 0 (5 steps) both are exactly the SFT model's on all five seeds. 27-37
    CPU seconds (the SFT length varies with the seed: the sums come in a jump), 28-59 s
    wall on a 2-core machine at load 5."""
    res = format_strict_run(tmp_path, capsys)
    before, after = res["sft"], res["grpo"]
    assert after["reward"] >= before["reward"] + STRICT_MIN_REWARD_LIFT, res
    assert after["accuracy"] >= before["accuracy"] + STRICT_MIN_ACCURACY_LIFT, res
    assert res["lr0"] == res["sft"], res


STRICT_MIN_REWARD_LIFT = 0.08  # seeds 0-4: +0.165..+0.333, less two standard errors (0.07)
STRICT_MIN_ACCURACY_LIFT = 0.15  # seeds 0-4: +0.250..+0.515, less two standard errors (0.07)
