"""The whole language-model path on a built-in task: pre-train -> SFT -> GRPO.

    rlfoundry llm pipeline --task arithmetic
    python -c "from rlfoundry.llm.pipeline import run_pipeline; print(run_pipeline())"

1. pre-train the built-in nano model on the task's text corpus (next-token prediction);
2. supervised fine-tuning on (prompt, answer) pairs: the SFT model;
3. GRPO with the task's exact-match reward, starting from the SFT model.

The held-out exact-match accuracy of the SFT model (`accuracy_before`) and of the
GRPO model (`accuracy_after`) is measured with the same greedy evaluation on the
task's whole test split (980 sums for arithmetic; prompts never used in training).
The three runs go to `OUT/pretrain`, `OUT/sft` and `OUT/grpo`; `OUT/pipeline.yaml` holds
the settings, so `rlfoundry llm pipeline --resume OUT` (`run_pipeline(out=OUT,
resume=True)`) skips the finished stages and resumes the interrupted one. A new
pipeline refuses a non-empty OUT unless `--overwrite` (`overwrite=True`) says to
replace the runs in it, as every stage does.

The default budget is CPU-sized: 62 CPU seconds on one core (seed 0: pre-train and
SFT 20, GRPO 42), which is what
`rlfoundry quickstart` and the learning test in tests/llm/test_learning.py run.

What GRPO has to work with: SFT stops on purpose when the greedy answer is right on
30% of training prompts (`sft.Config.target_accuracy`), so the SFT model answers
28-49% of the held-out sums greedily, but a sample at temperature 1 is right less
often: the right answer is often likely but not yet the most likely. The exact-match
reward moves it there; what makes that fast enough for a CPU is many samples per step,
sampled at temperature 0.7 (more of them correct than at temperature 1, so fewer
groups carry no signal), and using each twice: 32 prompts x 8 completions per rollout
and two passes over it in two mini-batches of 128 (`update_epochs=2`: the second pass
is slightly off-policy, which the clipped ratio handles). Measured on 5 seeds (held-out
greedy exact match, 980 sums), 300 rollouts: seed 0 36.9% -> 71.0% (+34.1), seed 1
47.0% -> 88.2%, seed 2 33.6% -> 67.4%, seed 3 27.9% -> 73.2%, seed 4 37.0% -> 78.3%:
+33.9 to +45.3 points. The same 5 seeds with other floating-point rounding (AVX2
kernels, MKL's compatibility mode: what another CPU does) gave +25.2 to +53.1. Both
stages before GRPO are chaotic (the step at which SFT reaches its target moves by
hundreds of steps with the rounding), so the budgets leave wide margins rather than
fitting one machine's run; docs/llm.md has the table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.llm import grpo
from rlfoundry.llm.evaluation import task_accuracy
from rlfoundry.llm.models import load_model, load_tokenizer, model_dir
from rlfoundry.llm.prompts import with_task_budget
from rlfoundry.runtime.config import atomic_write_text, build_config, load_yaml, save_yaml
from rlfoundry.runtime.plotting import read_metrics
from rlfoundry.runtime.rundir import CONFIG, finished_summary, resolve, run_entry

#: The pipeline's own record in OUT: its settings, for --resume.
PIPELINE = "pipeline.yaml"
STAGES = ("pretrain", "sft", "grpo")

#: Pre-training settings of the pipeline (everything else: pretrain.Config defaults,
#: the measured recipe).
PRETRAIN_DEFAULTS: dict[str, Any] = {"eval_every": 0}

#: SFT settings of the pipeline (everything else: sft.Config defaults).
SFT_DEFAULTS: dict[str, Any] = {"eval_every": 0}

#: GRPO settings of the pipeline (everything else: grpo.Config defaults): 32 prompts x
#: 8 completions per rollout sampled at temperature 0.7, two passes in mini-batches of
#: 128, lr 3e-4 decaying to 3e-5, 300 rollouts; the SFT and the GRPO model are
#: evaluated once each on the whole held-out split.
GRPO_DEFAULTS: dict[str, Any] = {
    "total_steps": 300,
    "rollout_size": 256,
    "group_size": 8,
    "minibatch_size": 128,
    "update_epochs": 2,
    "temperature": 0.7,
    "learning_rate": 3e-4,
    "min_lr_ratio": 0.1,
    "eval_every": 300,
    "eval_size": 1000,
}


def pretrain_and_sft(
    task: str = "arithmetic",
    out: str | Path = "runs/pipeline",
    seed: int = 0,
    progress: bool = True,
    pretrain_overrides: dict[str, Any] | None = None,
    sft_overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Stages 1 and 2; returns the SFT run directory (its `model/` is the SFT model).
    `resume` skips a finished stage and resumes a started one; `overwrite` replaces them."""
    out = Path(out)
    how = {"progress": progress, "resume": resume, "overwrite": overwrite}
    pre = _stage(
        "llm-pretrain",
        out / "pretrain",
        _pretrain_overrides(task, seed, pretrain_overrides),
        **how,
    )
    _stage(
        "llm-sft",
        out / "sft",
        {
            **SFT_DEFAULTS,
            "task": task,
            "model": str(pre["run_dir"]),
            "seed": seed,
            **(sft_overrides or {}),
        },
        **how,
    )
    return out / "sft"


def _stage(
    name: str,
    out: Path,
    overrides: dict[str, Any],
    progress: bool,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train registry entry `name` into `out`: checked, opened and written by rundir. With
    `resume`, a finished stage is skipped and a started one continues with its config.yaml."""
    if resume and (out / CONFIG).is_file():
        done = finished_summary(out)
        if done is not None:
            return done
        r = resolve(name, config=load_yaml(out / CONFIG))
        every = r.checkpoint_every
        return run_entry(name, r.cfg, out, resume=True, progress=progress, checkpoint_every=every)
    cfg = resolve(name, overrides=overrides).cfg
    return run_entry(name, cfg, out, progress=progress, overwrite=overwrite)


def _plan(out: Path, plan: dict[str, Any], resume: bool, overwrite: bool) -> dict[str, Any]:
    """The pipeline's settings: saved to OUT/pipeline.yaml by a new pipeline, read back by
    a resumed one. A new pipeline refuses a non-empty OUT unless `overwrite`."""
    if resume and overwrite:
        raise ConfigError(
            "--resume continues a pipeline and --overwrite starts it again; pass one."
        )
    if resume:
        if not (out / PIPELINE).is_file():
            raise RLFoundryError(
                f"Cannot resume: '{out}' holds no pipeline (no {PIPELINE}); pass the --out "
                "of an earlier `rlfoundry llm pipeline`, or start a new one."
            )
        saved = load_yaml(out / PIPELINE)
        for key in ("task", "seed"):
            if plan.get(key) is not None and plan[key] != saved.get(key):
                raise ConfigError(
                    f"--{key} {plan[key]} contradicts the resumed pipeline's {saved.get(key)} "
                    f"({out / PIPELINE}); drop --{key} or start a new pipeline."
                )
        return saved
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not overwrite:
        what = "a pipeline" if PIPELINE in held else f"other files ({', '.join(held[:3])})"
        raise RLFoundryError(
            f"'{out}' already holds {what}; resume it with `rlfoundry llm pipeline --resume "
            f"{out}`, pass --overwrite to replace its runs, or choose another --out."
        )
    plan = {**plan, "task": plan.get("task") or "arithmetic", "seed": plan.get("seed") or 0}
    # the first stage's own check (task name, ...) before anything is written
    pre = _pretrain_overrides(plan["task"], plan["seed"], plan["pretrain_overrides"])
    r = resolve("llm-pretrain", overrides=pre)
    r.module.check(r.cfg)
    (out / "pipeline.json").unlink(missing_ok=True)
    save_yaml(out / PIPELINE, plan)
    return plan


def _pretrain_overrides(task: str, seed: int, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {**PRETRAIN_DEFAULTS, "task": task, "seed": seed, **(extra or {})}


def run_pipeline(
    task: str | None = None,
    out: str | Path = "runs/pipeline",
    progress: bool = True,
    seed: int | None = None,
    grpo_overrides: dict[str, Any] | None = None,
    pretrain_overrides: dict[str, Any] | None = None,
    sft_overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the three stages into `out/{pretrain,sft,grpo}`; return the accuracies.

    Returns a dict with `accuracy_before` (SFT model) and `accuracy_after` (GRPO
    model), both held-out greedy exact match, plus timings; also written to
    `out/pipeline.json`. `task` defaults to arithmetic and `seed` to 0. `resume=True`
    continues the pipeline in `out` with the settings of its pipeline.yaml (the
    arguments, if given, must agree); `overwrite=True` replaces the runs in `out`.
    """
    t0 = time.perf_counter()
    out = Path(out)
    plan = {
        "task": task,
        "seed": seed,
        "pretrain_overrides": dict(pretrain_overrides or {}),
        "sft_overrides": dict(sft_overrides or {}),
        "grpo_overrides": dict(grpo_overrides or {}),
    }
    plan = _plan(out, plan, resume, overwrite)
    if resume and (out / "pipeline.json").is_file():  # written last: the pipeline finished
        print(
            f"'{out}' is a finished pipeline: nothing to resume, and nothing was changed.",
            file=sys.stderr,
        )
        return json.loads((out / "pipeline.json").read_text())
    task, seed = plan["task"], plan["seed"]
    sft_dir = pretrain_and_sft(
        task,
        out,
        seed,
        progress,
        plan["pretrain_overrides"],
        plan["sft_overrides"],
        resume,
        overwrite,
    )
    t_sft = time.perf_counter() - t0
    overrides = {**GRPO_DEFAULTS, "model": str(sft_dir), "task": task, "seed": seed}
    overrides.update(plan["grpo_overrides"])
    summary = _stage("llm-grpo", out / "grpo", overrides, progress, resume, overwrite)
    acc = read_metrics(out / "grpo").get("eval_accuracy")
    if acc is not None and len(acc) and acc[0] == acc[0]:  # step 0: the SFT model
        before = float(acc[0])
    else:  # GRPO ran without a step-0 evaluation
        cfg = with_task_budget(build_config(grpo.Config, overrides))
        path = model_dir(str(sft_dir))
        before = task_accuracy(load_model(path), load_tokenizer(path), cfg)["eval_accuracy"]
    result = {
        "task": task,
        "accuracy_before": before,
        "accuracy_after": float(summary["eval_accuracy"]),
        "pretrain_sft_seconds": round(t_sft, 1),
        "grpo_seconds": summary["wall_seconds"],
        "total_seconds": round(time.perf_counter() - t0, 1),
        "run_dirs": {k: str(out / k) for k in STAGES},
    }
    atomic_write_text(out / "pipeline.json", json.dumps(result, indent=2) + "\n")
    return result
