"""Non-wear detection: runs of consecutive stationary windows lasting longer than ``patience_min``
(90 min) are non-wear episodes. The raw data are not touched: the episodes are returned as time
intervals and applied on the 30 Hz grid by :func:`harnet.signal.windows.iter_chunks`. The
window statistics come from :mod:`harnet.signal.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..timegrid import NS, as_ns
from .stats import WindowStats, window_stats

if TYPE_CHECKING:  # pragma: no cover
    from ..io.recording import Recording


# ------------------------------------------------------------------------------------------
# non-wear


@dataclass
class NonwearResult:
    """Non-wear episodes as half-open intervals ``[start_ns, end_ns)`` (int64 ns, naive device
    clock), sorted and disjoint, plus info fields ``NonwearTime(days)`` and
    ``NumNonwearEpisodes``."""

    start_ns: np.ndarray
    end_ns: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.start_ns)

    def mask(self, time: np.ndarray) -> np.ndarray:
        """bool per timestamp (datetime64[ns] or int64 ns): inside a non-wear episode."""
        t = as_ns(time)
        j = np.searchsorted(self.start_ns, t, side="right") - 1
        inside = j >= 0
        inside[inside] = t[inside] < self.end_ns[j[inside]]
        return inside


def detect_nonwear(
    rec: "Recording",
    *,
    patience_min: float = 90,
    stationary_std_g: float = 0.015,
    window_sec: float = 10,
    stats: WindowStats | None = None,
) -> NonwearResult:
    """Non-wear episodes: runs of stationary windows lasting longer than ``patience_min``.

    A window without enough samples (a gap) breaks a run: gaps are reported as gaps, not as
    non-wear. ``rec`` is not modified. ``stats``: its window statistics, when already computed
    (only the counts and standard deviations are read).
    """
    if stats is None or stats.window_sec != window_sec:
        stats = window_stats(rec, window_sec)
    still = stats.stationary(stationary_std_g)
    win_ns = int(round(window_sec * NS))
    d = np.diff(np.concatenate(([0], still.astype(np.int8), [0])))
    rs = np.flatnonzero(d == 1)
    re = np.flatnonzero(d == -1)
    long = (re - rs) * window_sec > patience_min * 60.0
    rs, re = rs[long], re[long]
    start = stats.start_ns[rs] if len(rs) else np.empty(0, np.int64)
    end = stats.start_ns[re - 1] + win_ns if len(re) else np.empty(0, np.int64)
    info = {
        "NonwearTime(days)": round(float((end - start).sum()) / (86_400 * NS), 6),
        "NumNonwearEpisodes": int(len(start)),
    }
    return NonwearResult(start.astype(np.int64), end.astype(np.int64), info)
