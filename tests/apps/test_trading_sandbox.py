"""A custom policy gets only the past: a planted cheat searches everything it can reach.

The cheat (written to a module below) looks for any price of a bar after the decision
bar through the object it is given (``view.env`` and friends), by walking attributes
and ``gc.get_referents`` from it and from the observation, by following numpy
``.base`` arrays, and in ``gc.get_objects()`` (everything alive in its process). If it
finds the next close it trades on it. Run through ``rlfoundry trade report --policy``
it finds nothing; the same search handed the env finds the future at once, so the test
can fail.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from apps_helpers import random_walk, write_bars

from rlfoundry.apps.trading.cli import named_policy
from rlfoundry.apps.trading.env import TradingEnv
from rlfoundry.cli.main import main
from rlfoundry.errors import RLFoundryError

CHEAT = r'''
import gc, json, types, numpy as np, pandas as pd

KEYS, BARS = [], []  # sorted round(close * 1e6) and the bar of each, filled by the test
LOG = None        # where to write what was found


def _floats(obj):
    """Float values an object exposes directly (arrays, frames, lists, numbers)."""
    try:
        if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
            out = [obj]
            base = obj.base
            while base is not None:  # numpy base arrays: the buffer a view was cut from
                if isinstance(base, np.ndarray):
                    out.append(base.view(np.float64) if base.dtype.kind != "f" else base)
                    base = base.base
                else:
                    out.append(np.frombuffer(base, dtype=np.float64))
                    break
            return out
        if isinstance(obj, (pd.DataFrame, pd.Series)):
            return [obj.select_dtypes("number").to_numpy(dtype=np.float64)
                    if isinstance(obj, pd.DataFrame) else obj.to_numpy(dtype=np.float64)]
        if isinstance(obj, float):
            return [np.array([obj])]
        if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], (float, list)):
            return [np.array(obj, dtype=np.float64).ravel()]
    except Exception:
        pass
    return []


KEYS, BARS = np.asarray(KEYS, dtype=np.float64), np.asarray(BARS, dtype=np.int64)


def latest_future_bar(roots, t, everything=False):
    """The latest bar index > t whose close appears in anything reachable from roots
    (from every object alive in the process with ``everything``)."""
    seen, stack, best = set(), list(roots), -1
    limit = 400_000 if everything else 20_000
    if everything:
        stack += gc.get_objects()
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for arr in _floats(obj):
            with np.errstate(all="ignore"):
                k = np.round(np.asarray(arr, dtype=np.float64).ravel() * 1e6)
            k = k[np.isfinite(k)]
            i = np.clip(np.searchsorted(KEYS, k), 0, len(KEYS) - 1)
            bars = BARS[i[KEYS[i] == k]]
            if len(bars) and bars.max() > t:
                best = max(best, int(bars.max()))
        # attribute walking: whatever the object refers to, and its named attributes
        # (modules and classes lead to the whole heap: the `everything` scan covers it)
        if not everything and isinstance(obj, (types.ModuleType, type)):
            continue
        stack.extend(gc.get_referents(obj))
        for name in ("env", "_env", "unwrapped", "bars", "_close", "__self__", "__closure__"):
            try:
                stack.append(getattr(obj, name))
            except Exception:
                pass
    return best


def cheat(view):
    found = []

    def policy(obs):
        t = len(view) - 1
        try:
            obs[0] = 0.0
            writable = True
        except ValueError:
            writable = False
        step = len(found)
        if step < 10 or step % 25 == 0:  # searching is slow; often enough to be thorough
            hit = latest_future_bar([view, obs, view.obs, policy], t, everything=step == 0)
        else:
            hit = -1
        found.append({"t": t, "future_bar": hit, "writable": writable})
        with open(LOG, "w") as f:
            json.dump(found, f)
        return 2 if hit > t else 1  # BUY on finding the future, else HOLD

    return policy
'''


@pytest.fixture
def planted(tmp_path: Path):
    close = random_walk(300, seed=9) * (1 + 1e-7 * np.random.default_rng(1).random(300))
    csv = write_bars(tmp_path / "bars.csv", close)
    order = np.argsort(np.round(close * 1e6))
    keys, bars = np.round(close * 1e6)[order].tolist(), order.tolist()
    log = tmp_path / "found.json"
    src = CHEAT.replace("KEYS, BARS = [], []", f"KEYS, BARS = {keys!r}, {bars!r}")
    src = src.replace("LOG = None", f"LOG = {str(log)!r}")
    (tmp_path / "cheat_policy.py").write_text(src)
    sys.path.insert(0, str(tmp_path))
    yield csv, log
    sys.path.remove(str(tmp_path))
    sys.modules.pop("cheat_policy", None)


def test_planted_cheat_finds_no_future(planted, tmp_path: Path):
    csv, log = planted
    out = tmp_path / "rep"
    args = ["trade", "report", "--data", str(csv), "--period", "all", "--out", str(out)]
    assert main([*args, "--random-seeds", "1", "--policy", "cheat_policy:cheat"]) == 0
    found = json.loads(log.read_text())
    assert len(found) > 200  # it ran at every step
    assert all(f["future_bar"] == -1 for f in found)  # no later price anywhere
    assert not any(f["writable"] for f in found)  # the observation is read-only
    trades = json.loads((out / "metrics.json").read_text())["table"]["cheat_policy:cheat"]
    assert trades["trades"]["mean"] == 0  # it never found a reason to trade

    # The same search, handed the env in this process, finds the future at once.
    import cheat_policy

    env = TradingEnv(str(csv), "all", episode_length=0)
    env.reset(seed=0)
    assert cheat_policy.latest_future_bar([env], env.t) == len(env.bars) - 1
    import gc

    alive = [o for o in gc.get_objects() if type(o).__name__ == "TradingEnv"]
    assert cheat_policy.latest_future_bar(alive, env.t) == len(env.bars) - 1


def test_view_refuses_writes_and_has_no_env(planted):
    csv, _ = planted
    env = TradingEnv(str(csv), "all", episode_length=0)
    env.reset(seed=0)
    from rlfoundry.apps.trading.sandbox import MarketHistory

    view = MarketHistory("x", None, 3)
    view._add_bars([["2001-01-01", 1.0, 2.0, 0.5, 1.5, 10.0]])
    view._obs.append([0.1, 0.2])
    assert not hasattr(view, "env")
    with pytest.raises(ValueError, match="read-only"):
        view.obs[0, 0] = 1.0
    assert view.obs.base is None or not view.obs.base.flags.writeable
    assert list(view.history(5).columns) == ["open", "high", "low", "close", "volume"]


def test_policy_errors_are_one_sentence(tmp_path: Path):
    (tmp_path / "bad_policy.py").write_text("def broken(view):\n    raise KeyError('oops')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        env = TradingEnv(
            str(write_bars(tmp_path / "b.csv", random_walk(200, 1))), "all", episode_length=0
        )
        with pytest.raises(RLFoundryError, match="bad_policy:broken' failed: KeyError"):
            named_policy("bad_policy:broken")(env)
        with pytest.raises(RLFoundryError, match="no module"):
            named_policy("no_such_module_xyz:f")
    finally:
        sys.path.remove(str(tmp_path))
