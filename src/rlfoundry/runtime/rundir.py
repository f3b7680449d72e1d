"""The run directory's life: resolve the config, open (new, resume or a rank's scratch),
train, and write summary.json + learning_curve.png. Gym algorithms and LLM stages alike.

    DIR/config.yaml              {"algo": NAME, ["init_from": SRC,] **config, "rlfoundry_version": V}
    DIR/metrics.csv, tb/         Run.log rows
    DIR/checkpoint.safetensors   tensors + JSON state (Run.save_checkpoint)
    DIR/summary.json             the summary train returns, once the run finished
    DIR/learning_curve.png       the entry's curve metric (rlfoundry.registry) against steps

Config precedence, lowest first: the Config dataclass defaults, the tuned config shipped
for (algorithm, env) in ``rlfoundry/configs/NAME/ENV.yaml``, a config file (or mapping),
``overrides`` (``--set``), then the explicit ``env``/``steps``/``seed`` flags.

A new run refuses a directory that already holds config.yaml; a resume needs config.yaml
and a checkpoint. Under ``torchrun`` (or ``accelerate launch``, ``mpirun``) only rank 0
writes: the other ranks get a :class:`Run` in a scratch ``DIR/.rankR`` so a loop calls
``run.log`` everywhere alike, and keep their own checkpoint there for a resume. A
one-process ``accelerate launch --num_processes N`` is first turned into N ranks
(:mod:`rlfoundry.runtime.launch`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from rlfoundry import registry
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime.config import atomic_write_text, build_config, load_yaml, save_yaml, to_dict
from rlfoundry.runtime.distributed import (
    Dist,
    any_rank,
    init_distributed,
    launch_env,
    leave_group,
    report_error,
)
from rlfoundry.runtime.launch import accelerate_request, relaunch
from rlfoundry.runtime.run import CHECKPOINT, Callback, Run, seed_everything

CONFIG = "config.yaml"

#: Keys of a run's config.yaml that are not Config fields ("stage": LLM runs before 0.2).
RUN_KEYS = ("algo", "stage", "init_from", "rlfoundry_version")


# ---------------------------------------------------------------------- config


def tuned_config(name: str, env_id: str) -> dict[str, Any]:
    """The shipped tuned config for ``name`` on ``env_id`` ({} if none)."""
    safe = env_id.replace("/", "_")
    path = resources.files("rlfoundry") / "configs" / name / f"{safe}.yaml"
    if not path.is_file():
        return {}
    return load_yaml(Path(str(path)))


def resolve_config(
    name: str,
    env: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    config: str | os.PathLike | dict | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Return ``(module, cfg)`` for registry entry ``name`` with every source applied."""
    entry = registry.get(name)
    module = entry.load()
    file_cfg = config if isinstance(config, dict) else (load_yaml(config) if config else {})
    file_cfg = {k: v for k, v in file_cfg.items() if k not in RUN_KEYS}
    flags = {
        k: v for k, v in (("env_id", env), ("total_steps", steps), ("seed", seed)) if v is not None
    }
    tuned: dict[str, Any] = {}
    if entry.kind == "gym":  # the env decides which tuned config applies, so find it first
        env_id = flags.get("env_id") or (overrides or {}).get("env_id") or file_cfg.get("env_id")
        tuned = tuned_config(entry.name, env_id or build_config(module.Config).env_id)
    return module, build_config(module.Config, tuned, file_cfg, overrides, flags)


def read_saved(out: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """``(registry name, config.yaml mapping)`` of the run in ``out``, to resume it."""
    path = Path(out) / CONFIG
    if not path.exists():
        raise RLFoundryError(
            f"Cannot resume: '{path}' does not exist; pass the directory of a run."
        )
    data = load_yaml(path)
    name = data.get("algo") or registry.LLM_PREFIX + str(data.get("stage"))
    return name, data


def check_init_from(path: str | os.PathLike, name: str) -> Path:
    """The source run directory of ``--init-from``, checked before anything is written:
    a run of ``name`` (an entry with ``warm_start``) that saved a checkpoint."""
    src = Path(path)
    if not registry.get(name).warm_start:
        allowed = ", ".join(e.name for e in registry.REGISTRY.values() if e.warm_start)
        raise ConfigError(
            f"--init-from works with {allowed}, not {name}; drop --init-from or train one of those."
        )
    if not (src / CONFIG).is_file():
        raise ConfigError(
            f"Cannot start from '{src}': it is not a run directory (no config.yaml); "
            "pass --init-from a directory made by `rlfoundry train`."
        )
    if not (src / CHECKPOINT).is_file():
        raise ConfigError(
            f"Cannot start from '{src}': it has no {CHECKPOINT} (the run never saved one); "
            "train the source run first."
        )
    src_name = load_yaml(src / CONFIG).get("algo")
    if src_name != name:
        raise ConfigError(
            f"Cannot start {name} from '{src}': it was trained by {src_name}; "
            f"warm-start from a {name} run (or train this run with {src_name})."
        )
    return src


# ---------------------------------------------------------------------- open, train, write


def open_run(
    out: str | os.PathLike,
    name: str,
    cfg: Any,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
    init_from: str | os.PathLike | None = None,
    d: Dist | None = None,
    callbacks: Sequence[Callback] = (),
) -> Run:
    """Create (or reopen with ``resume``) the run directory ``out`` of entry ``name``."""
    d = d or Dist()
    out = Path(out)
    kw: dict[str, Any] = {
        "resume": resume,
        "stop_at_step": stop_at_step,
        "init_from": init_from,
        "callbacks": callbacks,
    }
    if not d.main:
        scratch = out / f".rank{d.rank}"
        kw["callbacks"] = ()  # a video or an evaluation is rank 0's job
        return Run(scratch, cfg.total_steps, progress=False, tensorboard=False, **kw)
    if resume:
        if not (out / CHECKPOINT).exists():
            raise RLFoundryError(
                f"Cannot resume: '{out}' has no {CHECKPOINT}; start a new run instead."
            )
    else:
        if (out / CONFIG).exists():
            raise RLFoundryError(
                f"'{out}' already holds a run; resume it with --resume {out} or choose another --out."
            )
        from rlfoundry._version import __version__

        out.mkdir(parents=True, exist_ok=True)
        head = {"algo": name, **({"init_from": str(init_from)} if init_from else {})}
        save_yaml(out / CONFIG, {**head, **to_dict(cfg), "rlfoundry_version": __version__})
    return Run(out, cfg.total_steps, progress=progress, **kw)


def write_summary(
    out: str | os.PathLike, summary: dict[str, Any], entry: registry.Entry, title: str
) -> None:
    """summary.json, and learning_curve.png of the entry's curve metric against steps."""
    from rlfoundry.runtime.plotting import plot_runs

    out = Path(out)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    with contextlib.suppress(RLFoundryError, ValueError):
        plot_runs(
            [out], out / "learning_curve.png", key=entry.curve, labels=[entry.name], title=title
        )


def run_entry(
    name: str,
    cfg: Any,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
    init_from: str | os.PathLike | None = None,
    evaluate: Callable[[Path], dict[str, Any]] | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Check ``cfg``, open ``out``, train entry ``name`` in it and return the summary.

    ``module.check(cfg)`` runs before anything is written (on every rank of a launch of
    several, so a batch that does not split over them fails there). A finished run's
    summary (plus ``evaluate(out)``, if given) goes to summary.json; an interrupted one
    gets a ``resume_command`` instead.
    """
    try:
        return _run_entry(
            name, cfg, out, resume, progress, stop_at_step, init_from, evaluate, callbacks
        )
    except RLFoundryError as err:
        report_error(str(err))  # torchrun's failure report names the sentence, not "see the docs"
        raise


def check_all_ranks(check: Callable[[Any], None] | None, cfg: Any, d: Dist) -> None:
    """``check(cfg)`` on every rank; all ranks raise if any does, together, so each prints
    its sentence before torchrun stops the others (none is left waiting in a collective)."""
    err: RLFoundryError | None = None
    try:
        if check is not None:
            check(cfg)
    except RLFoundryError as e:
        err = e
    if d.world > 1 and any_rank(d, err is not None)[0] and err is None:
        err = ConfigError(
            "Another process of this launch rejected the config (its error is printed "
            "above); fix it and launch again."
        )
    if err is not None:
        leave_group(d)  # the process exits now: a live gloo group would abort it at exit
        raise err


def _run_entry(
    name: str,
    cfg: Any,
    out: str | os.PathLike,
    resume: bool,
    progress: bool,
    stop_at_step: int | None,
    init_from: str | os.PathLike | None,
    evaluate: Callable[[Path], dict[str, Any]] | None,
    callbacks: Sequence[Callback],
) -> dict[str, Any]:
    entry = registry.get(name)
    module = entry.load()
    request = accelerate_request()
    if request is not None:
        relaunch(request)  # runs this command as N ranks and exits with their exit code
    d = launch_env()
    if d.world > 1:  # join the group first: the ranks then agree on the check's outcome
        d = init_distributed(getattr(cfg, "device", "auto"))
    check_all_ranks(getattr(module, "check", None), cfg, d)
    torch.set_num_threads(getattr(cfg, "torch_threads", 1) or 1)
    seed_everything(cfg.seed)
    out = Path(out)
    kw = {"progress": progress, "stop_at_step": stop_at_step, "init_from": init_from, "d": d}
    kw["callbacks"] = callbacks
    with open_run(out, entry.name, cfg, resume=resume, **kw) as run:
        try:
            result = module.train(cfg, run) or {}
        except ConfigError:
            if init_from is not None and not resume and d.main and not (out / CHECKPOINT).exists():
                # The source did not fit (raised before any step): free --out for a retry.
                (out / CONFIG).unlink(missing_ok=True)
            raise
        wall, step, interrupted = run.elapsed(), run.step, run.interrupted
    env_id = getattr(cfg, "env_id", None)
    summary: dict[str, Any] = {
        "algo": entry.name,
        **({"env": env_id} if env_id is not None else {}),
        "seed": cfg.seed,
        "steps": step,
        "wall_seconds": round(wall, 3),
        "run_dir": str(out),
        **({"processes": d.world} if d.world > 1 else {}),
        **({"init_from": str(init_from)} if init_from else {}),
        **result,
    }
    summary["status"] = result.get("status") or ("interrupted" if interrupted else "finished")
    if summary["status"] == "interrupted":
        summary["resume_command"] = f"rlfoundry {entry.command} --resume {out}"
        return summary
    if evaluate is not None and d.main:
        summary.update(evaluate(out))
    if d.main:
        write_summary(out, summary, entry, f"{entry.name} on {env_id}" if env_id else entry.name)
    return summary
