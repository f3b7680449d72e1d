"""``rlfoundry sweep ALGO``: a grid of ordinary runs over seeds, envs and config files, as
Ray tasks, and one table across seeds.

    rlfoundry sweep ppo --envs CartPole-v1 Acrobot-v1 --seeds 0 1 2 [--steps N]
                        [--configs A.yaml B.yaml] [--set KEY=VALUE ...] [--out DIR]
                        [--address ray://HOST:10001 | --num-cpus N]

Every cell of envs x configs x seeds is one ``rlfoundry train`` run (the Python API, the
same config sources: shipped tuned config < ``--configs`` file < ``--set`` < the flags),
written to ``DIR/runs/ENV[-CONFIG]-sSEED`` as an ordinary run directory, one Ray task of
one CPU each. Ray starts a local instance by default (``--num-cpus``: how many runs at
once, default all cores) or joins a cluster with ``--address``; on a cluster, ``--out``
must be a path every node writes to (a shared file system).

Then ``DIR/results.csv`` holds one row per run, and ``DIR/aggregate.csv`` /
``aggregate.md`` one row per (env, config): over the seeds, the mean, std, IQM, min and
max of the final held-out return and, when the runs kept one, of the best checkpoint's
(:func:`rlfoundry.core.seeds.seed_summary`; the IQM is rliable's). Ray is the ``sweep``
extra: ``pip install 'rlfoundry[sweep]'``.
"""

from __future__ import annotations

import argparse
import csv
import os
from datetime import datetime
from pathlib import Path
from typing import Any

#: The summary fields aggregated across seeds, when the runs have them.
SCORES = ("eval_mean_return", "best_eval_mean_return")


def train_one(task: dict[str, Any]) -> dict[str, Any]:
    """One cell of the grid (runs inside a Ray worker): train it, return its row."""
    import torch

    from rlfoundry import api
    from rlfoundry.errors import RLFoundryError

    torch.set_num_threads(1)
    row = {k: task[k] for k in ("env", "config", "seed", "run_dir")}
    try:
        s = api.train(
            task["algo"],
            env=task["env"],
            seed=task["seed"],
            steps=task["steps"],
            out=task["run_dir"],
            config=task["config_path"],
            overrides=task["overrides"],
            progress=False,
        )
    except RLFoundryError as err:  # one bad cell is reported in its row, not fatal
        return {**row, "status": "failed", "error": str(err)}
    return {
        **row,
        "status": s.get("status", "finished"),
        "steps": s.get("steps"),
        "wall_seconds": s.get("wall_seconds"),
        **{k: s[k] for k in SCORES if k in s},
    }


def grid(
    algo: str,
    envs: list[str],
    seeds: list[int],
    out: Path,
    configs: list[str] | None = None,
    steps: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The tasks of the grid, each checked (config and env) before any run starts."""
    from rlfoundry import api, registry
    from rlfoundry.errors import ConfigError

    name = registry.get(algo).name
    if registry.get(name).kind != "gym":
        raise ConfigError(f"rlfoundry sweep runs gym algorithms; {name} is a language-model stage.")
    if not envs or not seeds:
        raise ConfigError("Give at least one env (--envs) and one seed (--seeds).")
    tasks = []
    for env in envs:
        for config in configs or [None]:
            module, cfg = api.resolve_config(name, env, steps, seeds[0], config, overrides)
            module.check(cfg)  # a bad env or config: one sentence now, not N failed tasks
            tag = env.replace("/", "_") + (f"-{Path(config).stem}" if config else "")
            for seed in seeds:
                tasks.append(
                    {
                        "algo": name,
                        "env": env,
                        "config": Path(config).stem if config else "",
                        "config_path": str(Path(config).resolve()) if config else None,
                        "seed": int(seed),
                        "steps": steps,
                        "overrides": dict(overrides or {}),
                        "run_dir": str((out / "runs" / f"{tag}-s{seed}").resolve()),
                    }
                )
    return tasks


def run_sweep(
    tasks: list[dict[str, Any]],
    out: Path,
    address: str | None = None,
    num_cpus: int | None = None,
) -> list[dict[str, Any]]:
    """Run ``tasks`` as Ray tasks (one CPU each); write results.csv and the aggregate."""
    from rlfoundry.errors import RLFoundryError

    try:
        import ray
    except ImportError:
        raise RLFoundryError(
            "rlfoundry sweep needs Ray, which is not installed; run "
            "`pip install 'rlfoundry[sweep]'` (or `pip install ray`)."
        ) from None
    if (out / "results.csv").exists():
        raise RLFoundryError(f"'{out}' already holds a sweep; choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = {"address": address} if address else {"num_cpus": num_cpus}
        # The workers import rlfoundry from wherever this process does.
        path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), _src()) if p)
        kw["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
        ray.init(include_dashboard=False, log_to_driver=False, **kw)
    try:
        remote = ray.remote(num_cpus=1)(train_one)
        rows = ray.get([remote.remote(t) for t in tasks])
    finally:
        if started:
            ray.shutdown()
    write_results(rows, out)
    return rows


def _src() -> str:
    """The directory that holds the imported rlfoundry package."""
    import rlfoundry

    return str(Path(rlfoundry.__file__).resolve().parent.parent)


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (env, config): each score's seed summary, over the finished runs."""
    from rlfoundry.core.seeds import seed_summary

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["config"]), []).append(r)
    table = []
    for (env, config), rs in groups.items():
        ok = [r for r in rs if r.get("status") == "finished"]
        agg: dict[str, Any] = {
            "env": env,
            "config": config,
            "seeds": len(ok),
            "failed": len(rs) - len(ok),
        }
        for key in SCORES:
            vals = [r[key] for r in ok if r.get(key) not in (None, "")]
            if vals:
                s = seed_summary(vals)
                agg.update({f"{key}_{k}": s[k] for k in ("mean", "std", "iqm", "min", "max")})
        table.append(agg)
    return table


def write_results(rows: list[dict[str, Any]], out: Path) -> None:
    """results.csv (one row per run), aggregate.csv and aggregate.md (one per env x config)."""
    _write_csv(out / "results.csv", sorted(rows, key=lambda r: (r["env"], r["config"], r["seed"])))
    table = aggregate(rows)
    _write_csv(out / "aggregate.csv", table)
    lines = [
        "| env | config | seeds | final: mean | std | IQM | best: mean | std | IQM |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in table:
        cells = [
            a["env"],
            a["config"] or "-",
            f"{a['seeds']}" + (f" ({a['failed']} failed)" if a["failed"] else ""),
        ]
        for key in SCORES:
            cells += [_fmt(a.get(f"{key}_{k}")) for k in ("mean", "std", "iqm")]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "aggregate.md").write_text("\n".join(lines) + "\n")


def _fmt(x: Any) -> str:
    return "" if x is None else f"{x:.4g}"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _cmd(args: argparse.Namespace) -> int:
    from rlfoundry.runtime.config import parse_overrides

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/sweep-{args.algo}-{stamp}")
    tasks = grid(
        args.algo, args.envs, args.seeds, out, args.configs, args.steps, parse_overrides(args.set)
    )
    rows = run_sweep(tasks, out, address=args.address, num_cpus=args.num_cpus)
    print((out / "aggregate.md").read_text(), end="")
    print(f"\nwrote {len(rows)} runs under {out}/runs, {out}/results.csv, {out}/aggregate.csv")
    return 0 if all(r.get("status") == "finished" for r in rows) else 1


def register(sub: Any) -> None:
    """Add ``rlfoundry sweep`` (:data:`rlfoundry.cli.main.EXTRA_COMMANDS`)."""
    p = sub.add_parser("sweep", help="a grid of runs over seeds, envs and configs on Ray")
    p.add_argument("algo", help="gym algorithm (see `rlfoundry list`)")
    p.add_argument("--envs", nargs="+", required=True, help="Gymnasium env ids")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="default 0-4")
    p.add_argument("--configs", nargs="+", help="config files, one grid column each")
    p.add_argument("--steps", type=int, help="env steps per run (default: the config's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="one value for every run")
    p.add_argument("--out", help="sweep directory (default runs/sweep-ALGO-TIME)")
    p.add_argument(
        "--address", help="join the Ray cluster at this address (default: start a local one)"
    )
    p.add_argument("--num-cpus", type=int, help="local Ray: runs at once (default: all cores)")
    p.set_defaults(func=_cmd)
