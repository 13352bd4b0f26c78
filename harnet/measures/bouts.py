"""Bouts: runs of mostly-above-threshold windows (GGIR's tolerance rule), per-window arrays in.

Rule (GGIR ``g.getbout`` bout.metric 4/5, van Hees et al.; the default bout definition of GGIR and
the one its MVPA bout outputs use): a bout of at least ``N`` minutes exists where a window of
exactly ``N`` minutes of consecutive epochs

1. has at least ``criterion`` (default 80 %) of its epochs meeting the condition,
2. starts and ends with an epoch meeting it, and
3. holds no interruption (run of epochs not meeting it) longer than ``max_break_min`` (1 min).

Bout time is the union of all such windows; each connected run of it is one bout, from the
start of its first epoch to the end of its last (interruptions inside included). An epoch here
is one model window. Not-worn windows and gaps never meet a condition, so they interrupt and
usually end bouts. Fully vectorised: cumulative sums, no per-window Python loop.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bout_mask", "bout_runs"]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of a bool array."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def bout_mask(
    meets: np.ndarray,
    window_sec: float,
    min_minutes: float,
    *,
    criterion: float = 0.8,
    max_break_min: float = 1.0,
) -> np.ndarray:
    """bool per epoch: the epoch lies in a bout of at least ``min_minutes`` (see module doc).

    ``meets`` is one bool per epoch of a continuous run of epochs (the pipeline's per-window
    table covers the recorded span without holes, gaps being rows that meet nothing).
    """
    x = np.asarray(meets, dtype=bool)
    n = len(x)
    k = int(round(min_minutes * 60.0 / float(window_sec)))
    out = np.zeros(n, dtype=bool)
    if k < 1 or n < k:
        return out
    # epochs inside an interruption longer than max_break_min
    brk = np.zeros(n, dtype=bool)
    s, e = _runs(~x)
    long = (e - s) * float(window_sec) > max_break_min * 60.0 + 1e-9
    if long.any():
        delta = np.zeros(n + 1, dtype=np.int64)
        np.add.at(delta, s[long], 1)
        np.add.at(delta, e[long], -1)
        brk = np.cumsum(delta[:-1]) > 0
    c_x = np.concatenate([[0], np.cumsum(x, dtype=np.int64)])
    c_b = np.concatenate([[0], np.cumsum(brk, dtype=np.int64)])
    i = np.arange(n - k + 1)  # window [i, i + k)
    ok = (c_x[i + k] - c_x[i]) >= criterion * k - 1e-9
    ok &= x[i] & x[i + k - 1]
    ok &= (c_b[i + k] - c_b[i]) == 0
    starts = i[ok]
    if len(starts) == 0:
        return out
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, starts + k, -1)
    return np.cumsum(delta[:-1]) > 0


def bout_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end exclusive) epoch indices of each bout of a :func:`bout_mask`."""
    return _runs(mask)
