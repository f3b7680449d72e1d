"""Run a user's policy (``--policy module:function``) where the future does not exist.

A policy built from the env could read every future price through it (``env.bars``,
``env._close``), or by walking attributes, numpy ``.base`` arrays or the garbage
collector's object list from whatever it is given. So a custom policy never runs next
to the env: it runs in a **separate Python process** that is sent, one bar at a time,
only what is known at the decision bar ``t``. There, ``function(view)`` receives a
:class:`MarketHistory` and returns ``policy(obs) -> action``:

- ``view.history(n)``: the last ``n`` OHLCV bars up to and including ``t`` (a new
  DataFrame each call), ``len(view)`` of them so far; ``view.obs``: every observation
  so far, ``[k, D]``, read-only;
- ``view.sizes``, ``view.action_space``, ``view.data_name``: the env's settings.

Nothing the child process holds comes from a later bar, so no attribute walk, base
array or ``gc.get_objects()`` can find one (``tests/apps/test_trading_sandbox.py``
plants a policy that tries all three). What it cannot stop: a policy that opens the
data file itself. Messages are JSON lines on the child's stdin/stdout; the child's
``print`` goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd

from rlfoundry.errors import RLFoundryError

COLUMNS = ("open", "high", "low", "close", "volume")


class MarketHistory:
    """What a custom policy may read: bars and observations up to the decision bar."""

    def __init__(self, data_name: str, sizes: list[float] | None, n_actions: int) -> None:
        import gymnasium as gym

        self.data_name = data_name
        self.sizes = None if sizes is None else list(sizes)
        self.action_space = gym.spaces.Discrete(n_actions)
        self._dates: list[str] = []
        self._rows: list[list[float]] = []
        self._obs: list[list[float]] = []

    def _add_bars(self, bars: list[list[Any]]) -> None:
        for date, *row in bars:
            self._dates.append(date)
            self._rows.append([float(x) for x in row])

    def history(self, bars: int | None = None) -> pd.DataFrame:
        """OHLCV bars up to and including the decision bar (a fresh copy)."""
        lo = 0 if bars is None else max(0, len(self._rows) - bars)
        return pd.DataFrame(
            self._rows[lo:],
            index=pd.DatetimeIndex(pd.to_datetime(self._dates[lo:]), name="date"),
            columns=list(COLUMNS),
        )

    def __len__(self) -> int:
        """Bars seen so far: the decision bar is ``len(view) - 1``."""
        return len(self._rows)

    @property
    def obs(self) -> np.ndarray:
        """Every observation so far, oldest first, ``[k, D]`` float32 (read-only copy)."""
        arr = np.array(self._obs, dtype=np.float32)
        arr.setflags(write=False)
        return arr


def _serve() -> None:
    """The child process: build the policy, then answer one action per step message."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the policy's own prints go to stderr, never into the protocol
    sys.stdout = sys.stderr

    def send(msg: dict[str, Any]) -> None:
        proto.write(json.dumps(msg) + "\n")

    init = json.loads(sys.stdin.readline())
    view = MarketHistory(init["data_name"], init["sizes"], init["n_actions"])
    view._add_bars(init["bars"])
    try:
        import importlib

        module, fn = init["spec"].split(":", 1)
        policy = getattr(importlib.import_module(module), fn)(view)
    except Exception as err:  # noqa: BLE001 (any failure of user code is reported)
        send({"error": f"{type(err).__name__}: {err}"})
        return
    send({"ok": True})
    for line in sys.stdin:
        msg = json.loads(line)
        view._add_bars(msg["bars"])
        view._obs.append(msg["obs"])
        obs = np.array(msg["obs"], dtype=np.float32)
        obs.setflags(write=False)
        try:
            send({"action": int(policy(obs))})
        except Exception as err:  # noqa: BLE001
            send({"error": f"{type(err).__name__}: {err}"})
            return


class SandboxedPolicy:
    """``policy(obs) -> action`` for the env it was built for, computed in a child process.

    Before each call it sends the bars the child has not seen, up to the env's current
    decision bar ``t``, and the observation; never anything later.
    """

    def __init__(self, spec: str, env: Any) -> None:
        self.spec, self.env = spec, env
        path = os.pathsep.join(p for p in sys.path if p)
        child_env = {**os.environ, "PYTHONPATH": path}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from rlfoundry.apps.trading.sandbox import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        self.sent = env.t + 1  # bars 0..t go with the first message
        sizes = None if env.sizes is None else list(env.sizes)
        n = int(env.action_space.n)
        self._send({"spec": spec, "data_name": env.data_name, "sizes": sizes, "n_actions": n,
                    "bars": self._bars(0, env.t + 1)})  # fmt: skip
        self._receive()

    def _bars(self, lo: int, hi: int) -> list[list[Any]]:
        part = self.env.bars.iloc[lo:hi]
        dates = [str(d) for d in part.index]
        return [[d, *map(float, row)] for d, row in zip(dates, part[list(COLUMNS)].to_numpy())]

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def _receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        msg = json.loads(line) if line else {"error": "the policy process exited"}
        if "error" in msg:
            self.close()
            raise RLFoundryError(
                f"Policy '{self.spec}' failed: {msg['error']}; fix the function (it receives a "
                "MarketHistory, see rlfoundry.apps.trading.sandbox, and returns policy(obs))."
            )
        return msg

    def __call__(self, obs: Any) -> int:
        t = self.env.t
        bars = self._bars(self.sent, t + 1) if t + 1 > self.sent else []
        self.sent = max(self.sent, t + 1)
        self._send({"bars": bars, "obs": np.asarray(obs, dtype=np.float64).tolist()})
        return int(self._receive()["action"])

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown
            self.close()
