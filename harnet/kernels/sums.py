"""numpy's float64 pairwise sums (``np.add.reduce``, ``np.add.reduceat``) and the per-window sums built on them."""

from __future__ import annotations

import numpy as np

from .jitting import kernel as _jit


@_jit
def _leaf_sum(x, ax, lo, n):  # type: ignore[no-untyped-def]
    # numpy's pairwise_sum for n <= 128: a plain loop under 8, else 8 partial sums
    if n < 8:
        r = 0.0
        for i in range(lo, lo + n):
            r += np.float64(x[i, ax])
        return r
    r0 = np.float64(x[lo, ax])
    r1 = np.float64(x[lo + 1, ax])
    r2 = np.float64(x[lo + 2, ax])
    r3 = np.float64(x[lo + 3, ax])
    r4 = np.float64(x[lo + 4, ax])
    r5 = np.float64(x[lo + 5, ax])
    r6 = np.float64(x[lo + 6, ax])
    r7 = np.float64(x[lo + 7, ax])
    i = 8
    stop = n - (n % 8)
    while i < stop:
        j = lo + i
        r0 += np.float64(x[j, ax])
        r1 += np.float64(x[j + 1, ax])
        r2 += np.float64(x[j + 2, ax])
        r3 += np.float64(x[j + 3, ax])
        r4 += np.float64(x[j + 4, ax])
        r5 += np.float64(x[j + 5, ax])
        r6 += np.float64(x[j + 6, ax])
        r7 += np.float64(x[j + 7, ax])
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += np.float64(x[lo + i, ax])
        i += 1
    return res


@_jit
def pairwise_col(x, ax, lo, n):  # type: ignore[no-untyped-def]
    """numpy's float64 ``pairwise_sum`` (the sum ``np.add.reduce`` takes) of
    ``float64(x[lo:lo + n, ax])``: above 128 elements, the sum of the
    two halves (the first a multiple of 8 long). The recursion runs on an explicit stack
    (numba's disk cache does not keep recursive functions safely)."""
    if n <= 128:
        return _leaf_sum(x, ax, lo, n)
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
        v = _leaf_sum(x, ax, los[top], cn)
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
    return pairwise_col(a.reshape((len(a), 1)), 0, lo, n)


@_jit
def reduceat_sum(a, starts, stops, out):  # type: ignore[no-untyped-def]
    """``out[k] = np.add.reduceat``'s sum of ``a[starts[k]:stops[k]]`` (each segment non-empty):
    the first element plus the pairwise sum of the rest."""
    for k in range(len(starts)):
        s = starts[k]
        out[k] = a[s] + pairwise_sum(a, s + 1, stops[k] - s - 1)


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
        sums[0, w] = e[0, 0] + pairwise_col(e, 0, 1, c - 1)
        mean = (vm[0, 0] + pairwise_col(vm, 0, 1, c - 1)) / c
        for q in range(c):
            e[q, 0] = abs(vm[q, 0] - mean)
        sums[2, w] = e[0, 0] + pairwise_col(e, 0, 1, c - 1)


@_jit
def _leaf_sum2(x, ax, lo, n):  # type: ignore[no-untyped-def]
    # _leaf_sum of the column and of its square at once (one read of each value)
    if n < 8:
        r = 0.0
        q = 0.0
        for i in range(lo, lo + n):
            v = np.float64(x[i, ax])
            r += v
            q += v * v
        return r, q
    v0, v1, v2, v3 = np.float64(x[lo, ax]), np.float64(x[lo + 1, ax]), np.float64(x[lo + 2, ax]), np.float64(x[lo + 3, ax])
    v4, v5, v6, v7 = np.float64(x[lo + 4, ax]), np.float64(x[lo + 5, ax]), np.float64(x[lo + 6, ax]), np.float64(x[lo + 7, ax])
    r0, r1, r2, r3, r4, r5, r6, r7 = v0, v1, v2, v3, v4, v5, v6, v7
    q0, q1, q2, q3, q4, q5, q6, q7 = v0 * v0, v1 * v1, v2 * v2, v3 * v3, v4 * v4, v5 * v5, v6 * v6, v7 * v7
    i = 8
    stop = n - (n % 8)
    while i < stop:
        j = lo + i
        v0, v1, v2, v3 = np.float64(x[j, ax]), np.float64(x[j + 1, ax]), np.float64(x[j + 2, ax]), np.float64(x[j + 3, ax])
        v4, v5, v6, v7 = np.float64(x[j + 4, ax]), np.float64(x[j + 5, ax]), np.float64(x[j + 6, ax]), np.float64(x[j + 7, ax])
        r0 += v0
        r1 += v1
        r2 += v2
        r3 += v3
        r4 += v4
        r5 += v5
        r6 += v6
        r7 += v7
        q0 += v0 * v0
        q1 += v1 * v1
        q2 += v2 * v2
        q3 += v3 * v3
        q4 += v4 * v4
        q5 += v5 * v5
        q6 += v6 * v6
        q7 += v7 * v7
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    resq = ((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7))
    while i < n:
        v = np.float64(x[lo + i, ax])
        res += v
        resq += v * v
        i += 1
    return res, resq


@_jit
def pairwise_col2(x, ax, lo, n):  # type: ignore[no-untyped-def]
    """``pairwise_col`` of the column and of its square, ``(sum, sum of squares)``, in one traversal
    (the same tree of additions for both; a second stack walker, because the single sum of the
    ENMO/MAD windows would pay for the squares it does not need)."""
    if n <= 128:
        return _leaf_sum2(x, ax, lo, n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    state = np.zeros(64, np.int64)
    vals = np.empty(64)
    valq = np.empty(64)
    top = 0
    los[0] = lo
    ns[0] = n
    while True:
        cn = ns[top]
        if cn > 128:
            h = cn // 2
            h -= h % 8
            top += 1
            los[top] = los[top - 1]
            ns[top] = h
            state[top] = 0
            continue
        v, w = _leaf_sum2(x, ax, los[top], cn)
        top -= 1
        while True:
            if top < 0:
                return v, w
            if state[top] == 0:
                vals[top] = v
                valq[top] = w
                state[top] = 1
                h = ns[top] // 2
                h -= h % 8
                top += 1
                los[top] = los[top - 1] + h
                ns[top] = ns[top - 1] - h
                state[top] = 0
                break
            v = vals[top] + v
            w = valq[top] + w
            top -= 1


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
            p1, p2 = pairwise_col2(xyz, ax, s + 1, c - 1)
            v0 = np.float64(xyz[s, ax])
            s1 = v0 + p1
            s2 = v0 * v0 + p2
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
