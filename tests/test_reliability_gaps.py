"""Long gaps: chunks that lie wholly inside a gap are emitted without resampling (a shortcut that
made a recording with a seven-month gap run in seconds, not minutes). The shortcut must give
exactly what resampling gives: compared here with one chunk covering the whole recording, where
every window is resampled."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harnet.io.recording import Recording
from harnet.signal.windows import iter_chunks
from harnet.timegrid import NS

BASE = np.datetime64("2024-03-30T00:00:00", "ns").astype(np.int64)


def _segment(start_ns: int, seconds: float, fs: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = max(2, int(seconds * fs))
    t = start_ns + np.round((np.arange(n) + rng.uniform(-0.3, 0.3, n)) * NS / fs).astype(np.int64)
    xyz = (np.array([0.2, -0.3, 0.93]) + 0.4 * np.sin(np.arange(n)[:, None] / np.array([3.0, 5.0, 7.0]))).astype(np.float32)
    return t, xyz


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset_s=st.integers(0, 86_399),
    parts=st.lists(st.tuples(st.floats(5, 900), st.floats(0.5, 130_000)), min_size=1, max_size=3),
    fs=st.sampled_from([12.5, 25.0, 50.0]),
    window_sec=st.sampled_from([10, 30]),
    lowpass=st.sampled_from([None, 5.0]),
    seed=st.integers(0, 2**16),
)
def test_chunks_inside_gaps_equal_resampled_windows(offset_s, parts, fs, window_sec, lowpass, seed):
    rng = np.random.default_rng(seed)
    ts, xs = [], []
    t0 = BASE + offset_s * NS
    for seconds, gap in parts:
        t, x = _segment(t0, seconds, fs, rng)
        ts.append(t)
        xs.append(x)
        t0 = int(t[-1]) + int(gap * NS)
    rec = Recording(np.concatenate(ts).view("datetime64[ns]"), np.concatenate(xs))
    short = list(iter_chunks(rec, window_sec=window_sec, lowpass_hz=lowpass, chunk_sec=3600 * 6))
    whole = list(iter_chunks(rec, window_sec=window_sec, lowpass_hz=lowpass, chunk_sec=window_sec * 40_000))
    assert len(whole) == 1
    w = whole[0]
    cat = {k: np.concatenate([getattr(c, k) for c in short]) for k in ("starts", "valid", "nonwear", "has_data", "enmo_mg")}
    X = np.concatenate([c.X for c in short])
    np.testing.assert_array_equal(cat["starts"], w.starts)
    for k in ("valid", "nonwear", "has_data"):
        np.testing.assert_array_equal(cat[k], getattr(w, k), err_msg=k)
    np.testing.assert_array_equal(np.isnan(X), np.isnan(w.X))
    np.testing.assert_allclose(X[~np.isnan(X)], w.X[~np.isnan(w.X)], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.isnan(cat["enmo_mg"]), np.isnan(w.enmo_mg))
    np.testing.assert_allclose(cat["enmo_mg"], w.enmo_mg, rtol=1e-5, atol=1e-3)
    assert X.flags.c_contiguous and all(c.X.flags.c_contiguous for c in short)
    # the long gaps really produced empty chunks (the shortcut ran) when a gap spans 6 h chunks
    if any(gap > 13 * 3600 for _, gap in parts[:-1]):
        assert any(not c.has_data.any() for c in short)
