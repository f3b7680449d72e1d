"""Measure the LLM order reviewer (issue 17) on the S&P 500 test period.

    python benchmarks/trading_llm_eval.py --model-dir /tmp/smollm2t/model --out runs/llm-eval

For the reviewed policy (a 20-bar momentum rule that proposes an order when its signal
flips; no trained agent, to keep the LLM's CPU time within a session; other policies
with ``--policies``), these backtests on the test period:

1. without the LLM (the policy alone);
2. observe: the LLM reviews every order that would trade but blocks none (``shaping``
   mode with zero coefficients), so every order is decided on the policy's own path;
3. with the LLM as a filter (a veto turns the order into HOLD);
4. 2 and 3 again with contextual calibration (``calibrate=True``).

From the observe runs: how many orders got a decision (the log-probability scorer
always answers), how often it vetoes, and whether the vetoed orders did worse than the
kept ones: each order's outcome is ``sign(target - exposure) * (close[t+h] / open[t+1]
- 1)``, the move of the asset over ``h`` bars after the fill, in the order's direction;
the 95% CI of mean(vetoed) - mean(kept) is a percentile bootstrap over orders (10,000
resamples, seed 0). Replies are cached (``--out``/cache), so a rerun is cheap.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def momentum(env: Any, lookback: int = 20) -> Any:
    """Long while the close is above its value ``lookback`` bars ago, flat otherwise.

    It proposes an order only when that signal flips (HOLD in between), so an order the
    LLM vetoes is not proposed again on every following bar; without the LLM this is
    the same as holding the signal's position.
    """
    from rlfoundry.apps.trading.env import BUY, HOLD, SELL

    last: list[bool] = []

    def policy(obs: Any) -> int:
        close = env.history(lookback + 1)["close"].to_numpy()
        up = bool(close[-1] > close[0])
        flipped = not last or up != last[-1]
        last.append(up)
        if not flipped:
            return HOLD
        return BUY if up else SELL

    return policy


def outcomes(env: Any, reviews: list[dict[str, Any]], horizon: int) -> np.ndarray:
    """Signed ``horizon``-bar move after each reviewed order's fill (NaN past the data)."""
    from rlfoundry.apps.trading.env import SELL

    open_, close = env.bars["open"].to_numpy(), env.bars["close"].to_numpy()
    out = []
    for rv in reviews:
        t = env.first + rv["step"]  # the decision bar; the order fills at t + 1's open
        sign = -1.0 if rv["proposed"] == SELL else 1.0
        end = t + horizon
        out.append(sign * (close[end] / open_[t + 1] - 1.0) if end < len(close) else np.nan)
    return np.asarray(out)


def diff_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> dict:
    """mean(a) - mean(b) with a percentile bootstrap 95% CI (each group resampled)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return {
            "estimate": float("nan"),
            "lo": float("nan"),
            "hi": float("nan"),
            "n": [len(a), len(b)],
        }
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
    rb = b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
    lo, hi = np.percentile(ra - rb, [2.5, 97.5])
    return {
        "estimate": float(a.mean() - b.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "n": [len(a), len(b)],
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    ra, rb = np.argsort(np.argsort(a[ok])), np.argsort(np.argsort(b[ok]))
    return float(np.corrcoef(ra, rb)[0, 1]) if ok.sum() > 2 and ra.std() > 0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--out", default="runs/llm-eval")
    ap.add_argument("--period", default="test")
    ap.add_argument("--history-bars", type=int, default=3)
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--policies", nargs="+", default=["momentum"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--decisions", nargs="+", default=["approve_veto", "actions"])
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from rlfoundry.apps.trading import metrics
    from rlfoundry.apps.trading.backtest import env_for_backtest, run_backtest
    from rlfoundry.apps.trading.baselines import BASELINES

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = {
        "model_dir": args.model_dir,
        "cache_dir": str(out / "cache"),
        "history_bars": args.history_bars,
    }
    rows: dict[str, Any] = {}
    path = out / "results.json"
    for name, decision, calibrated in [
        (n, d, c) for n in args.policies for d in args.decisions for c in (False, True)
    ]:
        observe = {**base, "decision": decision, "mode": "shaping", "coef": 0.0, "risk_coef": 0.0}
        filt = {**base, "decision": decision, "mode": "filter"}
        key = f"{name}, {decision}{', calibrated' if calibrated else ''}"
        t0 = time.time()
        runs = {}
        for what, llm in (("without", None), ("observe", observe), ("with", filt)):
            if llm is not None:
                llm = {**llm, "calibrate": calibrated}
            env = env_for_backtest({}, args.period, llm=llm)
            make = momentum if name == "momentum" else BASELINES[name]
            runs[what] = run_backtest(make(env), env, what)
            print(f"{key} {what}: {time.time() - t0:.0f} s", flush=True)
        obs = runs["observe"]
        assert np.array_equal(obs.equity, runs["without"].equity)  # observing changes nothing
        veto = np.array([rv["veto"] for rv in obs.reviews], dtype=bool)
        res = outcomes(env, obs.reviews, args.horizon)
        r_with = metrics.period_returns(runs["with"].equity)
        r_without = metrics.period_returns(runs["without"].equity)
        p = runs["with"].periods_per_year
        score = np.array([rv["score"] for rv in obs.reviews])
        low = score <= np.median(score)  # the half the model likes least
        rows[key] = {
            "score_spread": [float(score.min()), float(score.max())],
            "low_minus_high_score_half": diff_ci(res[low], res[~low]),
            "spearman_score_outcome": _spearman(score, res),
            "orders": len(obs.reviews),
            "decided": obs.llm["reviews"] - obs.llm["unparsed"],
            "vetoes": int(veto.sum()),
            "veto_rate": float(veto.mean()) if len(veto) else float("nan"),
            "vetoed_outcome": float(np.nanmean(res[veto])) if veto.any() else float("nan"),
            "kept_outcome": float(np.nanmean(res[~veto])) if (~veto).any() else float("nan"),
            "vetoed_minus_kept": diff_ci(res[veto], res[~veto]),
            "without": runs["without"].metrics(),
            "with": runs["with"].metrics(),
            "with_reviews": runs["with"].llm,
            "sharpe_with_minus_without": metrics.bootstrap_sharpe(r_with, p, b=r_without),
            "seconds": time.time() - t0,
        }
        path.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
        print(json.dumps(rows[key], indent=1), flush=True)


if __name__ == "__main__":
    main()
