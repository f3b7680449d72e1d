"""Market data for the trading env: loading OHLCV bars, causal features, chronological splits.

Offline data sets (read from the installed packages, never downloaded or copied here):

==========  ===========================================  ==========================
name        what                                          shipped by (package licence)
==========  ===========================================  ==========================
``sp500``   S&P 500 index, daily, 1999-01-04..2018-12-31  ``arch`` (NCSA)
``nasdaq``  NASDAQ Composite, daily, 1999-01-04..2018-12-31  ``arch`` (NCSA)
``googl``   Alphabet (GOOGL) stock, daily, 2009-05-22..2018-08-29  ``gym-anytrading`` (MIT)
``eurusd``  EUR/USD ask, hourly, 2017                     ``gym-anytrading`` (MIT)
``wti``     WTI crude oil spot, daily close, 1986-2019    ``arch`` (NCSA)
==========  ===========================================  ==========================

``wti`` is FRED's DCOILWTICO series (U.S. Energy Information Administration data,
public domain): closes only, so each bar's open, high and low are set to the previous
close (a fill "at the next open" fills at the decision bar's close).

The packages' licences cover their code; the price series themselves are public market
data (Yahoo Finance for the three daily sets, a broker feed for EUR/USD) that the
packages redistribute for examples and teaching, which is how they are used here. Any
other OHLCV CSV works too: pass its path.

Every feature at bar ``t`` is computed from bars ``<= t`` only (rolling windows and
exponential averages from the ``ta`` library look backwards), and no statistic is
fitted on the data, so nothing from a later split leaks into an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rlfoundry.errors import RLFoundryError

DATASETS: dict[str, str] = {
    "sp500": "S&P 500 index, daily 1999-2018 (arch)",
    "nasdaq": "NASDAQ Composite, daily 1999-2018 (arch)",
    "googl": "Alphabet GOOGL, daily 2009-2018 (gym-anytrading)",
    "eurusd": "EUR/USD hourly ask, 2017 (gym-anytrading)",
    "wti": "WTI crude oil spot, daily closes 1986-2019 (arch; FRED/EIA)",
}

#: Names of the per-bar features, in observation order.
FEATURES: tuple[str, ...] = (
    "ret",  # close-to-close log return / 60-bar volatility
    "body",  # log(close / open) / volatility
    "range",  # log(high / low) / volatility
    "volume",  # log(volume / its 20-bar mean)
    "rsi",  # RSI(14) rescaled to [-1, 1]
    "macd",  # MACD histogram / (close * volatility)
    "bb",  # Bollinger %b(20, 2) - 0.5
    "trend",  # log(SMA10 / SMA50) / volatility
)

_VOL_WINDOW = 60
#: Bars dropped at the start so every feature is defined (the slowest window is 60).
WARMUP = _VOL_WINDOW + 1


def _package_file(package: str, *parts: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RLFoundryError(
            f"Data set needs the '{package}' package; install it with `pip install {package.replace('_', '-')}`."
        )
    return Path(spec.origin).parent.joinpath(*parts)


def load_ohlcv(source: str | Path) -> pd.DataFrame:
    """Bars with a sorted DatetimeIndex and float columns open, high, low, close, volume.

    ``source`` is one of :data:`DATASETS` or the path of a CSV with a date/time column
    (``Date``, ``Datetime``, ``Time`` or ``timestamp``) and OHLCV columns (any case).
    """
    key = str(source).lower()
    if key in ("sp500", "nasdaq"):
        path = _package_file("arch", "data", key, f"{key}.csv.gz")
        df = pd.read_csv(path, index_col=0, parse_dates=True)
    elif key == "googl":
        df = _read_csv(_package_file("gym_anytrading", "datasets", "data", "STOCKS_GOOGL.csv"))
    elif key == "wti":
        raw = pd.read_csv(_package_file("arch", "data", "wti", "wti.csv.gz"))
        close = pd.to_numeric(raw["DCOILWTICO"], errors="coerce").to_numpy()
        prev = pd.Series(close).ffill().shift(1).fillna(pd.Series(close)).to_numpy()
        df = pd.DataFrame(
            {"open": prev, "high": np.maximum(prev, close), "low": np.minimum(prev, close),
             "close": close},
            index=pd.DatetimeIndex(pd.to_datetime(raw["Date"], format="%m/%d/%Y")),
        )  # fmt: skip
        df = df[np.isfinite(close)]
    elif key == "eurusd":
        path = _package_file("gym_anytrading", "datasets", "data", "FOREX_EURUSD_1H_ASK.csv")
        df = _read_csv(path, dayfirst=True)
    else:
        path = Path(source)
        if not path.is_file():
            raise RLFoundryError(
                f"No data set or file '{source}'; use one of {', '.join(DATASETS)} or the path of an OHLCV CSV."
            )
        df = _read_csv(path)
    return _clean(df, str(source))


def _read_csv(path: Path, dayfirst: bool = False) -> pd.DataFrame:
    df = pd.read_csv(path)
    for name in df.columns:
        if name.lower() in ("date", "datetime", "time", "timestamp"):
            fmt = "%d.%m.%Y %H:%M:%S.%f" if dayfirst else None
            df.index = pd.to_datetime(df.pop(name), format=fmt)
            return df
    raise RLFoundryError(
        f"CSV '{path}' has no date column; name one of its columns Date, Datetime, Time or timestamp."
    )


def _clean(df: pd.DataFrame, name: str) -> pd.DataFrame:
    cols = {c.lower().replace(" ", "_"): c for c in df.columns}
    missing = [c for c in ("open", "high", "low", "close") if c not in cols]
    if missing:
        raise RLFoundryError(
            f"Data '{name}' lacks the column(s) {', '.join(missing)}; an OHLCV CSV needs Open, High, Low, Close (and Volume)."
        )
    out = pd.DataFrame(index=pd.DatetimeIndex(df.index, name="date"))
    for c in ("open", "high", "low", "close"):
        out[c] = df[cols[c]].astype(np.float64).to_numpy()
    out["volume"] = (
        df[cols["volume"]].astype(np.float64).to_numpy() if "volume" in cols else np.ones(len(df))
    )
    out = out[~out.index.duplicated(keep="first")].sort_index()
    out = out.dropna()
    if (out[["open", "high", "low", "close"]] <= 0).to_numpy().any():
        raise RLFoundryError(f"Data '{name}' has prices <= 0; prices must be positive.")
    if len(out) < WARMUP + 10:
        raise RLFoundryError(
            f"Data '{name}' has {len(out)} bars; at least {WARMUP + 10} are needed (features use {WARMUP} bars of history)."
        )
    return out


def add_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The :data:`FEATURES` columns, each a function of bars up to and including its own row.

    Indicators come from the ``ta`` library. Returns are divided by their own rolling
    volatility so one network sees daily stocks and hourly FX on the same scale.
    Rows before :data:`WARMUP` hold NaN.
    """
    from ta.momentum import RSIIndicator
    from ta.trend import MACD
    from ta.volatility import BollingerBands

    o, h, lo, c, v = (bars[k] for k in ("open", "high", "low", "close", "volume"))
    logret = np.log(c).diff()
    vol = logret.rolling(_VOL_WINDOW).std().clip(lower=1e-6)
    f = pd.DataFrame(index=bars.index)
    f["ret"] = logret / vol
    f["body"] = np.log(c / o) / vol
    f["range"] = np.log(h / lo) / vol
    f["volume"] = np.log((v + 1.0) / (v.rolling(20).mean() + 1.0))
    f["rsi"] = RSIIndicator(c, window=14).rsi() / 50.0 - 1.0
    f["macd"] = MACD(c).macd_diff() / (c * vol)
    f["bb"] = BollingerBands(c, window=20, window_dev=2).bollinger_pband() - 0.5
    f["trend"] = np.log(c.rolling(10).mean() / c.rolling(50).mean()) / vol
    f = f.replace([np.inf, -np.inf], np.nan).clip(-5.0, 5.0)
    f.iloc[:WARMUP] = np.nan
    return f


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per calendar year, measured from the data (252 for daily stocks, ~6,200 hourly FX)."""
    if len(index) < 2:
        return 252.0
    days = (index[-1] - index[0]).total_seconds() / 86400.0
    return float((len(index) - 1) / (days / 365.25)) if days > 0 else 252.0


@dataclass(frozen=True)
class Split:
    """Row ranges ``[start, stop)`` of the chronological train / validation / test periods."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]


def chronological_split(n: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Split:
    """Cut rows ``WARMUP..n`` into consecutive train / val / test blocks by ``fractions``.

    >>> chronological_split(161, (0.6, 0.2, 0.2))
    Split(train=(61, 121), val=(121, 141), test=(141, 161))
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise RLFoundryError(
            f"Split fractions {fractions} must be three non-negative numbers summing to 1, e.g. 0.7,0.15,0.15."
        )
    usable = n - WARMUP
    a = WARMUP + round(usable * fractions[0])
    b = a + round(usable * fractions[1])
    return Split((WARMUP, a), (a, b), (b, n))


def resolve_period(
    index: pd.DatetimeIndex, period: str, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``period``: ``train``/``val``/``test``/``all`` or ``"START:END"`` dates.

    Dates are inclusive and either may be empty (``"2016-01-01:"``).
    """
    split = chronological_split(len(index), fractions)
    named = {
        "train": split.train,
        "val": split.val,
        "test": split.test,
        "all": (WARMUP, len(index)),
    }
    if period in named:
        return named[period]
    if ":" not in period:
        raise RLFoundryError(
            f"Unknown period '{period}'; use train, val, test, all or START:END dates such as 2016-01-01:2018-12-31."
        )
    lo, hi = period.split(":", 1)
    start = int(index.searchsorted(pd.Timestamp(lo), "left")) if lo else 0
    stop = int(index.searchsorted(pd.Timestamp(hi), "right")) if hi else len(index)
    start = max(start, WARMUP)
    if stop - start < 3:
        raise RLFoundryError(
            f"Period '{period}' holds {max(stop - start, 0)} usable bars; choose dates inside "
            f"{index[WARMUP].date()}..{index[-1].date()}."
        )
    return start, stop


def walk_forward_folds(
    start: int, stop: int, folds: int, train_bars: int | None = None
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Walk-forward ``(train, test)`` row ranges over ``[start, stop)``.

    The span is cut into ``folds + 1`` equal blocks; fold ``k`` tests on block ``k+1`` and
    trains on everything before it (expanding window), or on the ``train_bars`` rows just
    before it (rolling window). Test blocks never overlap and always follow their training
    data.

    >>> walk_forward_folds(0, 40, 3)
    [((0, 10), (10, 20)), ((0, 20), (20, 30)), ((0, 30), (30, 40))]
    """
    if folds < 1 or stop - start < 2 * (folds + 1):
        raise RLFoundryError(
            f"Cannot make {folds} walk-forward folds from {stop - start} bars; use fewer folds or more data."
        )
    edges = np.linspace(start, stop, folds + 2).round().astype(int)
    out = []
    for k in range(folds):
        test = (int(edges[k + 1]), int(edges[k + 2]))
        lo = start if train_bars is None else max(start, test[0] - train_bars)
        out.append(((lo, test[0]), test))
    return out
