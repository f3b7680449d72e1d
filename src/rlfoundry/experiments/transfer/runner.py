"""Train the tabular agents along the experiments and score them exactly: the curves behind
:func:`run_finetune` (source, fine-tune, scratch per seed) and :func:`run_lifelong`."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from rlfoundry import registry
from rlfoundry.algos.tabular.common import greedy_policy, load_q, q_curve
from rlfoundry.envs.evaluation import make_env
from rlfoundry.errors import RLFoundryError
from rlfoundry.experiments.transfer.config import FinetuneConfig, LifelongConfig
from rlfoundry.experiments.transfer.metrics import (
    backward_transfer,
    forgetting,
    max_forgetting,
    time_to_threshold,
)
from rlfoundry.runtime.callbacks import StartFrom
from rlfoundry.runtime.config import build_config, to_dict
from rlfoundry.runtime.run import Run


def train_curve(
    algo: str,
    env_id: str,
    env_kwargs: dict[str, Any],
    steps: int,
    seed: int,
    every: int,
    score: Any,
    q0: np.ndarray | None = None,
    algo_config: dict[str, Any] | None = None,
) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """Train ``algo`` on ``env_id(**env_kwargs)`` for ``steps`` from ``q0`` (None: the
    algorithm's own initial table). Returns ``(steps, scores, final Q)`` with a score of
    the initial table at step 0 and then one every ``every`` steps and at the end."""
    module = registry.load(algo)
    cfg = build_config(
        module.Config,
        algo_config or {},
        {"env_id": env_id, "env_kwargs": env_kwargs, "total_steps": steps, "seed": seed},
    )
    env = make_env(env_id, **env_kwargs)
    n_obs, n_act = int(env.observation_space.n), int(env.action_space.n)
    env.close()
    if q0 is not None and q0.shape != (n_obs, n_act):
        raise RLFoundryError(
            f"The source Q-table has shape {q0.shape} but the target task needs {(n_obs, n_act)}; "
            "transfer between tasks with the same states and actions (e.g. layouts of one size)."
        )
    np.random.seed(seed)  # nothing tabular draws from it; keep the global state defined
    curve = q_curve(every, score)  # step 0 is scored after StartFrom set the table
    callbacks = ([StartFrom({"q": q0})] if q0 is not None else []) + [curve]
    quiet = {"progress": False, "tensorboard": False}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Run(tmp, cfg.total_steps, **quiet, callbacks=callbacks) as run,
    ):
        module.train(cfg, run)
        q = load_q(tmp)
    return np.asarray(curve.steps), curve.values, q


def exact_scorer(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    """``Q -> exact return of its greedy policy`` on ``env_id(**env_kwargs)``."""
    from rlfoundry.mdp import evaluate_policy_exact

    env = make_env(env_id, **env_kwargs)
    return lambda Q: float(evaluate_policy_exact(env, greedy_policy(Q)))


def optimum(env_id: str, env_kwargs: dict[str, Any]) -> float:
    from rlfoundry.mdp import optimal_return

    env = make_env(env_id, **env_kwargs)
    try:
        return float(optimal_return(env))
    finally:
        env.close()


def run_finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Source, fine-tune and scratch on every seed; per-seed metrics, their means, curves."""
    cfg.validate()
    target_best = optimum(cfg.env_id, cfg.target)
    threshold = target_best if cfg.threshold is None else float(cfg.threshold)
    score_src = exact_scorer(cfg.env_id, cfg.source)
    score_tgt = exact_scorer(cfg.env_id, cfg.target)
    seeds, curves = [], {"finetune": [], "scratch": []}
    steps = None
    for seed in cfg.seeds:
        common = dict(every=cfg.eval_every, algo_config=cfg.algo_config)
        _, src_vals, q_src = train_curve(
            cfg.algo, cfg.env_id, cfg.source, cfg.source_steps, seed, score=score_src, **common
        )
        steps, ft, _ = train_curve(
            cfg.algo, cfg.env_id, cfg.target, cfg.target_steps, seed, score=score_tgt,
            q0=q_src, **common,
        )  # fmt: skip
        _, sc, _ = train_curve(
            cfg.algo, cfg.env_id, cfg.target, cfg.target_steps, seed, score=score_tgt, **common
        )
        ft, sc = np.asarray(ft), np.asarray(sc)
        curves["finetune"].append(ft)
        curves["scratch"].append(sc)
        tail = min(cfg.tail, len(ft))
        seeds.append(
            {
                "seed": seed,
                "source_final_return": src_vals[-1],
                "jumpstart": float(ft[0] - sc[0]),
                "initial_return_finetune": float(ft[0]),
                "initial_return_scratch": float(sc[0]),
                "steps_to_threshold_finetune": time_to_threshold(steps, ft, threshold),
                "steps_to_threshold_scratch": time_to_threshold(steps, sc, threshold),
                "asymptotic_return_finetune": float(ft[-tail:].mean()),
                "asymptotic_return_scratch": float(sc[-tail:].mean()),
                "area_finetune": float(np.trapezoid(ft, steps) / steps[-1]),
                "area_scratch": float(np.trapezoid(sc, steps) / steps[-1]),
            }
        )
    keys = [k for k in seeds[0] if k != "seed"]
    mean = {k: float(np.mean([s[k] for s in seeds])) for k in keys}
    median = {k: float(np.median([s[k] for s in seeds])) for k in keys}
    return {
        "config": to_dict(cfg),
        "threshold": threshold,
        "target_optimal_return": target_best,
        "source_optimal_return": optimum(cfg.env_id, cfg.source),
        "per_seed": seeds,
        "mean": mean,
        "median": median,
        "steps": np.asarray(steps).tolist(),
        "curves": {k: np.stack(v).tolist() for k, v in curves.items()},
    }


def run_lifelong(cfg: LifelongConfig) -> dict[str, Any]:
    """The task sequence on every seed: return matrices, forgetting, curves on all tasks."""
    cfg.validate()
    scorers = [exact_scorer(cfg.env_id, t) for t in cfg.tasks]
    n = len(cfg.tasks)

    def score_all(Q: np.ndarray) -> list[float]:
        return [s(Q) for s in scorers]

    per_seed, curves = [], []
    for seed in cfg.seeds:
        q, R, curve = None, np.zeros((n, n)), []
        for i, task in enumerate(cfg.tasks):
            st, vals, q = train_curve(
                cfg.algo, cfg.env_id, task, cfg.steps_per_task, seed + 1000 * i,
                cfg.eval_every, score_all, q0=q, algo_config=cfg.algo_config,
            )  # fmt: skip
            R[i] = vals[-1]
            curve += [[i * cfg.steps_per_task + int(s), *v] for s, v in zip(st, vals)]
        curves.append(curve)
        per_seed.append(
            {
                "seed": seed,
                "R": R.tolist(),
                "forgetting": forgetting(R).tolist(),
                "max_forgetting": max_forgetting(R).tolist(),
                "backward_transfer": backward_transfer(R),
            }
        )
    R_mean = np.mean([np.asarray(s["R"]) for s in per_seed], axis=0)
    return {
        "config": to_dict(cfg),
        "optimal_returns": [optimum(cfg.env_id, t) for t in cfg.tasks],
        "per_seed": per_seed,
        "R_mean": R_mean.tolist(),
        "forgetting_mean": np.mean([s["forgetting"] for s in per_seed], axis=0).tolist(),
        "max_forgetting_mean": np.mean([s["max_forgetting"] for s in per_seed], axis=0).tolist(),
        "backward_transfer_mean": float(np.mean([s["backward_transfer"] for s in per_seed])),
        "curves": curves,
    }
