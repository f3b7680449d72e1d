"""``train`` and ``evaluate_run``: the Python face of ``rlfoundry train`` / ``rlfoundry eval``.

Config precedence, lowest first: the algorithm's dataclass defaults, the tuned config
shipped for (algo, env) in ``rlfoundry/configs/ALGO/ENV.yaml``, ``--config FILE``,
``--set key=value``, then the explicit ``--env/--steps/--seed`` flags. Everything is
validated (algorithm, env, keys, value types, env spaces) before any directory is
written, and an existing run is never overwritten.

``init_from=SRC`` (``--init-from``) starts a new run from the weights of the run in SRC
(fine-tuning, see :meth:`rlfoundry.runtime.run.Run.warm_start`); SRC is written to the new run's
config.yaml as ``init_from``, so ``--config THAT/config.yaml`` repeats the fine-tune.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from rlfoundry import __version__
from rlfoundry.algos import get_algo
from rlfoundry.envs.evaluation import evaluate, make_env
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime.config import atomic_write_text, build_config, load_yaml, save_yaml, to_dict
from rlfoundry.runtime.plotting import plot_runs
from rlfoundry.runtime.run import CHECKPOINT, Run, check_init_from, seed_everything

#: Keys of a run's config.yaml that are not fields of the algorithm's Config.
RUN_KEYS = ("algo", "rlfoundry_version", "init_from")


def _safe_env_name(env_id: str) -> str:
    return env_id.replace("/", "_")


def tuned_config(algo: str, env_id: str) -> dict[str, Any]:
    """The shipped tuned config for ``algo`` on ``env_id`` ({} if none)."""
    path = resources.files("rlfoundry") / "configs" / algo / f"{_safe_env_name(env_id)}.yaml"
    if not path.is_file():
        return {}
    return load_yaml(Path(str(path)))


def resolve_config(
    algo: str,
    env: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    config: str | Path | dict | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Return ``(module, cfg)`` for ``algo`` with every source applied and validated."""
    module = get_algo(algo)
    file_cfg = config if isinstance(config, dict) else (load_yaml(config) if config else {})
    file_cfg = {k: v for k, v in file_cfg.items() if k not in RUN_KEYS}
    flags = {
        k: v for k, v in (("env_id", env), ("total_steps", steps), ("seed", seed)) if v is not None
    }
    # The env decides which tuned config applies, so find it first.
    env_id = flags.get("env_id") or (overrides or {}).get("env_id") or file_cfg.get("env_id")
    if env_id is None:
        env_id = build_config(module.Config).env_id
    tuned = tuned_config(algo.lower().replace("-", "_"), env_id)
    cfg = build_config(module.Config, tuned, file_cfg, overrides, flags)
    return module, cfg


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
        ("--env", env, cfg.env_id),
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
            f"--config and --set do not apply to a resumed run, which continues with "
            f"{saved}; drop them or start a new run with --out."
        )


def _check_env(module: Any, cfg: Any) -> None:
    env = make_env(cfg.env_id, **getattr(cfg, "env_kwargs", {}) or {})
    try:
        module.check_env(env)
    finally:
        env.close()


def default_out(algo: str, cfg: Any) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{algo}-{_safe_env_name(cfg.env_id)}-s{cfg.seed}-{stamp}"


def train(
    algo: str | None = None,
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
) -> dict[str, Any]:
    """Train ``algo`` and write a run directory; return the summary dict.

    ``resume=DIR`` continues the run in DIR from its checkpoint with its saved config
    (the other arguments, if given, must not contradict it). ``stop_at_step`` behaves
    like a Ctrl-C at that step (used by tests and ``--stop-at``). ``init_from=DIR``
    starts the new run from the weights of the run in DIR (same algorithm; PPO, A2C and
    DQN), or from the ``init_from`` of a ``config`` file when not given.
    """
    if resume is not None:
        if init_from is not None:
            raise ConfigError(
                "--init-from starts a new run; drop it when resuming (a fine-tune run "
                "resumes from its own checkpoint)."
            )
        out = Path(resume)
        saved = out / "config.yaml"
        if not saved.exists():
            raise RLFoundryError(
                f"Cannot resume: '{saved}' does not exist; pass the directory of a run."
            )
        data = load_yaml(saved)
        saved_algo = data.get("algo")
        if algo is not None and saved_algo and algo.lower() != saved_algo:
            raise ConfigError(
                f"Run '{out}' was trained with {saved_algo}, not {algo}; drop ALGO or fix --resume."
            )
        algo = saved_algo
        init_from = data.get("init_from")
        module, cfg = resolve_config(algo, config=data)
        _check_resume_args(saved, cfg, env, steps, seed, config, overrides)
        if not (out / CHECKPOINT).exists():
            raise RLFoundryError(
                f"Cannot resume: '{out}' has no {CHECKPOINT}; start a new run instead."
            )
    else:
        if algo is None:
            raise ConfigError("No algorithm given; run `rlfoundry list` to see them.")
        module, cfg = resolve_config(algo, env, steps, seed, config, overrides)
        algo = algo.lower().replace("-", "_")
        if init_from is None and config is not None:
            init_from = (config if isinstance(config, dict) else load_yaml(config)).get("init_from")
        if init_from is not None:
            init_from = check_init_from(init_from, algo).resolve()
        _check_env(module, cfg)
        out = Path(out) if out is not None else default_out(algo, cfg)
        if (out / "config.yaml").exists():
            raise RLFoundryError(
                f"'{out}' already holds a run; resume it with --resume {out} or choose another --out."
            )
        out.mkdir(parents=True, exist_ok=True)
        head = {"algo": algo, **({"init_from": str(init_from)} if init_from else {})}
        save_yaml(out / "config.yaml", {**head, **to_dict(cfg), "rlfoundry_version": __version__})

    torch.set_num_threads(getattr(cfg, "torch_threads", 1) or 1)
    seed_everything(cfg.seed)
    with Run(
        out,
        cfg.total_steps,
        resume=resume is not None,
        progress=progress,
        stop_at_step=stop_at_step,
        init_from=init_from,
    ) as run:
        try:
            module.train(cfg, run)
        except ConfigError:
            if init_from is not None and resume is None and not (out / CHECKPOINT).exists():
                # The source did not fit (raised before any step): free --out for a retry.
                (out / "config.yaml").unlink(missing_ok=True)
            raise
        wall = run.elapsed()
        interrupted = run.interrupted
    summary: dict[str, Any] = {
        "algo": algo,
        "env": cfg.env_id,
        "seed": cfg.seed,
        "steps": run.step,
        "wall_seconds": round(wall, 3),
        "run_dir": str(out),
        **({"init_from": str(init_from)} if init_from else {}),
    }
    if interrupted:
        summary["status"] = "interrupted"
        summary["resume_command"] = f"rlfoundry train --resume {out}"
        return summary
    summary["status"] = "finished"
    _plot_curve(out, algo, cfg)
    if evaluate_after:
        summary.update(evaluate_run(out, write=False))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _plot_curve(out: Path, algo: str, cfg: Any) -> None:
    with contextlib.suppress(RLFoundryError):
        plot_runs([out], out / "learning_curve.png", labels=[algo], title=f"{algo} on {cfg.env_id}")


def evaluate_run(
    run_dir: str | Path,
    episodes: int | None = None,
    seed: int | None = None,
    write: bool = True,
    video: bool = False,
) -> dict[str, Any]:
    """Re-evaluate the saved policy of ``run_dir``; update its summary.json if ``write``;
    with ``video``, also record the first evaluation episode to ``run_dir/eval.gif``."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    if not saved.exists():
        raise RLFoundryError(
            f"'{run_dir}' is not a run directory (no config.yaml); pass one made by `rlfoundry train`."
        )
    data = load_yaml(saved)
    module, cfg = resolve_config(data["algo"], config=data)
    if not (run_dir / CHECKPOINT).exists():
        raise RLFoundryError(f"'{run_dir}' has no {CHECKPOINT}; the run never saved one.")
    episodes = episodes if episodes is not None else cfg.eval_episodes
    eval_seed = seed if seed is not None else cfg.seed + 10_000  # unseen episodes
    torch.set_num_threads(1)
    policy = module.load_policy(run_dir, cfg)
    env = make_env(cfg.env_id, **getattr(cfg, "env_kwargs", {}) or {})
    t0 = time.perf_counter()
    try:
        result = evaluate(policy, env, episodes, eval_seed)
    finally:
        env.close()
    result["eval_seconds"] = round(time.perf_counter() - t0, 3)
    extra = getattr(module, "extra_eval", None)
    if extra is not None:  # app metrics over the same number of episodes
        result.update(extra(run_dir, dataclasses.replace(cfg, eval_episodes=episodes), policy))
    if video:
        from rlfoundry.runtime.video import record_gif

        env_kwargs = getattr(cfg, "env_kwargs", {}) or {}
        gif = record_gif(policy, cfg.env_id, run_dir / "eval.gif", eval_seed, env_kwargs)
        result["video"] = str(gif)
    if write:
        path = run_dir / "summary.json"
        summary = (
            json.loads(path.read_text())
            if path.exists()
            else {"algo": data["algo"], "env": cfg.env_id, "seed": cfg.seed}
        )
        summary.update(result)
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    return result
