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


def build_timeline(w: WindowTable, n_labels: int) -> Timeline:
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
    return Timeline(first_day, n_days, origin, day, key, dow, rec, wear, nonwear, cls, enmo_w, enmo_s)


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
