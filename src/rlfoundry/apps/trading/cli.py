"""The work behind ``rlfoundry trade backtest|report|walkforward`` (parsers in ``rlfoundry/cli/apps.py``).

Runs are read and trained through the run directory's own module
(:mod:`rlfoundry.runtime.rundir`), as ``rlfoundry train`` does, so the app needs nothing
from the layers above it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from rlfoundry.apps.trading.backtest import (
    Backtest,
    PolicyFactory,
    run_suite,
    write_report,
)
from rlfoundry.apps.trading.baselines import BASELINES
from rlfoundry.apps.trading.data import load_ohlcv, resolve_period, walk_forward_folds
from rlfoundry.apps.trading.sandbox import SandboxedPolicy
from rlfoundry.errors import RLFoundryError

ENV_ID = "rlfoundry/Trading-v0"


def run_policy_factory(run_dir: str | Path) -> tuple[PolicyFactory, dict[str, Any], str]:
    """``(factory, env_kwargs, algo)`` for the trained policy saved in ``run_dir``."""
    from rlfoundry.runtime import rundir

    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).is_file():
        raise RLFoundryError(
            f"'{run_dir}' is not a run directory (no config.yaml); pass one made by "
            f"`rlfoundry train ALGO --env {ENV_ID}`."
        )
    name, data = rundir.read_saved(run_dir)
    module, cfg = rundir.resolve_config(name, config=data)
    if getattr(cfg, "env_id", None) != ENV_ID:
        raise RLFoundryError(
            f"Run '{run_dir}' was trained on {getattr(cfg, 'env_id', name)}; `rlfoundry trade` "
            f"backtests {ENV_ID} runs."
        )
    policy = module.load_policy(run_dir, cfg)
    return (lambda env: policy), dict(getattr(cfg, "env_kwargs", {}) or {}), name


def named_policy(spec: str) -> PolicyFactory:
    """A baseline name (``buy_and_hold``, ``ma_crossover``, ``random``) or ``module:function``.

    ``function(view)`` receives a read-only :class:`~.sandbox.MarketHistory` (never the
    env) and returns ``policy(obs) -> action``; it runs in its own process
    (:mod:`.sandbox`), where nothing later than the decision bar exists. The module is
    not imported here, so none of its code runs beside the env.
    """
    if spec in BASELINES:
        return BASELINES[spec]
    if ":" not in spec:
        raise RLFoundryError(
            f"Unknown policy '{spec}'; use {', '.join(BASELINES)} or module:function "
            "(a function of a MarketHistory returning policy(obs) -> action)."
        )
    mod, fn = spec.split(":", 1)
    try:
        found = importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        found = False
    if not found or not fn.isidentifier():
        raise RLFoundryError(
            f"Cannot load policy '{spec}': no module '{mod}' on the Python path or a bad "
            "function name; pass module:function of an importable module."
        )
    return lambda env: SandboxedPolicy(spec, env)


def llm_config(args: Any) -> dict[str, Any] | None:
    """The LLM evaluator dict from ``--llm-*`` flags, or None when none was given."""
    if not (args.llm_endpoint or args.llm_model_dir):
        return None
    cfg: dict[str, Any] = {"mode": args.llm_mode}
    if getattr(args, "llm_decision", None):
        cfg["decision"] = args.llm_decision
    if getattr(args, "llm_calibrate", False):
        cfg["calibrate"] = True
    if args.llm_endpoint:
        cfg.update(endpoint=args.llm_endpoint, model=args.llm_model)
    else:
        cfg["model_dir"] = args.llm_model_dir
    if args.llm_news:
        cfg["news"] = args.llm_news
    if args.llm_cache:
        cfg["cache_dir"] = args.llm_cache
    return cfg


def backtest_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    period: str = "test",
    random_seeds: int = 3,
    llm: dict[str, Any] | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Backtest trained runs (one per seed) against the baselines; write the report."""
    factories, env_kwargs, algo = [], None, None
    for run_dir in run_dirs:
        make, kwargs, algo = run_policy_factory(run_dir)
        if env_kwargs is not None and kwargs != env_kwargs:
            raise RLFoundryError(
                f"Run '{run_dir}' used different env settings from the first run; "
                "backtest runs of one configuration together."
            )
        env_kwargs = kwargs
        factories.append(make)
    assert env_kwargs is not None and algo is not None
    name = label or f"{algo} agent"
    results = run_suite({name: factories}, env_kwargs, period, random_seeds, llm=llm)
    data = env_kwargs.get("data", "sp500")
    return write_report(
        results,
        out,
        f"{name} vs baselines on {data}, {period} period",
        notes=[f"runs: {', '.join(str(r) for r in run_dirs)}", _costs_note(env_kwargs)],
    )


def report_policies(
    specs: list[str],
    out: str | Path,
    env_kwargs: dict[str, Any],
    period: str = "test",
    random_seeds: int = 3,
    llm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Backtest any policies (baseline names or ``module:function``) and write the report."""
    policies = {spec: [named_policy(spec)] for spec in specs if spec not in BASELINES}
    results = run_suite(policies, env_kwargs, period, random_seeds, llm=llm)
    data = env_kwargs.get("data", "sp500")
    return write_report(
        results, out, f"Backtest on {data}, {period} period", notes=[_costs_note(env_kwargs)]
    )


def _costs_note(env_kwargs: dict[str, Any]) -> str:
    import inspect

    from rlfoundry.apps.trading.env import TradingEnv

    defaults = {k: p.default for k, p in inspect.signature(TradingEnv.__init__).parameters.items()}
    comm = env_kwargs.get("commission", defaults["commission"])
    slip = env_kwargs.get("slippage", defaults["slippage"])
    return f"costs: commission {comm:.2%} of traded value, slippage {slip:.2%} of the open price"


def stitch(parts: list[Backtest]) -> Backtest:
    """Chain consecutive out-of-sample backtests into one equity curve (walk-forward).

    Each part's returns are applied to the value the previous part ended with.
    """
    equity = [parts[0].equity[0]]
    dates = [parts[0].dates[0]]
    pos, traded, costs = [], [], []
    for p in parts:
        scale = equity[-1] / p.equity[0]
        equity.extend((p.equity[1:] * scale).tolist())
        dates.extend(p.dates[1:])
        pos.append(p.position)
        traded.append(p.traded * scale)
        costs.append(p.costs * scale)
    return Backtest(
        parts[0].label,
        dates,
        np.asarray(equity),
        np.concatenate(pos),
        np.concatenate(traded),
        np.concatenate(costs),
        parts[0].periods_per_year,
    )


def walk_forward(
    algo: str,
    out: str | Path,
    data: str = "sp500",
    folds: int = 3,
    steps: int = 50_000,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    train_bars: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    random_seeds: int = 3,
) -> dict[str, Any]:
    """Train ``algo`` on each walk-forward fold's past and backtest it on the fold's future.

    Folds cut the data after the indicator warm-up into ``folds + 1`` blocks (see
    :func:`~rlfoundry.apps.trading.data.walk_forward_folds`); the report stitches the
    test blocks into one out-of-sample equity curve per seed.
    """
    from rlfoundry.runtime import rundir

    out = Path(out)
    bars = load_ohlcv(data)
    start, stop = resolve_period(bars.index, "all")
    idx = bars.index
    env_kwargs = {**(env_kwargs or {}), "data": data}
    per_label: dict[str, list[list[Backtest]]] = {}
    notes = []
    for k, ((a, b), (c, d)) in enumerate(walk_forward_folds(start, stop, folds, train_bars)):
        train_period = f"{idx[a].date()}:{idx[b - 1].date()}"
        # The first test decision needs `window` bars of history; they come from the
        # training block, which is the past, so nothing leaks.
        test_period = f"{idx[c].date()}:{idx[d - 1].date()}"
        notes.append(f"fold {k}: train {train_period}, test {test_period}")
        factories = []
        for seed in seeds:
            run_dir = out / f"fold{k}" / f"seed{seed}"
            if not (run_dir / "summary.json").exists():
                # what `rlfoundry train ALGO --env Trading-v0 ...` does, without evaluating
                overrides = {"env_kwargs": {**env_kwargs, "period": train_period}}
                _, cfg = rundir.resolve_config(algo, ENV_ID, steps, seed, overrides=overrides)
                rundir.run_entry(algo, cfg, run_dir, progress=False)
            factories.append(run_policy_factory(run_dir)[0])
        results = run_suite({f"{algo} agent": factories}, env_kwargs, test_period, random_seeds)
        for label, runs in results.items():
            per_label.setdefault(label, []).append(runs)
    stitched = {
        label: [stitch([fold[i] for fold in fold_runs]) for i in range(len(fold_runs[0]))]
        for label, fold_runs in per_label.items()
    }
    return write_report(
        stitched,
        out,
        f"Walk-forward: {algo} on {data}, {folds} folds, {steps} steps per fold",
        notes=notes + [_costs_note(env_kwargs)],
    )
