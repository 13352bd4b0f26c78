"""scipy.signal.sosfiltfilt (odd extension), bit for bit."""

from __future__ import annotations

import numpy as np

from .jitting import kernel as _jit


@_jit
def _sos_pass(sos, y, z, forward):  # type: ignore[no-untyped-def]
    # scipy's sosfilt recursion on every column of y (L, C) in place, forward or backward;
    # z (S, C, 2): the initial states (changed)
    L, C = y.shape
    S = sos.shape[0]
    for step in range(L):
        n = step if forward else L - 1 - step
        for c in range(C):
            x = y[n, c]
            for s in range(S):
                xn = sos[s, 0] * x + z[s, c, 0]
                z[s, c, 0] = sos[s, 1] * x - sos[s, 4] * xn + z[s, c, 1]
                z[s, c, 1] = sos[s, 2] * x - sos[s, 5] * xn
                x = xn
            y[n, c] = x


@_jit(inline="always")
def _biquad2(c, st, xv):  # type: ignore[no-untyped-def]
    # one sample through scipy's sosfilt recursion of two sections; c: the 10 coefficients,
    # st: the 4 states; returns (output, new states)
    b00, b01, b02, a01, a02, b10, b11, b12, a11, a12 = c
    z00, z01, z10, z11 = st
    u = b00 * xv + z00
    z00 = b01 * xv - a01 * u + z01
    z01 = b02 * xv - a02 * u
    v = b10 * u + z10
    z10 = b11 * u - a11 * v + z11
    z11 = b12 * u - a12 * v
    return v, (z00, z01, z10, z11)


@_jit
def _filtfilt2_into(sos, zi, x, a, n, p, out):  # type: ignore[no-untyped-def]
    # scipy's sosfiltfilt (odd extension of length p) of the three columns of x[a:a + n] for two
    # sections, written to out[a:a + n] (float64), the three columns interleaved in one loop;
    # the extension is never materialised: the forward pass computes it on the fly and keeps
    # only its right end's outputs
    c = (sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5], sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5])
    x00, x01, x02 = np.float64(x[a, 0]), np.float64(x[a, 1]), np.float64(x[a, 2])
    e = a + n - 1
    x10, x11, x12 = np.float64(x[e, 0]), np.float64(x[e, 1]), np.float64(x[e, 2])
    if p:
        f0 = 2.0 * x00 - np.float64(x[a + p, 0])
        f1 = 2.0 * x01 - np.float64(x[a + p, 1])
        f2 = 2.0 * x02 - np.float64(x[a + p, 2])
    else:
        f0, f1, f2 = x00, x01, x02
    s0 = (zi[0, 0] * f0, zi[0, 1] * f0, zi[1, 0] * f0, zi[1, 1] * f0)
    s1 = (zi[0, 0] * f1, zi[0, 1] * f1, zi[1, 0] * f1, zi[1, 1] * f1)
    s2 = (zi[0, 0] * f2, zi[0, 1] * f2, zi[1, 0] * f2, zi[1, 1] * f2)
    for j in range(p):  # left extension: 2 x[0] - x[p - j]
        r = a + p - j
        v0, s0 = _biquad2(c, s0, 2.0 * x00 - np.float64(x[r, 0]))
        v1, s1 = _biquad2(c, s1, 2.0 * x01 - np.float64(x[r, 1]))
        v2, s2 = _biquad2(c, s2, 2.0 * x02 - np.float64(x[r, 2]))
    for r in range(a, a + n):
        v0, s0 = _biquad2(c, s0, np.float64(x[r, 0]))
        v1, s1 = _biquad2(c, s1, np.float64(x[r, 1]))
        v2, s2 = _biquad2(c, s2, np.float64(x[r, 2]))
        out[r, 0] = v0
        out[r, 1] = v1
        out[r, 2] = v2
    tail = np.empty((max(p, 1), 3))
    for q in range(p):  # right extension: 2 x[n - 1] - x[n - 2 - q]
        r = e - 1 - q
        v0, s0 = _biquad2(c, s0, 2.0 * x10 - np.float64(x[r, 0]))
        v1, s1 = _biquad2(c, s1, 2.0 * x11 - np.float64(x[r, 1]))
        v2, s2 = _biquad2(c, s2, 2.0 * x12 - np.float64(x[r, 2]))
        tail[q, 0] = v0
        tail[q, 1] = v1
        tail[q, 2] = v2
    if p:
        l0, l1, l2 = tail[p - 1, 0], tail[p - 1, 1], tail[p - 1, 2]
    else:
        l0, l1, l2 = out[e, 0], out[e, 1], out[e, 2]
    s0 = (zi[0, 0] * l0, zi[0, 1] * l0, zi[1, 0] * l0, zi[1, 1] * l0)
    s1 = (zi[0, 0] * l1, zi[0, 1] * l1, zi[1, 0] * l1, zi[1, 1] * l1)
    s2 = (zi[0, 0] * l2, zi[0, 1] * l2, zi[1, 0] * l2, zi[1, 1] * l2)
    for q in range(p - 1, -1, -1):  # backward over the right extension: outputs dropped
        v0, s0 = _biquad2(c, s0, tail[q, 0])
        v1, s1 = _biquad2(c, s1, tail[q, 1])
        v2, s2 = _biquad2(c, s2, tail[q, 2])
    for r in range(e, a - 1, -1):
        v0, s0 = _biquad2(c, s0, out[r, 0])
        v1, s1 = _biquad2(c, s1, out[r, 1])
        v2, s2 = _biquad2(c, s2, out[r, 2])
        out[r, 0] = v0
        out[r, 1] = v1
        out[r, 2] = v2


def filtfilt_odd(sos: np.ndarray, x: np.ndarray, padlen: int, out: np.ndarray | None = None,
                 rows: tuple[int, int] | None = None) -> np.ndarray:
    """float64 ``(n, C)``: ``scipy.signal.sosfiltfilt(sos, x[:, c], padtype="odd", padlen=padlen)``
    for every column ``c`` of ``x`` (any float dtype; ``0 <= padlen < n``), bit for bit.
    ``rows = (a, b)``: filter the segment ``x[a:b]`` only; ``out``: write the result into
    ``out[a:b]`` (float64, ``x``'s shape) and return ``out``."""
    from scipy.signal import sosfilt_zi

    sos = np.ascontiguousarray(sos, dtype=np.float64)
    a, b = (0, len(x)) if rows is None else (int(rows[0]), int(rows[1]))
    n, C = b - a, x.shape[1]
    p = int(padlen)
    if not 0 <= p < n:
        raise ValueError(f"padlen must be in [0, {n}), got {p}")
    zi = sosfilt_zi(sos)  # (S, 2)
    if out is None:
        out = np.empty(x.shape)
    if sos.shape[0] == 2 and C == 3:
        _filtfilt2_into(sos, zi, x, a, n, p, out)
        return out
    ext = np.empty((n + 2 * p, C))  # any other order or width: scipy's steps, one by one
    ext[p : p + n] = x[a:b]
    if p:  # scipy's odd_ext, in the same operations
        x0 = ext[p]
        x1 = ext[p + n - 1]
        ext[:p] = 2 * x0 - ext[2 * p : p : -1]
        ext[p + n :] = 2 * x1 - ext[p + n - 2 : n - 2 : -1]
    _sos_pass(sos, ext, zi[:, None, :] * ext[0][None, :, None], True)
    _sos_pass(sos, ext, zi[:, None, :] * ext[-1][None, :, None], False)
    out[a:b] = ext[p : p + n]
    return out
