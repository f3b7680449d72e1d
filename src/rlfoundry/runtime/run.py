"""The run directory: the contract every algorithm writes to.

A run directory ``DIR`` holds

- ``config.yaml``              everything needed to reproduce the run (algo + config fields)
- ``metrics.csv``              one row per ``Run.log`` call: ``step`` then named metrics
- ``tb/``                      TensorBoard events of the same metrics
- ``checkpoint.safetensors``   tensors + a JSON state (in the file's metadata); never pickle
- ``summary.json``             the run's summary (written by :mod:`rlfoundry.runtime.rundir`)
- ``learning_curve.png``       episode return against environment steps

Algorithms receive a :class:`Run` and call ``log``, ``progress``, ``checkpoint_due``,
``save_checkpoint`` / ``load_checkpoint`` and check ``stop_requested`` (set by Ctrl-C
or SIGTERM) so an interrupted run saves its state and can be resumed exactly.

When a checkpoint is due is the Run's decision, the same for every algorithm
(``checkpoint_every``, :func:`parse_checkpoint_every`): the first call of
``checkpoint_due`` in a fresh run says yes, so a checkpoint exists right after the
first update; then every ``checkpoint_every`` (default :data:`DEFAULT_CHECKPOINT_EVERY`:
every 60 s of wall time; ``"1000"`` every 1000 steps, ``"1000,60s"`` whichever comes
first). A kill -9 therefore loses at most that much work. The file itself (checksum, the
previous checkpoint kept, damaged files) is :mod:`rlfoundry.runtime.checkpoint`'s.

Extra behaviour (periodic evaluation, a video after training, a transfer start) is
attached as ``callbacks`` (:mod:`rlfoundry.runtime.callbacks`): the Run calls them at
the fresh start, at checkpoints and at the end, and the algorithm does not change.

A new run may start from another run's weights (``rlfoundry train ... --init-from SRC``,
transfer by fine-tuning): the algorithm calls :meth:`Run.warm_start` with its networks
where it would otherwise start from scratch; a resumed run ignores it and continues from
its own checkpoint. Opening a directory (new run, resume, data-parallel ranks) is
:mod:`rlfoundry.runtime.rundir`'s job.
"""

from __future__ import annotations

import csv
import io
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlfoundry.errors import ConfigError
from rlfoundry.runtime import checkpoint as ckpt
from rlfoundry.runtime.checkpoint import (
    CHECKPOINT,
    DEFAULT_CHECKPOINT_EVERY,
    DISK_FULL,
    PREVIOUS,
    CheckpointError,
    parse_checkpoint_every,
)
from rlfoundry.runtime.config import atomic_write_text
from rlfoundry.runtime.progress import Bar
from rlfoundry.runtime.tb_events import write_scalars

__all__ = [
    "CHECKPOINT",
    "DEFAULT_CHECKPOINT_EVERY",
    "PREVIOUS",
    "CheckpointError",
    "Run",
    "load_checkpoint_file",
    "parse_checkpoint_every",
]

METRICS = "metrics.csv"


def rng_state() -> dict[str, Any]:
    """Python and NumPy global RNG states as JSON-safe values (torch's goes in tensors)."""
    py = random.getstate()
    return {"python": [py[0], list(py[1]), py[2]], "numpy_legacy": _np_legacy_state()}


def _np_legacy_state() -> list:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy_legacy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (environments are seeded on reset)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator_state(gen: np.random.Generator) -> dict[str, Any]:
    """JSON-safe state of a NumPy ``Generator`` (PCG64's state is a dict of ints)."""
    return gen.bit_generator.state


def set_generator_state(gen: np.random.Generator, state: dict[str, Any]) -> None:
    gen.bit_generator.state = state


class Callback:
    """What a :class:`Run` tells its callbacks: four hooks, each doing nothing; subclass
    and override what you need (:mod:`rlfoundry.runtime.callbacks` has ready ones)."""

    def on_start(self, run: Run, modules: dict[str, Any], stats: dict[str, Any]) -> None:
        """A fresh run starts from ``modules`` (prefix -> network or array) and ``stats``."""

    def checkpoint_due(self, step: int) -> bool:
        """True to ask for a checkpoint at ``step``."""
        return False

    def on_checkpoint(
        self, run: Run, step: int, tensors: dict[str, Any], state: dict[str, Any]
    ) -> None:
        """A checkpoint of ``step`` was just written."""

    def on_end(self, run: Run) -> None:
        """Training finished; the final checkpoint is written."""


class Run:
    """Writer of one run directory; see the module docstring for the layout."""

    def __init__(
        self,
        path: str | os.PathLike,
        total_steps: int,
        *,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
        checkpoint_every: str | int | None = None,
        checkpoint_interval_s: float | None = None,
        stop_at_step: int | None = None,
        init_from: str | os.PathLike | None = None,
        callbacks: Sequence[Callback] = (),
        label: str | None = None,
    ) -> None:
        self.path = Path(path)
        #: What the progress bar and the console lines call this run (its registry name).
        self.label = label
        #: Hooks called at the fresh start, at checkpoints and at the end, in order.
        self.callbacks: list[Callback] = list(callbacks)
        #: Run directory whose weights a fresh run starts from (:meth:`warm_start`).
        self.init_from = Path(init_from) if init_from is not None else None
        self.path.mkdir(parents=True, exist_ok=True)
        self.total_steps = int(total_steps)
        self.resume = resume
        #: Steps / wall seconds between checkpoints (0 / inf: off), see parse_checkpoint_every.
        self.checkpoint_every_steps, self.checkpoint_interval_s = parse_checkpoint_every(
            checkpoint_every
        )
        if checkpoint_interval_s is not None:
            self.checkpoint_interval_s = checkpoint_interval_s
        #: The command that continues this run, for messages (set by the opener).
        self.resume_command: str | None = None
        #: Test hook and ``--stop-at``: behave as if interrupted once this step is reached.
        self.stop_at_step = stop_at_step
        self.stop_requested = False
        self.interrupted = False
        self._start = time.perf_counter()
        self._wall_before = 0.0
        self._last_ckpt_time = time.monotonic()
        self._fields: list[str] = []
        self._rows = 0
        self._last: dict[str, float] = {}
        self.step = 0
        self._saved_step: int | None = None  # step of the newest checkpoint on disk

        if resume:
            found = self.load_checkpoint()
            if found is not None:
                self.step = self._saved_step = int(found[2].get("step", 0))
                self._wall_before = float(found[2].get("_wall_seconds", 0.0))
            self._truncate_metrics(self.step)
        elif (self.path / METRICS).exists():
            (self.path / METRICS).unlink()
        for stale in self.path.glob(".*.tmp"):  # an atomic write cut short by a kill
            if stale.is_dir():  # a model directory being written (llm.models.write_model_dir)
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        self._load_fields()
        #: A fresh run checkpoints at the first chance, so its directory can be resumed.
        self._first_due = self._saved_step is None
        self._last_ckpt_step = self.step

        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(
                    str(self.path / "tb"), purge_step=self.step if resume else None
                )
            except ImportError:  # tensorboard is a dependency; tolerate a trimmed install
                self._tb = None

        self._bar = Bar(label, self.total_steps, self.step, progress)
        self._old_handlers: dict[int, Any] = {}
        self._install_signal_handlers()

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stop_requested:  # second Ctrl-C: the user really wants out now
            raise KeyboardInterrupt
        self.stop_requested = True
        self.interrupted = True
        print(
            f"\n{signal.Signals(signum).name} received: saving a checkpoint and stopping "
            "(press Ctrl-C again to abort without saving).",
            file=sys.stderr,
        )

    def should_stop(self, step: int) -> bool:
        """True when the loop must save a checkpoint and return (signal or ``stop_at_step``)."""
        if self.stop_at_step is not None and step >= self.stop_at_step:
            self.stop_requested = True
            self.interrupted = True
        return self.stop_requested

    # ------------------------------------------------------------------ metrics
    def _load_fields(self) -> None:
        path = self.path / METRICS
        if path.exists():
            with path.open(newline="") as f:
                reader = csv.reader(f)
                self._fields = next(reader, [])
                self._rows = sum(1 for _ in reader)

    def _truncate_metrics(self, step: int) -> None:
        """Drop rows logged after the checkpoint so a resumed run's log matches an uninterrupted one."""
        path = self.path / METRICS
        if not path.exists():
            return
        text = path.read_text()
        if text and not text.endswith("\n"):  # a row cut short by a kill: drop it
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        fields = next(csv.reader(io.StringIO(text, newline="")), [])
        keep = [r for r in rows if r.get("step") and float(r["step"]) <= step]
        if fields:
            self._write_all(fields, keep)

    def _write_all(self, fields: list[str], rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path / METRICS, buf.getvalue())

    def log(self, step: int, **metrics: float) -> None:
        """Append one metrics row at ``step`` (CSV and TensorBoard)."""
        clean = {k: _to_float(v) for k, v in metrics.items() if v is not None}
        path = self.path / METRICS
        new = [k for k in clean if k not in self._fields]
        if not self._fields or new:
            old_rows: list[dict[str, Any]] = []
            if path.exists() and self._fields:
                with path.open(newline="") as f:
                    old_rows = list(csv.DictReader(f))
            self._fields = (self._fields or ["step"]) + new
            self._write_all(self._fields, old_rows)
        buf = io.StringIO()
        row = {"step": int(step), **clean}
        csv.DictWriter(buf, fieldnames=self._fields, lineterminator="\n").writerow(row)
        try:
            with path.open("a", newline="") as f:
                f.write(buf.getvalue())  # one write: a kill leaves whole rows (or a cut one)
        except OSError as err:
            if err.errno in DISK_FULL:
                raise self._disk_full(path, step) from None
            raise
        self._rows += 1
        self._last.update(clean)
        if self._tb is not None:
            write_scalars(self._tb, clean, int(step))

    def progress(self, step: int, **postfix: float) -> None:
        """Move the progress bar to ``step``; ``postfix`` values are shown beside it."""
        self.step = step
        self._bar.update(step, {k: f"{_to_float(v):.3g}" for k, v in postfix.items()})

    def stopped_early(self, step: int, reason: str) -> None:
        """The loop ends at ``step`` before ``total_steps`` on purpose (a target reached):
        the bar says so and, for the run's own directory, a console line gives ``reason``."""
        self.step = step
        self._bar.stop_early(reason)
        if self.label:  # not a rank > 0 scratch run of a launch
            print(
                f"{self.label}: stopped at step {step} of {self.total_steps} on purpose: {reason}.",
                file=sys.stderr,
                flush=True,
            )

    # ------------------------------------------------------------------ checkpoints
    def elapsed(self) -> float:
        """Training wall-clock seconds, summed over every resumed segment of the run."""
        return self._wall_before + time.perf_counter() - self._start

    def checkpoint_due(self, step: int) -> bool:
        """True if a checkpoint should be written now: a stop was requested, this is a fresh
        run's first chance, a callback asks, or ``checkpoint_every`` steps or seconds passed."""
        if self.should_stop(step) or self._first_due:
            return True
        if any(cb.checkpoint_due(step) for cb in self.callbacks):
            return True
        if (
            self.checkpoint_every_steps
            and step - self._last_ckpt_step >= self.checkpoint_every_steps
        ):
            return True
        return time.monotonic() - self._last_ckpt_time >= self.checkpoint_interval_s

    def save_checkpoint(
        self, step: int, tensors: dict[str, Any], state: dict[str, Any] | None = None
    ) -> Path:
        """Write ``tensors`` (torch or NumPy arrays) and a JSON ``state`` atomically, with a
        checksum, keeping the checkpoint it replaces as ``checkpoint.prev.safetensors``.

        Torch's global RNG state is stored too (read, never drawn from: saving does not
        change the run); ``state`` must be JSON-serialisable. A full disk raises one
        sentence and leaves the previous checkpoint as it was.
        """
        payload: dict[str, torch.Tensor] = {}
        for key, value in tensors.items():
            t = (
                torch.as_tensor(np.ascontiguousarray(value))
                if isinstance(value, np.ndarray)
                else value
            )
            payload[key] = t.detach().cpu().contiguous()
        payload["_rng/torch"] = torch.get_rng_state()
        meta_state = dict(state or {})
        meta_state["step"] = int(step)
        meta_state["_wall_seconds"] = self.elapsed()
        meta_state["_rng"] = rng_state()
        try:
            ckpt.write(self.path / CHECKPOINT, ckpt.encode(payload, meta_state))
        except OSError as err:
            if err.errno in DISK_FULL:
                raise self._disk_full(self.path / CHECKPOINT, step) from None
            raise
        self._last_ckpt_time = time.monotonic()
        self._first_due, self._last_ckpt_step, self._saved_step = False, int(step), int(step)
        for cb in self.callbacks:
            cb.on_checkpoint(self, int(step), tensors, meta_state)
        return self.path / CHECKPOINT

    def load_checkpoint(
        self, restore_rng: bool = True
    ) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]] | None:
        """Return ``(step, tensors, state)`` from the checkpoint, or None if there is none."""
        found = load_checkpoint_file(self.path / CHECKPOINT)
        if found is None:
            return None
        tensors, state = found
        if restore_rng:
            torch.set_rng_state(tensors["_rng/torch"])
            set_rng_state(state["_rng"])
        tensors = {k: v for k, v in tensors.items() if not k.startswith("_rng/")}
        return int(state["step"]), tensors, state

    def _disk_full(self, path: Path, step: int) -> CheckpointError:
        return ckpt.disk_full(path, step, self._saved_step, self.resume_command)

    def warm_start(self, modules: dict[str, Any], stats: dict[str, Any] | None = None) -> bool:
        """Load ``modules`` (checkpoint prefix -> network) from ``init_from``'s checkpoint.

        Loads nothing and returns False for a resumed run or without ``init_from``. Call
        it where a fresh run starts: after building the networks (their random init is
        then overwritten, so the RNG stream stays that of a scratch run with the same
        seed) and before the first env step. Only weights are taken: optimiser, step,
        env and RNG state start fresh. ``stats`` maps a prefix (``"obs_rms/"``) to a
        normaliser with ``load(tensors, prefix)``, or to None when this run has none; the
        source must have those statistics exactly when this run does, else a network
        trained on normalised inputs would see raw ones. Raises a one-sentence
        :class:`ConfigError` (cause + fix) if the source has no checkpoint or a network
        is missing or has other shapes.

        Then, for every fresh run (``init_from`` or not), each callback's ``on_start``
        sees ``modules`` and ``stats``; tabular agents call this with ``{"q": Q}``.
        """
        if self.resume:
            return False
        loaded = self.init_from is not None
        if loaded:
            self._load_weights(self.init_from, modules, stats)
        for cb in self.callbacks:
            cb.on_start(self, modules, stats or {})
        return loaded

    def _load_weights(
        self, src: Path, modules: dict[str, nn.Module], stats: dict[str, Any] | None
    ) -> None:
        found = load_checkpoint_file(src / CHECKPOINT)
        if found is None:
            raise ConfigError(
                f"Cannot start from '{src}': it has no {CHECKPOINT}; train the source run "
                "first (or pass its directory to --init-from)."
            )
        tensors = found[0]
        for prefix, module in modules.items():
            head = f"{prefix}/"
            sd = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
            if not sd:
                raise ConfigError(
                    f"Cannot start from '{src}': its checkpoint has no '{prefix}' network; "
                    "warm-start from a run of the same algorithm."
                )
            ours = module.state_dict()
            diff = [
                f"{k} is {list(sd[k].shape) if k in sd else 'missing'} there, {list(v.shape)} here"
                for k, v in ours.items()
                if k not in sd or sd[k].shape != v.shape
            ] + [f"{k} is not in this network" for k in sd if k not in ours]
            if diff:
                raise ConfigError(
                    f"Cannot start from '{src}': its '{prefix}' network does not fit this "
                    f"one ({diff[0]}); fine-tune with the source's network sizes (hidden) "
                    "on an env with the same observation and action spaces."
                )
            module.load_state_dict(sd, strict=True)
        for prefix, norm in (stats or {}).items():
            has = any(k.startswith(prefix) for k in tensors)
            if has != (norm is not None):
                which = "has" if has else "has no"
                raise ConfigError(
                    f"Cannot start from '{src}': it {which} '{prefix}' normaliser statistics "
                    f"and this run {'has none' if has else 'does'}; set the normalisation "
                    "options (e.g. norm_obs) as in the source's config.yaml."
                )
            if norm is not None:
                norm.load(tensors, prefix)

    # ------------------------------------------------------------------ end
    def close(self, finished: bool = False) -> None:
        self._bar.close(finished)
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            if exc_type is None and not self.interrupted:
                for cb in self.callbacks:
                    cb.on_end(self)
        finally:
            self.close(finished=exc_type is None and not self.interrupted)


def load_checkpoint_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict] | None:
    """Read a checkpoint written by :meth:`Run.save_checkpoint` (safetensors, no pickle);
    None if there is none. A damaged file raises one :class:`CheckpointError` sentence
    naming the damage and the previous checkpoint, if one is intact."""
    return ckpt.read(path)


def _to_float(v: Any) -> float:
    if isinstance(v, torch.Tensor):
        return float(v.detach().cpu().item())
    return float(v)
