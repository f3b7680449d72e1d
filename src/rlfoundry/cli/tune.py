"""``rlfoundry tune ALGO --env ENV --trials N``: hyperparameter search with Optuna, as
rl-zoo's ``train.py --optimize`` does it.

    rlfoundry tune ppo --env CartPole-v1 --trials 20 --steps 50000 [--eval-every 5000]
                       [--out DIR] [--config BASE.yaml] [--set KEY=VALUE ...] [--seed S]
    rlfoundry train ppo --config DIR/best.yaml          # the winner, as an ordinary run

Each trial trains an ordinary run directory (``DIR/trials/NNN``) from the algorithm's
defaults (not the shipped tuned config), plus ``--config`` / ``--set``, plus the values the
sampler draws from the algorithm's search space (:data:`SPACES`, after rl-zoo's
``hyperparams_opt.py``). The run evaluates itself every ``--eval-every`` steps
(:mod:`rlfoundry.envs.periodic`); each score goes to Optuna, whose median pruner (rl-zoo's
choice) stops a trial whose score falls below the median of the earlier trials at that
step. A trial's value is its best periodic score: the policy ``best.safetensors`` keeps.
The sampler is TPE, seeded with ``--seed``.

Writes to ``DIR`` (default ``runs/tune-ALGO-ENV-TIME``): ``best.yaml`` (the best trial's
full config, which ``train --config`` takes), ``study.json`` (every trial: state, value,
params, run directory), ``summary.md`` and ``importance.png`` (fANOVA importance of each
sampled parameter, Optuna's default evaluator), all rewritten after every trial, so a
study cut short keeps what it found. Optuna is the ``tune`` extra:
``pip install 'rlfoundry[tune]'``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

#: ``trial -> {config key: value}`` for each algorithm that can be tuned.
Space = Callable[[Any], dict[str, Any]]

NETS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}


def ppo_space(trial: Any) -> dict[str, Any]:
    """rl-zoo's ``sample_ppo_params`` with the step size narrowed to [1e-4, 3e-3] and the
    segment / minibatch sizes bounded, so that no trial costs 100x another."""
    num_steps = trial.suggest_categorical("num_steps", [16, 32, 64, 128, 256, 512])
    minibatch = trial.suggest_categorical("minibatch_size", [32, 64, 128, 256])
    return {
        "num_steps": num_steps,
        "minibatch_size": minibatch,
        "gamma": trial.suggest_categorical("gamma", [0.95, 0.98, 0.99, 0.995, 0.999]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 1e-2, log=True),
        "clip_coef": trial.suggest_categorical("clip_coef", [0.1, 0.2, 0.3]),
        "update_epochs": trial.suggest_categorical("update_epochs", [4, 10, 20]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.95, 0.98, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 1.0, 5.0]),
        "vf_coef": trial.suggest_float("vf_coef", 0.25, 1.0),
        "hidden": NETS[trial.suggest_categorical("net", ["small", "medium"])],
        "activation": trial.suggest_categorical("activation", ["tanh", "relu"]),
    }


def a2c_space(trial: Any) -> dict[str, Any]:
    """rl-zoo's ``sample_a2c_params``, step size narrowed to [1e-4, 3e-3]."""
    return {
        "num_steps": trial.suggest_categorical("num_steps", [5, 8, 16, 32, 64]),
        "gamma": trial.suggest_categorical("gamma", [0.95, 0.98, 0.99, 0.995, 0.999]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 1e-2, log=True),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.95, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 1.0, 5.0]),
        "vf_coef": trial.suggest_float("vf_coef", 0.25, 1.0),
        "norm_adv": trial.suggest_categorical("norm_adv", [False, True]),
        "hidden": NETS[trial.suggest_categorical("net", ["small", "medium"])],
    }


def dqn_space(trial: Any) -> dict[str, Any]:
    """rl-zoo's ``sample_dqn_params`` (gradient_steps = train_freq / subsample), step size
    narrowed to [1e-4, 1e-2]."""
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 16, 64, 256])
    subsample = trial.suggest_categorical("subsample_steps", [1, 2, 4, 8])
    return {
        "gamma": trial.suggest_categorical("gamma", [0.95, 0.98, 0.99, 0.995, 0.999]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "minibatch_size": trial.suggest_categorical("minibatch_size", [32, 64, 128, 256]),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 50_000, 100_000]),
        "epsilon_end": trial.suggest_float("epsilon_end", 0.0, 0.2),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.05, 0.5),
        "target_update_interval": trial.suggest_categorical(
            "target_update_interval", [10, 250, 1000, 5000]
        ),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1000, 5000]),
        "train_freq": train_freq,
        "gradient_steps": max(train_freq // subsample, 1),
        "hidden": NETS[trial.suggest_categorical("net", ["tiny", "small", "medium"])],
    }


def _offpolicy_common(trial: Any) -> dict[str, Any]:
    return {
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "minibatch_size": trial.suggest_categorical("minibatch_size", [64, 128, 256, 512]),
        "tau": trial.suggest_categorical("tau", [0.005, 0.01, 0.02, 0.05]),
        "train_freq": (freq := trial.suggest_categorical("train_freq", [1, 4, 8, 32])),
        "gradient_steps": freq,
        "learning_starts": trial.suggest_categorical("learning_starts", [100, 1000, 10_000]),
        "hidden": NETS[trial.suggest_categorical("net", ["small", "medium"])],
    }


def sac_space(trial: Any) -> dict[str, Any]:
    """rl-zoo's ``sample_sac_params`` (entropy temperature auto-tuned), narrowed."""
    return _offpolicy_common(trial)


def td3_space(trial: Any) -> dict[str, Any]:
    """rl-zoo's ``sample_td3_params`` (Gaussian exploration noise), narrowed."""
    space = _offpolicy_common(trial)
    space["exploration_noise"] = trial.suggest_float("exploration_noise", 0.05, 0.5)
    return space


SPACES: dict[str, Space] = {
    "ppo": ppo_space,
    "a2c": a2c_space,
    "dqn": dqn_space,
    "sac": sac_space,
    "td3": td3_space,
}


def _import_optuna() -> Any:
    from rlfoundry.errors import RLFoundryError

    try:
        import optuna
    except ImportError:
        raise RLFoundryError(
            "rlfoundry tune needs Optuna, which is not installed; run "
            "`pip install 'rlfoundry[tune]'` (or `pip install optuna`)."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def run_study(
    algo: str,
    env: str,
    trials: int,
    out: Path,
    steps: int | None = None,
    eval_every: int | None = None,
    seed: int = 0,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the study and write ``out``; return the study summary (also ``study.json``)."""
    from rlfoundry import api, registry
    from rlfoundry.errors import ConfigError, RLFoundryError
    from rlfoundry.runtime.config import save_yaml, to_dict

    name = registry.get(algo).name
    if name not in SPACES:
        raise ConfigError(
            f"rlfoundry tune has no search space for {name}; tune one of {', '.join(SPACES)}."
        )
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}; try --trials 20.")
    overrides = dict(overrides or {})
    # The base config every trial starts from: checked now, before any trial is trained.
    module, base = api.resolve_config(name, env, steps, seed, config, overrides)
    module.check(base)
    total = int(base.total_steps)
    every = int(eval_every) if eval_every else max(total // 10, 1)
    if every > total:
        raise ConfigError(
            f"--eval-every {every} is more than the {total} steps of a trial; pass a smaller one."
        )
    if (out / "study.json").exists():
        raise RLFoundryError(f"'{out}' already holds a study; choose another --out.")
    optuna = _import_optuna()
    out.mkdir(parents=True, exist_ok=True)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, trials))
    # rl-zoo: no pruning in the first 5 trials, nor in a trial's first third.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=total // 3)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)

    def objective(trial: Any) -> float:
        params = SPACES[name](trial)
        run_dir = out / "trials" / f"{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        pruned = []

        def report(run: Any, step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                pruned.append(step)
                run.stop_requested = run.interrupted = True  # checkpoint, then stop

        api.train(
            name,
            env=env,
            steps=steps,
            seed=seed,
            out=run_dir,
            config=config,
            overrides={**overrides, **params},
            progress=False,
            evaluate_after=False,
            tuned=False,
            eval_every=every,
            eval_report=report,
        )
        if pruned:
            raise optuna.TrialPruned()
        best = json.loads((run_dir / "best.json").read_text())
        trial.set_user_attr("best_step", best.get("best_step"))
        return float(best["best_score"])

    def after_trial(study: Any, trial: Any) -> None:  # a killed study keeps what it found
        write_study(study, name, out, base, every, to_dict, save_yaml)

    study.optimize(objective, n_trials=trials, catch=(RLFoundryError,), callbacks=[after_trial])
    return write_study(study, name, out, base, every, to_dict, save_yaml)


def write_study(
    study: Any, name: str, out: Path, base: Any, every: int, to_dict: Any, save_yaml: Any
) -> dict[str, Any]:
    """best.yaml, study.json, summary.md and importance.png of a finished study."""
    import optuna

    from rlfoundry.runtime.config import load_yaml

    rows = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "best_step": t.user_attrs.get("best_step"),
            "run_dir": t.user_attrs.get("run_dir"),
        }
        for t in study.trials
    ]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "algo": name,
        "env": base.env_id,
        "total_steps": base.total_steps,
        "eval_every": every,
        "trials": len(rows),
        "complete": len(done),
        "pruned": sum(r["state"] == "pruned" for r in rows),
        "failed": sum(r["state"] == "fail" for r in rows),
        "rows": rows,
    }
    if done:
        best = study.best_trial
        cfg = load_yaml(Path(best.user_attrs["run_dir"]) / "config.yaml")
        keep = {k: v for k, v in cfg.items() if k not in ("algo", "rlfoundry_version")}
        keep.pop("tuned_config", None)
        save_yaml(out / "best.yaml", {"algo": name, **keep})
        summary.update(best_trial=best.number, best_value=best.value, best_params=best.params)
        summary["importance"] = _importance(study, out / "importance.png")
    (out / "study.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "summary.md").write_text(_markdown(summary))
    return summary


def _importance(study: Any, path: Path) -> dict[str, float]:
    """fANOVA importance of each sampled parameter ({} with too few distinct trials), and
    its bar chart at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    try:
        imp = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # fewer than two complete trials, or one value
        return {}
    imp = {k: float(v) for k, v in imp.items() if math.isfinite(v)}
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(imp) + 1.2))
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel("fANOVA importance (share of the variance of the trial value)")
    ax.set_title(f"{len(study.trials)} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return imp


def _markdown(s: dict[str, Any]) -> str:
    lines = [
        f"# rlfoundry tune {s['algo']} on {s['env']}",
        "",
        f"{s['trials']} trials of {s['total_steps']} steps (evaluated every {s['eval_every']}):"
        f" {s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed.",
        "",
    ]
    if "best_trial" in s:
        lines += [
            f"Best: trial {s['best_trial']}, best periodic return {s['best_value']:.1f}; "
            f"`rlfoundry train {s['algo']} --config best.yaml` repeats it.",
            "",
            "| trial | state | value | best at step |",
            "|---:|---|---:|---:|",
        ]
        for r in s["rows"]:
            value = "" if r["value"] is None else f"{r['value']:.1f}"
            lines.append(f"| {r['number']} | {r['state']} | {value} | {r['best_step'] or ''} |")
    return "\n".join(lines) + "\n"


def _cmd(args: argparse.Namespace) -> int:
    import torch

    from rlfoundry.runtime.config import parse_overrides

    torch.set_num_threads(1)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/tune-{args.algo}-{args.env.replace('/', '_')}-{stamp}")
    s = run_study(
        args.algo,
        args.env,
        args.trials,
        out,
        steps=args.steps,
        eval_every=args.eval_every,
        seed=args.seed,
        config=args.config,
        overrides=parse_overrides(args.set),
    )
    print((out / "summary.md").read_text(), end="")
    print(f"\nwrote {out}/best.yaml, study.json, importance.png")
    return 0 if "best_trial" in s else 1


def register(sub: Any) -> None:
    """Add ``rlfoundry tune`` (:data:`rlfoundry.cli.main.EXTRA_COMMANDS`)."""
    p = sub.add_parser("tune", help="search hyperparameters with Optuna (TPE + median pruning)")
    p.add_argument("algo", help=f"algorithm to tune ({', '.join(SPACES)})")
    p.add_argument("--env", required=True, help="Gymnasium environment id")
    p.add_argument("--trials", type=int, default=20, help="trials to run (default 20)")
    p.add_argument("--steps", type=int, help="env steps per trial (default: the algorithm's)")
    p.add_argument(
        "--eval-every", type=int, help="env steps between evaluations (default: steps / 10)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the trials and of the sampler")
    p.add_argument("--config", help="YAML file of base config values")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="fix one config value")
    p.add_argument("--out", help="study directory (default runs/tune-ALGO-ENV-TIME)")
    p.set_defaults(func=_cmd)
