"""The minute timeline of a recording and the imputation of its missing time: each clock minute
of every day filled from the same minute of other days (same weekday, then weekday/weekend group,
then all days). See :mod:`harnet.measures.activity` for the method."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .windows import WindowTable, local_midnight_utc

_NS = 1_000_000_000
_MIN_NS = 60 * _NS
_DAY_NS = 86_400 * _NS
_KEYS = 1440  # clock minutes of a day


# --------------------------------------------------------------------------------------------
# the minute timeline


@dataclass
class Timeline:
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


def build_timeline(w: WindowTable, n_labels: int, n_bands: int = 0) -> Timeline:
    first_day, last_day = int(w.wall_day.min()), int(w.wall_day.max())
    n_days = last_day - first_day + 1
    origin = local_midnight_utc(first_day, w.tz)
    stop = local_midnight_utc(last_day + 1, w.tz)
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
    return Timeline(first_day, n_days, origin, day, key, dow, rec, wear, nonwear, cls, enmo_w, enmo_s, grid, mad_w, mad_s, band)


@dataclass
class MinuteGrid:
    """Every local clock minute of the selected days, crude and adjusted (seconds, mg): the
    building block of the minute and hour tables (:mod:`harnet.measures.tables`).

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


def minute_grid(tl: Timeline, tz, adj_cls: np.ndarray, adj_es: np.ndarray, adj_ew: np.ndarray,
                adj_band: np.ndarray | None) -> MinuteGrid:
    """The :class:`MinuteGrid` of a timeline and its imputed amounts (ns)."""
    grid = tl.grid if tl.grid is not None else tl.origin + np.arange(len(tl.key), dtype=np.int64) * _MIN_NS
    t = pd.DatetimeIndex(grid.view("datetime64[ns]"))
    if tz is not None:
        t = t.tz_localize("UTC").tz_convert(tz)

    def ratio(s: np.ndarray | None, w: np.ndarray | None) -> np.ndarray:
        if s is None or w is None:
            return np.full(len(grid), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(w > 0, s / np.where(w > 0, w, 1), np.nan)

    return MinuteGrid(
        time=t, day=tl.day, rec_s=tl.rec / _NS, wear_s=tl.wear / _NS, nonwear_s=tl.nonwear / _NS,
        cls_s=tl.cls / _NS, cls_adj_s=adj_cls / _NS, enmo=ratio(tl.enmo_s, tl.enmo_w), enmo_adj=ratio(adj_es, adj_ew),
        mad=ratio(tl.mad_s, tl.mad_w),
        band_s=None if tl.band is None else tl.band / _NS, band_adj_s=None if adj_band is None else adj_band / _NS,
    )


def group_sum(gid: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum rows of ``values`` (G,) or (G, k) by group id."""
    if values.ndim == 1:
        return np.bincount(gid, values, n)
    k = values.shape[1]
    flat = (gid[:, None] * k + np.arange(k)[None, :]).ravel()
    return np.bincount(flat, values.ravel(), n * k).reshape(n, k)


def impute(tl: Timeline, weight: np.ndarray, amount: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per minute: the donor ratio ``amount / weight`` from other days (same weekday, then
    weekday/weekend, then all days) and whether a donor was found.

    ``weight`` (G,) is observed ns, ``amount`` (G,) or (G, k) the observed quantity.
    """
    key = tl.key
    dow_m = tl.dow[tl.day]
    own_id = tl.day * _KEYS + key
    n_own = tl.n_days * _KEYS
    own_w = group_sum(own_id, weight, n_own)[own_id]
    own_a = group_sum(own_id, amount, n_own)[own_id]

    found = np.zeros(len(key), dtype=bool)
    ratio = np.full(amount.shape, np.nan)
    for gid, n in (
        (dow_m * _KEYS + key, 7 * _KEYS),
        ((dow_m >= 5) * _KEYS + key, 2 * _KEYS),
        (key, _KEYS),
    ):
        don_w = group_sum(gid, weight, n)[gid] - own_w  # exact: integer ns held in float64
        don_a = group_sum(gid, amount, n)[gid] - own_a
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
