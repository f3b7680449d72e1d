"""Dyna-Q against Q-learning in real environment steps (Sutton & Barto 2018, sec. 8.2).

    python benchmarks/tabular_dyna.py                  # GridWorld, 10 seeds -> docs/img/dyna_vs_q.png
    python benchmarks/tabular_dyna.py --seeds 5 --env rlfoundry/GridWorldSlippery-v0 --out x.png

Both agents run with their shipped configs for the env, which for the GridWorld are the
same settings except Dyna-Q's ``planning_steps``. Every ``--every`` real env steps the
greedy policy of the Q-table is scored exactly (``rlfoundry.mdp.evaluate_policy_exact``:
no sampling, the env's time limit counted), so the curves show the policy itself, not
evaluation noise. Prints, per agent, the real steps after which the greedy policy is
optimal and stays so to the end of the budget.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rlfoundry.algos.tabular import common as tabular
from rlfoundry.api import resolve_config
from rlfoundry.envs.evaluation import make_env
from rlfoundry.mdp import optimal_return

ROOT = Path(__file__).resolve().parent.parent
ALGOS = {"qlearning": "Q-learning", "dyna_q": "Dyna-Q"}


def curves(algo: str, env_id: str, seeds: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps [K] and exact greedy returns [seeds, K] of ``algo`` with its shipped config."""
    rows = []
    for seed in range(seeds):
        module, cfg = resolve_config(algo, env=env_id, seed=seed)
        steps, values = tabular.exact_learning_curve(module, cfg, every)
        rows.append(values)
    return steps, np.stack(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="rlfoundry/GridWorld-v0")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--every", type=int, default=10, help="real steps between evaluations")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "dyna_vs_q.png"))
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = optimal_return(make_env(args.env))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    print(f"{args.env}: optimal return {best:.4f}; {args.seeds} seeds, exact evaluation "
          f"every {args.every} real steps")  # fmt: skip
    last = 0.0  # latest step at which some seed first became optimal for good
    for i, (algo, label) in enumerate(ALGOS.items()):
        t0 = time.perf_counter()
        steps, values = curves(algo, args.env, args.seeds, args.every)  # [K], [seeds, K]
        needed = np.array([tabular.steps_to_optimum(steps, v, best) for v in values])
        solved = np.isfinite(needed)
        _, cfg = resolve_config(algo, env=args.env)
        extra = f", planning_steps {cfg.planning_steps}" if hasattr(cfg, "planning_steps") else ""
        ok = needed[solved] if solved.any() else np.array([np.nan])
        last = max(last, steps[-1] if not solved.all() else ok.max())
        print(
            f"  {label:10s} steps to a lasting optimum: mean {ok.mean():.0f}, "
            f"median {np.median(ok):.0f}, min {ok.min():.0f}, max {ok.max():.0f} "
            f"({solved.sum()}/{len(needed)} seeds solved in {cfg.total_steps} steps{extra}; "
            f"{time.perf_counter() - t0:.1f} s)"
        )
        mean = values.mean(axis=0)
        ax.plot(steps, mean, color=f"C{i}", label=f"{label} (mean of {args.seeds} seeds)")
        lo, hi = np.percentile(values, [25, 75], axis=0)
        ax.fill_between(steps, lo, hi, color=f"C{i}", alpha=0.15, lw=0)
    ax.axhline(best, ls="--", color="k", lw=1, label=f"optimum {best:.2f}")
    ax.set_xlim(0, min(steps[-1], 1.3 * last))  # the rest of the budget is a flat line
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("exact return of the greedy policy")
    ax.set_title(f"Dyna-Q vs Q-learning on {args.env} (band: 25-75th percentile)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
