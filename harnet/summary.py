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
from datetime import tzinfo
from typing import Any, Sequence

import numpy as np
import pandas as pd

from harnet.errors import InputError

__all__ = ["DAILY_COLUMNS_FIXED", "HOURLY_COLUMNS_FIXED", "MinuteGrid", "Summary", "daily_columns", "hourly_columns", "summarize"]

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

REQUIRED_COLUMNS: tuple[str, ...] = ("time", "acc", "wear", "nonwear", "label")

_NS = 1_000_000_000
_MIN_NS = 60 * _NS
_DAY_NS = 86_400 * _NS
_HOUR_NS = 3_600 * _NS
_KEYS = 1440  # clock minutes of a day


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
class MinuteGrid:
    """Every local clock minute of the selected days, crude and adjusted (seconds, mg): the
    building block of the minute and hour tables (``harnet.measures.tables``).

    ``time`` local minute starts (tz-aware when the table is); ``day`` index into the daily
    table; ``*_s`` seconds in the minute; ``cls_s``/``cls_adj_s`` (G, C) per label and
    ``band_s``/``band_adj_s`` (G, B) per cut-point band (None without bands); ``enmo``,
    ``enmo_adj``, ``mad`` mg (NaN where nothing to average).
    """

    time: pd.DatetimeIndex
    day: np.ndarray
    rec_s: np.ndarray
    wear_s: np.ndarray
    nonwear_s: np.ndarray
    cls_s: np.ndarray
    cls_adj_s: np.ndarray
    enmo: np.ndarray
    enmo_adj: np.ndarray
    mad: np.ndarray
    band_s: np.ndarray | None
    band_adj_s: np.ndarray | None


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
    minutes: MinuteGrid | None = None


# --------------------------------------------------------------------------------------------
# input checking and normalisation (shared with harnet.plot)


@dataclass
class _Windows:
    utc: np.ndarray  # int64 ns since epoch (UTC when tz-aware, wall clock when naive), sorted
    wall_day: np.ndarray  # int64 local calendar day (days since 1970-01-01) of each start
    acc: np.ndarray  # float64 mg
    wear: np.ndarray  # bool
    nonwear: np.ndarray  # bool
    code: np.ndarray  # int64 label index, -1 when not classified
    tz: tzinfo | None
    window_ns: int
    mad: np.ndarray | None = None  # float64 mg (harnet.measures), None when the table has no 'mad'
    band: np.ndarray | None = None  # int64 cut-point band index, -1 when none (harnet.measures)


def _fail(msg: str) -> InputError:
    return InputError(msg)


def _check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise _fail(f"labels must be a list of class names, got the string {labels!r}; pass e.g. [{labels!r}]")
    labs = [str(x) for x in labels]
    if not labs or len(set(labs)) != len(labs) or any(not x for x in labs):
        raise _fail(f"labels must be a non-empty list of distinct class names, got {labs!r}; pass the model's labels")
    return labs


def _bool_column(df: pd.DataFrame, col: str) -> np.ndarray:
    s = df[col]
    if s.isna().any():
        raise _fail(f"window table: column {col!r} has missing values; it must be True/False for every window")
    try:
        return s.to_numpy(dtype=bool)
    except (TypeError, ValueError) as e:
        raise _fail(f"window table: column {col!r} is not boolean ({s.dtype}); give True/False per window") from e


def _prepare(windows: pd.DataFrame, labels: list[str], window_sec: float, band: np.ndarray | None = None) -> _Windows:
    """Check the window table and return sorted plain arrays."""
    if not isinstance(windows, pd.DataFrame):
        raise _fail(f"expected the per-window table as a pandas DataFrame, got {type(windows).__name__}")
    if "time" not in windows.columns and windows.index.name == "time":
        windows = windows.reset_index()
    missing = [c for c in REQUIRED_COLUMNS if c not in windows.columns]
    if missing:
        raise _fail(f"window table lacks column(s) {missing}; it needs {list(REQUIRED_COLUMNS)} (the pipeline's per-window output)")
    if not (isinstance(window_sec, (int, float, np.integer, np.floating)) and math.isfinite(window_sec) and window_sec > 0):
        raise _fail(f"window_sec must be a positive number of seconds, got {window_sec!r}")
    window_ns = int(round(float(window_sec) * _NS))
    t = windows["time"]
    if not (pd.api.types.is_datetime64_any_dtype(t)):
        raise _fail(f"window table: column 'time' must be datetime64 (naive or tz-aware), got {t.dtype}; convert it with pd.to_datetime")
    idx = pd.DatetimeIndex(t).as_unit("ns")
    if idx.hasnans:
        raise _fail("window table: column 'time' has missing timestamps (NaT); every window needs its start time")
    tz = idx.tz
    utc = idx.asi8.copy()
    wall = idx.tz_localize(None).asi8 if tz is not None else utc
    wall_day = np.floor_divide(wall, _DAY_NS)

    wear = _bool_column(windows, "wear")
    nonwear = _bool_column(windows, "nonwear")
    try:
        acc = windows["acc"].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as e:
        raise _fail(f"window table: column 'acc' must be numeric (mean ENMO in mg), got {windows['acc'].dtype}") from e

    raw_codes, uniques = pd.factorize(windows["label"], use_na_sentinel=True)
    uniq = [str(u) for u in np.asarray(uniques, dtype=object)]
    unknown = sorted(set(uniq) - set(labels))
    if unknown:
        raise _fail(f"window table: label(s) {unknown} are not among the model's labels {labels}; pass the labels the table was made with")
    lut = np.array([labels.index(u) for u in uniq] + [-1], dtype=np.int64)  # -1 sentinel at the end
    code = lut[np.where(raw_codes < 0, len(uniq), raw_codes)]

    bad = wear & nonwear
    if bad.any():
        raise _fail(f"window table: window at {idx[np.argmax(bad)]} is flagged both worn and non-wear; a window is one or the other")
    bad = wear & (code < 0)
    if bad.any():
        raise _fail(f"window table: worn window at {idx[np.argmax(bad)]} has no label; every worn window needs its class")
    bad = ~wear & (code >= 0)
    if bad.any():
        raise _fail(f"window table: window at {idx[np.argmax(bad)]} has a label but is not flagged worn; set wear=True or clear the label")

    mad = windows["mad"].to_numpy(dtype=np.float64, na_value=np.nan) if "mad" in windows.columns else None
    if band is not None and len(band) != len(utc):
        raise _fail(f"band codes: {len(band)} values for {len(utc)} windows; give one per window")
    order = np.argsort(utc, kind="stable")
    utc, wall_day, acc, wear, nonwear, code = (a[order] for a in (utc, wall_day, acc, wear, nonwear, code))
    mad = None if mad is None else mad[order]
    band = None if band is None else np.asarray(band, dtype=np.int64)[order]
    if len(utc) > 1:
        step = np.diff(utc)
        over = step < window_ns
        if over.any():
            i = int(np.argmax(over))
            when = pd.Timestamp(utc[i + 1], tz="UTC").tz_convert(tz) if tz is not None else pd.Timestamp(utc[i + 1])
            raise _fail(
                f"window table: windows overlap or repeat at {when} (starts {step[i] / _NS:g} s apart, window {window_sec} s); "
                "remove duplicated rows or pass the right window_sec"
            )
    return _Windows(utc, wall_day, acc, wear, nonwear, code, tz, window_ns, mad, band)


def _to_utc_ns(value: Any, tz: tzinfo | None, what: str) -> int:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as e:
        raise _fail(f"{what}={value!r} is not a date or time; give e.g. '2024-03-04' or '2024-03-04 07:00'") from e
    if ts is pd.NaT:
        raise _fail(f"{what} is missing (NaT); give a date or time or leave it out")
    if tz is None:
        if ts.tzinfo is not None:
            raise _fail(f"{what}={value!r} has a time zone but the window times are naive device time; give {what} without a time zone")
        return int(ts.as_unit("ns").value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return int(ts.as_unit("ns").value)


def _local_midnight_utc(day: int, tz: tzinfo | None) -> int:
    """UTC ns of the start of local calendar day ``day`` (days since 1970-01-01)."""
    ns = int(day) * _DAY_NS
    if tz is None:
        return ns
    ts = pd.Timestamp(ns, unit="ns").tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return int(ts.value)


def _select(w: _Windows, start: Any, end: Any, exclude_first_day: bool, exclude_last_day: bool) -> _Windows:
    keep = np.ones(len(w.utc), dtype=bool)
    if start is not None:
        keep &= w.utc >= _to_utc_ns(start, w.tz, "start")
    if end is not None:
        keep &= w.utc < _to_utc_ns(end, w.tz, "end")
    if keep.any() and exclude_first_day:
        keep &= w.wall_day != w.wall_day[keep].min()
    if keep.any() and exclude_last_day:
        keep &= w.wall_day != w.wall_day[keep].max()
    if not keep.any():
        raise _fail("no windows left after applying start/end and the first/last-day exclusions; widen the selection")
    if keep.all():
        return w
    opt = [None if a is None else a[keep] for a in (w.mad, w.band)]
    return _Windows(w.utc[keep], w.wall_day[keep], w.acc[keep], w.wear[keep], w.nonwear[keep], w.code[keep], w.tz, w.window_ns, *opt)


# --------------------------------------------------------------------------------------------
# the minute timeline


@dataclass
class _Timeline:
    """Observed time per clock minute of every day, in (float-held, exact) nanoseconds."""

    first_day: int
    n_days: int
    origin: int  # UTC ns of the first day's local midnight
    day: np.ndarray  # (G,) day index 0..n_days-1 of each minute
    key: np.ndarray  # (G,) local clock minute 0..1439
    dow: np.ndarray  # (n_days,) Monday=0
    rec: np.ndarray  # (G,) recorded ns (any window)
    wear: np.ndarray
    nonwear: np.ndarray
    cls: np.ndarray  # (G, C) worn ns per class
    enmo_w: np.ndarray  # (G,) worn ns with a finite acc
    enmo_s: np.ndarray  # (G,) sum of acc x ns over those
    grid: np.ndarray | None = None  # (G,) UTC ns of each minute's start
    mad_w: np.ndarray | None = None  # (G,) worn ns with a finite MAD
    mad_s: np.ndarray | None = None
    band: np.ndarray | None = None  # (G, B) worn ns per cut-point band


def _timeline(w: _Windows, n_labels: int, n_bands: int = 0) -> _Timeline:
    first_day, last_day = int(w.wall_day.min()), int(w.wall_day.max())
    n_days = last_day - first_day + 1
    origin = _local_midnight_utc(first_day, w.tz)
    stop = _local_midnight_utc(last_day + 1, w.tz)
    n_min = -(-(stop - origin) // _MIN_NS)

    grid = origin + np.arange(n_min, dtype=np.int64) * _MIN_NS
    if w.tz is not None:
        grid_wall = pd.DatetimeIndex(grid, tz="UTC").tz_convert(w.tz).tz_localize(None).asi8
    else:
        grid_wall = grid
    gday = np.floor_divide(grid_wall, _DAY_NS)
    key = (grid_wall - gday * _DAY_NS) // _MIN_NS
    day = np.clip(gday - first_day, 0, n_days - 1)
    dow = (np.arange(first_day, last_day + 1) + 3) % 7  # 1970-01-01 was a Thursday

    # split every window over the minutes it touches (exact integer ns)
    s = w.utc - origin
    e = np.minimum(s + w.window_ns, stop - origin)
    m0 = s // _MIN_NS
    parts_m, parts_ns, parts_row = [], [], []
    rows = np.arange(len(s))
    for j in range(w.window_ns // _MIN_NS + 2):
        m = m0 + j
        ov = np.minimum(e, (m + 1) * _MIN_NS) - np.maximum(s, m * _MIN_NS)
        ok = (ov > 0) & (m < n_min)
        parts_m.append(m[ok])
        parts_ns.append(ov[ok])
        parts_row.append(rows[ok])
    pm = np.concatenate(parts_m)
    pns = np.concatenate(parts_ns).astype(np.float64)
    pr = np.concatenate(parts_row)

    wear_p = w.wear[pr]
    non_p = w.nonwear[pr]
    acc_p = w.acc[pr]
    fin_p = wear_p & np.isfinite(acc_p)

    rec = np.bincount(pm, pns, n_min)
    wear = np.bincount(pm[wear_p], pns[wear_p], n_min)
    nonwear = np.bincount(pm[non_p], pns[non_p], n_min)
    cls = np.bincount(pm[wear_p] * n_labels + w.code[pr][wear_p], pns[wear_p], n_min * n_labels).reshape(n_min, n_labels)
    enmo_w = np.bincount(pm[fin_p], pns[fin_p], n_min)
    enmo_s = np.bincount(pm[fin_p], pns[fin_p] * acc_p[fin_p], n_min)
    mad_w = mad_s = band = None
    if w.mad is not None:
        mad_p = w.mad[pr]
        fm = wear_p & np.isfinite(mad_p)
        mad_w = np.bincount(pm[fm], pns[fm], n_min)
        mad_s = np.bincount(pm[fm], pns[fm] * mad_p[fm], n_min)
    if n_bands and w.band is not None:
        b_p = w.band[pr]
        fb = wear_p & (b_p >= 0)
        band = np.bincount(pm[fb] * n_bands + b_p[fb], pns[fb], n_min * n_bands).reshape(n_min, n_bands)
    return _Timeline(first_day, n_days, origin, day, key, dow, rec, wear, nonwear, cls, enmo_w, enmo_s, grid, mad_w, mad_s, band)


def _group_sum(gid: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum rows of ``values`` (G,) or (G, k) by group id."""
    if values.ndim == 1:
        return np.bincount(gid, values, n)
    k = values.shape[1]
    flat = (gid[:, None] * k + np.arange(k)[None, :]).ravel()
    return np.bincount(flat, values.ravel(), n * k).reshape(n, k)


def _impute(tl: _Timeline, weight: np.ndarray, amount: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per minute: the donor ratio ``amount / weight`` from other days (same weekday, then
    weekday/weekend, then all days) and whether a donor was found.

    ``weight`` (G,) is observed ns, ``amount`` (G,) or (G, k) the observed quantity.
    """
    key = tl.key
    dow_m = tl.dow[tl.day]
    own_id = tl.day * _KEYS + key
    n_own = tl.n_days * _KEYS
    own_w = _group_sum(own_id, weight, n_own)[own_id]
    own_a = _group_sum(own_id, amount, n_own)[own_id]

    found = np.zeros(len(key), dtype=bool)
    ratio = np.full(amount.shape, np.nan)
    for gid, n in (
        (dow_m * _KEYS + key, 7 * _KEYS),
        ((dow_m >= 5) * _KEYS + key, 2 * _KEYS),
        (key, _KEYS),
    ):
        don_w = _group_sum(gid, weight, n)[gid] - own_w  # exact: integer ns held in float64
        don_a = _group_sum(gid, amount, n)[gid] - own_a
        new = ~found & (don_w > 0)
        if new.any():
            if amount.ndim == 1:
                ratio[new] = don_a[new] / don_w[new]
            else:
                ratio[new] = don_a[new] / don_w[new][:, None]
            found |= new
        if found.all():
            break
    return ratio, found


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
    bands: np.ndarray | None = None,
    band_names: Sequence[str] = (),
) -> Summary:
    """Summarise a per-window table into daily, hour-of-day and recording figures.

    See the module docstring for the input table and the exact crude/adjusted rules.

    Parameters
    ----------
    windows : the per-window table (``time``, ``acc``, ``wear``, ``nonwear``, ``label``).
    labels : the model's class names in model order (the daily columns follow this order).
    window_sec : window length in seconds.
    min_wear_per_day_hours : a day is valid (``DayValid``) when its wear time reaches this (and is
        above zero: a day without wear is never valid); only valid days enter the averages.
    exclude_first_day, exclude_last_day : drop the first/last local calendar day of the selection.
    start, end : keep windows starting in ``[start, end)`` (``end`` is exclusive: ``end='2024-03-05'``
        stops at the midnight that begins 5 March). Naive values are local time when the table is
        tz-aware.
    bands, band_names : optional cut-point band index per window row (-1: none) and the band
        column names: adds ``<name>(min)`` and ``<name>Adjusted(min)`` daily columns (worn minutes
        per band, imputed like the classes) and the bands to :attr:`Summary.minutes`.

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
    labs = _check_labels(labels)
    if not (isinstance(min_wear_per_day_hours, (int, float, np.integer, np.floating)) and min_wear_per_day_hours >= 0):
        raise _fail(f"min_wear_per_day_hours must be a number >= 0, got {min_wear_per_day_hours!r}")
    w = _prepare(windows, labs, window_sec, None if bands is None else np.asarray(bands))
    w = _select(w, start, end, exclude_first_day, exclude_last_day)
    C = len(labs)
    B = len(band_names) if bands is not None else 0
    tl = _timeline(w, C, B)
    D = tl.n_days
    day = tl.day

    # ---- imputation, per minute
    missing = np.maximum(_MIN_NS - tl.wear, 0.0)
    frac, found = _impute(tl, tl.wear, tl.cls)
    adj_cls = tl.cls + np.where(found[:, None], missing[:, None] * np.nan_to_num(frac), 0.0)
    not_imp = np.where(found, 0.0, missing)
    miss_e = np.maximum(_MIN_NS - tl.enmo_w, 0.0)
    e_ratio, e_found = _impute(tl, tl.enmo_w, tl.enmo_s)
    adj_es = tl.enmo_s + np.where(e_found, miss_e * np.nan_to_num(e_ratio), 0.0)
    adj_ew = tl.enmo_w + np.where(e_found, miss_e, 0.0)
    adj_band = None
    if tl.band is not None:
        bfrac, bfound = _impute(tl, tl.wear, tl.band)
        adj_band = tl.band + np.where(bfound[:, None], missing[:, None] * np.nan_to_num(bfrac), 0.0)

    # ---- per day sums (ns)
    def per_day(v: np.ndarray) -> np.ndarray:
        return _group_sum(day, v, D)

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
    valid = (wear_h >= float(min_wear_per_day_hours)) & (d_wear > 0)  # no wear: never valid
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
    cols = daily_columns(labs)
    if tl.band is not None and adj_band is not None:
        d_band, d_aband = per_day(tl.band), per_day(adj_band)
        for b, name in enumerate(band_names):
            data[f"{name}(min)"] = d_band[:, b] / _MIN_NS
            data[f"{name}Adjusted(min)"] = d_aband[:, b] / _MIN_NS
            cols += [f"{name}(min)", f"{name}Adjusted(min)"]
    daily = pd.DataFrame(data, columns=cols)

    # ---- hour of day (valid days), coverage (all days)
    hour = tl.key // 60
    vm = valid[day]
    h_wear = np.bincount(hour[vm], tl.wear[vm], 24)
    h_ew = np.bincount(hour[vm], tl.enmo_w[vm], 24)
    h_es = np.bincount(hour[vm], tl.enmo_s[vm], 24)
    h_cls = _group_sum(hour[vm], tl.cls[vm], 24)
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
    return Summary(daily=daily, hourly=hourly, overall=ov, minutes=_minute_grid(tl, w.tz, adj_cls, adj_es, adj_ew, adj_band))


def _minute_grid(tl: _Timeline, tz: tzinfo | None, adj_cls: np.ndarray, adj_es: np.ndarray, adj_ew: np.ndarray,
                 adj_band: np.ndarray | None) -> MinuteGrid:
    grid = tl.grid if tl.grid is not None else tl.origin + np.arange(len(tl.key), dtype=np.int64) * _MIN_NS
    t = pd.DatetimeIndex(grid.view("datetime64[ns]"))
    if tz is not None:
        t = t.tz_localize("UTC").tz_convert(tz)
    with np.errstate(invalid="ignore", divide="ignore"):
        enmo = np.where(tl.enmo_w > 0, tl.enmo_s / np.where(tl.enmo_w > 0, tl.enmo_w, 1), np.nan)
        enmo_adj = np.where(adj_ew > 0, adj_es / np.where(adj_ew > 0, adj_ew, 1), np.nan)
        if tl.mad_w is not None and tl.mad_s is not None:
            mad = np.where(tl.mad_w > 0, tl.mad_s / np.where(tl.mad_w > 0, tl.mad_w, 1), np.nan)
        else:
            mad = np.full(len(grid), np.nan)
    return MinuteGrid(
        time=t, day=tl.day, rec_s=tl.rec / _NS, wear_s=tl.wear / _NS, nonwear_s=tl.nonwear / _NS,
        cls_s=tl.cls / _NS, cls_adj_s=adj_cls / _NS, enmo=enmo, enmo_adj=enmo_adj, mad=mad,
        band_s=None if tl.band is None else tl.band / _NS, band_adj_s=None if adj_band is None else adj_band / _NS,
    )
