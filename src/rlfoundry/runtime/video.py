"""Record one evaluation episode of a policy as an animated GIF.

The env comes from the caller (made with ``render_mode="rgb_array"``), so this module
needs no env registry: :func:`rlfoundry.envs.evaluation.record_video` makes the env from
an id and calls :func:`record_gif`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlfoundry.errors import EnvError

if TYPE_CHECKING:
    import gymnasium as gym


def headless() -> None:
    """Let pygame render off-screen without a display or sound: without these, SDL prints
    "XDG_RUNTIME_DIR is invalid" on a headless machine, which reads like a failure. Call
    before the env first renders."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def record_gif(
    policy: Callable[[Any], Any],
    env: gym.Env,
    path: str | os.PathLike,
    seed: int,
    fps: int = 30,
    frame_skip: int = 2,
    downscale: int = 2,
) -> Path:
    """Run ``policy`` for one episode of ``env`` (reset with ``seed``; made with
    ``render_mode="rgb_array"``) and write the frames to ``path`` as a GIF; return the
    path. ``env`` is closed.

    Every ``frame_skip``-th frame is kept and shrunk by ``downscale`` (pixel striding):
    a 500-step CartPole episode at full size is ~360 MB of frames and a slow encode.
    """
    headless()
    frames: list[np.ndarray] = []
    try:
        obs, _ = env.reset(seed=seed)
        first = env.render()
        if not isinstance(first, np.ndarray):
            name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            raise EnvError(
                f"'{name}' returned no rgb_array frame from render(); it cannot be recorded "
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
