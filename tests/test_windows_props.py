"""Property tests (hypothesis) for resampling and clock-aligned windows."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harnet.io.recording import Recording
from harnet.arch import SAMPLE_RATE
from harnet.signal.resample import resample
from harnet.signal.windows import iter_chunks, make_windows
from harnet.timegrid import NS, midnight_ns

DAY = 86_400 * NS
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = np.datetime64("2023-10-28", "ns").astype(np.int64)


def _times(start_ns: int, seconds: float, fs: float, jitter: float, seed: int) -> np.ndarray:
    """Strictly increasing int64 ns timestamps at about fs Hz with some jitter."""
    n = max(2, int(seconds * fs))
    rng = np.random.default_rng(seed)
    step = NS / fs
    t = np.arange(n) * step + rng.uniform(-jitter, jitter, n) * step
    return start_ns + np.round(t).astype(np.int64)


def _drop_gaps(t: np.ndarray, gaps: list[tuple[float, float]]) -> np.ndarray:
    rel = (t - t[0]) / NS
    keep = np.ones(len(t), bool)
    for a, length in gaps:
        keep &= ~((rel > a) & (rel < a + length))
    return t[keep]


starts_ns = st.integers(0, 3 * DAY - 1).map(lambda x: BASE + x)
window_secs = st.sampled_from([5, 10, 30])


@SETTINGS
@given(first=st.integers(0, 5_000_000), m=st.integers(1, 3000), window_sec=window_secs)
def test_make_windows_counts_positions_completeness(first, m, window_sec):
    T = window_sec * SAMPLE_RATE
    xyz = np.arange(m * 3, dtype=np.float32).reshape(m, 3)
    starts, X, complete = make_windows(xyz, BASE, first, window_sec)
    w0, w1 = first // T, (first + m - 1) // T
    assert len(starts) == w1 - w0 + 1 == len(X) == len(complete)
    assert ((starts.astype(np.int64) - BASE) % (window_sec * NS) == 0).all()
    assert starts[0].astype(np.int64) == BASE + w0 * window_sec * NS
    flat = X.transpose(0, 2, 1).reshape(-1, 3)
    lead = first - w0 * T
    np.testing.assert_array_equal(flat[lead : lead + m], xyz)
    assert np.isnan(flat[:lead]).all() and np.isnan(flat[lead + m :]).all()
    k = w0 + np.arange(len(starts))
    np.testing.assert_array_equal(complete, (k * T >= first) & ((k + 1) * T <= first + m))


@SETTINGS
@given(start=starts_ns, seconds=st.floats(1, 400), fs=st.floats(12, 120), window_sec=window_secs,
       chunk_windows=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_windows_cover_the_span_aligned_at_midnight(start, seconds, fs, window_sec, chunk_windows, seed):
    t = _times(start, seconds, fs, 0.2, seed)
    rec = Recording(t.view("datetime64[ns]"), np.zeros((len(t), 3), np.float32) + [0, 0, 1])
    W = window_sec * NS
    chunks = list(iter_chunks(rec, window_sec=window_sec, chunk_sec=chunk_windows * window_sec))
    assert all(0 < len(c) <= chunk_windows for c in chunks)
    s = np.concatenate([c.starts for c in chunks]).astype(np.int64)
    mid = midnight_ns(t[0])
    assert ((s - mid) % W == 0).all()
    # chunks start at midnight + multiples of chunk_sec (the first and last may be partial)
    assert all(((c.starts[0].astype(np.int64) - mid) % (chunk_windows * W) == 0) for c in chunks[1:])
    assert (np.diff(s) == W).all()
    assert s[0] <= t[0] < s[0] + W and s[-1] <= t[-1] < s[-1] + W
    assert len(s) == (t[-1] - mid) // W - (t[0] - mid) // W + 1


@SETTINGS
@given(start=st.integers(NS, DAY - 200 * NS).map(lambda x: BASE + x), fs=st.floats(15, 80), seed=st.integers(0, 2**16),
       gaps=st.lists(st.tuples(st.floats(5, 110), st.floats(0.05, 4.0)), min_size=1, max_size=3))
def test_gaps_over_max_gap_are_nan_and_invalidate_exactly_their_windows(start, fs, seed, gaps):
    t = _drop_gaps(_times(start, 120, fs, 0.3, seed), gaps)
    rec = Recording(t.view("datetime64[ns]"), np.zeros((len(t), 3), np.float32) + [0.6, 0, 0.8])
    ch = list(iter_chunks(rec, window_sec=10))
    assert len(ch) == 1  # within one day
    c = ch[0]
    T = c.X.shape[2]
    grid = (c.starts.astype(np.int64)[:, None] - t[0]) + np.arange(T) * NS / SAMPLE_RATE  # ns from t[0]
    rel = (t - t[0]).astype(np.float64)
    d = np.diff(rel)
    big = d > NS  # intervals longer than max_gap_s = 1 s
    inside_gap = np.zeros(grid.shape, bool)
    for L, R in zip(rel[:-1][big], rel[1:][big]):
        inside_gap |= (grid > L) & (grid < R)
    outside = (grid < 0) | (grid > rel[-1])
    want_nan = inside_gap | outside
    np.testing.assert_array_equal(np.isnan(c.X[:, 0, :]), want_nan)
    np.testing.assert_array_equal(c.valid, ~want_nan.any(axis=1))
    # defined values are the constant, unchanged by interpolation across short gaps
    np.testing.assert_allclose(c.X[:, 0, :][~want_nan], np.float32(0.6), rtol=0, atol=1e-7)


@SETTINGS
@given(start=starts_ns, seconds=st.floats(2, 60), fs=st.floats(10, 200), seed=st.integers(0, 2**16),
       value=st.tuples(*[st.floats(-8, 8, width=32)] * 3), lowpass=st.sampled_from([None, 5.0, 12.0, 20.0]))
def test_constant_signal_stays_constant(start, seconds, fs, seed, value, lowpass):
    t = _times(start, seconds, fs, 0.3, seed)
    xyz = np.tile(np.float32(value), (len(t), 1))
    out = resample(t, xyz, lowpass_hz=lowpass)
    assert out.dtype == np.float32 and out.shape[1] == 3
    assert not np.isnan(out).any()  # no gaps, so every grid point inside the data is defined
    np.testing.assert_allclose(out, np.tile(np.float32(value), (len(out), 1)), rtol=1e-6, atol=1e-6)


@SETTINGS
@given(start=starts_ns, seconds=st.floats(1, 120), fs=st.floats(10, 200), seed=st.integers(0, 2**16),
       method=st.sampled_from(["linear", "nearest"]))
def test_default_grid_is_aligned_and_linear_signals_are_exact(start, seconds, fs, seed, method):
    t = _times(start, seconds, fs, 0.4, seed)
    hour = t[0] // (3600 * NS) * (3600 * NS)
    s = (t - hour) / NS  # seconds since the hour: the signal is the clock itself
    out = resample(t, np.stack([s, -s, 0 * s], 1).astype(np.float32), method=method)
    mid = midnight_ns(t[0])
    k = ((hour - mid) / NS + out[:, 0].astype(np.float64)) * SAMPLE_RATE  # grid index from midnight
    if method == "linear":
        # linear interpolation of a linear signal is exact: every output sits on a grid point
        assert np.abs(k - np.round(k)).max() < 0.02
        assert (np.diff(np.round(k)) == 1).all()
        assert (np.round(k[0]) - 1) / SAMPLE_RATE < (t[0] - mid) / NS <= np.round(k[0]) / SAMPLE_RATE + 1e-9
    else:
        # nearest neighbour: each output is a raw sample within half a step of its grid point
        g = ((t[0] - mid) / NS * SAMPLE_RATE)
        j = np.ceil(g - 1e-9) + np.arange(len(out))
        assert np.abs(k - j).max() / SAMPLE_RATE <= np.diff(t).max() / NS / 2 + 1e-3
