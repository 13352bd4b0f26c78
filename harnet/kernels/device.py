"""Axivity CWA decoding and pass 1's checks of a streamed file."""

from __future__ import annotations

import numpy as np

from .jitting import kernel as _jit


@_jit
def decode_packed(v, out):  # type: ignore[no-untyped-def]
    """``out`` (k, 120, 3) float32 g from packed samples ``v`` (k, 120) uint32: per axis a
    sign-extended 10-bit value (x bits 0-9, y 10-19, z 20-29) shifted left by the exponent in
    bits 30-31, in 1/256 g (as :func:`harnet.io.cwa_format.decode_packed` does in numpy)."""
    k, m = v.shape
    scale = np.float32(1 / 256)
    for r in range(k):
        for q in range(m):
            w = np.uint32(v[r, q])
            e = np.int32(w >> np.uint32(30))
            for axis in range(3):
                shift = np.uint32(22 - 10 * axis)
                s = np.int32(np.uint32(w << shift)) >> np.int32(22)
                out[r, q, axis] = np.float32(s << e) * scale


@_jit
def sample_times(t0, span, count, cap, out):  # type: ignore[no-untyped-def]
    """``out[r, i] = t0[r] + round(i * (span[r] / count[r]))`` (int64 ns; ``span`` float64,
    ``count`` int; round half to even, as ``np.rint``) for ``i < cap``."""
    for r in range(len(t0)):
        q = span[r] / np.float64(count[r])
        for i in range(cap):
            out[r, i] = t0[r] + np.int64(np.rint(np.float64(i) * q))


@_jit
def step_counts(t, prev, has_prev, gap_ns, rate_gap_ns, out):  # type: ignore[no-untyped-def]
    """Add to ``out`` (int64, 7) the counts of the time steps ``d`` of ``t`` (the first from
    ``prev`` when ``has_prev``): steps back (d < 0), repeated times (d == 0), steps shorter than
    ``gap_ns`` and the others, the summed length of the short ones, and for the effective rate
    the steps not longer than ``rate_gap_ns`` and their summed length (what
    :func:`harnet.io.checks.time_steps` and ``RateCounter.add`` take from ``np.diff``)."""
    n = len(t)
    p = prev
    start = 0
    if not has_prev:
        if n == 0:
            return
        p = t[0]
        start = 1
    for k in range(start, n):
        d = t[k] - p
        p = t[k]
        if d < 0:
            out[0] += 1
        elif d == 0:
            out[1] += 1
        if d < gap_ns:
            out[2] += 1
            out[4] += d
        else:
            out[3] += 1
        if d <= rate_gap_ns:
            out[5] += 1
            out[6] += d


@_jit
def _count_nonfinite(u, mask):  # type: ignore[no-untyped-def]
    # values whose exponent bits are all set (inf or NaN), counted on their bit patterns
    c = 0
    for i in range(len(u)):
        c += (u[i] & mask) == mask
    return c


def all_finite(x: np.ndarray) -> bool:
    """``np.isfinite(x).all()``, read from the bit patterns of a contiguous float32 or float64
    array in one compiled pass (other arrays: numpy)."""
    if x.flags.c_contiguous and x.dtype == np.float32:
        return _count_nonfinite(x.reshape(-1).view(np.uint32), np.uint32(0x7F800000)) == 0
    if x.flags.c_contiguous and x.dtype == np.float64:
        return _count_nonfinite(x.reshape(-1).view(np.uint64), np.uint64(0x7FF0000000000000)) == 0
    return bool(np.isfinite(x).all())
