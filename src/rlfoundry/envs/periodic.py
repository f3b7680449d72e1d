"""Periodic evaluation while a gym algorithm trains, and the best policy it saw
(Stable-Baselines3's ``EvalCallback`` with ``best_model_save_path``; rl-zoo's
``best_model``).

Every ``eval_every`` env steps the run's newest checkpoint is turned into its
deterministic policy (the algorithm's own ``load_policy``) and played for
``cfg.periodic_episodes`` episodes (a deep algorithm's config field, ``--periodic-episodes``;
:data:`PERIODIC_EPISODES` for one without it) on an env of its own, reset with seeds from
``seed + PERIODIC_SEED_OFFSET`` on: never a training episode (``seed + i``) and never an
episode of the held-out evaluation in summary.json (``seed + 10000 + i``). The mean
return goes to metrics.csv and TensorBoard as ``eval_return``, and the checkpoint of the
best one so far is kept as ``best.safetensors`` (:class:`~rlfoundry.runtime.callbacks.Evaluate`).

Choosing the best on the same episodes that then report it would flatter it (a maximum
of noisy scores), so summary.json and ``rlfoundry eval`` score the best checkpoint again
on the held-out episodes, beside the final one (:func:`evaluate_best`).

Periodic evaluation only looks: it runs between updates, on its own env, with the global
random generators restored, so the training is number for number the run without it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlfoundry.envs.evaluation import evaluate, make_env
from rlfoundry.errors import ConfigError
from rlfoundry.runtime.callbacks import BEST, BEST_JSON, Evaluate
from rlfoundry.runtime.run import CHECKPOINT, Run

#: Seeds of the periodic evaluation episodes start at ``seed + PERIODIC_SEED_OFFSET``.
PERIODIC_SEED_OFFSET = 20_000
#: Episodes of each periodic evaluation when the Config has no ``periodic_episodes`` (the
#: tabular agents); rl-zoo's hyperparameter search uses 10. The deep Configs default to it.
PERIODIC_EPISODES = 10
#: ``eval_every: auto`` evaluates this many times over the run...
AUTO_EVALS = 20
#: ...when it trains at least this many steps (a shorter run is a smoke test: no evaluation).
AUTO_MIN_STEPS = 20_000

Policy = Callable[[Any], Any]


def eval_interval(value: Any, total_steps: int, auto: bool) -> int:
    """The env steps between periodic evaluations (0: none) for the run key ``eval_every``:
    a number of steps, ``0`` (off) or ``auto`` / None: every ``total_steps / 20`` steps for
    an algorithm that evaluates by default (``auto``, the deep ones) and a run of at least
    20k steps, else off."""
    if value is None or str(value).strip().lower() == "auto":
        if not auto or total_steps < AUTO_MIN_STEPS:
            return 0
        return max(total_steps // AUTO_EVALS, 1)
    try:
        every = int(str(value).replace("_", ""))
    except ValueError:
        every = -1
    if every < 0:
        raise ConfigError(
            f"eval_every must be a number of env steps, 0 (off) or auto, got {value!r}; "
            "try --eval-every 10000."
        )
    return every


def periodic_evaluation(
    cfg: Any,
    load_policy: Callable[[Path, Any], Policy],
    every: int,
    report: Callable[[Run, int, float], None] | None = None,
) -> Evaluate:
    """The callback that scores ``load_policy(run dir, cfg)`` every ``every`` env steps and
    at the end, logs ``eval_return`` / ``eval_return_std`` and keeps ``best.safetensors``.
    ``report(run, step, mean return)``, if given, hears each score (a tuner's pruner,
    which may stop the run: ``run.stop_requested``)."""
    seed = int(cfg.seed) + PERIODIC_SEED_OFFSET
    episodes = int(getattr(cfg, "periodic_episodes", PERIODIC_EPISODES))
    kwargs = dict(getattr(cfg, "env_kwargs", None) or {})
    envs: list[Any] = []  # made at the first evaluation, kept for the others

    def score(run: Run, step: int, tensors: dict[str, Any]) -> float:
        if not envs:
            envs.append(make_env(cfg.env_id, **kwargs))
        result = evaluate(load_policy(run.path, cfg), envs[0], episodes, seed)
        mean = result["eval_mean_return"]
        run.log(step, eval_return=mean, eval_return_std=result["eval_std_return"])
        if report is not None:
            report(run, step, mean)
        return mean

    return Evaluate(every, score=score, keep_best=True)


def evaluate_best(
    run_dir: str | Path,
    cfg: Any,
    load_policy: Callable[[Path, Any], Policy],
    episodes: int,
    seed: int,
) -> dict[str, Any]:
    """The best checkpoint of ``run_dir`` scored on the held-out episodes the final policy
    is scored on (``episodes`` from ``seed``), as ``best_eval_mean_return`` /
    ``best_eval_std_return``, with ``best_step`` and ``best_periodic_return`` (the score
    that chose it); {} when the run kept no best checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / BEST).is_file() or episodes <= 0:
        return {}
    saved = json.loads((run_dir / BEST_JSON).read_text()) if (run_dir / BEST_JSON).is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:  # load_policy reads DIR/checkpoint.safetensors
        shutil.copyfile(run_dir / BEST, Path(tmp) / CHECKPOINT)
        policy = load_policy(Path(tmp), cfg)
    env = make_env(cfg.env_id, **(getattr(cfg, "env_kwargs", None) or {}))
    try:
        result = evaluate(policy, env, episodes, seed)
    finally:
        env.close()
    return {
        "best_eval_mean_return": result["eval_mean_return"],
        "best_eval_std_return": result["eval_std_return"],
        **({"best_step": saved["best_step"]} if "best_step" in saved else {}),
        **({"best_periodic_return": saved["best_score"]} if "best_score" in saved else {}),
    }
