"""Plots and tables of the multi-agent and meta-RL algorithms from their run directories.

    python benchmarks/beyond_ma_meta.py selfplay RUN_DIR          # docs/img/selfplay_tictactoe.png
    python benchmarks/beyond_ma_meta.py rl2 RUN_DIR               # docs/img/rl2_regret.png
    python benchmarks/beyond_ma_meta.py rl2_mdp RUN_DIR           # docs/img/rl2_mdp.png
    python benchmarks/beyond_ma_meta.py mappo CENTRAL_DIR INDEP_DIR  # docs/img/mappo_spread.png

Each RUN_DIR comes from ``rlfoundry train`` (the commands are in
``docs/beyond_multiagent_meta.md``). The script trains nothing: it reads metrics.csv,
loads the checkpoint where it needs the policy (RL^2's regret curve on held-out tasks,
against UCB1, Thompson sampling, epsilon-greedy and random arms on the same tasks; on
random MDPs, its return per episode of a trial against Q-learning, PSRL, random actions
and each MDP's optimal policy), and prints the numbers it plots.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from rlfoundry.api import resolve_config
from rlfoundry.runtime.config import load_yaml
from rlfoundry.runtime.plotting import read_metrics

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cfg(run: Path):
    data = load_yaml(run / "config.yaml")
    return resolve_config(data["algo"], config=data)


def selfplay(run: Path, out: Path) -> None:
    m = read_metrics(run)
    ok = ~np.isnan(m["win_vs_random_first"])
    x = m["step"][ok]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(x, m["win_vs_random_first"][ok], "C0-", label="win vs random, moving first")
    ax.plot(x, m["win_vs_random_second"][ok], "C0--", label="win vs random, moving second")
    if "loss_vs_search_first" in m:
        ax.plot(x, 1 - m["loss_vs_search_first"][ok], "C3-", label="not lost vs minimax, first")
        ax.plot(x, 1 - m["loss_vs_search_second"][ok], "C3--", label="not lost vs minimax, second")
    ax.axhline(0.995, color="k", ls=":", lw=1, label="ceiling vs random, first (99.5%)")
    ax.set_xlabel("moves played in training (both seats)")
    ax.set_ylabel("rate (greedy policy)")
    ax.set_ylim(0, 1.02)
    ax.set_title("self-play PPO on tic-tac-toe (PettingZoo)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")
    summary = (
        json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    )
    keys = [k for k in summary if k.startswith(("win_", "draw_", "loss_"))] + ["illegal_moves"]
    for k in keys:
        if k in summary:
            print(f"{k:>24}: {summary[k]}")


def rl2(run: Path, out: Path, tasks: int, seed: int) -> None:
    from rlfoundry.algos.meta import rl2 as algo
    from rlfoundry.envs import meta
    from rlfoundry.mdp import bandits

    _, cfg = _cfg(run)
    agent = algo.load_agent(run, cfg)
    torch.manual_seed(seed)
    curves: dict[str, np.ndarray] = {}
    ev = algo.evaluate(agent, cfg, tasks, seed)
    curves["RL$^2$ (sampled actions)"] = ev["regret_curve"]
    ev = algo.evaluate(agent, cfg, tasks, seed, greedy=True)
    curves["RL$^2$ (greedy)"] = ev["regret_curve"]
    bt = meta.make_tasks("bandit", tasks, **cfg.env_kwargs)
    bt.reset(np.random.default_rng(seed))  # the same arm means as RL^2's evaluation
    for name, fn in bandits.BASELINES.items():
        acts, _ = fn(bt.means, bt.trial_len, np.random.default_rng(seed + 1))
        curves[name] = bandits.cumulative_regret(bt.means, acts).mean(0)
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(np.arange(1, len(c) + 1), c, color=f"C{i}", label=f"{name}: {c[-1]:.2f}")
        print(f"{name.replace('$^2$', '2'):>26}: regret at t={len(c)}: {c[-1]:.3f}")
    ax.set_xlabel("pull t")
    ax.set_ylabel("cumulative pseudo-regret")
    k = cfg.env_kwargs.get("arms", 5)
    ax.set_title(f"{k}-armed Bernoulli bandits, {tasks} held-out tasks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    m = read_metrics(run)
    ok = ~np.isnan(m["eval_regret"])
    ax2.plot(m["step"][ok], m["eval_regret"][ok], "C0-", label="RL$^2$ (sampled), held-out")
    for i, name in enumerate(bandits.BASELINES, start=2):
        ax2.axhline(curves[name][-1], color=f"C{i}", ls="--", lw=1, label=name)
    ax2.set_xlabel("training steps (pulls over all tasks)")
    ax2.set_ylabel(f"regret at t={len(curves[name])}")
    ax2.set_title("RL$^2$ during meta-training")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def rl2_mdp(run: Path, out: Path, tasks: int, seed: int) -> None:
    from rlfoundry.algos.meta import rl2 as algo
    from rlfoundry.envs import meta
    from rlfoundry.mdp import learners as mdp_learners

    _, cfg = _cfg(run)
    agent = algo.load_agent(run, cfg)
    torch.manual_seed(seed)

    def new_tasks() -> meta.MDPTasks:
        mt = meta.make_tasks("mdp", tasks, **cfg.env_kwargs)
        mt.reset(np.random.default_rng(seed))  # the same MDPs for every policy
        return mt

    mt = new_tasks()
    E, L = mt.episodes, mt.episode_len
    per_ep: dict[str, np.ndarray] = {}  # mean return of episode k of the trial, [E]
    for greedy, name in ((False, "RL$^2$ (sampled)"), (True, "RL$^2$ (greedy)")):
        # play_trials redraws tasks from its generator: seeded like new_tasks()
        b = algo.play_trials(agent, new_tasks(), np.random.default_rng(seed), greedy)
        per_ep[name] = b["rew"].numpy().reshape(E, L, -1).sum(1).mean(1)
    for name, fn in mdp_learners.BASELINES.items():
        rew = fn(new_tasks(), np.random.default_rng(seed + 1))
        per_ep[name] = rew.reshape(E, L, -1).sum(1).mean(1)
    opt = mt.optimal_episode_return().mean()
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    x = np.arange(1, E + 1)
    for i, (name, r) in enumerate(per_ep.items()):
        ax.plot(x, r, "o-", color=f"C{i}", label=f"{name}: trial {r.sum():.1f}")
        print(
            f"{name.replace('$^2$', '2'):>20}: trial return {r.sum():7.2f}, per episode "
            + " ".join(f"{v:5.1f}" for v in r)
        )
    ax.axhline(opt, color="k", ls="--", lw=1, label=f"optimal policy: trial {opt * E:.1f}")
    print(f"{'optimal (knows MDP)':>20}: trial return {opt * E:7.2f}")
    ax.set_xlabel("episode of the trial (same MDP)")
    ax.set_ylabel(f"mean episode return ({L} steps)")
    ax.set_title(f"random MDPs ({mt.S} states, {mt.n_act} actions), {tasks} held-out tasks")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    m = read_metrics(run)
    ok = ~np.isnan(m["eval_trial_return"])
    ax2.plot(m["step"][ok], m["eval_trial_return"][ok], "C0-", label="RL$^2$ (sampled), held-out")
    for i, name in enumerate(mdp_learners.BASELINES, start=2):
        ax2.axhline(per_ep[name].sum(), color=f"C{i}", ls="--", lw=1, label=name)
    ax2.axhline(opt * E, color="k", ls="--", lw=1, label="optimal")
    ax2.set_xlabel("training steps (over all tasks)")
    ax2.set_ylabel(f"trial return ({E} episodes)")
    ax2.set_title("RL$^2$ during meta-training")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def mappo(runs: list[Path], out: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    rand = None
    for i, run in enumerate(runs):
        _, cfg = _cfg(run)
        m = read_metrics(run)
        ok = ~np.isnan(m["eval_return"])
        label = {
            "central": "MAPPO (centralised critic)",
            "independent": "IPPO (independent critics)",
        }[cfg.critic]
        ax.plot(m["step"][ok], m["eval_return"][ok], f"C{i}-", label=label)
        summary = json.loads((run / "summary.json").read_text())
        rand = summary.get("random_mean_return", rand)
        print(
            f"{label:>28}: final greedy team return {summary['eval_mean_return']:.2f} "
            f"+- {summary['eval_std_return']:.2f} over {summary['eval_episodes']} episodes"
        )
    if rand is not None:
        ax.axhline(rand, color="k", ls="--", lw=1, label=f"random actions ({rand:.1f})")
        print(f"{'random actions':>28}: {rand:.2f}")
    ax.set_xlabel("environment steps (summed over copies)")
    ax.set_ylabel("team return per episode (greedy)")
    ax.set_title("parameter-shared PPO on mpe2 simple_spread_v3 (3 agents)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["selfplay", "rl2", "rl2_mdp", "mappo"])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--tasks", type=int, default=1000, help="held-out tasks (rl2, rl2_mdp)")
    p.add_argument("--seed", type=int, default=123_456, help="seed of the held-out tasks (rl2)")
    args = p.parse_args(argv)
    IMG.mkdir(parents=True, exist_ok=True)
    if args.what == "selfplay":
        selfplay(args.runs[0], args.out or IMG / "selfplay_tictactoe.png")
    elif args.what == "rl2":
        rl2(args.runs[0], args.out or IMG / "rl2_regret.png", args.tasks, args.seed)
    elif args.what == "rl2_mdp":
        rl2_mdp(args.runs[0], args.out or IMG / "rl2_mdp.png", args.tasks, args.seed)
    else:
        mappo(args.runs, args.out or IMG / "mappo_spread.png")


if __name__ == "__main__":
    main()
