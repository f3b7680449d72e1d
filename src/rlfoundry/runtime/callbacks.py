"""Callbacks: small hooks a :class:`~rlfoundry.runtime.run.Run` calls while an algorithm
trains (Stable-Baselines3's ``BaseCallback``, smaller).

An algorithm never knows which callbacks are attached. It talks to its Run as always, and
the Run passes four moments on to each callback in ``run.callbacks``, in order (the
hooks of :class:`~rlfoundry.runtime.run.Callback`, re-exported here):

- ``on_start(run, modules, stats)``: a fresh run starts (:meth:`Run.warm_start`, called
  by the algorithms that can warm-start: tabular, PPO, A2C, DQN), with the algorithm's
  networks or Q-table (``prefix -> module or array``) after any ``--init-from`` weights
  were loaded, and its normalisers;
- ``checkpoint_due(step) -> bool``: True asks the loop for a checkpoint at ``step`` (an
  evaluation point); the loop saves as it would on its own schedule;
- ``on_checkpoint(run, step, tensors, state)``: a checkpoint was just written to
  ``run.path`` (``tensors``: what the algorithm saved, live arrays included);
- ``on_end(run)``: training finished (not interrupted); the final checkpoint is written.

Callbacks observe. None may draw from the training's random generators or step its envs,
so a run with callbacks is the same run, number for number, as one without (they may
*set* the starting point, as :class:`StartFrom` does, or ask the loop to stop).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlfoundry.errors import ConfigError
from rlfoundry.runtime.config import atomic_write_text
from rlfoundry.runtime.run import Callback, Run, rng_state, set_rng_state
from rlfoundry.runtime.video import headless, record_gif

if TYPE_CHECKING:
    import gymnasium as gym

__all__ = ["BEST", "BEST_JSON", "Callback", "Evaluate", "RecordVideo", "StartFrom", "rng_untouched"]

#: The checkpoint of the best evaluation so far (``Evaluate(keep_best=True)``) and its record.
BEST = "best.safetensors"
BEST_JSON = "best.json"

Policy = Callable[[Any], Any]


@contextmanager
def rng_untouched() -> Iterator[None]:
    """Restore the global random generators (torch, NumPy, Python) on exit: what runs
    inside cannot change the training's random stream. Rebuilding a policy from a
    checkpoint draws from torch's generator (the networks' initialisation) before the
    saved weights overwrite them."""
    saved, saved_torch = rng_state(), torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(saved_torch)
        set_rng_state(saved)


class Evaluate(Callback):
    """Score the policy every ``every`` env steps (SB3's ``EvalCallback``).

    A score is taken at the first checkpoint at or after each multiple of ``every`` (an
    algorithm can only be looked at between updates), and, with ``final``, at the last
    checkpoint of the run. ``score(run, step, tensors)`` gets that checkpoint: its tensors
    (a Q-table is ``tensors["q"]``), and the file at ``run.path``, from which any gym
    algorithm's ``load_policy(run.path, cfg)`` rebuilds the policy. ``start(modules,
    stats)``, if given, scores the starting point of a fresh run as step 0. Both run with
    the global random generators restored afterwards (:func:`rng_untouched`), so the
    training is the same as without the callback. With ``keep_best``, the checkpoint of
    the highest score so far is copied to ``run.path / "best.safetensors"`` and its step
    and score written to ``best.json`` (with the step of the last evaluation), from which a
    resumed run takes up the best so far and the next evaluation point. ``steps`` and
    ``values`` hold what was measured (in this process).
    """

    def __init__(
        self,
        every: int,
        score: Callable[[Run, int, dict[str, Any]], Any],
        start: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None,
        final: bool = True,
        keep_best: bool = False,
    ) -> None:
        if every < 1:
            raise ConfigError(f"Evaluate needs every >= 1 step, got {every}; fix the interval.")
        self.every, self.score, self.start = int(every), score, start
        self.final, self.keep_best = final, keep_best
        self.next_eval = self.every
        self.steps: list[int] = []
        self.values: list[Any] = []
        self.best: Any = None
        self._last: tuple[int, dict[str, Any]] | None = None  # the newest checkpoint
        self._restored = False  # best.json read (a resumed run keeps its best)

    def on_start(self, run: Run, modules: dict[str, Any], stats: dict[str, Any]) -> None:
        if self.start is not None:
            with rng_untouched():
                value = self.start(modules, stats)
            self._record(run, 0, value)

    def checkpoint_due(self, step: int) -> bool:
        return step >= self.next_eval

    def on_checkpoint(
        self, run: Run, step: int, tensors: dict[str, Any], state: dict[str, Any]
    ) -> None:
        if not self._restored:
            self._restore(run)
        self._last = (step, tensors)
        if step >= self.next_eval or (self.final and step >= run.total_steps):
            self._evaluate(run, step, tensors)

    def on_end(self, run: Run) -> None:
        # The last update may end between two evaluation points (and short of total_steps).
        if self.final and self._last is not None:
            self._evaluate(run, *self._last)

    def _evaluate(self, run: Run, step: int, tensors: dict[str, Any]) -> None:
        if self.steps and self.steps[-1] == step:
            return
        while self.next_eval <= step:
            self.next_eval += self.every
        with rng_untouched():
            value = self.score(run, step, tensors)
        self._record(run, step, value)

    def _restore(self, run: Run) -> None:
        """A resumed run: take up the best so far and the next evaluation point."""
        self._restored = True
        path = run.path / BEST_JSON
        if not (self.keep_best and run.resume and path.is_file()):
            return
        saved = json.loads(path.read_text())
        self.best = saved.get("best_score")
        while self.next_eval <= int(saved.get("last_step", 0)):
            self.next_eval += self.every

    def _record(self, run: Run, step: int, value: Any) -> None:
        self.steps.append(step)
        self.values.append(value)
        if not self.keep_best or step == 0:
            return
        path = run.path / BEST_JSON
        saved = json.loads(path.read_text()) if path.is_file() else {}
        if self.best is None or value > self.best:
            self.best = value
            shutil.copyfile(run.path / "checkpoint.safetensors", run.path / BEST)
            saved.update(best_step=int(step), best_score=_plain(value))
        saved["last_step"] = int(step)
        atomic_write_text(path, json.dumps(saved, indent=2) + "\n")


def _plain(value: Any) -> Any:
    """A score as JSON can hold it (a NumPy or torch scalar becomes a float)."""
    return value if isinstance(value, (int, float, str, list, dict)) else float(value)


class StartFrom(Callback):
    """Start a fresh run from given arrays instead of the algorithm's initial values:
    ``on_start`` copies ``arrays[name]`` into the algorithm's ``modules[name]`` in place
    (e.g. a Q-table, ``{"q": Q}``: tabular transfer). ``--init-from`` does the same for
    networks from a run directory."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def on_start(self, run: Run, modules: dict[str, Any], stats: dict[str, Any]) -> None:
        for name, value in self.arrays.items():
            target = modules[name]
            if np.shape(target) != np.shape(value):
                raise ConfigError(
                    f"Cannot start '{name}' from an array of shape {np.shape(value)}: the run "
                    f"needs {np.shape(target)}; start from one made for the same spaces."
                )
            target[...] = value


class RecordVideo(Callback):
    """After training, record one episode of the final policy to ``run.path / "eval.gif"``
    (the ``render_video`` option): ``load_policy(run.path)`` rebuilds the policy from the
    final checkpoint, ``make_env()`` gives an env that renders ``rgb_array`` frames, and
    the episode is reset with ``seed``."""

    def __init__(
        self, load_policy: Callable[[Path], Policy], make_env: Callable[[], gym.Env], seed: int
    ) -> None:
        self.load_policy, self.make_env, self.seed = load_policy, make_env, seed

    def on_end(self, run: Run) -> None:
        policy = self.load_policy(run.path)
        headless()  # before the env exists: pygame may read them when it is made
        record_gif(policy, self.make_env(), run.path / "eval.gif", self.seed)
