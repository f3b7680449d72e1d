"""``train`` and ``evaluate_run``: the Python face of ``rlfoundry train`` / ``rlfoundry llm
STAGE`` / ``rlfoundry eval``.

    from rlfoundry.api import train
    train("ppo", env="CartPole-v1", steps=50_000, seed=0)
    train("llm-sft", model="tiny:nano", task="arithmetic", steps=200, out="runs/sft")

``train`` trains any entry of :mod:`rlfoundry.registry`. The config comes from every
source in precedence order (see :mod:`rlfoundry.runtime.rundir`), keyword config values
(``model=...`` above) counting as ``overrides``; the entry's ``check(cfg)`` runs before
any directory is written, and an existing run is never overwritten.

``init_from=SRC`` (``--init-from``) starts a new run from the weights of the run in SRC
(fine-tuning, see :meth:`rlfoundry.runtime.run.Run.warm_start`); SRC is written to the new run's
config.yaml as ``init_from``, so ``--config THAT/config.yaml`` repeats the fine-tune.

A run directory is the training record: a new run refuses a directory that holds a run
or other files unless ``overwrite=True`` (``--overwrite``); resuming a finished run
changes nothing; ``evaluate_run`` writes each re-evaluation to its own
``eval-<UTC time>.json`` and never touches summary.json.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rlfoundry import registry
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime import rundir
from rlfoundry.runtime.config import atomic_write_text, load_yaml
from rlfoundry.runtime.resolve import own_eval_every
from rlfoundry.runtime.run import CHECKPOINT
from rlfoundry.runtime.rundir import RUN_KEYS, resolve, resolve_config, tuned_config

__all__ = ["RUN_KEYS", "evaluate_run", "load_plugins", "resolve_config", "train", "tuned_config"]


def load_plugins() -> None:
    """Register what the layers above the algorithms add: the apps' envs (trading, driving).

    The one place the api and the CLI do it, before any env is made; idempotent.
    """
    from rlfoundry import apps

    apps.register()


def _check_resume_args(
    saved: Path,
    cfg: Any,
    env: str | None,
    steps: int | None,
    seed: int | None,
    config: Any,
    overrides: dict[str, Any] | None,
) -> None:
    """A resumed run continues with its own config.yaml: refuse anything that would
    silently be ignored (a value that differs from the saved one, --config, --set)."""
    for flag, value, kept in (
        ("--env", env, getattr(cfg, "env_id", None)),
        ("--steps", steps, cfg.total_steps),
        ("--seed", seed, cfg.seed),
    ):
        if value is not None and value != kept:
            raise ConfigError(
                f"{flag} {value} contradicts the resumed run's {kept} ({saved}); a resumed "
                f"run keeps its config, so drop {flag} or start a new run with --out."
            )
    if config is not None or overrides:
        raise ConfigError(
            f"--config and --set do not apply to a resumed run (only checkpoint_every may "
            f"change), which continues with {saved}; drop them or start a new run with --out."
        )


def default_out(name: str, cfg: Any) -> Path:
    """``runs/NAME-ENV-sSEED-TIME`` for a gym run, ``runs/STAGE-TIME`` for an LLM stage."""
    entry = registry.get(name)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if entry.kind == "llm":
        return Path("runs") / f"{entry.name.removeprefix(registry.LLM_PREFIX)}-{stamp}"
    env = cfg.env_id.replace("/", "_")
    return Path("runs") / f"{entry.name}-{env}-s{cfg.seed}-{stamp}"


def train(
    name: str | None = None,
    env: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    config: str | Path | dict | None = None,
    overrides: dict[str, Any] | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    stop_at_step: int | None = None,
    evaluate_after: bool = True,
    init_from: str | Path | None = None,
    overwrite: bool = False,
    tuned: bool = True,
    eval_every: int | str | None = None,
    eval_report: Callable[[Any, int, float], None] | None = None,
    plot: bool = True,
    *,
    algo: str | None = None,
    **values: Any,
) -> dict[str, Any]:
    """Train registry entry ``name`` and write a run directory; return the summary dict.

    ``steps`` sets ``total_steps``; ``values`` are config keys, applied after
    ``overrides``. ``resume=DIR`` continues the run in DIR from its checkpoint with its
    saved config (the other arguments, if given, must not contradict it); a finished
    run is left as it is and its summary returned. ``overwrite`` lets a new run replace
    the run (or the files a run writes) in ``out``. ``tuned=False`` starts from the
    defaults instead of the tuned config shipped for (name, env). ``checkpoint_every``
    (a key of ``overrides`` or ``values``, allowed on a resume too) sets how often the
    run checkpoints (:func:`rlfoundry.runtime.run.parse_checkpoint_every`).
    ``stop_at_step`` behaves like a Ctrl-C at that step (tests and ``--stop-at``).
    ``init_from=DIR`` starts the new run from the weights of the run in DIR (same
    algorithm, one with ``warm_start`` in the registry), or from the ``init_from`` of a
    ``config`` file when not given. ``evaluate_after`` evaluates a finished gym run's
    policy into the summary. ``eval_every`` (``--eval-every``; also a config-file key)
    evaluates the policy every that many env steps and keeps the best checkpoint as
    ``best.safetensors`` (:mod:`rlfoundry.envs.periodic`; 0: off; default ``auto``:
    every ``total_steps / 20`` steps for the deep algorithms from 20k steps on);
    summary.json then scores the best policy beside the final one. An entry whose Config
    has an ``eval_every`` of its own (the LLM stages, rl2) takes it as that config value.
    ``eval_report(run, step, mean return)`` hears each periodic score (``rlfoundry
    tune``'s pruner). ``plot=False`` (``--no-plot``) skips learning_curve.png.
    ``algo`` is the old name of ``name``.
    """
    load_plugins()
    name = name or algo
    overrides = {**(overrides or {}), **values}
    tuned_file = None
    if resume is not None:
        if init_from is not None:
            raise ConfigError(
                "--init-from starts a new run; drop it when resuming (a fine-tune run "
                "resumes from its own checkpoint)."
            )
        if overwrite:
            raise ConfigError(
                "--resume continues a run and --overwrite starts one again from scratch; "
                "pass one of them."
            )
        out = Path(resume)
        saved_name, data = rundir.read_saved(out)
        if name is not None and registry.get(name).name != saved_name:
            command = registry.get(saved_name).command
            raise ConfigError(
                f"Run '{out}' was trained with {saved_name}, not {name}; drop the name or "
                f"resume it with `rlfoundry {command} --resume {out}`."
            )
        name, init_from = saved_name, data.get("init_from")
        every = overrides.pop("checkpoint_every", None)
        if eval_every is not None and own_eval_every(registry.load(saved_name)):
            overrides["eval_every"] = eval_every  # a config value: refused below, as before
        elif eval_every is not None and str(eval_every) != str(data.get("eval_every", "auto")):
            raise ConfigError(
                f"A resumed run keeps the eval_every of its config.yaml "
                f"({data.get('eval_every', 'auto')}); drop --eval-every or start a new run."
            )
        r = resolve(name, config=data, tuned=False)
        cfg, every = r.cfg, every if every is not None else r.checkpoint_every
        _check_resume_args(out / rundir.CONFIG, cfg, env, steps, seed, config, overrides)
        done = rundir.finished_summary(out)
        if done is not None:
            _say(
                f"'{out}' is a finished run ({done.get('steps', cfg.total_steps)} steps): "
                "nothing to resume, and nothing was changed."
            )
            return {**done, "status": "finished"}
    else:
        if name is None:
            raise ConfigError("No algorithm given; run `rlfoundry list` to see them.")
        name = registry.get(name).name
        if steps is not None and steps < 1:
            unit = "environment" if registry.get(name).kind == "gym" else "optimizer"
            raise ConfigError(
                f"--steps {steps} is not a budget: total_steps must be at least 1 ({unit} "
                f"steps to train for); pass a positive whole number such as --steps 10000."
            )
        if eval_every is not None:  # an entry with its own eval_every field takes it as that
            overrides["eval_every"] = eval_every
        r = resolve(name, env, steps, seed, config, overrides, tuned=tuned)
        cfg, every, tuned_file = r.cfg, r.checkpoint_every, r.tuned.path
        if env is None and config is None and "env_id" not in overrides and hasattr(cfg, "env_id"):
            _say(f"no --env given: training on {cfg.env_id}, the default of {name}.")
        if r.tuned.note:
            _say(f"note: {r.tuned.note}.")
        elif tuned_file:
            _say(f"tuned config: {tuned_file} (--no-tuned starts from the defaults).")
        if init_from is None and config is not None:
            init_from = (config if isinstance(config, dict) else load_yaml(config)).get("init_from")
        if init_from is not None:
            init_from = rundir.check_init_from(init_from, name).resolve()
        out = Path(out) if out is not None else default_out(name, cfg)
    entry = registry.get(name)
    gym = entry.kind == "gym"
    callbacks = []
    if gym:
        from rlfoundry.envs.evaluation import run_callbacks
        from rlfoundry.envs.periodic import eval_interval, periodic_evaluation

        load_policy = entry.load().load_policy
        callbacks = run_callbacks(cfg, load_policy)  # render_video
        interval = eval_interval(r.eval_every, cfg.total_steps, entry.periodic_eval)
        if interval:
            callbacks.insert(0, periodic_evaluation(cfg, load_policy, interval, eval_report))
    return rundir.run_entry(
        name,
        cfg,
        out,
        resume=resume is not None,
        overwrite=overwrite,
        progress=progress,
        stop_at_step=stop_at_step,
        init_from=init_from,
        evaluate=(lambda d: evaluate_run(d, write=False)) if gym and evaluate_after else None,
        callbacks=callbacks,
        checkpoint_every=every,
        tuned=tuned_file,
        eval_every=r.eval_every,
        plot=plot,
    )


def _say(line: str) -> None:
    """One line for the person at the console (stderr, beside the progress bar)."""
    print(line, file=sys.stderr, flush=True)


def evaluate_run(
    run_dir: str | Path,
    episodes: int | None = None,
    seed: int | None = None,
    write: bool = True,
    video: bool = False,
) -> dict[str, Any]:
    """Re-evaluate the saved policy of the gym run in ``run_dir``.

    With ``write``, the result goes to a new ``run_dir/eval-<UTC time>.json`` (its path is
    ``result["eval_file"]``): summary.json, the training's own evaluation, is never
    changed. With ``video``, the first evaluation episode is recorded to a new
    ``run_dir/eval-<UTC time>.gif`` (the training's ``eval.gif`` stays). A run that kept a
    ``best.safetensors`` (periodic evaluation) has its best policy scored on the same
    episodes too, as ``best_eval_mean_return``."""
    import torch

    from rlfoundry.envs.evaluation import eval_seed, evaluate, make_env, record_video
    from rlfoundry.envs.periodic import evaluate_best

    load_plugins()
    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).exists():
        raise RLFoundryError(
            f"'{run_dir}' is not a run directory (no config.yaml); pass one made by `rlfoundry train`."
        )
    name, data = rundir.read_saved(run_dir)
    if registry.get(name).kind != "gym":
        raise RLFoundryError(
            f"'{run_dir}' is a language-model run ({name}); evaluate it with "
            f"`rlfoundry llm eval {run_dir} --task TASK`."
        )
    module, cfg = resolve_config(name, config=data)
    if not (run_dir / CHECKPOINT).exists():
        raise RLFoundryError(f"'{run_dir}' has no {CHECKPOINT}; the run never saved one.")
    episodes = episodes if episodes is not None else cfg.eval_episodes
    first_seed = seed if seed is not None else eval_seed(cfg.seed)  # unseen episodes
    torch.set_num_threads(1)
    policy = module.load_policy(run_dir, cfg)
    env = make_env(cfg.env_id, **getattr(cfg, "env_kwargs", {}) or {})
    t0 = time.perf_counter()
    try:
        result = evaluate(policy, env, episodes, first_seed)
    finally:
        env.close()
    result["eval_seconds"] = round(time.perf_counter() - t0, 3)
    extra = getattr(module, "extra_eval", None)
    if extra is not None:  # app metrics over the same number of episodes
        result.update(extra(run_dir, dataclasses.replace(cfg, eval_episodes=episodes), policy))
    result.update(evaluate_best(run_dir, cfg, module.load_policy, episodes, first_seed))
    if video:
        env_kwargs = getattr(cfg, "env_kwargs", {}) or {}
        gif_path = rundir.fresh_path(run_dir, "eval", ".gif")
        result["video"] = str(record_video(policy, cfg.env_id, gif_path, first_seed, env_kwargs))
    if write:
        path = rundir.fresh_path(run_dir, "eval", ".json")
        record = {"algo": name, "env": cfg.env_id, "seed": cfg.seed, "eval_seed": first_seed}
        atomic_write_text(path, json.dumps({**record, **result}, indent=2) + "\n")
        result["eval_file"] = str(path)
    return result
