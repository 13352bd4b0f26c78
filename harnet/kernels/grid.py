"""The neighbour search and interpolation of ``harnet.signal.resample.resample_core``, and its gap breaks."""

from __future__ import annotations

import numpy as np

from .jitting import kernel as _jit


@_jit
def interpolate_grid(t, g0, cols, m, fs_out, gap_ns, nearest, out):  # type: ignore[no-untyped-def]
    """Fill ``out`` (m, 3) float32 as ``resample_core`` does: grid point ``g_j = j * 1e9 / fs_out``
    ns after ``g0`` between its neighbours ``tr[i] <= g_j < tr[i + 1]`` (``tr = float64(t - g0)``;
    ``i`` clipped to ``[0, n - 2]``), NaN where they are more than ``gap_ns`` apart or ``g_j``
    lies outside them, unless ``g_j`` is one of them; a lone sample gives its value at its own
    time only."""
    n = len(t)
    fs = float(fs_out)
    if n == 1:
        t0 = np.float64(t[0] - g0)
        for j in range(m):
            g = float(j) * 1e9 / fs
            for k in range(3):
                out[j, k] = np.float32(np.float64(cols[0, k])) if g == t0 else np.float32(np.nan)
        return
    cnt = 0  # samples <= g: np.searchsorted(tr, g, side="right")
    for j in range(m):
        g = float(j) * 1e9 / fs
        while cnt < n and np.float64(t[cnt] - g0) <= g:
            cnt += 1
        i = cnt - 1
        if i < 0:
            i = 0
        elif i > n - 2:
            i = n - 2
        left = np.float64(t[i] - g0)
        right = np.float64(t[i + 1] - g0)
        on_left = g == left
        on_right = g == right
        ok = (g >= left) and (g <= right) and ((right - left) <= gap_ns)
        ok = ok or on_left or on_right
        w = (g - left) / (right - left)
        if on_left:
            w = 0.0
        if on_right:
            w = 1.0
        if nearest:
            w = 1.0 if w > 0.5 else 0.0
        for k in range(3):
            if ok:
                lo = np.float64(cols[i, k])
                v = np.float64(cols[i + 1, k])
                v -= lo
                v *= w
                v += lo
                out[j, k] = np.float32(v)
            else:
                out[j, k] = np.float32(np.nan)


@_jit
def segment_starts(t, gap_ns, out):  # type: ignore[no-untyped-def]
    """Write 0, every ``i`` with ``t[i] - t[i - 1] > gap_ns`` (compared as ``np.diff(t) > gap_ns``
    compares: the int64 step as float64) and ``len(t)`` to ``out``; returns how many."""
    k = 1
    out[0] = 0
    for i in range(1, len(t)):
        if np.float64(t[i] - t[i - 1]) > gap_ns:
            out[k] = i
            k += 1
    out[k] = len(t)
    return k + 1
