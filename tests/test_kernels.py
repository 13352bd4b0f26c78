"""The compiled kernels (harnet.kernels) give numpy's and scipy's results bit for bit.

The oracle is the numpy/scipy code the kernels replaced (``reference_resample_core`` below is
``harnet.signal.resample.resample_core`` as it was before them, commit fa39ab7), run on random
recordings with gaps, NaN rows, lone samples, both interpolation methods and every filter
combination; ``tests/test_golden.py`` and ``tests/test_stream.py`` compare whole outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from harnet import kernels
from harnet.signal.resample import _segment_bounds, resample_core
from harnet.timegrid import NS


def _ref_filter(col, bounds, sos):
    out = col.astype(np.float64)
    default_pad = 3 * (2 * len(sos) + 1)
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = int(b - a)
        if n < 2:
            continue
        out[a:b] = sosfiltfilt(sos, out[a:b], padtype="odd", padlen=min(default_pad, n - 1))
    return out


def _ref_bounds(t, gap_ns):
    br = np.flatnonzero(np.diff(t) > gap_ns) + 1
    return np.concatenate(([0], br, [len(t)]))


def reference_resample_core(t, x, g0, m, fs_out, gap_ns, method, sos, enmo=None):
    out = np.full((m, 3), np.nan, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():  # NaN or inf from a reader: no data there (a gap), never filtered over
        t, x = t[finite], x[finite]
    del finite
    if m == 0 or len(t) == 0:
        return out, (None if enmo is None else np.zeros((3, len(enmo[1]) - 1)))
    # float64 ns relative to the grid start: exact integers for spans up to 104 days
    tr = (t - g0).astype(np.float64)
    grid = np.arange(m, dtype=np.float64) * NS / fs_out
    n = len(tr)
    if n == 1:
        i = np.zeros(m, dtype=np.int64)
        w = np.zeros(m)
        bad = grid != tr[0]
        x = np.concatenate([x, x])  # a lone sample: both neighbours are itself
    else:
        # neighbours: tr[i] <= g < tr[i + 1], clipped so that both exist
        i = np.searchsorted(tr, grid, side="right") - 1
        np.clip(i, 0, n - 2, out=i)
        left = tr[i]
        right = tr[i + 1]
        on_left = grid == left
        on_right = grid == right
        ok = (grid >= left) & (grid <= right) & ((right - left) <= gap_ns)
        ok |= on_left | on_right  # a point exactly on a sample takes it, even next to a gap
        w = (grid - left) / (right - left)
        w[on_left] = 0.0
        w[on_right] = 1.0
        if method == "nearest":
            w = (w > 0.5).astype(np.float64)
        bad = ~ok
        del left, right, on_left, on_right, ok
    del grid
    need_filter = sos is not None or (enmo is not None and enmo[0] is not None)
    bounds = _ref_bounds(tr, gap_ns) if need_filter else None
    if enmo is not None:
        e_sos, edges = enmo
        cuts = np.searchsorted(t, np.asarray(edges, dtype=np.int64), side="left")
        a, b = int(cuts[0]), int(cuts[-1])
        norm2 = np.zeros(b - a)
    for k in range(3):
        raw = x[:, k]
        col = raw if sos is None else _ref_filter(raw, bounds, sos)
        lo = np.asarray(col[i], dtype=np.float64)  # col[i] is a copy already: no second one
        v = np.asarray(col[i + 1], dtype=np.float64)
        v -= lo  # lo + w * (right - left), in place: the same operations, the same bits
        v *= w
        v += lo
        del lo
        v[bad] = np.nan
        out[:, k] = v
        del v
        if enmo is not None and b > a:
            if e_sos is sos:
                ce = col[a:b]
            elif e_sos is None:
                ce = raw[a:b]
            else:
                ce = _ref_filter(raw, bounds, e_sos)[a:b]
            norm2 += np.square(ce, dtype=np.float64)
    if enmo is None:
        return out, None
    sums = np.zeros((3, len(cuts) - 1))
    if b > a:
        vm = np.sqrt(norm2, out=norm2)  # vector magnitude (g), in place: no extra copy
        e = np.maximum(vm - 1.0, 0.0)
        cnt = np.diff(cuts)
        full = cnt > 0
        if full.any():
            at = (cuts[:-1] - a)[full]
            sums[0, full] = np.add.reduceat(e, at)
            # MAD (Vaha-Ypya et al. 2015): mean |vm - mean(vm)| over the window's samples
            mean_vm = np.zeros(len(cnt))
            mean_vm[full] = np.add.reduceat(vm, at) / cnt[full]
            e = np.abs(vm - np.repeat(mean_vm, cnt), out=e)
            sums[2, full] = np.add.reduceat(e, at)
        sums[1] = cnt
    return out, sums


def _same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _recording(rng, n, fs=100.0, gaps=0, nan_rows=0, jitter=0.002):
    step = NS / fs
    d = np.full(n, step) * (1 + rng.uniform(-jitter, jitter, n))
    for _ in range(gaps):
        d[rng.integers(1, n)] += rng.choice([0.5, 1.5, 3.0, 40.0]) * NS
    t = (1_700_000_000 * NS + np.cumsum(d)).astype(np.int64)
    x = (rng.standard_normal((n, 3)) * rng.choice([0.01, 0.3, 2.0]) + [0.0, 0.0, 1.0]).astype(np.float32)
    for _ in range(nan_rows):
        x[rng.integers(0, n)] = np.nan
    return np.unique(t), x[: len(np.unique(t))]


@pytest.mark.parametrize("seed", range(12))
def test_resample_core_matches_the_numpy_code_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 2, 3, 40, 5_000, 60_000]))
    t, x = _recording(rng, n, gaps=int(rng.integers(0, 4)), nan_rows=int(rng.integers(0, 3)))
    fs_out = int(rng.choice([30, 25]))
    g0 = int(t[0]) - int(rng.integers(-NS, NS))
    span = int(t[-1]) - g0 + int(rng.integers(0, 2 * NS))
    m = max(0, span * fs_out // NS)
    sos20 = butter(4, 20, fs=100, output="sos")
    sos15 = butter(4, 15, fs=100, output="sos")
    win = 10 * NS
    edges = g0 + np.arange(m // (10 * fs_out) + 1, dtype=np.int64) * win
    for method in ("linear", "nearest"):
        for sos, e_sos in ((None, None), (sos20, None), (None, sos20), (sos20, "same"), (sos20, sos15)):
            e = sos if isinstance(e_sos, str) else e_sos
            for gap in (1.0 * NS, 2.5 * NS):
                want = reference_resample_core(t, x.copy(), g0, m, fs_out, gap, method, sos, (e, edges))
                got = resample_core(t, x.copy(), g0, m, fs_out, gap, method, sos, (e, edges))
                assert _same(got[0], want[0]), (method, sos is None, e_sos)
                assert _same(got[1], want[1]), (method, sos is None, e_sos)
            plain = resample_core(t, x.copy(), g0, m, fs_out, 1.0 * NS, method, sos)
            assert plain[1] is None and _same(plain[0], reference_resample_core(t, x.copy(), g0, m, fs_out, 1.0 * NS, method, sos)[0])


@pytest.mark.parametrize("n", [2, 3, 8, 15, 16, 17, 129, 10_007])
def test_filtfilt_is_scipys_sosfiltfilt_bit_for_bit(n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((n, 3)) * 0.4).astype(np.float32)
    for sos in (butter(4, 20, fs=100, output="sos"), butter(6, 5, fs=30, output="sos"), butter(2, 3, fs=50, output="sos")):
        p = min(3 * (2 * len(sos) + 1), n - 1)
        want = np.stack([sosfiltfilt(sos, x[:, k].astype(np.float64), padtype="odd", padlen=p) for k in range(3)], 1)
        assert _same(kernels.filtfilt_odd(sos, x, p), want)
        assert _same(kernels.filtfilt_odd(sos, x[:, :2].copy(), p), want[:, :2].copy())


def test_filtfilt_refuses_a_pad_as_long_as_the_signal():
    with pytest.raises(ValueError, match="padlen"):
        kernels.filtfilt_odd(butter(4, 20, fs=100, output="sos"), np.zeros((5, 3)), 5)


@pytest.mark.parametrize("seed", range(6))
def test_reduceat_sum_is_numpys(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(int(rng.integers(1, 20_000))) * 10.0 ** rng.uniform(-3, 3, 1)
    offs = np.unique(rng.integers(0, len(a), int(rng.integers(1, 60))))
    offs[0] = 0
    stops = np.append(offs[1:], len(a))
    out = np.empty(len(offs))
    kernels.reduceat_sum(a, offs, stops, out)
    assert _same(out, np.add.reduceat(a, offs))
    # a sum numpy takes with np.add.reduce (pairwise), too
    assert kernels.pairwise_sum(a, 0, len(a)) == np.add.reduce(a)
    col = np.stack([a, -a], 1).astype(np.float32)
    for lo, n in ((0, len(a)), (1, len(a) - 1), (3, min(200, len(a) - 3))):
        if n <= 0:
            continue
        v = col[lo : lo + n, 0].astype(np.float64)
        assert kernels.pairwise_col2(col, 0, lo, n) == (np.add.reduce(v), np.add.reduce(v * v))


def test_the_kernels_are_not_compiled_at_import():
    import subprocess
    import sys

    code = "import sys, harnet, harnet.signal.resample, harnet.signal.windows; print('numba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize("seed", range(4))
def test_window_moments_are_the_reduceat_statistics(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30_000))
    t = np.cumsum(rng.integers(1, 3 * NS // 100, n)).astype(np.int64) + 5 * NS
    t[n // 2 :] += int(rng.integers(0, 100)) * NS  # a gap
    xyz = (rng.standard_normal((n, 3)) * 0.2 + [0, 1, 0]).astype(np.float32)
    origin, win = 0, 10 * NS
    b = (t - origin) // win  # StatsBuilder's numpy code before the kernel
    offs = np.concatenate(([0], np.flatnonzero(np.diff(b)) + 1))
    c = np.diff(np.append(offs, n)).astype(np.float64)
    most = len(offs) + 1
    bins, cnt, mean, std = np.empty(most, np.int64), np.empty(most, np.intp), np.empty((most, 3)), np.empty((most, 3))
    k = kernels.window_moments(t, xyz, origin, win, bins, cnt, mean, std)
    assert k == len(offs) and (bins[:k] == b[offs]).all() and (cnt[:k] == c).all()
    for ax in range(3):
        col = xyz[:, ax].astype(np.float64)
        s1 = np.add.reduceat(col, offs)
        s2 = np.add.reduceat(col * col, offs)
        mu = s1 / c
        assert _same(mean[:k, ax].copy(), mu)
        assert _same(std[:k, ax].copy(), np.sqrt(np.maximum(s2 / c - mu * mu, 0.0)))


def test_all_finite_finds_nan_and_inf_anywhere():
    for dt in (np.float32, np.float64):
        x = np.ones((1000, 3), dt)
        assert kernels.all_finite(x) and kernels.all_finite(x[:, :2])
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[777, 2] = bad
            assert not kernels.all_finite(y) and not kernels.all_finite(y[1::2, 1:])
    assert kernels.all_finite(np.full((4, 3), np.finfo(np.float32).max, np.float32))


def test_decoders_are_the_numpy_code():
    from harnet.io.cwa import _sample_times

    rng = np.random.default_rng(5)
    raw = rng.integers(0, 2**32, (50, 120), dtype=np.uint64).astype(np.uint32)
    want = np.empty(raw.shape + (3,), np.float32)  # harnet.io.cwa_format.decode_packed before the kernel
    e = (raw >> 30).astype(np.int32)
    for axis, shift in enumerate((22, 12, 2)):
        want[..., axis] = np.left_shift((raw << np.uint32(shift)).view(np.int32) >> 22, e)
    want *= np.float32(1 / 256)
    got = np.empty_like(want)
    kernels.decode_packed(raw, got)
    assert _same(got, want)
    t0 = rng.integers(0, 2**60, 50)
    span = rng.uniform(0.5e9, 1.5e9, 50)
    cnt = rng.integers(1, 121, 50)
    times = np.empty((50, 120), np.int64)
    kernels.sample_times(t0, span, cnt, 120, times)
    assert _same(times, _sample_times(t0[:, None], span[:, None], cnt[:, None], np.arange(120)[None, :]))


def test_step_counts_are_the_diff_counts():
    from harnet.io.checks import GAP_NS, time_steps

    rng = np.random.default_rng(6)
    t = np.cumsum(rng.choice([-5, 0, 10_000_000, 2 * NS], 5000, p=[0.01, 0.01, 0.95, 0.03])).astype(np.int64)
    for prev in (None, int(t[0]) - 3):
        out = np.zeros(7, np.int64)
        kernels.step_counts(t, np.int64(prev or 0), prev is not None, GAP_NS, 1_500_000_000, out)
        d = np.diff(t) if prev is None else np.diff(t, prepend=np.int64(prev))
        ok = d <= 1_500_000_000
        assert tuple(out[:5]) == time_steps(d) and tuple(out[5:]) == (ok.sum(), d[ok].sum())


def test_segment_bounds_are_the_diff_breaks():
    rng = np.random.default_rng(9)
    for n in (0, 1, 2, 1000):
        t = np.cumsum(rng.choice([1, 10, 3 * NS], n, p=[0.5, 0.45, 0.05])).astype(np.int64)
        for gap in (1.0 * NS, 2.5 * NS, 5.0):
            assert (_segment_bounds(t, gap) == _ref_bounds(t, gap)).all()
            assert (_segment_bounds(t, gap) == _ref_bounds(t.astype(np.float64), gap)).all()


def test_resample_core_told_its_values_are_finite_gives_the_same_windows():
    rng = np.random.default_rng(10)
    t, x = _recording(rng, 20_000, gaps=2)
    sos = butter(4, 20, fs=100, output="sos")
    edges = int(t[0]) + np.arange(20, dtype=np.int64) * 10 * NS
    a = resample_core(t, x, int(t[0]), 5000, 30, 1.0 * NS, "linear", sos, (sos, edges))
    b = resample_core(t, x, int(t[0]), 5000, 30, 1.0 * NS, "linear", sos, (sos, edges), finite=True)
    assert _same(a[0], b[0]) and _same(a[1], b[1])
