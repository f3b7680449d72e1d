"""rlfoundry against Stable-Baselines3 on the trading and driving apps, measured alongside.

    python benchmarks/apps_sb3.py trading --algos dqn ppo --seeds 0 1 2
    python benchmarks/apps_sb3.py driving --algos dqn --seeds 0 1 2

Both libraries train in this process, one run after the other, on the same env factory
(:func:`rlfoundry.envs.evaluation.make_env`, the apps' wrappers) with the same settings:
rlfoundry's shipped config for (algo, env) (``configs/{dqn,ppo}/rlfoundry_*.yaml``,
``--steps`` overriding ``total_steps``), translated to SB3's names by
:func:`sb3_peer.sb3_kwargs` (SB3's PPO gets half of rlfoundry's ``vf_coef``: its value
loss is the MSE, rlfoundry's 0.5 * MSE) with the same number of env copies, and the same
initialisation (:func:`sb3_peer.match_init`: orthogonal on SB3's DQN too where the config
sets ``orthogonal_init``; both PPOs are orthogonal).

Protocol (the one of ``classic.py``): one torch thread; one short unrecorded warm-up run
per library and algorithm first (one-off first-call costs would otherwise go to whoever
runs first); then per seed both libraries, the order alternating with the seed
(rlfoundry first on even seeds, SB3 first on odd ones). Each finished run writes
``RUNS/APP-ALGO-LIB-sSEED.json`` (training CPU and wall seconds, from before the env and
model are built to the end of training) next to its model (rlfoundry's run directory,
SB3's ``.zip``); a rerun skips finished runs and restarts unfinished ones, so a killed
benchmark resumes per run. Then every model is evaluated deterministically by the apps'
own code: the trading backtest (``rlfoundry trade backtest``) on ``--periods``, the
driving evaluation (``rlfoundry drive eval``) on ``--episodes`` seeded scenarios.

Writes ``RUNS/APP_results.json`` and the ``apps-sb3-APP`` section of
``benchmarks/RESULTS.md`` (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from results import write_marked_section
from sb3_peer import match_init, sb3_kwargs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
ENVS = {"trading": "rlfoundry/Trading-v0", "driving": "rlfoundry/Highway-v0"}
LIBS = ("rlfoundry", "sb3")


def _loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def fit_rlfoundry(algo: str, env_id: str, seed: int, steps: int | None, out: Path) -> None:
    """rlfoundry's ``train`` with its defaults (CSV + TensorBoard per episode, a
    checkpoint every 60 s), no evaluation after training."""
    from rlfoundry.api import train

    summary = train(
        algo, env=env_id, steps=steps, seed=seed, out=out, progress=False, evaluate_after=False
    )
    if summary.get("status", "finished") != "finished":  # SIGTERM/Ctrl-C: saved and returned
        raise SystemExit(f"rlfoundry run {out} was {summary['status']}; not recorded")


def fit_sb3(algo: str, env_id: str, seed: int, steps: int | None, out: Path) -> None:
    """SB3 with rlfoundry's config translated (``sb3_kwargs``) and its init (``match_init``)."""
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env

    from rlfoundry.api import resolve_config
    from rlfoundry.envs.evaluation import make_env

    overrides = {"total_steps": steps} if steps else None
    _, cfg = resolve_config(algo, env=env_id, seed=seed, overrides=overrides)
    if getattr(cfg, "norm_obs", False) or getattr(cfg, "norm_reward", False):
        raise ValueError(f"{algo} on {env_id} normalises; add VecNormalize as classic.py does")
    env = make_vec_env(
        lambda: make_env(env_id, **cfg.env_kwargs), n_envs=getattr(cfg, "num_envs", 1), seed=seed
    )
    cls = {"dqn": sb3.DQN, "ppo": sb3.PPO}[algo]
    model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **sb3_kwargs(algo, cfg))
    match_init(model, cfg)
    model.learn(cfg.total_steps)
    model.save(out.with_suffix(".zip"))
    env.close()


FIT = {"rlfoundry": fit_rlfoundry, "sb3": fit_sb3}


def run_path(runs: Path, app: str, algo: str, lib: str, seed: int) -> Path:
    return runs / f"{app}-{algo}-{lib}-s{seed}"


def train_one(app: str, algo: str, lib: str, seed: int, steps: int | None, runs: Path) -> dict:
    """One timed training run, or the record of one that already finished."""
    import torch

    path = run_path(runs, app, algo, lib, seed)
    record = path.with_suffix(".json")
    if record.exists():
        return json.loads(record.read_text())
    shutil.rmtree(path, ignore_errors=True)  # an unfinished run starts again
    path.with_suffix(".zip").unlink(missing_ok=True)
    torch.set_num_threads(1)
    gc.collect()
    load = _loadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    FIT[lib](algo, ENVS[app], seed, steps, path)
    res = {
        "app": app, "algo": algo, "lib": lib, "seed": seed, "steps": steps,
        "train_cpu_seconds": round(time.process_time() - c0, 2),
        "train_wall_seconds": round(time.perf_counter() - t0, 2),
        "load": load,
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }  # fmt: skip
    record.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res), flush=True)
    return res


def warm_up(app: str, algo: str, runs: Path) -> None:
    """A short unrecorded run of each library (past DQN's learning start / PPO's first
    update, so that the gradient path is exercised too)."""
    from rlfoundry.api import resolve_config

    _, cfg = resolve_config(algo, env=ENVS[app])
    if algo == "dqn":
        steps = cfg.learning_starts + 4 * cfg.train_freq
    else:
        steps = cfg.num_steps * cfg.num_envs
    for lib in LIBS:
        out = runs / "warmup" / f"{app}-{algo}-{lib}"
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        FIT[lib](algo, ENVS[app], 0, steps, out)
    shutil.rmtree(runs / "warmup", ignore_errors=True)


def policies(app: str, algo: str, lib: str, seeds: list[int], runs: Path) -> list[Callable]:
    """One policy factory per seed (env -> obs -> action), deterministic."""
    out = []
    for s in seeds:
        path = run_path(runs, app, algo, lib, s)
        if lib == "sb3":
            import stable_baselines3 as sb3

            model = {"dqn": sb3.DQN, "ppo": sb3.PPO}[algo].load(
                path.with_suffix(".zip"), device="cpu"
            )
            out.append(lambda env, m=model: lambda obs: int(m.predict(obs, deterministic=True)[0]))
        else:
            from rlfoundry.runtime import rundir

            name, data = rundir.read_saved(path)
            module, cfg = rundir.resolve_config(name, config=data)
            policy = module.load_policy(path, cfg)
            out.append(lambda env, p=policy: p)
    return out


def evaluate(args, pols: dict[str, list[Callable]], seeds_of: dict[str, list[int]]):
    """The apps' own deterministic evaluation of every model: ``(tables, Markdown texts,
    per-seed lines)``."""
    table: dict[str, Any] = {}
    texts: dict[str, str] = {}
    per_seed: list[str] = []
    if args.app == "trading":
        from rlfoundry.apps.trading.backtest import aggregate, run_suite
        from rlfoundry.apps.trading.backtest import markdown_table as md

        for period in args.periods:
            res = run_suite(pols, {}, period, random_seeds=len(args.seeds))
            table[period], texts[period] = aggregate(res), md(aggregate(res))
            for label in pols:
                ms = [b.metrics() for b in res[label]]
                cells = [
                    f"s{s}: {100 * m['cumulative_return']:+.1f}%, Sharpe {m['sharpe']:.2f}"
                    for s, m in zip(seeds_of[label], ms)
                ]
                med_ret = _med([m["cumulative_return"] for m in ms])
                med_sharpe = _med([m["sharpe"] for m in ms])
                per_seed.append(
                    f"- {period}, {label}: median {100 * med_ret:+.1f}%, Sharpe {med_sharpe:.2f} "
                    f"({'; '.join(cells)})"
                )
        return table, texts, per_seed
    from rlfoundry.apps.driving.evaluate import compare
    from rlfoundry.apps.driving.evaluate import markdown_table as md

    env_id, n, seed0 = ENVS[args.app], args.episodes, args.eval_seed
    for label, factories in pols.items():
        rows = [
            compare({label: [f]}, env_id, {}, n, seed0, baselines=False)[label] for f in factories
        ]
        entry: dict[str, Any] = {"seeds": len(rows)}
        for key in rows[0]:
            if key != "seeds":
                vals = [r[key]["mean"] for r in rows]
                entry[key] = {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals)}
        table[label] = entry
        cells = [
            f"s{s}: collisions {r['collision_rate']['mean']:.0%}, {r['distance']['mean']:.0f} m"
            for s, r in zip(seeds_of[label], rows)
        ]
        med_c = _med([r["collision_rate"]["mean"] for r in rows])
        med_d = _med([r["distance"]["mean"] for r in rows])
        per_seed.append(
            f"- {label}: median collisions {med_c:.0%}, {med_d:.0f} m ({'; '.join(cells)})"
        )
    table.update(compare({}, env_id, {}, n, seed0, baselines=True))
    texts["eval"] = md(table)
    return {"eval": table}, texts, per_seed


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


LABEL = {"rlfoundry": "rlfoundry", "sb3": "SB3"}


def main(argv: list[str] | None = None) -> None:
    import torch

    import rlfoundry.apps  # noqa: F401  (registers the envs)

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("app", choices=list(ENVS))
    p.add_argument("--algos", nargs="+", default=None, help="default: trading dqn ppo, driving dqn")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, help="total_steps (default: the shipped config's)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "apps_sb3"))
    p.add_argument("--episodes", type=int, default=30, help="driving evaluation episodes")
    p.add_argument("--eval-seed", type=int, default=100_000, help="driving: first scenario")
    p.add_argument("--periods", nargs="+", default=["val", "test"], help="trading periods")
    p.add_argument("--eval-only", action="store_true", help="train nothing; report finished runs")
    p.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = p.parse_args(argv)
    algos = args.algos or (["dqn", "ppo"] if args.app == "trading" else ["dqn"])
    torch.set_num_threads(1)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    load0 = _loadavg()
    records: dict[tuple[str, str], list[dict]] = {(a, lib): [] for a in algos for lib in LIBS}
    for algo in algos:
        todo = [
            (lib, s)
            for s in args.seeds
            for lib in LIBS
            if not run_path(runs, args.app, algo, lib, s).with_suffix(".json").exists()
        ]
        if todo and not args.eval_only:
            warm_up(args.app, algo, runs)
        for s in args.seeds:
            order = LIBS if s % 2 == 0 else LIBS[::-1]  # alternating with the seed
            for lib in order:
                if args.eval_only and (lib, s) in todo:
                    continue
                records[(algo, lib)].append(train_one(args.app, algo, lib, s, args.steps, runs))

    t0 = time.perf_counter()
    pols = {
        f"{a.upper()} ({LABEL[lib]})": policies(args.app, a, lib, [r["seed"] for r in recs], runs)
        for (a, lib), recs in records.items()
        if recs
    }
    seeds_of = {
        f"{a.upper()} ({LABEL[lib]})": [r["seed"] for r in recs]
        for (a, lib), recs in records.items()
        if recs
    }
    table, texts, per_seed = evaluate(args, pols, seeds_of)
    eval_s = time.perf_counter() - t0
    out = {
        "records": {f"{a}-{lib}": recs for (a, lib), recs in records.items()},
        "table": table,
        "per_seed": per_seed,
        "eval_seconds": eval_s,
    }
    (runs / f"{args.app}_results.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    section = report(args, algos, records, texts, per_seed, load0)
    print(section)
    if not args.no_write:
        write_marked_section(RESULTS, f"apps-sb3-{args.app}", section)
        print(f"updated {RESULTS}")


def report(args, algos, records, texts, per_seed, load0) -> str:
    import stable_baselines3

    from rlfoundry.api import resolve_config

    name = f"apps-sb3-{args.app}"
    loads = [r["load"] for recs in records.values() for r in recs]
    when = max((r["finished"] for recs in records.values() for r in recs), default="?")
    steps = {a: args.steps or resolve_config(a, env=ENVS[args.app])[1].total_steps for a in algos}
    lines = [
        f"<!-- {name} -->",
        f"## rlfoundry vs Stable-Baselines3 on the {args.app} app (`benchmarks/apps_sb3.py`)",
        "",
        f"Last run finished {when}; {os.cpu_count()} logical CPUs shared with other jobs "
        f"(load average {min(loads, default=load0):.1f}-{max(loads, default=load0):.1f} at "
        f"the runs' starts), Python {sys.version.split()[0]}, torch "
        f"{__import__('torch').__version__}, stable-baselines3 {stable_baselines3.__version__}; "
        "one torch thread, both libraries in one process, an unrecorded warm-up run of "
        "each first, the order alternating with the seed. Same settings on both sides: "
        "rlfoundry's shipped config ("
        + ", ".join(f"{a.upper()} {steps[a]:,} steps" for a in algos)
        + ") translated by `sb3_peer.sb3_kwargs` (SB3's PPO `vf_coef` halved: its value loss "
        "is the MSE, rlfoundry's 0.5 * MSE), the same env factory and env copies, "
        "orthogonal init on both DQNs (`sb3_peer.match_init`). What still differs "
        "(each library's own random draws, rlfoundry's CSV/TensorBoard logging and 60 s "
        "checkpoints, its fused Adam): `benchmarks/README.md`. Seconds are noisy at this "
        "load: read the ratio of medians, and the outcomes over seeds, not single seeds.",
        "",
        "| algo | seeds | train CPU s per seed rlfoundry | SB3 | median ratio rlf / SB3 |",
        "|---|---:|---|---|---:|",
    ]
    for a in algos:
        r = [
            x["train_cpu_seconds"]
            for x in sorted(records[(a, "rlfoundry")], key=lambda x: x["seed"])
        ]
        s = [x["train_cpu_seconds"] for x in sorted(records[(a, "sb3")], key=lambda x: x["seed"])]
        ratio = _med(r) / _med(s) if r and s else float("nan")
        lines.append(
            f"| {a.upper()} | {min(len(r), len(s))} | {', '.join(f'{x:.1f}' for x in r)} "
            f"(median {_med(r):.1f}) | {', '.join(f'{x:.1f}' for x in s)} (median {_med(s):.1f}) "
            f"| {ratio:.2f} |"
        )
    for key, text in texts.items():
        title = (
            f"Backtest, S&P 500 {key} period (deterministic policies; mean ± std over seeds)"
            if args.app == "trading"
            else f"Highway-v0, {args.episodes} episodes from scenario seed {args.eval_seed} "
            "(deterministic policies; mean ± std over training seeds)"
        )
        lines += ["", f"**{title}:**", "", text]
    if per_seed:
        lines += ["", "Medians over the training seeds (per seed in brackets):", "", *per_seed]
    seeds = " ".join(map(str, args.seeds))
    lines += [
        "",
        f"Reproduce: `python benchmarks/apps_sb3.py {args.app} --algos {' '.join(algos)} "
        f"--seeds {seeds}{f' --steps {args.steps}' if args.steps else ''}` (finished runs "
        "are kept under `runs/apps_sb3` and skipped).",
        f"<!-- /{name} -->",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
