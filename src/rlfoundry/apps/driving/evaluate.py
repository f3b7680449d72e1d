"""Driving evaluation: trained runs against random and always-IDLE, tables, episode videos.

The metrics themselves are :func:`rlfoundry.apps.driving.metrics.evaluate_driving`.
Episode ``i`` of an evaluation resets with ``seed + i``, so every policy meets the same
traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlfoundry.apps.driving.metrics import evaluate_driving
from rlfoundry.envs.evaluation import make_env
from rlfoundry.errors import RLFoundryError

Policy = Callable[[Any], Any]


def idle_policy(env: gym.Env) -> Policy:
    """Always IDLE: keep lane and target speed (highway-env's meta-action 1)."""
    names = env.unwrapped.action_type.actions  # type: ignore[attr-defined]
    idle = next(i for i, n in names.items() if n == "IDLE")
    return lambda obs: idle


def random_policy(env: gym.Env, seed: int = 0) -> Policy:
    """Uniformly random meta-actions from a seeded generator."""
    rng = np.random.default_rng(seed)
    n = int(env.action_space.n)  # type: ignore[attr-defined]
    return lambda obs: int(rng.integers(n))


def load_run_policy(run_dir: str | Path) -> tuple[Policy, str, dict[str, Any]]:
    """``(policy, env_id, env_kwargs)`` of a run directory made by ``rlfoundry train``."""
    from rlfoundry.runtime import rundir

    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).is_file():
        raise RLFoundryError(
            f"'{run_dir}' is not a run directory (no config.yaml); pass one made by `rlfoundry train`."
        )
    name, data = rundir.read_saved(run_dir)
    module, cfg = rundir.resolve_config(name, config=data)
    return module.load_policy(run_dir, cfg), cfg.env_id, dict(getattr(cfg, "env_kwargs", {}) or {})


def compare(
    policies: dict[str, list[Callable[[gym.Env], Policy]]],
    env_id: str = "rlfoundry/Highway-v0",
    env_kwargs: dict[str, Any] | None = None,
    episodes: int = 20,
    seed: int = 100_000,
    baselines: bool = True,
) -> dict[str, dict[str, Any]]:
    """Evaluate each entry (one factory per training seed) plus random and always-IDLE.

    Returns ``{label: {metric: {"mean", "std"}, "seeds": k}}`` with the std over seeds.
    """
    entries = dict(policies)
    if baselines:
        entries["random"] = [lambda env: random_policy(env, seed)]
        entries["always IDLE"] = [idle_policy]
    table: dict[str, dict[str, Any]] = {}
    for label, factories in entries.items():
        rows = []
        for make in factories:
            env = make_env(env_id, **(env_kwargs or {}))
            try:
                rows.append(evaluate_driving(make(env), env, episodes, seed))
            finally:
                env.close()
        entry: dict[str, Any] = {"seeds": len(rows)}
        for key in rows[0]:
            vals = np.asarray([r[key] for r in rows], dtype=np.float64)
            entry[key] = {"mean": float(vals.mean()), "std": float(vals.std())}
        table[label] = entry
    return table


COLUMNS = [
    ("collision_rate", "collision rate", "{:.0%}"),
    ("mean_speed", "mean speed (m/s)", "{:.1f}"),
    ("distance", "distance (m)", "{:.0f}"),
    ("braking_events", "braking events/ep", "{:.2f}"),
    ("lane_changes", "lane changes/ep", "{:.1f}"),
    ("mean_return", "return", "{:.2f}"),
    ("mean_length", "steps/ep", "{:.1f}"),
]


def markdown_table(table: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| policy | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(COLUMNS),
    ]
    for label, entry in table.items():
        cells = []
        for key, _, fmt in COLUMNS:
            m, s = entry[key]["mean"], entry[key]["std"]
            cell = fmt.format(m)
            if entry["seeds"] > 1:
                cell += " ± " + fmt.format(s).rstrip("%")
            cells.append(cell)
        rows.append(f"| {label} | {entry['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


class _FrameGrabber:
    """Stands in for highway-env's RecordVideo hook to collect every simulation frame.

    highway-env renders the frames between two decisions only through
    ``_record_video_wrapper._capture_frame`` (``AbstractEnv._automatic_rendering``);
    without it a video would show one frame per decision.
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.frames: list[np.ndarray] = []
        self.frames_per_sec = 0

    def _capture_frame(self) -> None:
        self.frames.append(self.env.unwrapped.render())


def record_episode(
    policy: Policy,
    env_id: str,
    path: str | Path,
    seed: int = 100_000,
    env_kwargs: dict[str, Any] | None = None,
    max_steps: int = 200,
) -> dict[str, Any]:
    """Render one episode of ``policy`` to a GIF or MP4 (by ``path``'s suffix), in real time.

    MP4 needs ``imageio-ffmpeg``; GIF works with imageio alone.
    """
    import imageio.v2 as imageio

    path = Path(path)
    env = make_env(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    base = env.unwrapped
    grabber = _FrameGrabber(env)
    base.set_record_video_wrapper(grabber)  # type: ignore[attr-defined]
    fps = int(base.config["simulation_frequency"])  # type: ignore[attr-defined]
    try:
        obs, _ = env.reset(seed=seed)
        grabber.frames.append(base.render())
        done, steps, ret, info = False, 0, 0.0, {}
        while not done and steps < max_steps:
            obs, rew, terminated, truncated, info = env.step(policy(obs))
            grabber.frames.append(base.render())  # the last frame; re-arms auto-rendering
            ret += float(rew)
            steps += 1
            done = terminated or truncated
    finally:
        env.close()
    frames = [f for f in grabber.frames if f is not None]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        try:
            imageio.mimsave(path, frames, fps=fps)
        except (ValueError, RuntimeError, ImportError) as err:
            raise RLFoundryError(
                f"Cannot write '{path}' ({err}); install imageio-ffmpeg for MP4 or use a .gif path."
            ) from None
    return {
        "path": str(path),
        "steps": steps,
        "frames": len(frames),
        "return": ret,
        "crashed": bool(info.get("crashed", False)),
    }
