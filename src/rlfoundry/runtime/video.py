"""Record one evaluation episode of a policy as an animated GIF."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlfoundry.envs.evaluation import make_env
from rlfoundry.errors import EnvError


def record_gif(
    policy: Callable[[Any], Any],
    env_id: str,
    path: str | os.PathLike,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    fps: int = 30,
    frame_skip: int = 2,
    downscale: int = 2,
) -> Path:
    """Run ``policy`` for one episode of ``env_id`` (reset with ``seed``) in ``rgb_array``
    render mode and write the frames to ``path`` as a GIF; return the path.

    Every ``frame_skip``-th frame is kept and shrunk by ``downscale`` (pixel striding):
    a 500-step CartPole episode at full size is ~360 MB of frames and a slow encode.
    """
    # Off-screen rendering needs no display or sound: without these, SDL (pygame) prints
    # "XDG_RUNTIME_DIR is invalid" on a headless machine, which reads like a failure.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = make_env(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    frames: list[np.ndarray] = []
    try:
        obs, _ = env.reset(seed=seed)
        first = env.render()
        if not isinstance(first, np.ndarray):
            raise EnvError(
                f"'{env_id}' returned no rgb_array frame from render(); it cannot be recorded "
                "(set render_video=false)."
            )
        frames.append(first[::downscale, ::downscale])
        done, t = False, 0
        while not done:
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            done = terminated or truncated
            t += 1
            if t % frame_skip == 0 or done:
                frames.append(env.render()[::downscale, ::downscale])
    finally:
        env.close()
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Pillow's GIF writer takes the frame duration in milliseconds; loop=0 repeats forever.
    imageio.mimsave(path, frames, format="GIF", duration=1000 * frame_skip / fps, loop=0)
    return path
