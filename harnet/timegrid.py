"""Nanosecond time helpers shared by the signal stages: int64 views, midnights, the output grid.

Times are int64 nanoseconds since the epoch on the device's naive clock (``datetime64[ns]``
viewed as int64), so arithmetic is exact and costs no conversions.
"""

from __future__ import annotations

import numpy as np

NS = 1_000_000_000
DAY_NS = 86_400 * NS


def as_ns(time: np.ndarray) -> np.ndarray:
    """int64 nanoseconds view (no copy) of a datetime64[ns] or int64 array."""
    a = np.asarray(time)
    if a.dtype == np.dtype("datetime64[ns]"):
        return a.view(np.int64)
    if a.dtype.kind == "M":
        return a.astype("datetime64[ns]").view(np.int64)
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    raise TypeError(f"time must be datetime64 or int64 nanoseconds, got {a.dtype}")


def midnight_ns(t_ns: int) -> int:
    """Midnight (naive clock) of the day holding ``t_ns`` (int nanoseconds since the epoch)."""
    return int(t_ns) // DAY_NS * DAY_NS


def ceil_div(a, b):
    """Ceiling of ``a / b`` for ints or int arrays (exact, no floats)."""
    return -((-a) // b)


def grid_ns(origin_ns: int, k: int, fs_out: int) -> int:
    """Time of grid point ``k`` of ``origin + k / fs_out`` (rounded to the nearest ns; exact
    when k*1e9 % fs_out == 0)."""
    return origin_ns + (2 * k * NS + fs_out) // (2 * fs_out)
