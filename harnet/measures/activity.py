"""Per-window predictions -> daily, hour-of-day and recording summaries (pure functions).

Input is the per-window table the pipeline produces: one row per window, covering the recorded
span continuously (gaps included), with columns

``time``
    window start; ``datetime64`` naive (device-local clock) or time-zone aware (when the user gave
    a time zone: days are then local calendar days and DST-correct, 23 h in spring and 25 h in
    autumn).
``acc``
    mean ENMO of the window in mg (NaN when not worn or no data).
``wear``
    bool, the window was classified (worn, complete data).
``nonwear``
    bool, detected non-wear. A row with neither flag is a gap (no or incomplete data).
``label``
    class name of a worn window, missing otherwise (strings or a Categorical).

Other columns (``prob_<label>`` ...) are ignored. Rows may come in any order (chunks
concatenated in any order give identical results); windows must not overlap.

Time accounting (every quantity is computed on an exact nanosecond timeline): each window covers
``[time, time + window_sec)`` and is split over the clock minutes it touches, so a 30-s window
starting at hh:mm:45 gives 15 s to each of two minutes. Days are the local calendar days from the
first to the last window start; the part of a window that runs past the end of the last day is
dropped.

Crude figures use observed time only: ``<label>(hours)`` is the worn time with that label (for
windows aligned to the day that is ``count x window_sec / 3600``), ``ENMO(mg)`` the time-weighted
mean ENMO over worn windows. So, per day, the crude class hours add up to ``WearTime(hours)`` and
``WearTime + NonwearTime + gaps = RecordedTime <= DayLength``.

Adjusted figures fill the missing time, at 1-minute granularity, with the mean of the same clock
minute on *other* days (the day itself is never its own donor): first the same weekday, then the
same weekday/weekend group, then all days. Every actual local minute of the day takes part (a
23-h DST day has 1,380 minutes, a 25-h day 1,500, the repeated hour borrowing from the same clock
minutes). A minute that is only partly observed (say 30 s worn, 30 s non-wear) keeps its observed
seconds and fills the rest. The donor value is pooled over the donor days: donor class seconds /
donor worn seconds. Adjusted class hours are ``sum over minutes of (observed class seconds +
missing seconds x donor class fraction) / 3600``, so they add up to the day's length; a minute
with no donor anywhere (that clock minute was never worn) stays missing and its time is reported
as ``NotImputable(hours)``. ``ENMOAdjusted(mg)`` is the same construction for ENMO, averaged over
the day's minutes that have a value.

Selection: ``start``/``end`` keep windows starting in ``[start, end)``; then ``exclude_first_day``
and ``exclude_last_day`` drop the windows of the first and last remaining calendar day. Dropped
data is not used at all (neither as a day nor as a donor). ``min_wear_per_day_hours`` marks a day
valid (``DayValid``) when its wear time reaches it; invalid days stay in the daily table, still
serve as donors, and are left out of the recording averages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .imputation import build_timeline, group_sum, impute
from .windows import REQUIRED_COLUMNS, check_labels, input_error, prepare_windows, select_windows

__all__ = ["DAILY_COLUMNS_FIXED", "HOURLY_COLUMNS_FIXED", "REQUIRED_COLUMNS", "Summary", "daily_columns", "hourly_columns", "summarize"]

#: The first columns of :attr:`Summary.daily`, in order; per label columns follow (see
#: :func:`daily_columns`).
DAILY_COLUMNS_FIXED: tuple[str, ...] = (
    "Date",
    "DayLength(hours)",
    "RecordedTime(hours)",
    "WearTime(hours)",
    "NonwearTime(hours)",
    "ValidWindows",
    "DayValid",
    "ENMO(mg)",
    "ENMOAdjusted(mg)",
)

#: The first columns of :attr:`Summary.hourly` (index ``Hour`` 0-23); ``<label>(fraction)`` follow.
HOURLY_COLUMNS_FIXED: tuple[str, ...] = ("WearTime(hours)", "ENMO(mg)")

_NS = 1_000_000_000
_MIN_NS = 60 * _NS
_DAY_NS = 86_400 * _NS
_HOUR_NS = 3_600 * _NS


def daily_columns(labels: Sequence[str]) -> list[str]:
    """All columns of the daily table: the fixed ones, then ``<label>(hours)`` and
    ``<label>Adjusted(hours)`` for each label in model order."""
    cols = list(DAILY_COLUMNS_FIXED)
    for lab in labels:
        cols += [f"{lab}(hours)", f"{lab}Adjusted(hours)"]
    return cols


def hourly_columns(labels: Sequence[str]) -> list[str]:
    """All columns of the hour-of-day table."""
    return list(HOURLY_COLUMNS_FIXED) + [f"{lab}(fraction)" for lab in labels]


@dataclass
class Summary:
    """Result of :func:`summarize`.

    ``daily``: one row per local calendar day, columns :func:`daily_columns`.
    ``hourly``: hour-of-day profile over the valid days (index ``Hour`` 0-23): worn hours summed
    over days, time-weighted ENMO and the share of worn time per class (NaN when never worn).
    ``overall``: JSON-serialisable recording summary (NaN written as ``None``) for info.json.
    """

    daily: pd.DataFrame
    hourly: pd.DataFrame
    overall: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------


def _json_num(x: Any) -> Any:
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return None if not math.isfinite(x) else x


def _div(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def summarize(
    windows: pd.DataFrame,
    labels: Sequence[str],
    window_sec: float,
    *,
    min_wear_per_day_hours: float = 0.0,
    exclude_first_day: bool = False,
    exclude_last_day: bool = False,
    start: Any = None,
    end: Any = None,
) -> Summary:
    """Summarise a per-window table into daily, hour-of-day and recording figures.

    See the module docstring for the input table and the exact crude/adjusted rules.

    Parameters
    ----------
    windows : the per-window table (``time``, ``acc``, ``wear``, ``nonwear``, ``label``).
    labels : the model's class names in model order (the daily columns follow this order).
    window_sec : window length in seconds.
    min_wear_per_day_hours : a day is valid (``DayValid``) when its wear time reaches this; only
        valid days enter the recording averages.
    exclude_first_day, exclude_last_day : drop the first/last local calendar day of the selection.
    start, end : keep windows starting in ``[start, end)`` (``end`` is exclusive: ``end='2024-03-05'``
        stops at the midnight that begins 5 March). Naive values are local time when the table is
        tz-aware.

    Returns
    -------
    :class:`Summary` with ``daily`` (columns :func:`daily_columns`), ``hourly`` and ``overall``.
    ``overall`` keys: ``WearTime(days)``, ``NonwearTime(days)``, ``RecordedTime(days)``,
    ``NumDays``, ``NumValidDays``, ``Covers24hOK`` (1 when every clock hour has worn data on at
    least one day), ``GoodWear`` (1 when wear >= 72 h and Covers24hOK), ``ENMO(mg)``,
    ``ENMOAdjusted(mg)``, per label ``<label>(hours/day)``, ``<label>Adjusted(hours/day)``,
    ``<label>(%)`` (share of worn time) and ``<label>Adjusted(%)`` (share of adjusted time),
    ``Weekday/...`` and ``Weekend/...`` (``NumDays``, ``ENMO(mg)``, ``ENMOAdjusted(mg)`` and the
    per-label hours/day, crude and adjusted), ``HourOfDay/WearTime(hours)``,
    ``HourOfDay/ENMO(mg)``, ``HourOfDay/<label>(fraction)`` (lists of 24), ``NotImputable(hours)``,
    ``NotImputableByDay(hours)`` ({date: hours} for days with such time), ``DSTCrossings`` (dates
    whose length is not 24 h), ``Timezone`` (name or None), ``MinWearPerDay(hours)``.
    Wear, non-wear, recorded time, Covers24hOK and GoodWear use every selected day; averages and
    profiles use the valid days only.
    """
    labs = check_labels(labels)
    if not (isinstance(min_wear_per_day_hours, (int, float, np.integer, np.floating)) and min_wear_per_day_hours >= 0):
        raise input_error(f"min_wear_per_day_hours must be a number >= 0, got {min_wear_per_day_hours!r}")
    w = prepare_windows(windows, labs, window_sec)
    w = select_windows(w, start, end, exclude_first_day, exclude_last_day)
    C = len(labs)
    tl = build_timeline(w, C)
    D = tl.n_days
    day = tl.day

    # ---- imputation, per minute
    missing = np.maximum(_MIN_NS - tl.wear, 0.0)
    frac, found = impute(tl, tl.wear, tl.cls)
    adj_cls = tl.cls + np.where(found[:, None], missing[:, None] * np.nan_to_num(frac), 0.0)
    not_imp = np.where(found, 0.0, missing)
    miss_e = np.maximum(_MIN_NS - tl.enmo_w, 0.0)
    e_ratio, e_found = impute(tl, tl.enmo_w, tl.enmo_s)
    adj_es = tl.enmo_s + np.where(e_found, miss_e * np.nan_to_num(e_ratio), 0.0)
    adj_ew = tl.enmo_w + np.where(e_found, miss_e, 0.0)

    # ---- per day sums (ns)
    def per_day(v: np.ndarray) -> np.ndarray:
        return group_sum(day, v, D)

    d_len = np.bincount(day, minlength=D) * float(_MIN_NS)
    d_rec, d_wear, d_non = per_day(tl.rec), per_day(tl.wear), per_day(tl.nonwear)
    d_cls, d_adj = per_day(tl.cls), per_day(adj_cls)
    d_ew, d_es = per_day(tl.enmo_w), per_day(tl.enmo_s)
    d_aew, d_aes = per_day(adj_ew), per_day(adj_es)
    d_notimp = per_day(not_imp)
    valid_windows = np.bincount(w.wall_day[w.wear] - tl.first_day, minlength=D)

    with np.errstate(invalid="ignore", divide="ignore"):
        enmo = np.where(d_ew > 0, d_es / np.where(d_ew > 0, d_ew, 1), np.nan)
        enmo_adj = np.where(d_aew > 0, d_aes / np.where(d_aew > 0, d_aew, 1), np.nan)
    wear_h = d_wear / _HOUR_NS
    valid = wear_h >= float(min_wear_per_day_hours)
    days = pd.to_datetime(np.arange(tl.first_day, tl.first_day + D) * _DAY_NS, unit="ns")
    dates = [d.strftime("%Y-%m-%d") for d in days]

    data: dict[str, Any] = {
        "Date": dates,
        "DayLength(hours)": d_len / _HOUR_NS,
        "RecordedTime(hours)": d_rec / _HOUR_NS,
        "WearTime(hours)": wear_h,
        "NonwearTime(hours)": d_non / _HOUR_NS,
        "ValidWindows": valid_windows.astype(np.int64),
        "DayValid": valid,
        "ENMO(mg)": enmo,
        "ENMOAdjusted(mg)": enmo_adj,
    }
    for c, lab in enumerate(labs):
        data[f"{lab}(hours)"] = d_cls[:, c] / _HOUR_NS
        data[f"{lab}Adjusted(hours)"] = d_adj[:, c] / _HOUR_NS
    daily = pd.DataFrame(data, columns=daily_columns(labs))

    # ---- hour of day (valid days), coverage (all days)
    hour = tl.key // 60
    vm = valid[day]
    h_wear = np.bincount(hour[vm], tl.wear[vm], 24)
    h_ew = np.bincount(hour[vm], tl.enmo_w[vm], 24)
    h_es = np.bincount(hour[vm], tl.enmo_s[vm], 24)
    h_cls = group_sum(hour[vm], tl.cls[vm], 24)
    with np.errstate(invalid="ignore", divide="ignore"):
        h_enmo = np.where(h_ew > 0, h_es / np.where(h_ew > 0, h_ew, 1), np.nan)
        h_frac = np.where(h_wear[:, None] > 0, h_cls / np.where(h_wear > 0, h_wear, 1)[:, None], np.nan)
    hdata: dict[str, Any] = {"WearTime(hours)": h_wear / _HOUR_NS, "ENMO(mg)": h_enmo}
    for c, lab in enumerate(labs):
        hdata[f"{lab}(fraction)"] = h_frac[:, c]
    hourly = pd.DataFrame(hdata, index=pd.RangeIndex(24, name="Hour"), columns=hourly_columns(labs))
    covers = bool((np.bincount(hour, tl.wear, 24) > 0).all())

    # ---- recording summary
    total_wear = float(d_wear.sum())
    ov: dict[str, Any] = {
        "WearTime(days)": total_wear / _DAY_NS,
        "NonwearTime(days)": float(d_non.sum()) / _DAY_NS,
        "RecordedTime(days)": float(d_rec.sum()) / _DAY_NS,
        "NumDays": int(D),
        "NumValidDays": int(valid.sum()),
        "Covers24hOK": int(covers),
        "GoodWear": int(covers and total_wear >= 72 * _HOUR_NS),
        "ENMO(mg)": _div(d_es[valid].sum(), d_ew[valid].sum()),
        "ENMOAdjusted(mg)": _div(d_aes[valid].sum(), d_aew[valid].sum()),
    }
    n_valid = int(valid.sum())
    cls_valid, adj_valid = d_cls[valid].sum(0), d_adj[valid].sum(0)
    for c, lab in enumerate(labs):
        ov[f"{lab}(hours/day)"] = cls_valid[c] / _HOUR_NS / n_valid if n_valid else math.nan
        ov[f"{lab}Adjusted(hours/day)"] = adj_valid[c] / _HOUR_NS / n_valid if n_valid else math.nan
        ov[f"{lab}(%)"] = 100.0 * _div(cls_valid[c], d_wear[valid].sum())
        ov[f"{lab}Adjusted(%)"] = 100.0 * _div(adj_valid[c], adj_valid.sum())
    for name, grp in (("Weekday", tl.dow < 5), ("Weekend", tl.dow >= 5)):
        m = valid & grp
        k = int(m.sum())
        ov[f"{name}/NumDays"] = k
        ov[f"{name}/ENMO(mg)"] = _div(d_es[m].sum(), d_ew[m].sum())
        ov[f"{name}/ENMOAdjusted(mg)"] = _div(d_aes[m].sum(), d_aew[m].sum())
        for c, lab in enumerate(labs):
            ov[f"{name}/{lab}(hours/day)"] = d_cls[m, c].sum() / _HOUR_NS / k if k else math.nan
            ov[f"{name}/{lab}Adjusted(hours/day)"] = d_adj[m, c].sum() / _HOUR_NS / k if k else math.nan
    ov = {k: _json_num(v) for k, v in ov.items()}
    ov["HourOfDay/WearTime(hours)"] = [_json_num(x) for x in h_wear / _HOUR_NS]
    ov["HourOfDay/ENMO(mg)"] = [_json_num(x) for x in h_enmo]
    for c, lab in enumerate(labs):
        ov[f"HourOfDay/{lab}(fraction)"] = [_json_num(x) for x in h_frac[:, c]]
    ov["NotImputable(hours)"] = float(d_notimp.sum()) / _HOUR_NS
    ov["NotImputableByDay(hours)"] = {dates[i]: float(d_notimp[i]) / _HOUR_NS for i in np.flatnonzero(d_notimp > 0)}
    ov["DSTCrossings"] = [dates[i] for i in np.flatnonzero(d_len != _DAY_NS)]
    ov["Timezone"] = None if w.tz is None else str(w.tz)
    ov["MinWearPerDay(hours)"] = float(min_wear_per_day_hours)
    return Summary(daily=daily, hourly=hourly, overall=ov)
