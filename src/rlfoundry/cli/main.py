"""The ``rlfoundry`` command line.

    rlfoundry train ALGO --env ENV_ID [--steps N] [--seed S] [--out DIR] [--overwrite]
                         [--config FILE.yaml] [--set key=value ...] [--no-tuned]
                         [--init-from SRC_RUN_DIR] [--render-video]
                         [--num-envs N] [--async-envs] [--eval-every N] [--periodic-episodes N]
    rlfoundry train --resume DIR [--set checkpoint_every=EVERY]
    rlfoundry eval DIR [--episodes N] [--render-video]      # -> DIR/eval-<UTC time>.json
    rlfoundry solve ENV_ID [--gamma G] [--set env_kwargs={...}]
    rlfoundry plot DIR [DIR ...] [--out FILE.png] [--key episode_return]
    rlfoundry list [NAME]

Every run takes ``--set checkpoint_every=EVERY`` (steps ``1000``, a time ``60s``/``5m``,
or both ``1000,60s``; default 60s), on a resume too.

The other command groups (``rlfoundry llm ...``, ``quickstart``, ``feedback``, ``trade``,
``drive``, ``transfer``) live in their own ``rlfoundry.cli`` modules, listed in
:data:`EXTRA_COMMANDS`. Building the parser imports neither torch nor gymnasium: every
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlfoundry import registry
from rlfoundry.cli.listing import cmd_list
from rlfoundry.errors import RLFoundryError

#: The ``rlfoundry.cli`` modules whose ``register(subparsers)`` adds their commands (with
#: ``set_defaults(func=...)``).
EXTRA_COMMANDS: list[str] = [
    "rlfoundry.cli.quickstart",
    "rlfoundry.cli.feedback",
    "rlfoundry.cli.apps",
    "rlfoundry.cli.llm",
    "rlfoundry.cli.transfer",
    "rlfoundry.cli.tune",
    "rlfoundry.cli.sweep",
]


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key, value in summary.items():
        if key == "eval_returns":
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        table.add_row(f"[bold]{key}[/]", str(value))
    Console().print(table)


def cmd_train(args: argparse.Namespace) -> int:
    # torch's import leaves some hundred thousand objects that live as long as the
    # process: no cyclic collection during it, then freeze them out of the collector's
    # way so the collections during training do not walk them (about 2% of a CartPole
    # PPO process's CPU time, measured with gc.callbacks).
    gc.disable()
    try:
        from rlfoundry.api import train
    finally:
        gc.freeze()
        gc.enable()
    from rlfoundry.runtime.config import parse_overrides

    if args.resume is None and args.algo is None:
        raise RLFoundryError(
            "Give an algorithm (e.g. `rlfoundry train qlearning --env FrozenLake-v1`) or --resume DIR."
        )
    if args.algo is not None and registry.get(args.algo).kind != "gym":
        entry = registry.get(args.algo)
        raise RLFoundryError(
            f"{entry.name} is a language-model stage; train it with `rlfoundry {entry.command}`."
        )
    overrides = parse_overrides(args.set)
    for flag, key, value in (
        ("--render-video", "render_video", "true" if args.render_video else None),
        ("--num-envs", "num_envs", args.num_envs),
        ("--async-envs", "async_envs", "true" if args.async_envs else None),
        ("--periodic-episodes", "periodic_episodes", args.periodic_episodes),
    ):
        if value is not None:
            _check_flag(args, flag, key)
            overrides[key] = str(value)
    summary = train(
        algo=args.algo,
        env=args.env,
        steps=args.steps,
        seed=args.seed,
        out=args.out,
        config=args.config,
        overrides=overrides,
        resume=args.resume,
        progress=not args.no_progress,
        stop_at_step=args.stop_at,
        init_from=args.init_from,
        overwrite=args.overwrite,
        tuned=not args.no_tuned,
        eval_every=args.eval_every,
        plot=not args.no_plot,
    )
    _print_summary(summary)
    if summary.get("status") == "interrupted":
        print(f"Interrupted; continue with: {summary['resume_command']}", file=sys.stderr)
        return 130
    return 0


def _check_flag(args: argparse.Namespace, flag: str, key: str) -> None:
    """A shorthand flag is ``--set key=...``: for new runs of algorithms that have ``key``."""
    import dataclasses

    if args.resume is not None:
        raise RLFoundryError(
            f"{flag} sets up a new run; a resumed run keeps the {key} of its "
            f"config.yaml (drop {flag}, or start a new run)."
        )
    if key not in {f.name for f in dataclasses.fields(registry.load(args.algo).Config)}:
        users = {"render_video": "ppo, a2c, dqn or vpg", "num_envs": "ppo, a2c or dqn",
                 "periodic_episodes": "ppo, a2c, dqn, sac, td3 or vpg"}  # fmt: skip
        raise RLFoundryError(
            f"{flag} is not available for {args.algo} (its config has no {key}); drop the "
            f"flag or use an algorithm such as {users.get(key, 'ppo or a2c')}."
        )


def cmd_eval(args: argparse.Namespace) -> int:
    from rlfoundry.api import evaluate_run

    result = evaluate_run(
        args.run_dir, episodes=args.episodes, seed=args.seed, video=args.render_video
    )
    _print_summary(result)
    return 0


def _env_kwargs(items: list[str] | None) -> dict[str, Any]:
    """``solve --set env_kwargs={...}``: the one key solve takes."""
    import yaml

    from rlfoundry.runtime.config import parse_overrides

    kwargs: dict[str, Any] = {}
    for key, value in parse_overrides(items).items():
        if key != "env_kwargs":
            raise RLFoundryError(
                f"solve takes only --set env_kwargs={{...}}, not {key}; drop --set {key}."
            )
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = None
        if not isinstance(parsed, dict):
            raise RLFoundryError(
                f"env_kwargs needs a mapping such as {{slip: 0.2}}, got {value!r}; fix --set."
            )
        kwargs.update(parsed)
    return kwargs


def cmd_solve(args: argparse.Namespace) -> int:
    from rlfoundry.envs.evaluation import make_env
    from rlfoundry.mdp import (
        DEFAULT_SOLVE_GAMMA,
        evaluate_policy_exact,
        finite_horizon_optimal,
        value_iteration,
    )

    env_kwargs = _env_kwargs(args.set)
    env = make_env(args.env, **env_kwargs)
    gamma = DEFAULT_SOLVE_GAMMA if args.gamma is None else args.gamma
    if not hasattr(env.unwrapped, "P"):
        raise RLFoundryError(
            f"'{args.env}' exposes no transition table (unwrapped.P), so it cannot be solved exactly; "
            "use a tabular env such as FrozenLake-v1, Taxi-v4, CliffWalking-v1 or rlfoundry/GridWorld-v0."
        )
    sol = value_iteration(env, gamma=gamma)
    ret = evaluate_policy_exact(env, sol.policy)
    horizon = env.spec.max_episode_steps if env.spec else None
    result = {
        "env": args.env,
        **({"env_kwargs": env_kwargs} if env_kwargs else {}),
        "gamma": gamma,
        "optimal_return": ret,
        "horizon": horizon,
        "iterations": sol.iterations,
        "states": int(sol.V.shape[0]),
    }
    if horizon:  # the best non-stationary (time-dependent) policy can do a little better
        result["nonstationary_optimal_return"] = finite_horizon_optimal(env, horizon).ret
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result)
        if hasattr(env.unwrapped, "render_policy"):
            print(env.unwrapped.render_policy(sol.policy))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from rlfoundry.runtime.plotting import plot_runs

    if args.out:
        out = Path(args.out)
    else:  # a new file: never over a run's own learning_curve.png or an earlier plot
        from rlfoundry.runtime.rundir import fresh_path

        one = len(args.runs) == 1
        out = fresh_path(Path(args.runs[0]) if one else Path("."), "learning_curve", ".png")
    path = plot_runs(args.runs, out, key=args.key, title=args.title)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from rlfoundry._version import __version__

    parser = argparse.ArgumentParser(
        prog="rlfoundry", description="Reinforcement learning from Q-tables to language models."
    )
    parser.add_argument("--version", action="version", version=f"rlfoundry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an algorithm and write a run directory")
    p.add_argument(
        "algo",
        nargs="?",
        help="algorithm name, e.g. qlearning or ppo (`rlfoundry list` shows them all)",
    )
    p.add_argument(
        "--env",
        metavar="ENV_ID",
        help="Gymnasium environment id; may be omitted: each algorithm has a default "
        "(qlearning: rlfoundry/GridWorld-v0, ppo: CartPole-v1; `rlfoundry list ALGO` "
        "shows env_id), and the console says which one it used",
    )
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="environment steps to train for, at least 1 (total_steps; default: the "
        "algorithm's or the tuned config's)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed of every random generator, so a run can be repeated exactly (default 0)",
    )
    p.add_argument(
        "--out", help="run directory to create, new or empty (default runs/ALGO-ENV-sSEED-TIME)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let --out be a directory that holds a run or other files: the files a run "
        "writes there are replaced",
    )
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of config values")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one config value (repeatable); checkpoint_every=1000|60s|1000,60s "
        "sets how often to checkpoint (default 60s)",
    )
    p.add_argument(
        "--no-tuned",
        action="store_true",
        help="start from the algorithm's defaults, not the tuned config shipped for the env",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its checkpoint (a finished run: nothing to do, exit 0)",
    )
    p.add_argument(
        "--init-from",
        metavar="DIR",
        help="start from the weights of the run in DIR (same algorithm: "
        + ", ".join(e.name for e in registry.REGISTRY.values() if e.warm_start)
        + ")",
    )
    p.add_argument(
        "--render-video",
        action="store_true",
        help="after training, write DIR/eval.gif of one evaluation episode "
        "(= --set render_video=true)",
    )
    p.add_argument(
        "--num-envs",
        type=int,
        metavar="N",
        help="parallel copies of the env in a Gymnasium vector env (= --set num_envs=N)",
    )
    p.add_argument("--async-envs", action="store_true",
                   help="step the envs in subprocesses (AsyncVectorEnv; = --set async_envs=true)")  # fmt: skip
    p.add_argument(
        "--eval-every",
        metavar="N",
        help="evaluate the deterministic policy every N env steps on separate seeded envs "
        "(eval_return in metrics.csv) and keep the best as DIR/best.safetensors; 0: off "
        "(default auto: every total_steps/20 for the deep algorithms from 20k steps on)",
    )
    p.add_argument("--periodic-episodes", type=int, metavar="N",
                   help="episodes of each periodic evaluation, which picks best.safetensors "
                   "(default 10; = --set periodic_episodes=N)")  # fmt: skip
    p.add_argument("--stop-at", type=int, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--no-plot",
        action="store_true",
        help="do not draw DIR/learning_curve.png at the end (about 0.5 CPU s, mostly importing "
        "matplotlib); `rlfoundry plot DIR` draws it from metrics.csv later",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval", help="re-evaluate a saved run into DIR/eval-<UTC time>.json (summary.json stays)"
    )
    p.add_argument("run_dir", metavar="DIR", help="a run directory written by `rlfoundry train`")
    p.add_argument(
        "--episodes",
        type=int,
        metavar="N",
        help="evaluation episodes (default: the run's eval_episodes)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed of the first episode (default: the run's seed + 10000, episodes "
        "its training never saw)",
    )
    p.add_argument(
        "--render-video",
        action="store_true",
        help="also write a new DIR/eval-<UTC time>.gif of the first episode",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("solve", help="exact optimum of a tabular env by value iteration")
    p.add_argument(
        "env",
        metavar="ENV_ID",
        help="a tabular env that exposes its transition table: FrozenLake-v1, Taxi-v4, "
        "CliffWalking-v1, rlfoundry/GridWorld-v0",
    )
    p.add_argument(
        "--gamma",
        type=float,
        default=None,
        help="discount used to solve for the policy (default 0.999; its return is then "
        "judged undiscounted under the time limit)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="env_kwargs={...}",
        help="keyword arguments of the env, e.g. --set 'env_kwargs={slip: 0.2}'",
    )
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser(
        "plot",
        help="overlay learning curves of run directories into a PNG (prints its path)",
        description="Overlay the learning curves of one or more run directories in one PNG "
        "image and print its path. Without --out the image is a new "
        "DIR/learning_curve-<UTC time>.png inside the run for one run, or "
        "./learning_curve-<UTC time>.png in the current directory for several; no "
        "existing file is overwritten.",
    )
    p.add_argument("runs", nargs="+", metavar="DIR", help="run directories to plot")
    p.add_argument(
        "--out",
        metavar="FILE.png",
        help="image to write (default: a new learning_curve-<UTC time>.png in the run, or "
        "in the current directory for several runs)",
    )
    p.add_argument(
        "--key",
        default="episode_return",
        help="metrics.csv column to plot against steps (default episode_return; "
        "LLM stages: loss, reward, eval_accuracy, ...)",
    )
    p.add_argument("--title", help="title of the plot (default: none)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "list",
        help="list algorithms, LLM stages and built-in environments, or one's config",
    )
    p.add_argument(
        "algo",
        nargs="?",
        metavar="NAME",
        help="an algorithm or LLM stage (ppo, llm-grpo, ...): print each config key with "
        "its type, default and meaning, and the envs with a shipped tuned config",
    )
    p.set_defaults(func=cmd_list)

    for module_name in EXTRA_COMMANDS:
        if module_name == "rlfoundry.cli.transfer" and not importlib.util.find_spec(module_name):
            module_name = "rlfoundry.experiments.transfer"  # until the classic branch merges
        register: Callable[[Any], None] = importlib.import_module(module_name).register
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RLFoundryError as err:
        sys.stderr.write(f"error: {err}\n")  # one write: ranks of a launch do not interleave
        sys.stderr.flush()
        return 2
    except OSError as err:
        from rlfoundry.runtime.checkpoint import DISK_FULL

        if err.errno not in DISK_FULL:
            raise
        print(
            f"error: no space is left on the device writing {err.filename or 'a file'}; "
            "the checkpoint already written is intact, so free some space and run the "
            "command again (with --resume DIR for a run).",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
