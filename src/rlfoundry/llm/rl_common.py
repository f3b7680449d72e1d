"""The run directory of an LLM stage: open (new, refuse an existing one, resume), train, summarise.

What the stages share otherwise lives in modules named for it: `data` (user data,
tokenising, batches), `checkpoint` (training state, final model), `models`, `rollout`,
`prompts`, `rewards`, `evaluation`, `supervised` and `group_pg` (the shared loops).

Run directory of a stage `DIR`:

    DIR/config.yaml        {"stage": NAME, **config}
    DIR/metrics.csv, tb/   Run.log rows
    DIR/checkpoint.safetensors  model + optimizer tensors, data-order RNG, torch RNG
    DIR/model/             save_pretrained (safetensors) + tokenizer: load it anywhere
    DIR/summary.json       final metrics
    DIR/learning_curve.png the stage's main metric against steps
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from rlfoundry.errors import RLFoundryError
from rlfoundry.runtime.config import atomic_write_text, load_yaml, save_yaml, to_dict
from rlfoundry.runtime.distributed import Dist, init_distributed
from rlfoundry.runtime.run import CHECKPOINT, Run

# ---------------------------------------------------------------------- run directory


def open_stage(
    stage: str,
    cfg: Any,
    out: str | os.PathLike,
    total_steps: int,
    resume: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
    d: Dist | None = None,
) -> Run:
    """Create (or reopen with `resume`) the run directory of `stage`; return its Run.

    Only rank 0 writes; other ranks get a Run in a scratch sub-directory so the loop
    can call `run.log` everywhere without branching.
    """
    from rlfoundry import __version__

    d = d or Dist()
    out = Path(out)
    if d.main:
        if resume:
            if not (out / CHECKPOINT).exists():
                raise RLFoundryError(
                    f"Cannot resume: '{out}' has no {CHECKPOINT}; start a new run instead."
                )
        elif (out / "config.yaml").exists():
            raise RLFoundryError(
                f"'{out}' already holds a run; resume it with --resume or choose another --out."
            )
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            save_yaml(
                out / "config.yaml",
                {"stage": stage, **to_dict(cfg), "rlfoundry_version": __version__},
            )
        return Run(out, total_steps, resume=resume, progress=progress, stop_at_step=stop_at_step)
    scratch = out / f".rank{d.rank}"
    return Run(
        scratch,
        total_steps,
        resume=resume,
        progress=False,
        tensorboard=False,
        stop_at_step=stop_at_step,
    )


def saved_config(out: str | os.PathLike, stage: str) -> dict[str, Any]:
    """The config of a run directory to resume, checking it belongs to `stage`."""
    path = Path(out) / "config.yaml"
    if not path.exists():
        raise RLFoundryError(f"Cannot resume: '{path}' does not exist; pass the run directory.")
    data = load_yaml(path)
    if data.get("stage") != stage:
        raise RLFoundryError(
            f"'{out}' is a {data.get('stage')!r} run, not {stage!r}; resume it with its own command."
        )
    return {k: v for k, v in data.items() if k not in ("stage", "rlfoundry_version")}


def write_summary(
    out: str | os.PathLike, summary: dict[str, Any], curve_key: str, title: str
) -> None:
    """summary.json and learning_curve.png (`curve_key` against steps)."""
    from rlfoundry.runtime.plotting import plot_runs

    out = Path(out)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    with contextlib.suppress(RLFoundryError, ValueError):
        plot_runs([out], out / "learning_curve.png", key=curve_key, labels=[title], title=title)


# ---------------------------------------------------------------------- entry point


def run_stage(
    module: Any,
    out: str | os.PathLike,
    config: str | os.PathLike | dict | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
) -> dict[str, Any]:
    """Build `module.Config`, check the inputs, train, and write the run directory.

    Config precedence, lowest first: dataclass defaults, `config` (a YAML path or a
    mapping), `overrides`. With `resume`, the saved config of `out` is used and the
    run continues from its checkpoint. `module.check(cfg)`, when defined, runs before
    anything is written: a missing model path or a dataset missing a field fails in
    seconds, not after the run directory exists.
    """
    from rlfoundry.runtime.config import build_config

    if resume:
        cfg = build_config(module.Config, saved_config(out, module.STAGE))
    else:
        file_cfg = config if isinstance(config, dict) else (load_yaml(config) if config else {})
        file_cfg = {k: v for k, v in file_cfg.items() if k not in ("stage", "rlfoundry_version")}
        cfg = build_config(module.Config, file_cfg, overrides)
    check = getattr(module, "check", None)
    if check is not None:
        check(cfg)
    d = init_distributed()
    torch.set_num_threads(getattr(cfg, "torch_threads", 1) or 1)
    with open_stage(
        module.STAGE, cfg, out, cfg.total_steps, resume, progress, stop_at_step, d
    ) as run:
        result = module.train(cfg, run)
        wall = run.elapsed()
    summary = {"stage": module.STAGE, "run_dir": str(out), "wall_seconds": round(wall, 3), **result}
    if result.get("status") == "interrupted":
        summary["resume_command"] = f"rlfoundry llm {module.STAGE} --resume {out}"
    elif d.main:
        write_summary(out, summary, module.CURVE_KEY, f"{module.STAGE}")
    return summary
