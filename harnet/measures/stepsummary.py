"""Steps and walking time per minute, hour and day (crude and adjusted), daily step percentile
times, cadence peaks and walking bouts, from the walking detector's windows (pure functions).

The detector's per-window table (``time``, ``wear`` = the window was valid, ``walking``,
``steps``) goes through the same minute timeline and imputation as the activity measures
(:mod:`harnet.measures.imputation`): crude figures use observed windows only; adjusted figures
fill a minute's missing time with the same clock minute of other days (same weekday, then
weekday/weekend, then all days). Cadence, percentile times and bouts follow stepcount's
definitions (docs/outputs.md, Steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .imputation import build_timeline, group_sum, impute
from .tables import hour_grid
from .windows import prepare_windows

__all__ = ["CADENCE_PEAK_MINUTES", "MIN_WALK_MIN_PER_DAY", "STEP_PERCENTILES", "StepTables", "detect_bouts",
           "step_measures", "steps_daily_columns", "steps_minute_columns"]

_NS = 1_000_000_000
_MIN_NS = 60 * _NS
_DAY_NS = 86_400 * _NS
_LABELS = ["not-walking", "walking"]

#: stepcount's cadence peaks: mean of the N highest step-per-minute minutes of a day.
CADENCE_PEAK_MINUTES = (1, 5, 10, 30)
#: stepcount's minimum walking minutes in a day for its cadence figures.
MIN_WALK_MIN_PER_DAY = 5
#: stepcount's daily step percentile times.
STEP_PERCENTILES = (5, 25, 50, 75, 95)
#: stepcount's walking bouts: at least 80 % walking windows, at most 3 idle windows inside.
BOUT_MIN_WALK = 0.8
BOUT_MAX_IDLE = 3


def steps_minute_columns() -> list[str]:
    """Columns the minute and hour tables gain with steps."""
    return ["Steps", "StepsAdjusted", "Walking(min)", "WalkingAdjusted(min)"]


def steps_daily_columns() -> list[str]:
    """Columns the daily table gains with steps, in order."""
    return (["Steps", "StepsAdjusted", "Walking(min)", "WalkingAdjusted(min)"]
            + [f"Steps{p}thAt" for p in STEP_PERCENTILES]
            + [f"CadencePeak{n}(steps/min)" for n in CADENCE_PEAK_MINUTES] + ["Cadence95th(steps/min)"]
            + ["WalkingBouts(count)", "WalkingBouts(min)"])


@dataclass
class StepTables:
    minutes: pd.DataFrame  # steps_minute_columns(), one row per row of the activity minute table
    hours: pd.DataFrame
    daily: pd.DataFrame  # steps_daily_columns(), one row per activity day
    bouts: pd.DataFrame
    overall: dict[str, Any] = field(default_factory=dict)


def detect_bouts(walk: np.ndarray, min_walk: float = BOUT_MIN_WALK, max_idle: int = BOUT_MAX_IDLE) -> list[tuple[int, int]]:
    """(first window, number of windows) of each walking bout of a 0/1 series.

    A bout starts at a walking window and grows window by window while the share of walking
    windows since its start stays at least ``min_walk`` and no more than ``max_idle`` idle windows
    follow one another; the idle windows at its end are not part of it (stepcount's definition).
    """
    out: list[tuple[int, int]] = []
    start = -1
    n = ones = idle = 0
    for i, a in enumerate(np.asarray(walk, dtype=bool).tolist()):
        if a:
            if start < 0:
                start = i
            ones += 1
            n += 1
            idle = 0
        elif start >= 0:
            n += 1
            idle += 1
            if idle > max_idle or ones / n < min_walk:
                out.append((start, n - idle))
                start, n, ones, idle = -1, 0, 0, 0
    if start >= 0:
        out.append((start, n - idle))
    return out


def _hms(ns: float) -> str | None:
    if not math.isfinite(ns):
        return None
    s = int(round(ns / _NS)) % 86_400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _circular_mean_ns(ns: np.ndarray) -> float:
    """Mean time of day (ns after midnight) on the 24-h circle; NaN when none or undefined."""
    ns = ns[np.isfinite(ns)]
    if not len(ns):
        return math.nan
    ang = ns * (2 * np.pi / _DAY_NS)
    s, c = np.sin(ang).mean(), np.cos(ang).mean()
    if math.hypot(s, c) < 1e-12:
        return math.nan
    return float((math.atan2(s, c) % (2 * np.pi)) * _DAY_NS / (2 * np.pi))


def _cadence(minute_steps: np.ndarray, min_per_min: float) -> list[float]:
    """stepcount's daily cadence figures from a day's steps per minute."""
    y = minute_steps[minute_steps >= min_per_min]
    if len(y) < MIN_WALK_MIN_PER_DAY:
        return [math.nan] * (len(CADENCE_PEAK_MINUTES) + 1)
    d = np.sort(y)[::-1]
    peaks = [float(d[d >= d[min(n, len(d)) - 1]].mean()) for n in CADENCE_PEAK_MINUTES]
    return peaks + [float(np.quantile(y, 0.95))]


def step_measures(
    windows: pd.DataFrame,
    window_sec: float,
    steptol: int,
    *,
    dates: Sequence[str],
    valid_day: np.ndarray,
    minute_times: pd.Series | pd.DatetimeIndex,
    hour_times: pd.Series | pd.DatetimeIndex,
    source: str = "steps",
) -> StepTables:
    """All step measures of one recording (see module doc).

    ``windows``: the detector's windows (``time`` local, ``wear``, ``nonwear``, ``walking``,
    ``steps``, ``enmo``); ``dates``/``valid_day``: the activity daily table's days and
    ``DayValid`` (only these days are summarised; the averages use the valid ones);
    ``minute_times``/``hour_times``: the activity minute and hour tables' ``time``.
    """
    dates = list(dates)
    valid_day = np.asarray(valid_day, dtype=bool)
    D = len(dates)
    day0 = int(pd.Timestamp(dates[0]).value // _DAY_NS) if D else 0
    df = pd.DataFrame({"time": windows["time"], "acc": windows["steps"].to_numpy(dtype=np.float64),
                       "wear": windows["wear"].to_numpy(dtype=bool), "nonwear": windows["nonwear"].to_numpy(dtype=bool),
                       "label": pd.Categorical.from_codes(np.where(windows["wear"], windows["walking"].astype(np.int64), -1),
                                                          categories=_LABELS)})
    w = prepare_windows(df, _LABELS, window_sec)
    keep = (w.wall_day >= day0) & (w.wall_day < day0 + D)
    order = np.argsort(pd.DatetimeIndex(windows["time"]).as_unit("ns").asi8, kind="stable")
    enmo = windows["enmo"].to_numpy(dtype=np.float64)[order][keep]
    walk_w = windows["walking"].to_numpy(dtype=bool)[order][keep]
    w.utc, w.wall_day, w.acc, w.wear, w.nonwear, w.code = (a[keep] for a in (w.utc, w.wall_day, w.acc, w.wear, w.nonwear, w.code))
    empty = not len(w.utc)
    ov: dict[str, Any] = {}
    if empty:  # nothing of the selection: every figure missing
        nan_d = pd.DataFrame({c: [math.nan] * D for c in steps_daily_columns()})
        mt = pd.DataFrame({c: np.full(len(minute_times), np.nan) for c in steps_minute_columns()})
        ht = pd.DataFrame({c: np.full(len(hour_times), np.nan) for c in steps_minute_columns()})
        return StepTables(mt, ht, nan_d, _bouts_frame([]), _overall(nan_d, valid_day, math.nan, math.nan))
    tl = build_timeline(w, 2)
    wns = int(round(window_sec * _NS))
    # per minute (ns and step-ns): walking time and steps, crude and adjusted
    missing = np.maximum(_MIN_NS - tl.wear, 0.0)
    frac, found = impute(tl, tl.wear, tl.cls[:, 1])
    walk, walk_adj = tl.cls[:, 1], tl.cls[:, 1] + np.where(found, missing * np.nan_to_num(frac), 0.0)
    miss_e = np.maximum(_MIN_NS - tl.enmo_w, 0.0)
    ratio, e_found = impute(tl, tl.enmo_w, tl.enmo_s)
    steps, steps_adj = tl.enmo_s / wns, (tl.enmo_s + np.where(e_found, miss_e * np.nan_to_num(ratio), 0.0)) / wns
    per_min = {"Steps": steps, "StepsAdjusted": steps_adj, "Walking(min)": walk / _MIN_NS,
               "WalkingAdjusted(min)": walk_adj / _MIN_NS}

    t = pd.DatetimeIndex(tl.grid.view("datetime64[ns]"))
    if w.tz is not None:
        t = t.tz_localize("UTC").tz_convert(w.tz)
    pos = t.get_indexer(pd.DatetimeIndex(minute_times))
    mt = pd.DataFrame({c: np.where(pos >= 0, v[np.maximum(pos, 0)], np.nan) for c, v in per_min.items()})
    hid, _, ht_idx = hour_grid(SimpleNamespace(time=t))
    hpos = ht_idx.get_indexer(pd.DatetimeIndex(hour_times))
    ht = pd.DataFrame({c: np.where(hpos >= 0, np.bincount(hid, v, len(ht_idx))[np.maximum(hpos, 0)], np.nan)
                       for c, v in per_min.items()})

    # per day: the timeline's days are the activity days from the first one with a step window
    tday = pd.to_datetime((np.arange(tl.first_day, tl.first_day + tl.n_days)) * _DAY_NS, unit="ns").strftime("%Y-%m-%d")
    dpos = pd.Index(tday).get_indexer(dates)
    daily: dict[str, Any] = {}
    for c, v in per_min.items():
        s = group_sum(tl.day, v, tl.n_days)
        daily[c] = np.where(dpos >= 0, s[np.maximum(dpos, 0)], np.nan)
    wall_ns = w.utc if w.tz is None else pd.DatetimeIndex(w.utc, tz="UTC").tz_convert(w.tz).tz_localize(None).asi8
    di = w.wall_day - day0
    fin = np.isfinite(w.acc) & w.wear
    pct = np.full((D, len(STEP_PERCENTILES)), np.nan)
    cad = np.full((D, len(CADENCE_PEAK_MINUTES) + 1), np.nan)
    min_per_min = steptol * 60.0 / window_sec
    bounds = np.searchsorted(di, np.arange(D + 1))
    mday = tl.day
    for i in range(D):
        a, b = bounds[i], bounds[i + 1]
        s = np.where(fin[a:b], w.acc[a:b], 0.0)
        tot = s.sum()
        if tot > 0:
            z = np.cumsum(s) / tot
            tod = wall_ns[a:b] - (day0 + i) * _DAY_NS
            for j, p in enumerate(STEP_PERCENTILES):
                pct[i, j] = tod[np.searchsorted(z, p / 100.0 - 1e-12)]
        if dpos.size and i < len(dpos) and dpos[i] >= 0:
            cad[i] = _cadence(steps[mday == dpos[i]], min_per_min)
    for j, p in enumerate(STEP_PERCENTILES):
        daily[f"Steps{p}thAt"] = [_hms(x) for x in pct[:, j]]
    for j, n in enumerate(CADENCE_PEAK_MINUTES):
        daily[f"CadencePeak{n}(steps/min)"] = cad[:, j]
    daily["Cadence95th(steps/min)"] = cad[:, -1]

    # walking bouts over the selection's windows, in time order
    rows = []
    for a, n in detect_bouts(walk_w):
        st = w.acc[a:a + n]
        e = enmo[a:a + n]
        dur = n * window_sec / 60.0
        tot = float(np.nansum(st))
        rows.append((int(di[a]), int(w.utc[a]), int(w.utc[a]) + n * wns, dur, tot, tot / dur,
                     float(np.nanmean(e)) if np.isfinite(e).any() else math.nan))
    bday = np.array([r[0] for r in rows], dtype=np.int64)
    daily["WalkingBouts(count)"] = np.bincount(bday, minlength=D).astype(np.int64)
    daily["WalkingBouts(min)"] = np.bincount(bday, [r[3] for r in rows], minlength=D) if rows else np.zeros(D)
    daily_df = pd.DataFrame(daily, columns=steps_daily_columns())
    bouts = _bouts_frame([(dates[r[0]], *r[1:]) for r in rows], w.tz, source)
    return StepTables(mt, ht, daily_df, bouts, _overall(daily_df, valid_day, float(np.nansum(w.acc[fin])),
                                                        float(w.code[w.wear].sum() * window_sec / 60.0), pct))


def _bouts_frame(rows: list[tuple], tz: Any = None, source: str = "steps") -> pd.DataFrame:
    """The bouts table's rows of the walking bouts (docs/outputs.md, Bouts table)."""
    def local(ns: list[int]) -> pd.DatetimeIndex:
        t = pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("datetime64[ns]"))
        return t.tz_localize("UTC").tz_convert(tz) if tz is not None else t

    return pd.DataFrame({
        "Kind": "Walking", "Source": source, "MinLength(min)": 0.0, "Criterion": BOUT_MIN_WALK,
        "Date": [r[0] for r in rows], "start": local([r[1] for r in rows]), "end": local([r[2] for r in rows]),
        "Duration(min)": np.array([r[3] for r in rows], dtype=np.float64),
        "ENMO(mg)": np.array([r[6] for r in rows], dtype=np.float64),
        "Steps": np.array([r[4] for r in rows], dtype=np.float64),
        "Cadence(steps/min)": np.array([r[5] for r in rows], dtype=np.float64),
    })


def _overall(daily: pd.DataFrame, valid: np.ndarray, total: float, walk_min: float,
             pct: np.ndarray | None = None) -> dict[str, Any]:
    """info.json's step figures: totals over the selection, daily means (medians for cadence,
    circular means for the percentile times) over the valid days."""
    def mean(c: str) -> float:
        v = daily[c].to_numpy(dtype=np.float64)[valid]
        v = v[np.isfinite(v)]
        return float(v.mean()) if len(v) else math.nan

    ov: dict[str, Any] = {"TotalSteps": total, "TotalWalking(min)": walk_min}
    for c, k in (("Steps", "Steps(steps/day)"), ("StepsAdjusted", "StepsAdjusted(steps/day)"),
                 ("Walking(min)", "Walking(min/day)"), ("WalkingAdjusted(min)", "WalkingAdjusted(min/day)"),
                 ("WalkingBouts(count)", "WalkingBouts(count/day)"), ("WalkingBouts(min)", "WalkingBouts(min/day)")):
        ov[k] = mean(c) if valid.any() else math.nan
    for c in [f"CadencePeak{n}(steps/min)" for n in CADENCE_PEAK_MINUTES] + ["Cadence95th(steps/min)"]:
        v = daily[c].to_numpy(dtype=np.float64)[valid]
        v = v[np.isfinite(v)]
        ov[c] = float(np.median(v)) if len(v) else math.nan
    for j, p in enumerate(STEP_PERCENTILES):
        ov[f"Steps{p}thAt"] = _hms(_circular_mean_ns(pct[valid, j])) if pct is not None else None
    return ov
