"""Compiled loops (numba) for the per-sample work of the read and windows stages, bit for bit
the numpy and scipy code they replace.

Each kernel does, sample by sample, exactly the floating-point operations of that code, in the
same order, so no output changes by a single bit (``tests/test_kernels.py`` compares them on
random and real data, and the goldens and stream tests compare whole outputs):

- :func:`filtfilt_odd`: ``scipy.signal.sosfiltfilt(sos, x, padtype="odd", padlen=p)`` on each
  column: the same odd extension, the same initial states (``sosfilt_zi``), the same direct form
  II transposed recursion as scipy's ``sosfilt`` (``y = b0 x + z0; z0 = b1 x - a1 y + z1;
  z1 = b2 x - a2 y``), forward then backward;
- :func:`reduceat_sum`: ``np.add.reduceat`` on float64: each segment's first element plus
  numpy's pairwise sum of the rest (8 partial sums up to 128 elements, halves above);
- :func:`interpolate_grid`: the linear or nearest interpolation of
  :func:`harnet.signal.resample.resample_core` onto the ``j / fs_out`` grid (its neighbour search
  a merge, which finds what ``np.searchsorted`` finds);
- :func:`enmo_mad_sums`: the per-window ENMO and MAD sums of the same function;
- :func:`window_moments`: the per-window sums behind :class:`harnet.signal.stream.StatsBuilder`.

numba compiles without ``fastmath`` (no reassociation, no fused multiply-add), so compiled code
rounds as numpy does. Compiled code is cached on disk (numba's cache: beside this file, or numba's
user cache directory when that is not writable). Importing this module imports numba (about
0.3 s); harnet imports it only where a kernel is used, never at ``import harnet``.
"""

from __future__ import annotations

import numba
import numpy as np

_jit_opts = dict(nogil=True, cache=True)


def _jit(fn=None, **kw):  # type: ignore[no-untyped-def]
    """``numba.njit(nogil=True, cache=True, **kw)``, bare or with keywords."""
    if fn is None:
        return lambda f: numba.njit(**_jit_opts, **kw)(f)
    return numba.njit(**_jit_opts)(fn)


# ------------------------------------------------------------------------------------------
# numpy's float64 pairwise sum, and np.add.reduceat


@_jit(inline="always")
def _val(x, i, ax, sq):  # type: ignore[no-untyped-def]
    v = np.float64(x[i, ax])
    return v * v if sq else v


@_jit
def _leaf_sum(x, ax, sq, lo, n):  # type: ignore[no-untyped-def]
    # numpy's pairwise_sum for n <= 128: a plain loop under 8, else 8 partial sums
    if n < 8:
        r = 0.0
        for i in range(lo, lo + n):
            r += _val(x, i, ax, sq)
        return r
    r0 = _val(x, lo, ax, sq)
    r1 = _val(x, lo + 1, ax, sq)
    r2 = _val(x, lo + 2, ax, sq)
    r3 = _val(x, lo + 3, ax, sq)
    r4 = _val(x, lo + 4, ax, sq)
    r5 = _val(x, lo + 5, ax, sq)
    r6 = _val(x, lo + 6, ax, sq)
    r7 = _val(x, lo + 7, ax, sq)
    i = 8
    stop = n - (n % 8)
    while i < stop:
        j = lo + i
        r0 += _val(x, j, ax, sq)
        r1 += _val(x, j + 1, ax, sq)
        r2 += _val(x, j + 2, ax, sq)
        r3 += _val(x, j + 3, ax, sq)
        r4 += _val(x, j + 4, ax, sq)
        r5 += _val(x, j + 5, ax, sq)
        r6 += _val(x, j + 6, ax, sq)
        r7 += _val(x, j + 7, ax, sq)
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += _val(x, lo + i, ax, sq)
        i += 1
    return res


@_jit
def pairwise_col(x, ax, sq, lo, n):  # type: ignore[no-untyped-def]
    """numpy's float64 ``pairwise_sum`` (the sum ``np.add.reduce`` takes) of
    ``float64(x[lo:lo + n, ax])``, squared first when ``sq``: above 128 elements, the sum of the
    two halves (the first a multiple of 8 long). The recursion runs on an explicit stack
    (numba's disk cache does not keep recursive functions safely)."""
    if n <= 128:
        return _leaf_sum(x, ax, sq, lo, n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    state = np.zeros(64, np.int64)  # 0: left half pending, 1: left half summed into vals
    vals = np.empty(64)
    top = 0
    los[0] = lo
    ns[0] = n
    while True:
        cn = ns[top]
        if cn > 128:  # descend into the left half
            h = cn // 2
            h -= h % 8
            top += 1
            los[top] = los[top - 1]
            ns[top] = h
            state[top] = 0
            continue
        v = _leaf_sum(x, ax, sq, los[top], cn)
        top -= 1
        while True:
            if top < 0:
                return v
            if state[top] == 0:  # v: the left half's sum; now the right half
                vals[top] = v
                state[top] = 1
                h = ns[top] // 2
                h -= h % 8
                top += 1
                los[top] = los[top - 1] + h
                ns[top] = ns[top - 1] - h
                state[top] = 0
                break
            v = vals[top] + v  # left + right, as numpy adds them
            top -= 1


@_jit
def pairwise_sum(a, lo, n):  # type: ignore[no-untyped-def]
    """:func:`pairwise_col` of a contiguous 1-D float64 array."""
    return pairwise_col(a.reshape((len(a), 1)), 0, False, lo, n)


@_jit
def reduceat_sum(a, starts, stops, out):  # type: ignore[no-untyped-def]
    """``out[k] = np.add.reduceat``'s sum of ``a[starts[k]:stops[k]]`` (each segment non-empty):
    the first element plus the pairwise sum of the rest."""
    for k in range(len(starts)):
        s = starts[k]
        out[k] = a[s] + pairwise_sum(a, s + 1, stops[k] - s - 1)


# ------------------------------------------------------------------------------------------
# scipy.signal.sosfiltfilt


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


# ------------------------------------------------------------------------------------------
# resample_core: interpolation onto the grid, ENMO and MAD sums


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
def enmo_mad_sums(cols, cuts, sums):  # type: ignore[no-untyped-def]
    """``sums`` (3, len(cuts) - 1): per window of samples ``cols[cuts[w]:cuts[w + 1]]`` (a window
    with none is left at 0), the sum of ENMO ``max(|v| - 1, 0)``, the count, and the sum of
    ``| |v| - mean |v| |``, as ``resample_core`` computes them."""
    nw = len(cuts) - 1
    longest = 0
    for w in range(nw):
        d = cuts[w + 1] - cuts[w]
        if d > longest:
            longest = d
    vm = np.empty((longest, 1))
    e = np.empty((longest, 1))
    for w in range(nw):
        s = cuts[w]
        c = cuts[w + 1] - s
        sums[1, w] = c
        if c <= 0:
            continue
        for q in range(c):
            x0 = np.float64(cols[s + q, 0])
            x1 = np.float64(cols[s + q, 1])
            x2 = np.float64(cols[s + q, 2])
            nrm = 0.0 + x0 * x0
            nrm += x1 * x1
            nrm += x2 * x2
            v = np.sqrt(nrm)
            vm[q, 0] = v
            d = v - 1.0
            e[q, 0] = d if (d >= 0.0 or d != d) else 0.0  # np.maximum(d, 0.0)
        sums[0, w] = e[0, 0] + pairwise_col(e, 0, False, 1, c - 1)
        mean = (vm[0, 0] + pairwise_col(vm, 0, False, 1, c - 1)) / c
        for q in range(c):
            e[q, 0] = abs(vm[q, 0] - mean)
        sums[2, w] = e[0, 0] + pairwise_col(e, 0, False, 1, c - 1)


@_jit
def window_moments(t, xyz, origin, win_ns, bins, count, mean, std):  # type: ignore[no-untyped-def]
    """The clock-aligned windows ``(t - origin) // win_ns`` of samples ``(t, xyz)`` (t increasing):
    for each, written to row k of the outputs, its window number, sample count and per-axis
    mean and standard deviation exactly as ``StatsBuilder`` took them with ``np.add.reduceat``
    on the float64 column and its square (``std = sqrt(max(s2 / c - mu * mu, 0))``). Returns
    the number of windows."""
    n = len(t)
    k = 0
    s = 0
    while s < n:
        b = (t[s] - origin) // win_ns
        bound = origin + (b + 1) * win_ns
        e = s + 1
        while e < n and t[e] < bound:
            e += 1
        c = e - s
        cf = float(c)
        for ax in range(3):
            s1 = np.float64(xyz[s, ax]) + pairwise_col(xyz, ax, False, s + 1, c - 1)
            s2 = _val(xyz, s, ax, True) + pairwise_col(xyz, ax, True, s + 1, c - 1)
            mu = s1 / cf
            mean[k, ax] = mu
            var = s2 / cf - mu * mu
            if not (var >= 0.0 or var != var):  # np.maximum(var, 0.0)
                var = 0.0
            std[k, ax] = np.sqrt(var)
        bins[k] = b
        count[k] = c
        k += 1
        s = e
    return k


# ------------------------------------------------------------------------------------------
# Axivity CWA decoding (harnet.io.cwa_format, harnet.io.cwa)


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


# ------------------------------------------------------------------------------------------
# pass 1 of a streamed file (harnet.io.stream.DeviceStream.scan)


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


def warm_up() -> None:
    """Load (from numba's disk cache, or compile) the kernels pass 1 of a streamed CWA file calls
    first, with the argument types it calls them with (tiny arrays, nothing returned)."""
    decode_packed(np.zeros((1, 120), np.uint32), np.empty((1, 120, 3), np.float32))
    for count in (np.ones(1, np.int16), np.ones(1, np.int64)):
        sample_times(np.zeros(1, np.int64), np.ones(1), count, 2, np.empty((1, 2), np.int64))
    step_counts(np.arange(3, dtype=np.int64), np.int64(0), True, 1, 1, np.zeros(7, np.int64))
    all_finite(np.zeros((2, 3), np.float32))
    t = np.arange(4, dtype=np.int64)
    window_moments(t, np.zeros((4, 3), np.float32), 0, 2, np.empty(4, np.int64), np.empty(4, np.intp),
                   np.empty((4, 3)), np.empty((4, 3)))


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
