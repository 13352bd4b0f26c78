"""Per-axis mean and standard deviation of clock-aligned windows: the statistics both gravity
calibration and non-wear detection work on, computed in one vectorised pass over the raw samples,
a few million samples at a time (bins are found from the timestamps, so a drifting sample rate is
fine). A window is *stationary* when it holds at least half the typical number of samples per
window and the standard deviation of every axis is below a threshold (15 mg by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..timegrid import NS, as_ns, midnight_ns

if TYPE_CHECKING:  # pragma: no cover
    from ..io.recording import Recording


@dataclass
class WindowStats:
    """Per clock-aligned window: start (int64 ns), sample count, per-axis mean and std (g)."""

    start_ns: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    window_sec: float

    def stationary(self, stationary_std_g: float) -> np.ndarray:
        """bool per window: enough samples and every axis' std below the threshold."""
        filled = self.count[self.count > 0]
        if filled.size == 0:
            return np.zeros(len(self.count), dtype=bool)
        typical = float(np.median(filled))
        with np.errstate(invalid="ignore"):
            still = (self.std < stationary_std_g).all(axis=1)
        return still & (self.count >= 0.5 * typical) & (self.count >= 2)

    def calibrated(self, slope) -> "WindowStats":
        """The statistics after the per-axis correction ``a' = intercept + slope * a``, without a
        second pass over the samples: counts and starts are unchanged and the standard deviation
        scales by ``|slope|`` (the means are not kept: only the stationarity test reads these)."""
        s = np.abs(np.asarray(slope, dtype=np.float64))
        return WindowStats(self.start_ns, self.count, np.full_like(self.mean, np.nan), self.std * s, self.window_sec)


def window_stats(rec: "Recording", window_sec: float = 10, *, block_samples: int = 4_000_000) -> WindowStats:
    """Mean and standard deviation per axis of every ``window_sec`` window from midnight.

    Windows run from the one holding the first sample to the one holding the last, empty
    ones included (count 0, NaN stats). Processed ``block_samples`` at a time.
    """
    t = as_ns(rec.time)
    n = len(t)
    win_ns = int(round(window_sec * NS))
    if n == 0:
        z = np.empty(0)
        return WindowStats(np.empty(0, np.int64), np.empty(0, np.int64), z.reshape(0, 3), z.reshape(0, 3), window_sec)
    origin = midnight_ns(t[0])
    b0 = (int(t[0]) - origin) // win_ns
    b1 = (int(t[-1]) - origin) // win_ns
    nb = b1 - b0 + 1
    edges = origin + (b0 + np.arange(nb + 1, dtype=np.int64)) * win_ns
    idx = np.searchsorted(t, edges, side="left")
    idx[-1] = n
    count = np.diff(idx)
    mean = np.full((nb, 3), np.nan)
    std = np.full((nb, 3), np.nan)
    p = 0
    while p < nb:
        # bins [p, q) holding about block_samples samples (at least one bin)
        q = int(np.searchsorted(idx, idx[p] + block_samples, side="right")) - 1
        q = min(nb, max(q, p + 1))
        i0, i1 = int(idx[p]), int(idx[q])
        cnt = count[p:q]
        full = cnt > 0
        if full.any():
            offs = idx[p:q][full] - i0
            c = cnt[full].astype(np.float64)
            rows = np.flatnonzero(full) + p
            for k in range(3):
                col = rec.xyz[i0:i1, k].astype(np.float64)
                s1 = np.add.reduceat(col, offs)
                col *= col
                s2 = np.add.reduceat(col, offs)
                mu = s1 / c
                mean[rows, k] = mu
                std[rows, k] = np.sqrt(np.maximum(s2 / c - mu * mu, 0.0))
        p = q
    return WindowStats(edges[:-1], count, mean, std, window_sec)
