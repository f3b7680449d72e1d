"""Transfer and lifelong learning with the tabular agents, measured exactly.

Two experiments, each run on several seeds and written to one directory:

**Fine-tuning** (``rlfoundry transfer finetune``). An agent learns a *source* task, then
the same algorithm learns a related *target* task starting from the source's Q-table;
it is compared with learning the target from scratch (Taylor & Stone 2009, "Transfer
Learning for RL Domains: A Survey", sec. 3.1):

- *jumpstart*: return of the fine-tuned agent at step 0 minus the scratch agent's;
- *time to threshold*: target env steps until the return first reaches ``threshold``
  (by default the target's optimal return), fine-tuned vs scratch;
- *asymptotic return*: mean return over the last ``tail`` evaluations of each.

**Lifelong sequence** (``rlfoundry transfer lifelong``). One agent learns tasks
``T_0 .. T_{n-1}`` in order, carrying its Q-table from one to the next. After each task
``i`` its greedy policy is scored on every task ``j``: the matrix ``R[i, j]``. Then

    forgetting_j     = R[j, j] - R[n-1, j]                  (j < n-1)
    max_forgetting_j = max_{i < n-1} R[i, j] - R[n-1, j]    (Chaudhry et al. 2018)
    backward transfer = mean_j (R[n-1, j] - R[j, j])         (Lopez-Paz & Ranzato 2017)

so forgetting is how much of what the agent could do right after learning task j is
gone at the end.

Every "return" here is exact: :func:`rlfoundry.mdp.evaluate_policy_exact` of the greedy
policy of the Q-table under the env's time limit, no sampled episodes, so the curves
carry no evaluation noise. The agents are the library's own tabular algorithms,
unchanged: a fine-tune is started by handing the algorithm's resume path a step-0
checkpoint whose Q-table is the source's and whose env log, generator and episode tally
are those of a fresh run (:class:`_WarmRun`). GridWorld layouts of one size share their
state numbering, so a Q-table carries over cell by cell.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlfoundry.algos import get_algo
from rlfoundry.algos.tabular.common import EpisodeTally, greedy_policy
from rlfoundry.envs.evaluation import make_env
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime.config import (
    atomic_write_text,
    build_config,
    load_yaml,
    save_yaml,
    to_dict,
)
from rlfoundry.runtime.run import CHECKPOINT, Run, generator_state

#: Algorithms whose resume path the warm start uses (Dyna-Q's also needs its model).
WARM_START_ALGOS = ("qlearning", "sarsa", "expected_sarsa")

# 7x7 GridWorld layouts (S start, G goal, # wall, P pit); one size, so one state numbering.
# BRIDGE is the env's default: the 6-step bridge between the pit rows is optimal (0.80).
# START_MOVED is BRIDGE with the start in the bottom-left corner (optimum: up, then the
# bridge, 0.68). DETOUR is BRIDGE with a wall across the bridge: the best path is the
# 12-step corridor over the top (0.56).
BRIDGE = [".......", ".#####.", ".#PPP#.", "S.....G", ".#PPP#.", ".#...#.", "...#..."]
START_MOVED = [".......", ".#####.", ".#PPP#.", "......G", ".#PPP#.", ".#...#.", "S..#..."]
DETOUR = [".......", ".#####.", ".#PPP#.", "S..#..G", ".#PPP#.", ".#...#.", "...#..."]
# An open 7x7 room, the start in the centre and the goal in a different corner in each
# task (optimum 0.80 each): the greedy actions of the centre cells must change every time.
CORNERS = [
    ["G......", ".......", ".......", "...S...", ".......", ".......", "......."],
    ["......G", ".......", ".......", "...S...", ".......", ".......", "......."],
    [".......", ".......", ".......", "...S...", ".......", ".......", "......G"],
    [".......", ".......", ".......", "...S...", ".......", ".......", "G......"],
]


@dataclass
class FinetuneConfig:
    """A fine-tuning experiment: source task, target task, algorithm, budget and seeds."""

    algo: str = "qlearning"
    """Tabular algorithm for both tasks: qlearning, sarsa or expected_sarsa."""
    env_id: str = "rlfoundry/GridWorld-v0"
    """Gymnasium id shared by the two tasks; they differ only in their env kwargs."""
    source: dict[str, Any] = field(default_factory=lambda: {"layout": BRIDGE})
    """Env kwargs of the source task (e.g. {layout: [...], slip: 0.0})."""
    target: dict[str, Any] = field(default_factory=lambda: {"layout": START_MOVED})
    """Env kwargs of the target task; its states must be numbered like the source's."""
    source_steps: int = 3_000
    """Env steps of training on the source task."""
    target_steps: int = 3_000
    """Env steps of training on the target task, for the fine-tuned and the scratch agent."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Seeds; each runs source, fine-tune and scratch (fine-tune and scratch share it)."""
    eval_every: int = 50
    """Target env steps between exact evaluations of the greedy policy."""
    threshold: float | None = None
    """Return that counts as learned for time-to-threshold; None: the target's optimum."""
    tail: int = 10
    """Last evaluations averaged into the asymptotic return."""
    algo_config: dict[str, Any] = field(default_factory=dict)
    """Config values of the algorithm (as --set would give them) for every training."""

    def validate(self) -> None:
        _check_common(self.algo, self.seeds, self.eval_every)
        if self.source_steps < 1 or self.target_steps < 1 or self.tail < 1:
            raise ConfigError("source_steps, target_steps and tail must be >= 1; fix them.")


@dataclass
class LifelongConfig:
    """A lifelong sequence: tasks learned one after the other by one agent."""

    algo: str = "qlearning"
    """Tabular algorithm: qlearning, sarsa or expected_sarsa."""
    env_id: str = "rlfoundry/GridWorld-v0"
    """Gymnasium id shared by the tasks; they differ only in their env kwargs."""
    tasks: list[dict[str, Any]] = field(default_factory=lambda: [{"layout": c} for c in CORNERS])
    """Env kwargs of each task, in the order they are learned."""
    steps_per_task: int = 5_000
    """Env steps of training on each task."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Seeds of independent sequences."""
    eval_every: int = 100
    """Env steps between exact evaluations, on every task, during the sequence."""
    algo_config: dict[str, Any] = field(default_factory=dict)
    """Config values of the algorithm (as --set would give them) for every task."""

    def validate(self) -> None:
        _check_common(self.algo, self.seeds, self.eval_every)
        if len(self.tasks) < 2 or self.steps_per_task < 1:
            raise ConfigError("a lifelong sequence needs >= 2 tasks and steps_per_task >= 1.")


def _check_common(algo: str, seeds: list[int], eval_every: int) -> None:
    if algo not in WARM_START_ALGOS:
        raise ConfigError(
            f"Transfer runs the tabular agents {', '.join(WARM_START_ALGOS)}, not '{algo}'; "
            "set algo to one of them."
        )
    if not seeds or eval_every < 1:
        raise ConfigError("Give at least one seed and eval_every >= 1.")


# --------------------------------------------------------------------------- metrics


def time_to_threshold(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """First step at which ``values`` reaches ``threshold`` (``inf`` if it never does)."""
    hit = np.flatnonzero(np.asarray(values) >= threshold - 1e-9)
    return float(steps[hit[0]]) if len(hit) else float("inf")


def forgetting(R: np.ndarray) -> np.ndarray:
    """``R[j, j] - R[n-1, j]`` for ``j < n-1`` of a ``[n, n]`` matrix whose row i holds the
    returns on every task after learning task i: the drop from right after learning j."""
    R = np.asarray(R, dtype=np.float64)
    n = R.shape[0]
    return np.array([R[j, j] - R[n - 1, j] for j in range(n - 1)])


def max_forgetting(R: np.ndarray) -> np.ndarray:
    """``max_{i < n-1} R[i, j] - R[n-1, j]`` for ``j < n-1`` (Chaudhry et al. 2018): the drop
    from the best the agent ever did on task j, at or after learning it."""
    R = np.asarray(R, dtype=np.float64)
    n = R.shape[0]
    return np.array([R[j : n - 1, j].max() - R[n - 1, j] for j in range(n - 1)])


def backward_transfer(R: np.ndarray) -> float:
    """``mean_{j < n-1} (R[n-1, j] - R[j, j])`` (GEM's BWT): negative means forgetting."""
    return float(-forgetting(R).mean())


# --------------------------------------------------------------------------- training


class _WarmRun(Run):
    """A Run in a scratch directory that (1) starts the algorithm from ``q0`` when given,
    by answering its resume call with a step-0 checkpoint, (2) scores the Q-table it is
    handed every ``every`` steps with ``score`` and (3) keeps the last Q-table.

    It relies only on the tabular loop contract (``checkpoint_due`` asked every step,
    ``save_checkpoint`` given the Q-table as ``q``, resume through ``load_checkpoint``)."""

    def __init__(self, path: Path, cfg: Any, every: int, score: Any, q0: np.ndarray | None):
        super().__init__(path, cfg.total_steps, progress=False, tensorboard=False)
        self.cfg, self.every, self.score, self.q0 = cfg, every, score, q0
        self.steps: list[int] = []
        self.values: list[Any] = []
        self.q: np.ndarray | None = None

    def load_checkpoint(self, restore_rng: bool = True) -> Any:
        if self.q0 is None:
            return None
        fresh = {
            "q": torch.as_tensor(self.q0),
            "replay/actions": torch.zeros(0, dtype=torch.int64),
        }
        state = {
            "rng": generator_state(np.random.default_rng(self.cfg.seed)),
            "tally": EpisodeTally(self.cfg.log_every).state(),
        }
        return 0, fresh, state

    def checkpoint_due(self, step: int) -> bool:
        return step % self.every == 0 or step >= self.total_steps

    def save_checkpoint(self, step: int, tensors: dict, state: dict | None = None) -> Path:
        self.q = np.array(tensors["q"], dtype=np.float64)
        if not self.steps or self.steps[-1] != step:
            self.steps.append(step)
            self.values.append(self.score(self.q))
        return self.path / CHECKPOINT

    def log(self, step: int, **metrics: float) -> None:
        pass


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
    module = get_algo(algo)
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
    start = q0 if q0 is not None else np.full((n_obs, n_act), cfg.q_init)
    np.random.seed(seed)  # nothing tabular draws from it; keep the global state defined
    with tempfile.TemporaryDirectory() as tmp, _WarmRun(Path(tmp), cfg, every, score, q0) as run:
        first = score(start)
        module.train(cfg, run)
        out_steps = np.asarray([0, *run.steps])
        values = [first, *run.values]
        q = run.q
    return out_steps, values, q


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


# --------------------------------------------------------------------------- output


def plot_transfer(
    finetune: dict | list[dict] | None,
    lifelong: dict | None,
    path: str | Path,
    titles: list[str] | None = None,
) -> Path:
    """One panel per fine-tuning result (fine-tune vs scratch: mean and min-max over
    seeds) and one for a lifelong result (return on every task along the sequence, mean
    over seeds). ``titles`` name the fine-tuning panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finetunes = [] if finetune is None else finetune if isinstance(finetune, list) else [finetune]
    n_panels = len(finetunes) + (lifelong is not None)
    fig, axes = plt.subplots(1, n_panels, figsize=(6.2 * n_panels, 4.2), squeeze=False)
    ax_iter = iter(axes[0])
    for k, res in enumerate(finetunes):
        ax = next(ax_iter)
        steps = np.asarray(res["steps"])
        for key, colour in (("finetune", "tab:blue"), ("scratch", "tab:orange")):
            c = np.asarray(res["curves"][key])
            label = "fine-tuned from source" if key == "finetune" else "from scratch"
            ax.plot(steps, c.mean(0), color=colour, label=f"{label} (mean)")
            ax.fill_between(steps, c.min(0), c.max(0), color=colour, alpha=0.2)
        ax.axhline(res["threshold"], color="grey", ls="--", lw=1, label="threshold")
        ax.set_xlabel("target-task env steps")
        ax.set_ylabel("exact return of greedy policy")
        n = len(res["per_seed"])
        head = titles[k] if titles else f"transfer: {res['config']['algo']}"
        ax.set_title(f"{head}, {n} seeds (band: min-max)", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    if lifelong is not None:
        ax = next(ax_iter)
        c = np.asarray(lifelong["curves"], dtype=np.float64)  # [seeds, points, 1 + n]
        n = c.shape[2] - 1
        steps = c[0, :, 0]
        per = lifelong["config"]["steps_per_task"]
        for j in range(n):
            ax.plot(steps, c[:, :, 1 + j].mean(0), label=f"return on task {j}")
        for i in range(1, n):
            ax.axvline(i * per, color="grey", lw=0.8, ls=":")
        bwt = lifelong["backward_transfer_mean"]
        ax.set_title(f"lifelong: tasks learned in order (BWT {bwt:.2f})", fontsize=10)
        ax.set_xlabel("env steps over the sequence")
        ax.set_ylabel("exact return (mean over seeds)")
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(x: float) -> str:
    return "never" if x == float("inf") else f"{x:.4g}"


def finetune_table(res: dict) -> str:
    """Markdown table of the fine-tuning metrics (mean over seeds; steps: median)."""
    m, med = res["mean"], res["median"]
    rows = [
        "| | fine-tuned | scratch |",
        "|---|---:|---:|",
        f"| return at step 0 (mean) | {m['initial_return_finetune']:.3f} "
        f"| {m['initial_return_scratch']:.3f} |",
        f"| jumpstart (mean) | {m['jumpstart']:+.3f} | |",
        f"| steps to threshold {res['threshold']:.3f} (median) "
        f"| {_fmt(med['steps_to_threshold_finetune'])} | {_fmt(med['steps_to_threshold_scratch'])} |",
        f"| asymptotic return (mean of last evals) | {m['asymptotic_return_finetune']:.3f} "
        f"| {m['asymptotic_return_scratch']:.3f} |",
        f"| area under curve / steps (mean) | {m['area_finetune']:.3f} | {m['area_scratch']:.3f} |",
    ]
    return "\n".join(rows)


def lifelong_table(res: dict) -> str:
    """Markdown table: R (mean over seeds), forgetting per task, backward transfer."""
    R = np.asarray(res["R_mean"])
    n = R.shape[0]
    head = "| after learning | " + " | ".join(f"task {j}" for j in range(n)) + " |"
    rows = [head, "|---" + "|---:" * n + "|"]
    for i in range(n):
        rows.append(f"| task {i} | " + " | ".join(f"{R[i, j]:.3f}" for j in range(n)) + " |")
    fg = res["forgetting_mean"]
    rows.append("| **forgetting** | " + " | ".join(f"{x:.3f}" for x in fg) + " | |")
    rows.append(f"\nBackward transfer (mean over seeds): {res['backward_transfer_mean']:.3f}")
    return "\n".join(rows)


def write_result(kind: str, res: dict, out: Path) -> None:
    """``out/config.yaml``, ``out/results.json`` (curves included), ``out/curves.csv``,
    ``out/transfer.png`` and ``out/summary.md``."""
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(out / "config.yaml", {"experiment": kind, **res["config"]})
    atomic_write_text(out / "results.json", json.dumps(res, indent=1) + "\n")
    with (out / "curves.csv").open("w", newline="") as f:
        w = csv.writer(f)
        if kind == "finetune":
            w.writerow(["seed", "curve", "step", "return"])
            for key, cs in res["curves"].items():
                for seed, c in zip(res["config"]["seeds"], cs):
                    w.writerows([seed, key, s, v] for s, v in zip(res["steps"], c))
        else:
            n = len(res["config"]["tasks"])
            w.writerow(["seed", "step", *[f"return_task{j}" for j in range(n)]])
            for seed, c in zip(res["config"]["seeds"], res["curves"]):
                w.writerows([seed, *row] for row in c)
    plot_transfer(res if kind == "finetune" else None, res if kind == "lifelong" else None,
                  out / "transfer.png")  # fmt: skip
    table = finetune_table(res) if kind == "finetune" else lifelong_table(res)
    atomic_write_text(out / "summary.md", table + "\n")


# --------------------------------------------------------------------------- CLI


def _cmd(args: argparse.Namespace) -> int:
    from rlfoundry.runtime.config import parse_overrides

    kind = args.transfer_command
    cls = FinetuneConfig if kind == "finetune" else LifelongConfig
    file_cfg = load_yaml(args.config) if args.config else {}
    file_cfg.pop("experiment", None)
    flags = {"seeds": args.seeds} if args.seeds else {}
    if args.algo:
        flags["algo"] = args.algo
    cfg = build_config(cls, file_cfg, parse_overrides(args.set), flags)
    cfg.validate()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/transfer-{kind}-{stamp}")
    if (out / "results.json").exists():
        raise RLFoundryError(f"'{out}' already holds results; choose another --out.")
    torch.set_num_threads(1)
    res = run_finetune(cfg) if kind == "finetune" else run_lifelong(cfg)
    write_result(kind, res, out)
    print((out / "summary.md").read_text(), end="")
    print(f"\nwrote {out}/results.json, curves.csv, transfer.png")
    return 0


def register(sub: Any) -> None:
    """``rlfoundry transfer finetune|lifelong``, hooked into :data:`rlfoundry.cli.main.EXTRA_COMMANDS`."""
    p = sub.add_parser("transfer", help="transfer (fine-tune vs scratch) and lifelong learning")
    tsub = p.add_subparsers(dest="transfer_command", required=True)
    helps = {
        "finetune": "learn a source task, fine-tune on a target task, compare with scratch",
        "lifelong": "learn a sequence of tasks with one agent and measure forgetting",
    }
    for name, text in helps.items():
        q = tsub.add_parser(name, help=text)
        q.add_argument("--config", help="YAML file of experiment values (see the module doc)")
        q.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help="override one value (repeatable)"
        )
        q.add_argument("--algo", help="tabular algorithm (qlearning, sarsa, expected_sarsa)")
        q.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2 3 4)")
        q.add_argument("--out", help="output directory (default runs/transfer-KIND-TIME)")
        q.set_defaults(func=_cmd)
