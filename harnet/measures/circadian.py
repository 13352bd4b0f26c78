"""Rest-activity rhythm: M10/L5 and relative amplitude, interdaily stability and intradaily
variability (van Someren et al. 1999, Chronobiol Int 16:505-18). Pure functions over arrays."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["interdaily_stability", "intradaily_variability", "most_least_active", "profile_m10_l5", "relative_amplitude"]


def most_least_active(values: np.ndarray, width: int) -> tuple[float, int, float, int]:
    """(highest mean, its start index, lowest mean, its start index) over every run of ``width``
    consecutive values that lies inside ``values`` (no wrap-around; GGIR's per-day M10/L5).
    Runs holding a NaN are not eligible; NaN and -1 when none is."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if width < 1 or n < width:
        return (math.nan, -1, math.nan, -1)
    bad = ~np.isfinite(v)
    c = np.concatenate([[0.0], np.cumsum(np.where(bad, 0.0, v))])
    cb = np.concatenate([[0], np.cumsum(bad)])
    i = np.arange(n - width + 1)
    ok = (cb[i + width] - cb[i]) == 0
    if not ok.any():
        return (math.nan, -1, math.nan, -1)
    mean = (c[i + width] - c[i]) / width
    hi = np.where(ok, mean, -np.inf)
    lo = np.where(ok, mean, np.inf)
    a, b = int(np.argmax(hi)), int(np.argmin(lo))
    return (float(mean[a]), a, float(mean[b]), b)


def profile_m10_l5(profile: np.ndarray, m_width: int, l_width: int) -> tuple[float, int, float, int]:
    """M and L over a mean daily profile treated as circular (pyActigraphy's ``cyclic=True``):
    the profile is laid twice end to end and runs may start at any of its points."""
    p = np.asarray(profile, dtype=np.float64)
    n = len(p)
    twice = np.concatenate([p, p])
    m, ms, _, _ = most_least_active(twice[: n + m_width - 1], m_width)
    _, _, lo, ls = most_least_active(twice[: n + l_width - 1], l_width)
    return (m, ms, lo, ls)


def relative_amplitude(m10: float, l5: float) -> float:
    """RA = (M10 - L5) / (M10 + L5); NaN when undefined."""
    s = m10 + l5
    return (m10 - l5) / s if (math.isfinite(s) and s > 0) else math.nan


def interdaily_stability(hourly: np.ndarray, hour_of_day: np.ndarray) -> float:
    """IS = N sum_h (xbar_h - xbar)^2 / (p sum_i (x_i - xbar)^2) over the hourly series.

    ``hourly``: mean per clock hour in time order (NaN: missing, left out); ``hour_of_day``
    0-23 of each. With missing hours the between-hour term weights each hour of day by its
    number of values, ``sum_h n_h (xbar_h - xbar)^2 / sum_i (x_i - xbar)^2``, which is the
    formula above when every hour of day has N / p values (complete days).
    """
    x = np.asarray(hourly, dtype=np.float64)
    h = np.asarray(hour_of_day, dtype=np.int64)
    ok = np.isfinite(x)
    x, h = x[ok], h[ok]
    n = len(x)
    if n < 2:
        return math.nan
    xm = x.mean()
    den = float(((x - xm) ** 2).sum())
    if den <= 0:
        return math.nan
    cnt = np.bincount(h, minlength=24)
    sums = np.bincount(h, x, minlength=24)
    have = cnt > 0
    hm = sums[have] / cnt[have]
    return float((cnt[have] * (hm - xm) ** 2).sum() / den)


def intradaily_variability(hourly: np.ndarray) -> float:
    """IV = N sum_i (x_i - x_{i-1})^2 / ((N - 1) sum_i (x_i - xbar)^2) over the hourly series
    (time order, NaN missing). With missing hours only pairs of two present consecutive hours
    enter the numerator and N - 1 becomes the number of such pairs."""
    x = np.asarray(hourly, dtype=np.float64)
    ok = np.isfinite(x)
    n = int(ok.sum())
    if n < 2:
        return math.nan
    xm = x[ok].mean()
    den = float(((x[ok] - xm) ** 2).sum())
    d = np.diff(x)
    pair = ok[1:] & ok[:-1]
    if den <= 0 or not pair.any():
        return math.nan
    return float(n * (d[pair] ** 2).sum() / (int(pair.sum()) * den))
