"""Stable-Baselines3 reference runs on the app envs (needs the ``bench`` extra).

    python benchmarks/apps_sb3.py trading --algos dqn ppo --seeds 0 1 2
    python benchmarks/apps_sb3.py driving --algos dqn --seeds 0 1 2

The same envs, backtest and driving evaluation as ``rlfoundry trade backtest`` and
``rlfoundry drive eval``, with SB3's DQN and PPO as the learner: the peer of
``benchmarks/apps_reproduce.py`` (rlfoundry's DQN/PPO). Like for like by construction:
the SB3 settings are rlfoundry's shipped config for (algo, env)
(``configs/{dqn,ppo}/rlfoundry_{Trading,Highway}-v0.yaml``, ``--steps`` overriding
``total_steps``) translated by :func:`sb3_peer.sb3_kwargs`, the one translation
``classic.py`` uses (SB3's PPO gets half of rlfoundry's ``vf_coef``: its value loss is
MSE, rlfoundry's 0.5 * MSE), with the same number of env copies, and SB3's DQN gets
rlfoundry's orthogonal initialisation where the config sets ``orthogonal_init``
(:func:`sb3_peer.match_init`). Models are saved with SB3's own ``.zip`` format under
``--runs`` and only ever loaded from there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from sb3_peer import match_init, sb3_kwargs


def _fit(
    app: str, algo: str, env_id: str, seed: int, steps: int | None, path: Path
) -> tuple[Any, float]:
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env

    from rlfoundry.api import resolve_config
    from rlfoundry.envs.evaluation import make_env

    cls = {"dqn": sb3.DQN, "ppo": sb3.PPO}[algo]
    zip_path = path.with_suffix(".zip")
    if zip_path.exists():
        meta = json.loads(path.with_suffix(".json").read_text())
        return cls.load(zip_path, device="cpu"), meta.get("train_cpu_seconds", float("nan"))
    overrides = {"total_steps": steps} if steps else None
    _, cfg = resolve_config(algo, env=env_id, seed=seed, overrides=overrides)
    if getattr(cfg, "norm_obs", False) or getattr(cfg, "norm_reward", False):
        raise ValueError(f"{algo} on {env_id} normalises; add VecNormalize as classic.py does")
    # rlfoundry's env factory (the apps' wrappers), as many copies as rlfoundry steps
    env = make_vec_env(
        lambda: make_env(env_id, **cfg.env_kwargs), n_envs=getattr(cfg, "num_envs", 1), seed=seed
    )
    model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **sb3_kwargs(algo, cfg))
    match_init(model, cfg)
    c0 = time.process_time()
    model.learn(cfg.total_steps)
    secs = time.process_time() - c0
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(zip_path)
    meta = {"train_cpu_seconds": secs, "steps": cfg.total_steps}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return model, secs


def _factory(model: Any):
    return lambda env: lambda obs: int(model.predict(obs, deterministic=True)[0])


def main(argv: list[str] | None = None) -> None:
    import torch

    import rlfoundry.apps  # noqa: F401  (registers the envs)

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("app", choices=["trading", "driving"])
    parser.add_argument("--algos", nargs="+", default=["dqn", "ppo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="total_steps (default: the shipped config's)")
    parser.add_argument("--runs", default="runs/apps_sb3")
    parser.add_argument("--out", help="results directory (default RUNS/APP_results)")
    parser.add_argument("--img", help="copy figures / videos here (docs/img)")
    parser.add_argument("--episodes", type=int, default=30, help="driving evaluation episodes")
    parser.add_argument("--periods", nargs="+", default=["val", "test"], help="trading periods")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = Path(args.runs)
    out = Path(args.out or runs / f"{args.app}_results")
    env_id = "rlfoundry/Trading-v0" if args.app == "trading" else "rlfoundry/Highway-v0"
    policies, models, timings = {}, {}, {}
    for algo in args.algos:
        fitted = [
            _fit(args.app, algo, env_id, s, args.steps, runs / f"{args.app}-{algo}-s{s}")
            for s in args.seeds
        ]
        policies[f"{algo.upper()} agent (SB3)"] = [_factory(m) for m, _ in fitted]
        models[algo] = fitted[0][0]
        timings[algo] = [round(t, 1) for _, t in fitted]
    print(f"training CPU seconds per seed: {timings}")
    if args.app == "trading":
        from rlfoundry.apps.trading.backtest import markdown_table, run_suite, write_report

        for period in args.periods:
            results = run_suite(policies, {"data": "sp500"}, period, random_seeds=len(args.seeds))
            table = write_report(
                results,
                out / period,
                f"Trading-v0 on sp500, {period} period (SB3 agents, {args.steps or 'shipped'} steps)",
                notes=[f"training CPU seconds per seed: {timings}"],
            )
            print(f"\n## {period}\n\n{markdown_table(table)}")
            if args.img:
                Path(args.img).mkdir(parents=True, exist_ok=True)
                shutil.copy(
                    out / period / "equity_drawdown.png",
                    Path(args.img) / f"trading_equity_{period}.png",
                )
    else:
        from rlfoundry.apps.driving.evaluate import compare, markdown_table, record_episode

        t0 = time.perf_counter()
        table = compare(policies, env_id, {}, args.episodes, 100_000)
        text = markdown_table(table)
        out.mkdir(parents=True, exist_ok=True)
        (out / "driving_eval.md").write_text(text + "\n")
        (out / "driving_eval.json").write_text(
            json.dumps(
                {
                    "table": table,
                    "train_cpu_seconds": timings,
                    "eval_seconds": time.perf_counter() - t0,
                },
                indent=1,
            )
            + "\n"
        )
        print(text)
        if args.img:
            algo = args.algos[0]
            info = record_episode(
                _factory(models[algo])(None), env_id, Path(args.img) / f"driving_highway_{algo}.gif"
            )
            print(f"video: {info}")


if __name__ == "__main__":
    main()
