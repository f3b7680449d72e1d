"""The run directory's life: resolve the config, open (new, resume or a rank's scratch),
train, and write summary.json + learning_curve.png. Gym algorithms and LLM stages alike.

    DIR/config.yaml              {"algo": NAME, ["init_from": SRC,] ["tuned_config": FILE,]
                                  ["checkpoint_every": EVERY,] **config, "rlfoundry_version": V}
    DIR/metrics.csv, tb/         Run.log rows
    DIR/checkpoint.safetensors   tensors + JSON state + checksum (Run.save_checkpoint)
    DIR/checkpoint.prev.safetensors  the checkpoint before it
    DIR/summary.json             the summary train returns, once the run finished
    DIR/learning_curve.png       the entry's curve metric (rlfoundry.registry) against steps

Config precedence, lowest first: the Config dataclass defaults, the tuned config shipped
for (algorithm, env) in ``rlfoundry/configs/NAME/ENV.yaml`` (only when the run's
``env_kwargs`` are those it was tuned for, :func:`find_tuned`), a config file (or
mapping), ``overrides`` (``--set``), then the explicit ``env``/``steps``/``seed`` flags.
``checkpoint_every`` (:func:`rlfoundry.runtime.run.parse_checkpoint_every`) is a key of
every entry's config file and ``--set``, kept in config.yaml beside ``algo``.

Which directories a run may use (:func:`check_out`, before ``check(cfg)``): a new run
takes a new or empty directory; one that holds a run is resumed (``--resume``) or
started again (``--overwrite``); a non-empty directory that holds no run is refused
unless ``--overwrite`` says to train into it. ``--overwrite`` deletes the files a run
writes (:data:`RUN_FILES`) and nothing else, and only once ``check(cfg)`` passed. A
resume of a run killed before its first checkpoint starts it again from step 0 with its
config.yaml. Under ``torchrun`` (or ``accelerate launch``, ``mpirun``) only rank 0
writes: the other ranks get a :class:`Run` in a scratch ``DIR/.rankR`` so a loop calls
``run.log`` everywhere alike, and keep their own checkpoint there for a resume. A
one-process ``accelerate launch --num_processes N`` is first turned into N ranks
(:mod:`rlfoundry.runtime.launch`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from rlfoundry import registry
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime.config import atomic_write_text, save_yaml, to_dict
from rlfoundry.runtime.distributed import (
    Dist,
    any_rank,
    in_group,
    init_distributed,
    launch_env,
    leave_group,
    report_error,
)
from rlfoundry.runtime.launch import accelerate_request, relaunch
from rlfoundry.runtime.resolve import (  # noqa: F401  (the opener's callers use them here)
    RUN_KEYS,
    Resolved,
    Tuned,
    check_init_from,
    find_tuned,
    read_saved,
    resolve,
    resolve_config,
    tuned_config,
)
from rlfoundry.runtime.run import (
    CHECKPOINT,
    PREVIOUS,
    Callback,
    Run,
    seed_everything,
)

CONFIG = "config.yaml"
SUMMARY = "summary.json"


#: What a run writes in its directory (names, then patterns); ``--overwrite`` deletes these.
RUN_FILES = (CONFIG, "metrics.csv", "tb", CHECKPOINT, PREVIOUS, SUMMARY, "learning_curve.png")
RUN_FILES += ("model", "eval.gif", "best.safetensors")
RUN_PATTERNS = ("eval-*.json", "eval-*.gif", "learning_curve-*.png", ".rank*", ".*.tmp")


# ---------------------------------------------------------------------- which directory


def _contents(out: Path) -> list[Path]:
    """What ``out`` holds, less the temp files of an atomic write that a kill cut short and
    the other ranks' scratch ``.rankR`` folders (a rank may open its scratch Run while rank
    0 still checks the directory; a new run rewrites them)."""
    if not out.is_dir():
        return []
    return sorted(
        p
        for p in out.iterdir()
        if not (p.name.startswith(".") and p.name.endswith(".tmp"))
        and not (p.name.startswith(".rank") and p.is_dir())
    )


def finished_summary(out: str | os.PathLike) -> dict[str, Any] | None:
    """The summary.json of a run that finished, else None (interrupted, or never ended)."""
    try:
        summary = json.loads((Path(out) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("status", "finished") != "finished":
        return None
    return summary


def resume_command(out: str | os.PathLike) -> str:
    """``rlfoundry COMMAND --resume OUT`` for the run in ``out`` (read from config.yaml)."""
    try:
        command = registry.get(read_saved(out)[0]).command
    except RLFoundryError:
        command = "train"
    return f"rlfoundry {command} --resume {out}"


def check_out(out: str | os.PathLike, name: str, *, resume: bool, overwrite: bool) -> None:
    """May a run of entry ``name`` use ``out``? One sentence if not; writes nothing."""
    out = Path(out)
    command = registry.get(name).command
    if resume and overwrite:
        raise ConfigError(
            "--resume continues a run and --overwrite starts it again from scratch; pass one."
        )
    if out.exists() and not out.is_dir():
        raise RLFoundryError(f"'{out}' is a file, not a directory; choose another --out.")
    if resume or overwrite or not _contents(out):
        return
    if (out / CONFIG).is_file():
        state = "finished" if finished_summary(out) else "not finished"
        raise RLFoundryError(
            f"'{out}' already holds a run ({state}); resume it with `rlfoundry {command} "
            f"--resume {out}`, start it again with --overwrite, or choose another --out."
        )
    names = ", ".join(p.name for p in _contents(out)[:3])
    raise RLFoundryError(
        f"'{out}' is not empty and holds no run (it has {names}, ...); choose a new or empty "
        "--out, or pass --overwrite to train into it (replacing any files a run writes)."
    )


def fresh_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/STEM-<UTC time>SUFFIX``, a name no earlier file has (re-evaluations, plots);
    a second one in the same second gets ``_2`` (names sort in time order)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path, n = folder / f"{stem}-{stamp}{suffix}", 2
    while path.exists():
        path, n = folder / f"{stem}-{stamp}_{n}{suffix}", n + 1
    return path


def clear_run(out: Path, keep: Sequence[str] = ()) -> None:
    """Delete what a run writes in ``out`` (:data:`RUN_FILES`, :data:`RUN_PATTERNS`),
    except the names in ``keep``; other files stay."""
    doomed = [out / n for n in RUN_FILES] + [p for pat in RUN_PATTERNS for p in out.glob(pat)]
    for path in doomed:
        if path.name in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


# ---------------------------------------------------------------------- open, train, write


def open_run(
    out: str | os.PathLike,
    name: str,
    cfg: Any,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
    init_from: str | os.PathLike | None = None,
    d: Dist | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_every: str | None = None,
    tuned: str | None = None,
    eval_every: str | None = None,
) -> Run:
    """Create (or reopen with ``resume``; replace with ``overwrite``) the run directory
    ``out`` of entry ``name``. ``tuned`` names the tuned config file used, and
    ``eval_every`` the periodic evaluation asked for, for config.yaml."""
    d = d or Dist()
    out = Path(out)
    kw: dict[str, Any] = {
        "resume": resume,
        "stop_at_step": stop_at_step,
        "init_from": init_from,
        "callbacks": callbacks,
        "checkpoint_every": checkpoint_every,
    }
    if not d.main:
        scratch = out / f".rank{d.rank}"
        kw["callbacks"] = ()  # a video or an evaluation is rank 0's job
        return Run(scratch, cfg.total_steps, progress=False, tensorboard=False, **kw)
    check_out(out, name, resume=resume, overwrite=overwrite)
    if resume and not (out / CONFIG).is_file():
        raise RLFoundryError(f"Cannot resume: '{out}' holds no run (no {CONFIG}).")
    if resume and not (out / CHECKPOINT).exists():
        # Killed (or failed) before its first checkpoint: run it again from step 0.
        print(
            f"'{out}' has no checkpoint yet (it stopped before its first update); starting "
            f"it again from step 0 with its {CONFIG}.",
            file=sys.stderr,
        )
        clear_run(out, keep=(CONFIG,))
        kw["resume"] = False
    elif not resume:
        from rlfoundry._version import __version__

        if overwrite and out.is_dir():
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        head: dict[str, Any] = {"algo": name}
        for key, value in (
            ("init_from", init_from),
            ("tuned_config", tuned),
            ("checkpoint_every", checkpoint_every),
            ("eval_every", eval_every),
        ):
            if value is not None:
                head[key] = str(value)
        save_yaml(out / CONFIG, {**head, **to_dict(cfg), "rlfoundry_version": __version__})
    run = Run(out, cfg.total_steps, progress=progress, label=name, **kw)
    run.resume_command = f"rlfoundry {registry.get(name).command} --resume {out}"
    return run


def write_summary(
    out: str | os.PathLike,
    summary: dict[str, Any],
    entry: registry.Entry,
    title: str,
    plot: bool = True,
) -> None:
    """summary.json, and (unless not ``plot``) learning_curve.png of the entry's curve
    metric against steps. The PNG costs about half a CPU second, most of it importing
    matplotlib; ``rlfoundry plot DIR`` draws it later from metrics.csv."""
    out = Path(out)
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    if not plot:
        return
    from rlfoundry.runtime.plotting import plot_runs

    with contextlib.suppress(RLFoundryError, ValueError):
        plot_runs(
            [out], out / "learning_curve.png", key=entry.curve, labels=[entry.name], title=title
        )


@dataclass(frozen=True)
class RunOptions:
    """How `run_entry` runs an entry (its keyword arguments, carried as one value)."""

    #: continue the run in ``out`` from its last checkpoint
    resume: bool = False
    #: delete what ``out`` holds (after the checks pass) and start afresh
    overwrite: bool = False
    #: draw a progress bar on the terminal
    progress: bool = True
    #: stop (as if interrupted, with a checkpoint) once this step is reached
    stop_at_step: int | None = None
    #: a finished run's directory whose weights start this one
    init_from: str | os.PathLike | None = None
    #: called with ``out`` after a finished run; its dict joins summary.json
    evaluate: Callable[[Path], dict[str, Any]] | None = None
    #: hooks called as the run trains (:mod:`rlfoundry.runtime.callbacks`)
    callbacks: Sequence[Callback] = ()
    #: checkpoint period, "1000" steps, "5m" or both (``parse_checkpoint_every``); None: default
    checkpoint_every: str | None = None
    #: the shipped tuned config file used, kept in config.yaml
    tuned: str | None = None
    #: periodic evaluation asked for (``rlfoundry.envs.periodic``), kept in config.yaml
    eval_every: str | None = None
    #: draw the learning-curve plot at the end
    plot: bool = True


def run_entry(
    name: str,
    cfg: Any,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_at_step: int | None = None,
    init_from: str | os.PathLike | None = None,
    evaluate: Callable[[Path], dict[str, Any]] | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_every: str | None = None,
    tuned: str | None = None,
    eval_every: str | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Check ``out`` and ``cfg``, open ``out``, train entry ``name`` in it and return the
    summary.

    :func:`check_out` and ``module.check(cfg)`` run before anything is written (and
    before ``overwrite`` deletes anything; the check on every rank of a launch of
    several, so a batch that does not split over them fails there). A finished run's
    summary (plus ``evaluate(out)``, if given) goes to summary.json; an interrupted one
    gets a ``resume_command`` instead.
    """
    opts = RunOptions(
        resume=resume, overwrite=overwrite, progress=progress, stop_at_step=stop_at_step,
        init_from=init_from, evaluate=evaluate, callbacks=callbacks,
        checkpoint_every=checkpoint_every, tuned=tuned, eval_every=eval_every, plot=plot,
    )  # fmt: skip
    try:
        return _run_entry(name, cfg, out, opts)
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


def _run_entry(name: str, cfg: Any, out: str | os.PathLike, opts: RunOptions) -> dict[str, Any]:
    entry = registry.get(name)
    module = entry.load()
    request = accelerate_request()
    if request is not None:
        relaunch(request)  # runs this command as N ranks and exits with their exit code
    d = launch_env()
    check = getattr(module, "check", None)

    def checks(c: Any) -> None:
        if d.main:  # rank 0 alone owns the directory
            check_out(out, entry.name, resume=opts.resume, overwrite=opts.overwrite)
        if check is not None:
            check(c)

    # a group this call joins, it leaves on every way out (a caller's group stays)
    joined = d.world > 1 and not in_group()
    if d.world > 1:  # join the group first: the ranks then agree on the checks' outcome
        d = init_distributed(getattr(cfg, "device", "auto"))
    try:
        return _train_entry(entry, module, checks, cfg, out, d, opts)
    finally:
        if joined:
            leave_group(d)


def _train_entry(
    entry: Any,
    module: Any,
    checks: Callable[[Any], None],
    cfg: Any,
    out: str | os.PathLike,
    d: Dist,
    opts: RunOptions,
) -> dict[str, Any]:
    check_all_ranks(checks, cfg, d)
    torch.set_num_threads(getattr(cfg, "torch_threads", 1) or 1)
    seed_everything(cfg.seed)
    out = Path(out)
    init_from = opts.init_from
    kw = {"progress": opts.progress, "stop_at_step": opts.stop_at_step, "init_from": init_from}
    kw.update(d=d, callbacks=opts.callbacks, checkpoint_every=opts.checkpoint_every)
    kw.update(tuned=opts.tuned, eval_every=opts.eval_every)
    try:
        with open_run(
            out, entry.name, cfg, resume=opts.resume, overwrite=opts.overwrite, **kw
        ) as run:
            result = module.train(cfg, run) or {}
            wall, step, interrupted = run.elapsed(), run.step, run.interrupted
        if d.world > 1:  # every rank's checkpoint is written before any rank exits: torchrun
            any_rank(d, False)  # stops the others (SIGTERM) as soon as one exits non-zero
    except ConfigError:
        fresh = not opts.resume and not (out / CHECKPOINT).exists()
        if init_from is not None and fresh and d.main:
            # The source did not fit (raised before any step): free --out for a retry.
            clear_run(out)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
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
        report_error(f"Interrupted; continue with: {summary['resume_command']}")
        return summary
    if opts.evaluate is not None and d.main:
        summary.update(opts.evaluate(out))
    if d.main:
        title = f"{entry.name} on {env_id}" if env_id else entry.name
        write_summary(out, summary, entry, title, plot=opts.plot)
    return summary
