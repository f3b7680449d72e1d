"""rlfoundry against Stable-Baselines3 on classic control, same machine, same settings.

    python benchmarks/classic.py --quick             # CartPole PPO + DQN, 1 seed, a few minutes
    python benchmarks/classic.py --seeds 3           # CartPole PPO + DQN, seeds 0..2
    python benchmarks/classic.py --lunar --acrobot   # also PPO LunarLander-v3, DQN Acrobot-v1
    python benchmarks/classic.py --only rlfoundry --tasks dqn-cartpole --seeds 5 --no-write
    python benchmarks/classic.py --process           # PPO CartPole as whole processes (classic_process.py)

For each task and seed the two libraries run one after the other in this process, the
order alternating from seed to seed (rlfoundry first on even seeds, SB3 first on odd
ones), both with one torch thread. rlfoundry runs the shipped tuned config of (algo,
env) with its defaults (CSV + TensorBoard logging, a checkpoint every 60 s); SB3 gets the
same hyperparameters translated to its names (:func:`sb3_peer.sb3_kwargs`) and the same
initialisation (:func:`sb3_peer.match_init`). The remaining differences are listed in
``benchmarks/README.md``.

Same evaluation protocol and grid for both: every ``eval_every`` env steps (DQN: right
after the env step that reaches it, on both sides; PPO: at the first update boundary
after it, where both libraries' rollouts end), the deterministic policy plays
``eval_episodes`` episodes seeded 10_000 + i with
:func:`rlfoundry.envs.evaluation.evaluate`; training stops once the mean return reaches
the threshold. The time of these evaluations (and, for rlfoundry, of the checkpoint
written to evaluate from) is subtracted, so "time to threshold" is training time only.
The final policy is then evaluated on 20 other episodes (seeds 20_000 + i).

Each library first does one short unrecorded warm-up run per task (one-off first-call
costs of several seconds would otherwise go to whoever runs first). The tables report
medians over the seeds (at least 3 for a figure to be quoted). Writes the section
between ``<!-- classic -->`` markers of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from results import machine, write_marked_section
from sb3_peer import match_init, sb3_kwargs

from rlfoundry.api import resolve_config
from rlfoundry.envs.evaluation import eval_seed, evaluate, make_env
from rlfoundry.runtime.callbacks import Callback
from rlfoundry.runtime.run import Run, seed_everything

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
EVAL_SEED, FINAL_SEED, FINAL_EPISODES = eval_seed(0), 20_000, 20


@dataclass
class Task:
    algo: str
    env_id: str
    threshold: float
    eval_every: int
    max_steps: int | None = None  # None: the tuned config's total_steps


TASKS = {
    "ppo-cartpole": Task("ppo", "CartPole-v1", 475.0, 5_000),
    "dqn-cartpole": Task("dqn", "CartPole-v1", 475.0, 5_000),
    "ppo-lunar": Task("ppo", "LunarLander-v3", 200.0, 25_000, 1_000_000),
    "dqn-acrobot": Task("dqn", "Acrobot-v1", -100.0, 5_000),
}


# --------------------------------------------------------------------------- rlfoundry side


class EvalUntilThreshold(Callback):
    """A Run callback that evaluates the policy each time ``eval_every`` steps have passed
    and asks the loop to stop once the threshold is reached. It relies only on the
    algorithm contract: the loop asks ``checkpoint_due`` and then saves, and returns after
    saving when ``stop_requested`` is set; the policy comes from ``load_policy`` on the
    file. The time from the request to the end of the evaluation is not training time.
    (Building the policy draws from torch's generator, as it did when these figures were
    first measured; the SB3 side evaluates its live model.)"""

    def __init__(self, module: Any, cfg: Any, task: Task, episodes: int) -> None:
        self.module, self.cfg, self.task, self.episodes = module, cfg, task, episodes
        self.next_eval = task.eval_every
        self.pending: tuple[float, float] | None = None  # when the checkpoint was asked for
        self.overhead = self.overhead_cpu = 0.0
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.curve: list[tuple[int, float, float]] = []  # (step, eval mean, train seconds)
        self.reached: tuple[int, float, float] | None = None  # (step, wall s, CPU s)
        self.env = make_env(cfg.env_id, **getattr(cfg, "env_kwargs", {}))

    def train_seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.overhead

    def train_cpu_seconds(self) -> float:
        return time.process_time() - self.c0 - self.overhead_cpu

    def checkpoint_due(self, step: int) -> bool:
        if step < self.next_eval:
            return False
        if self.pending is None:
            self.pending = (time.perf_counter(), time.process_time())
        return True

    def on_checkpoint(self, run: Run, step: int, tensors: dict, state: dict) -> None:
        if self.pending is None:
            return
        t, c = self.pending
        self.pending = None
        train_s, train_c = t - self.t0 - self.overhead, c - self.c0 - self.overhead_cpu
        while self.next_eval <= step:
            self.next_eval += self.task.eval_every
        policy = self.module.load_policy(run.path, self.cfg)
        mean = evaluate(policy, self.env, self.episodes, EVAL_SEED)["eval_mean_return"]
        self.curve.append((step, mean, train_s))
        if mean >= self.task.threshold and self.reached is None:
            self.reached = (step, train_s, train_c)
            run.stop_requested = True
        self.overhead += time.perf_counter() - t
        self.overhead_cpu += time.process_time() - c


def run_rlfoundry(task: Task, seed: int, episodes: int) -> dict[str, Any]:
    overrides = {"total_steps": task.max_steps} if task.max_steps else None
    module, cfg = resolve_config(task.algo, env=task.env_id, seed=seed, overrides=overrides)
    torch.set_num_threads(1)
    seed_everything(cfg.seed)
    with tempfile.TemporaryDirectory() as tmp:
        ev = EvalUntilThreshold(module, cfg, task, episodes)
        with Run(Path(tmp), cfg.total_steps, progress=False, callbacks=[ev]) as run:
            module.train(cfg, run)
        train_s, train_c = ev.train_seconds(), ev.train_cpu_seconds()
        policy = module.load_policy(tmp, cfg)
        final = evaluate(policy, ev.env, FINAL_EPISODES, FINAL_SEED)["eval_mean_return"]
        ev.env.close()
    return _result(run.step, train_s, train_c, ev.reached, ev.curve, final, cfg.total_steps)


# --------------------------------------------------------------------------- SB3 side


def run_sb3(task: Task, seed: int, episodes: int) -> dict[str, Any]:
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    overrides = {"total_steps": task.max_steps} if task.max_steps else None
    _, cfg = resolve_config(task.algo, env=task.env_id, seed=seed, overrides=overrides)
    torch.set_num_threads(1)
    seed_everything(seed)
    eval_env = make_env(cfg.env_id, **getattr(cfg, "env_kwargs", {}))

    class EvalCallback(BaseCallback):
        """Same protocol and grid as :class:`EvalUntilThreshold`: PPO at the start of each
        rollout (right after an update, where rlfoundry's PPO checks ``checkpoint_due``),
        DQN after the env step that crosses each multiple of ``eval_every``."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval, self.overhead, self.overhead_cpu = task.eval_every, 0.0, 0.0
            self.curve: list[tuple[int, float, float]] = []
            self.reached: tuple[int, float, float] | None = None
            self.t0, self.c0 = time.perf_counter(), time.process_time()
            self.stop = False

        def _on_rollout_start(self) -> None:
            if task.algo != "dqn":  # PPO: at the update boundary, as rlfoundry's PPO
                self._maybe_eval()

        def _maybe_eval(self) -> None:
            step = self.num_timesteps
            if step < self.next_eval or self.stop:
                return
            t, c = time.perf_counter(), time.process_time()
            train_s, train_c = t - self.t0 - self.overhead, c - self.c0 - self.overhead_cpu
            while self.next_eval <= step:
                self.next_eval += task.eval_every
            mean = evaluate(_sb3_policy(self.model), eval_env, episodes, EVAL_SEED)[
                "eval_mean_return"
            ]
            self.curve.append((step, mean, train_s))
            if mean >= task.threshold:
                self.reached, self.stop = (step, train_s, train_c), True
            self.overhead += time.perf_counter() - t
            self.overhead_cpu += time.process_time() - c

        def _on_step(self) -> bool:
            # DQN: right after the env step that reaches K*k, the grid rlfoundry's DQN
            # evaluates on (it asks checkpoint_due after every env step); the Q-network
            # is the same there, since SB3 trains only after its train_freq rollout.
            if task.algo == "dqn":
                self._maybe_eval()
            return not self.stop

    cb = EvalCallback()  # the clock starts here: env and model construction count
    if task.algo == "dqn":
        env = make_vec_env(cfg.env_id, n_envs=cfg.num_envs, seed=seed, env_kwargs=cfg.env_kwargs)
        model = DQN("MlpPolicy", env, seed=seed, device="cpu", **sb3_kwargs("dqn", cfg))
        match_init(model, cfg)  # cfg.orthogonal_init (Acrobot) on SB3's side too
    else:
        env = make_vec_env(cfg.env_id, n_envs=cfg.num_envs, seed=seed, env_kwargs=cfg.env_kwargs)
        if cfg.norm_obs or cfg.norm_reward:
            env = VecNormalize(
                env,
                norm_obs=cfg.norm_obs,
                norm_reward=cfg.norm_reward,
                clip_obs=cfg.clip_obs,
                clip_reward=cfg.clip_reward,
                gamma=cfg.gamma,
            )
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", **sb3_kwargs("ppo", cfg))
    model.learn(total_timesteps=cfg.total_steps, callback=cb)
    train_s = time.perf_counter() - cb.t0 - cb.overhead
    train_c = time.process_time() - cb.c0 - cb.overhead_cpu
    final = evaluate(_sb3_policy(model), eval_env, FINAL_EPISODES, FINAL_SEED)["eval_mean_return"]
    env.close()
    eval_env.close()
    return _result(
        model.num_timesteps, train_s, train_c, cb.reached, cb.curve, final, cfg.total_steps
    )


def _sb3_policy(model: Any):
    venv = model.get_env()
    norm = getattr(venv, "normalize_obs", None) if hasattr(venv, "obs_rms") else None

    def policy(obs: Any) -> Any:
        x = norm(obs) if norm is not None else obs
        return model.predict(x, deterministic=True)[0]

    return policy


# --------------------------------------------------------------------------- report


def _result(steps, train_s, train_c, reached, curve, final, total) -> dict[str, Any]:
    return {
        "steps": int(steps),
        "train_seconds": round(train_s, 2),
        "train_cpu_seconds": round(train_c, 2),
        "sps": round(steps / max(train_s, 1e-9), 1),
        "cpu_sps": round(steps / max(train_c, 1e-9), 1),
        "reached_step": reached[0] if reached else None,
        "seconds_to_threshold": round(reached[1], 2) if reached else None,
        "cpu_seconds_to_threshold": round(reached[2], 2) if reached else None,
        "final_eval": final,
        "total_steps": int(total),
        "curve": [(s, round(m, 1), round(t, 2)) for s, m, t in curve],
    }


def _count(res: dict[str, list[dict]], lib: str) -> str:
    if lib not in res:
        return "-"
    return str(sum(x["reached_step"] is not None for x in res[lib]))


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def report(results: dict[str, dict[str, list[dict]]], args: argparse.Namespace, load: str) -> str:
    import stable_baselines3

    tasks = ", ".join(f"{TASKS[t].algo.upper()} {TASKS[t].env_id}" for t in results)
    title = "on classic control" if args.section == "classic" else f"on {tasks}"
    lines = [
        f"<!-- {args.section} -->",
        f"## rlfoundry vs Stable-Baselines3 {title} (`benchmarks/classic.py`)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; torch {torch.__version__}, "
        f"stable-baselines3 {stable_baselines3.__version__}; both single-threaded "
        f"(`torch.set_num_threads(1)`), run in one process per seed, the order alternating from seed to seed, after "
        "one unrecorded warm-up run each; load "
        f"average before the run {load}. The machine is shared: under its load wall "
        "seconds mostly measure the other jobs, so the ratio to read is the one of "
        "CPU seconds (`time.process_time()` of the process, same interleaving).",
        "",
        f"Protocol: deterministic eval of {args.eval_episodes} episodes every K env steps "
        "(same episode seeds for both), stop at the threshold; times exclude the "
        f"evaluations. Final = deterministic mean return over {FINAL_EPISODES} fresh "
        "episodes of the policy at the stop. Time to threshold: median over the seeds "
        "that reached it. Ratio = rlfoundry / SB3 (< 1: rlfoundry faster).",
        "",
        "| task | threshold | K | seeds | reached rlf / SB3 | CPU s to threshold rlf / SB3 | ratio | wall s to threshold rlf / SB3 | ratio | env steps per CPU s rlf / SB3 | ratio | steps to threshold rlf / SB3 | final return rlf / SB3 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def med(rows: list[dict], key: str, reached_only: bool = True) -> float | None:
        return _median([x[key] for x in rows if x["reached_step"] is not None or not reached_only])

    def pair(a: float | None, b: float | None, spec: str = ".1f") -> str:
        ratio = _fmt(a / b if a and b else None, ".2f")
        return f"{_fmt(a, spec)} / {_fmt(b, spec)} | {ratio}"

    for name, res in results.items():
        task = TASKS[name]
        r, s = res.get("rlfoundry", []), res.get("sb3", [])
        lines.append(
            f"| {task.algo.upper()} {task.env_id} | {task.threshold:g} | {task.eval_every} "
            f"| {max(len(r), len(s))} | {_count(res, 'rlfoundry')} / {_count(res, 'sb3')} "
            f"| {pair(med(r, 'cpu_seconds_to_threshold'), med(s, 'cpu_seconds_to_threshold'))} "
            f"| {pair(med(r, 'seconds_to_threshold'), med(s, 'seconds_to_threshold'))} "
            f"| {pair(med(r, 'cpu_sps', False), med(s, 'cpu_sps', False), '.0f')} "
            f"| {_fmt(med(r, 'reached_step'), '.0f')} / {_fmt(med(s, 'reached_step'), '.0f')} "
            f"| {_fmt(med(r, 'final_eval', False))} / {_fmt(med(s, 'final_eval', False))} |"
        )
    lines += [
        "",
        "Per seed (CPU s to threshold @ env steps, or `-` if not reached; env steps per "
        "CPU s over the whole run; final return):",
        "",
    ]
    for name, res in results.items():
        for lib, rows in res.items():
            cells = [
                f"s{x['seed']}: {_fmt(x['cpu_seconds_to_threshold'])} @ "
                f"{x['reached_step'] or '-'}, {x['cpu_sps']:.0f}/s, final {x['final_eval']:.0f}"
                for x in sorted(rows, key=lambda x: x["seed"])
            ]
            lines.append(f"- {name} {lib}: " + "; ".join(cells))
    lines += [
        "",
        f"Reproduce: `{args.command}`. Differences that remain: `benchmarks/README.md`.",
        f"<!-- /{args.section} -->",
    ]
    return "\n".join(lines) + "\n"


def write_results(section: str, name: str = "classic") -> None:
    write_marked_section(RESULTS, name, section)


def _loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--process"]:  # whole-process CPU time: its own script and section
        import classic_process

        return classic_process.main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 5 eval episodes, CartPole only")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument(
        "--tasks", nargs="*", default=["ppo-cartpole", "dqn-cartpole"], choices=list(TASKS)
    )
    p.add_argument("--lunar", action="store_true", help="add PPO LunarLander-v3 (>= 200 within 1M)")
    p.add_argument("--acrobot", action="store_true", help="add DQN Acrobot-v1 (>= -100)")
    p.add_argument("--only", choices=["rlfoundry", "sb3"], help="run one library only")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs already in --json and do only the missing (task, library, seed)",
    )
    p.add_argument(
        "--section",
        default="classic",
        help="the marked section of RESULTS.md to write (e.g. classic-acrobot for --acrobot alone)",
    )
    p.add_argument(
        "--merge",
        nargs="*",
        type=Path,
        help="no runs: report from these --json files (e.g. one process per seed)",
    )
    args = p.parse_args(argv)
    args.command = " ".join(["python benchmarks/classic.py", *sys.argv[1:]])
    if args.merge:
        merged: dict[str, dict[str, list[dict]]] = {}
        for path in args.merge:
            for name, res in json.loads(path.read_text()).items():
                for lib, rows in res.items():
                    merged.setdefault(name, {}).setdefault(lib, []).extend(rows)
        args.eval_episodes = 10
        loads = [x["load"] for res in merged.values() for rows in res.values() for x in rows]
        section = report(merged, args, f"{min(loads):.1f}-{max(loads):.1f} (at each run's start)")
        print(section)
        if not args.no_write:
            write_results(section, args.section)
        return 0
    if args.quick:
        args.seeds, args.eval_episodes = 1, 5
    tasks = (
        list(args.tasks)
        + (["ppo-lunar"] if args.lunar else [])
        + (["dqn-acrobot"] if args.acrobot else [])
    )
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    libs = {"rlfoundry": run_rlfoundry, "sb3": run_sb3}
    if args.only:
        libs = {args.only: libs[args.only]}
    torch.set_num_threads(1)
    try:
        load = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        load = "?"

    results: dict[str, dict[str, list[dict]]] = {t: {lib: [] for lib in libs} for t in tasks}
    if args.resume and args.json and args.json.exists():  # runs a killed benchmark finished
        for name, res in json.loads(args.json.read_text()).items():
            for lib, rows in res.items():
                if name in results and lib in results[name]:
                    results[name][lib] = [x for x in rows if x["seed"] in args.seed_list]

    def done(name: str, lib: str, seed: int) -> bool:
        return any(x["seed"] == seed for x in results[name][lib])

    # Warm-up, not recorded: the first run in a process pays one-off costs (lazy imports,
    # first-call kernel setup) of several seconds, which would go to whoever runs first.
    for name in tasks:
        if all(done(name, lib, s) for lib in libs for s in args.seed_list):
            continue
        for lib in libs:
            task = TASKS[name]
            libs[lib](Task(task.algo, task.env_id, float("-inf"), 1, task.max_steps), 0, 1)

    for seed in args.seed_list:
        for name in tasks:
            # order alternates: rlfoundry first on even seeds, SB3 first on odd ones
            for lib in list(libs) if seed % 2 == 0 else list(libs)[::-1]:
                if done(name, lib, seed):
                    continue
                gc.collect()
                load_now = _loadavg()
                res = libs[lib](TASKS[name], seed, args.eval_episodes)
                res["seed"], res["load"] = seed, load_now
                results[name][lib].append(res)
                if args.json:  # after every run: a long benchmark keeps what it did
                    args.json.write_text(json.dumps(results, indent=1))
                print(
                    json.dumps(
                        {
                            "task": name,
                            "lib": lib,
                            "seed": seed,
                            **{k: v for k, v in res.items() if k != "curve"},
                        }
                    ),
                    flush=True,
                )
    section = report(results, args, load)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.no_write:
        write_results(section, args.section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
