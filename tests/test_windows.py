"""Resampling and clock-aligned windows (harnet.signal) on generated and real recordings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harnet.errors import InputError
from harnet.io.recording import Recording
from harnet.arch import SAMPLE_RATE
from harnet.signal.nonwear import NonwearResult
from harnet.signal.resample import effective_rate, resample
from harnet.signal.windows import WindowChunk, iter_chunks, make_windows
from harnet.timegrid import NS, midnight_ns

from conftest import shared_path


def _rec(start: str, seconds: float, fs: float, fn=None, *, seed: int = 0) -> Recording:
    """A recording sampled at exactly ``fs`` Hz (drifted rates welcome) from ``start``."""
    n = int(seconds * fs)
    t_rel = np.arange(n) / fs
    t = np.datetime64(start, "ns") + np.round(t_rel * NS).astype("timedelta64[ns]")
    if fn is None:
        rng = np.random.default_rng(seed)
        xyz = rng.normal(0, 0.3, (n, 3)) + np.array([0.0, 0.0, 1.0])
    else:
        xyz = fn(t_rel)
    return Recording(t, np.asarray(xyz, dtype=np.float32), {})


def _drop(rec: Recording, a_s: float, b_s: float) -> Recording:
    """Remove the samples strictly between a_s and b_s seconds after the first one."""
    rel = (rec.time - rec.time[0]).astype(np.int64) / NS
    keep = ~((rel > a_s) & (rel < b_s))
    return Recording(rec.time[keep], rec.xyz[keep], {})


def _all(chunks) -> WindowChunk:
    chunks = list(chunks)
    return WindowChunk(*(np.concatenate([getattr(c, f) for c in chunks]) for f in
                         ("starts", "X", "valid", "nonwear", "has_data", "enmo_mg")))


def _grid_times_s(ch: WindowChunk, t0: np.datetime64) -> np.ndarray:
    """Seconds from t0 of every sample of every window, shape (N, T)."""
    T = ch.X.shape[2]
    base = (ch.starts - t0).astype(np.int64) / NS
    return base[:, None] + np.arange(T) / SAMPLE_RATE


# ------------------------------------------------------------------------------ make_windows


def test_make_windows_layout_and_padding():
    rng = np.random.default_rng(3)
    T = 5 * SAMPLE_RATE
    xyz = rng.normal(size=(1000, 3)).astype(np.float32)
    origin = midnight_ns(np.datetime64("2024-05-01T07:00", "ns").astype(np.int64))
    first = 7 * T + 40  # starts 40 samples into window 7
    starts, X, complete = make_windows(xyz, origin, first, 5)
    last = (first + 999) // T
    assert len(starts) == last - 7 + 1
    assert X.shape == (len(starts), 3, T) and X.dtype == np.float32 and X.flags.c_contiguous
    assert ((starts.astype(np.int64) - origin) % (5 * NS) == 0).all()
    assert starts[0].astype(np.int64) == origin + 7 * 5 * NS
    # sample j of the input lands in window (first + j) // T at position (first + j) % T
    j = np.array([0, 1, 109, 110, 500, 999])
    w = (first + j) // T - 7
    p = (first + j) % T
    np.testing.assert_array_equal(X[w, :, p], xyz[j])
    assert np.isnan(X[0, :, :40]).all() and not np.isnan(X[0, :, 40:]).any()
    assert complete.tolist() == [False] + [True] * (len(starts) - 2) + [False]


def test_make_windows_exact_fit_and_errors():
    T = 10 * SAMPLE_RATE
    xyz = np.ones((3 * T, 3), np.float32)
    starts, X, complete = make_windows(xyz, 0, 6 * T, 10)
    assert len(starts) == 3 and complete.all()
    assert (starts.astype(np.int64) == np.array([60, 70, 80]) * NS).all()
    with pytest.raises(ValueError):
        make_windows(xyz, 0, 0, 1 / 7)


# ------------------------------------------------------------------------------ resample


def test_resample_drifted_sine_matches_analytic():
    fs_true = 98.5  # a "100 Hz" device running 1.5 % slow: only timestamps tell
    rec = _rec("2024-03-05T13:07:11.123456789", 120, fs_true,
               lambda s: np.stack([np.sin(2 * np.pi * s), np.cos(2 * np.pi * s), 0.2 * np.sin(2 * np.pi * 0.3 * s)], 1))
    assert effective_rate(rec.time) == pytest.approx(fs_true, rel=1e-6)
    t0 = rec.time[0]
    org = midnight_ns(t0.astype(np.int64))
    for lowpass in (None, 20.0):
        out = resample(rec.time, rec.xyz, fs_out=30, lowpass_hz=lowpass)
        # default grid: first midnight-aligned 30 Hz point at or after the first sample
        k0 = -((-(t0.astype(np.int64) - org) * 30) // NS)
        s = (org + (k0 + np.arange(len(out))) * NS / 30 - t0.astype(np.int64)) / NS
        assert s[0] >= 0 and s[0] < 1 / 30 and s[-1] <= 120
        assert not np.isnan(out).any()
        want = np.stack([np.sin(2 * np.pi * s), np.cos(2 * np.pi * s), 0.2 * np.sin(2 * np.pi * 0.3 * s)], 1)
        assert np.abs(out - want).max() < 1e-2
    near = resample(rec.time, rec.xyz, fs_out=30, method="nearest")
    assert np.abs(near - want).max() < 2 * np.pi / fs_true  # within half a raw sample step


def test_resample_gap_rule_and_exact_samples():
    # samples every 0.1 s at whole tenths; a gap of 1.5 s and one of 0.9 s
    t_s = np.concatenate([np.arange(0, 10, 0.1), np.arange(11.5, 20, 0.1), np.arange(20.8, 25, 0.1)])
    t = (np.round(t_s * 10).astype(np.int64) * (NS // 10))
    xyz = np.stack([t_s, -t_s, np.ones_like(t_s)], 1).astype(np.float32)
    out = resample(t, xyz, fs_out=30, grid_start_ns=0, grid_stop_ns=26 * NS)
    g = np.arange(len(out)) / 30
    assert len(out) == 26 * 30
    nan = np.isnan(out[:, 0])
    last_before, first_after = t_s[t_s < 10][-1], 11.5
    want_nan = ((g > last_before) & (g < first_after)) | (g > t_s[-1])
    np.testing.assert_array_equal(nan, want_nan)
    # linear in time: x equals the grid time wherever defined (also across the 0.9-s gap)
    np.testing.assert_allclose(out[~nan, 0], g[~nan], atol=1e-5)
    # a grid point on the last sample before the gap and the first after are kept
    assert not np.isnan(out[int(round(last_before * 30)), 0]) and not np.isnan(out[int(11.5 * 30), 0])


def test_resample_constant_stays_constant_with_filter():
    rec = _rec("2024-01-01T23:59:50", 30, 100.3, lambda s: np.tile([0.1, -0.7, 0.7], (len(s), 1)))
    out = resample(rec.time, rec.xyz, lowpass_hz=15.0)
    np.testing.assert_allclose(out, np.tile(np.float32([0.1, -0.7, 0.7]), (len(out), 1)), atol=1e-6)


def _alias_db(lowpass, antialias=False):
    fs = 100.0
    rec = _rec("2024-01-01T10:00:00", 60, fs, lambda s: np.stack([0.5 * np.sin(2 * np.pi * 40 * s), 0 * s, 1 + 0 * s], 1))
    out = resample(rec.time, rec.xyz, fs_out=30, lowpass_hz=lowpass, antialias=antialias)
    x = out[60:-60, 0]  # leave out the edges
    rms_in = 0.5 / np.sqrt(2)
    return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) / rms_in)


def test_antialias_lowpass_attenuates_40hz():
    assert _alias_db(None) > -6  # without a filter 40 Hz folds to 10 Hz nearly unattenuated
    assert _alias_db(15.0) < -20
    assert _alias_db(20.0) < -20
    assert _alias_db(None, antialias=True) < -20  # the model config's "antialias" caps at 15 Hz


def test_resample_rejects_bad_input():
    with pytest.raises(ValueError):
        resample(np.arange(5), np.zeros((5, 2)), grid_start_ns=0, grid_stop_ns=NS)
    with pytest.raises(ValueError):
        resample(np.arange(5), np.zeros((5, 3)), method="cubic")
    with pytest.raises(InputError, match="strictly increasing"):
        effective_rate(np.array([0, 10, 10, 20]))


# ------------------------------------------------------------------------------ iter_chunks


@pytest.mark.parametrize("window_sec", [5, 10, 30])
def test_windows_aligned_and_continuous(window_sec):
    rng = np.random.default_rng(window_sec)
    for _ in range(4):
        off_ns = int(rng.integers(0, 86_400 * NS))
        start = np.datetime64("2024-02-28", "ns") + np.timedelta64(off_ns, "ns")
        rec = _rec(str(start), float(rng.uniform(20, 200)), float(rng.uniform(25, 110)), seed=int(off_ns % 1000))
        ch = _all(iter_chunks(rec, window_sec=window_sec, chunk_sec=600 if window_sec != 30 else 900))
        s = ch.starts.astype(np.int64)
        mid = midnight_ns(rec.time[0].astype(np.int64))
        assert ((s - mid) % (window_sec * NS) == 0).all()
        assert (np.diff(s) == window_sec * NS).all()
        t_first, t_last = rec.time[0].astype(np.int64), rec.time[-1].astype(np.int64)
        assert s[0] <= t_first < s[0] + window_sec * NS
        assert s[-1] <= t_last < s[-1] + window_sec * NS
        assert ch.X.shape == (len(s), 3, window_sec * SAMPLE_RATE)
        assert ch.has_data.all()
        assert ch.valid[1:-1].all()  # interior windows are complete; edges are partial unless aligned


def test_gap_over_a_second_invalidates_touching_windows_only():
    rec = _rec("2024-06-01T09:00:03.37", 300, 50.0)
    t0 = rec.time[0]
    for a, b in [(100.0, 102.0), (116.5, 118.5), (150.0, 150.5)]:
        g = _drop(rec, a, b)
        rel = (g.time - t0).astype(np.int64) / NS
        L, R = rel[rel <= a][-1], rel[rel >= b][0]
        ch = _all(iter_chunks(g, window_sec=10))
        ts = _grid_times_s(ch, t0)
        touched = ((ts > L) & (ts < R)).any(axis=1)
        inner = np.ones(len(ch), bool)
        inner[[0, -1]] = False  # the first and last windows are partial anyway
        if R - L > 1.0:
            assert touched.sum() >= 1
            np.testing.assert_array_equal(ch.valid[inner], ~touched[inner])
            assert np.isnan(ch.X[touched]).any(axis=(1, 2)).all()
        else:  # 0.5-s gap: interpolated over, every interior window valid
            assert ch.valid[inner].all()
        assert ch.has_data.all()


def test_day_long_gap_yields_flagged_windows_not_holes():
    a = _rec("2024-03-01T22:00:00", 3600, 25.0, seed=1)
    b = _rec("2024-03-03T01:00:00", 600, 25.0, seed=2)
    rec = Recording(np.concatenate([a.time, b.time]), np.concatenate([a.xyz, b.xyz]), {})
    chunks = list(iter_chunks(rec, window_sec=30, chunk_sec=86_400))
    assert len(chunks) == 3  # 1, 2 and 3 March
    ch = _all(chunks)
    span = (rec.time[-1] - np.datetime64("2024-03-01T22:00:00", "ns")).astype(np.int64) // (30 * NS) + 1
    assert len(ch) == span
    assert (np.diff(ch.starts.astype(np.int64)) == 30 * NS).all()
    empty = ~ch.has_data
    assert empty.sum() == len(ch) - 120 - 20  # an hour and ten minutes of data, the rest is gap
    assert np.isnan(ch.enmo_mg[empty]).all() and not ch.valid[empty].any()
    assert chunks[1].X.shape == (2880, 3, 900) and not chunks[1].has_data.any()


def test_chunk_size_does_not_change_windows():
    rec = _rec("2024-04-07T23:20:00", 3 * 3600, 30.7, seed=5)
    rec = _drop(rec, 1000.0, 1003.0)  # a gap near a 10-min chunk edge
    rec = _drop(rec, 2397.5, 2402.5)
    nw = NonwearResult(np.array([np.datetime64("2024-04-08T00:31:07", "ns").astype(np.int64)]),
                       np.array([np.datetime64("2024-04-08T02:07:00", "ns").astype(np.int64)]), {})
    kw = dict(window_sec=10, lowpass_hz=12.0, nonwear=nw)
    big = _all(iter_chunks(rec, chunk_sec=86_400, **kw))
    small = _all(iter_chunks(rec, chunk_sec=600, **kw))
    np.testing.assert_array_equal(big.starts, small.starts)
    for f in ("valid", "nonwear", "has_data"):
        np.testing.assert_array_equal(getattr(big, f), getattr(small, f))
    np.testing.assert_array_equal(np.isnan(big.X), np.isnan(small.X))
    np.testing.assert_allclose(big.X, small.X, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(big.enmo_mg, small.enmo_mg, atol=1e-3, equal_nan=True)
    with pytest.raises(ValueError, match="multiple of window_sec"):
        next(iter_chunks(rec, window_sec=30, chunk_sec=45))


def test_nonwear_flags_windows_on_the_grid_and_keeps_data():
    rec = _rec("2024-04-07T10:00:00", 1800, 50.0)
    s = np.datetime64("2024-04-07T10:05:03", "ns").astype(np.int64)
    e = np.datetime64("2024-04-07T10:09:59.99", "ns").astype(np.int64)
    nw = NonwearResult(np.array([s]), np.array([e]), {})
    ch = _all(iter_chunks(rec, window_sec=10, nonwear=nw))
    st = ch.starts.astype(np.int64)
    want = (st + 10 * NS > s) & (st < e)  # windows holding a grid point inside [s, e)
    np.testing.assert_array_equal(ch.nonwear, want)
    assert want.sum() == 30  # 10:05:00 .. 10:09:50
    assert not ch.valid[want].any() and ch.valid[~want][1:-1].all()
    assert not np.isnan(ch.X[want]).any()  # raw values stay; the mask says what to skip
    np.testing.assert_array_equal(nw.mask(ch.starts), (st >= s) & (st < e))


def test_enmo_mean_over_present_samples():
    def fn(s):
        mag = np.where(s < 60, 1.2, 0.9)  # 200 mg for a minute, then below 1 g (ENMO 0)
        return np.stack([0 * s, mag * 0.6, mag * 0.8], 1)

    rec = _drop(_rec("2024-01-01T00:00:00", 120, 40.0, fn), 25.0, 35.0)
    ch = _all(iter_chunks(rec, window_sec=10))
    assert len(ch) == 12
    np.testing.assert_allclose(ch.enmo_mg[[0, 1, 4, 5]], 200.0, atol=1e-2)
    np.testing.assert_allclose(ch.enmo_mg[6:], 0.0, atol=1e-3)
    assert ch.has_data.all() and not ch.valid[[2, 3]].any()
    np.testing.assert_allclose(ch.enmo_mg[[2, 3]], 200.0, atol=1e-2)  # partial windows: present samples only


def test_nan_samples_are_missing_data_not_spread_by_the_filter():
    rec = _rec("2024-01-01T10:00:00", 120, 100.0)
    rec.xyz[5000] = np.nan  # one lost sample: interpolated over
    rec.xyz[8000:8300, 1] = np.nan  # 3 s lost on one axis: a gap
    kw = dict(window_sec=10, lowpass_hz=20.0, fs_in=100.0)
    ch = _all(iter_chunks(rec, **kw))
    assert ch.valid.tolist() == [True] * 8 + [False] + [True] * 3
    assert np.isfinite(ch.enmo_mg).all()
    ref = _all(iter_chunks(_drop(_drop(rec, 49.995, 50.005), 79.995, 82.995), **kw))
    np.testing.assert_array_equal(ch.X, ref.X)
    np.testing.assert_array_equal(ch.enmo_mg, ref.enmo_mg)


def test_bad_recordings_raise_input_errors():
    with pytest.raises(InputError, match="no samples"):
        next(iter_chunks(Recording(np.empty(0, "datetime64[ns]"), np.empty((0, 3), np.float32)), window_sec=10))
    t = np.array([0, NS // 10, NS // 10, 3 * NS // 10]).view("datetime64[ns]")
    with pytest.raises(InputError, match="strictly increasing"):
        next(iter_chunks(Recording(t, np.zeros((4, 3), np.float32)), window_sec=10))


def test_windows_module_does_not_import_torch():
    code = "import sys, harnet.signal.windows, harnet.signal.calibrate, harnet.signal.nonwear; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_sample_rate_matches_model():
    import ast
    from pathlib import Path

    import harnet

    # one copy (harnet.arch, torch-free): the network's module takes it from there, as windows do
    tree = ast.parse((Path(harnet.__file__).parent / "model.py").read_text())  # without importing torch
    assert not [n for n in tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", None) == "SAMPLE_RATE" for t in n.targets)]
    assert any(isinstance(n, ast.ImportFrom) and n.module == "arch" and "SAMPLE_RATE" in [a.name for a in n.names]
               for n in tree.body)
    import harnet.signal.windows as w

    assert w.SAMPLE_RATE is SAMPLE_RATE and SAMPLE_RATE == 30


# ------------------------------------------------------------------------------ real files


@pytest.mark.shared_data
def test_real_cwa_windows_match_raw_enmo():
    """Open Movement's CSV conversion of a 12-min AX3 walk (98.5 Hz effective)."""
    import pandas as pd
    from scipy.signal import butter, sosfiltfilt

    path = shared_path("devices/openmovement/example-610-steps.cwa-convert.csv.gz")
    df = pd.read_csv(path, header=None, names=["time", "x", "y", "z"], parse_dates=["time"])
    rec = Recording(df["time"].to_numpy("datetime64[ns]"), df[["x", "y", "z"]].to_numpy(np.float32), {})
    assert 97.5 < effective_rate(rec.time) < 99.5
    X = df[["x", "y", "z"]].to_numpy()
    key = df["time"].dt.floor("10s").to_numpy("datetime64[ns]")
    assert (np.diff(df["time"].to_numpy()) < np.timedelta64(1, "s")).all()  # one contiguous segment
    for lp in (20.0, None):
        ch = _all(iter_chunks(rec, window_sec=10, enmo_lowpass_hz=lp))
        # the reference: mean ENMO of the (20 Hz low-passed) raw samples in each clock window
        Xf = X if lp is None else sosfiltfilt(butter(4, lp, fs=effective_rate(rec.time), output="sos"), X, axis=0)
        ref = pd.Series(np.maximum(np.linalg.norm(Xf, axis=1) - 1, 0) * 1000).groupby(key).mean()
        np.testing.assert_array_equal(ref.index.to_numpy("datetime64[ns]"), ch.starts)
        assert ref.max() > 300  # the walk is there
        np.testing.assert_allclose(ch.enmo_mg, ref.to_numpy(), atol=0.05)
        assert ch.valid[1:-1].all() and ch.has_data.all()
    # the 30 Hz windows themselves keep the walk's ENMO within 10 %
    x30 = ch.X.astype(np.float64)
    enmo30 = np.maximum(np.sqrt((x30**2).sum(axis=1)) - 1, 0).mean(axis=1) * 1000
    busy = ref.to_numpy()[1:-1] > 30
    np.testing.assert_allclose(enmo30[1:-1][busy], ref.to_numpy()[1:-1][busy], rtol=0.1)


@pytest.mark.shared_data
def test_real_gt3x_idle_sleep_gaps_are_gaps():
    """A GT3X with idle-sleep seconds (no samples): windows over them are not valid."""
    import pandas as pd

    actipy = pytest.importorskip("actipy")
    path = shared_path("devices/GGIR/actigraph_testfile.gt3x")
    try:
        df, _ = actipy.read_device(str(path), lowpass_hz=None, calibrate_gravity=False, detect_nonwear=False,
                                   resample_hz=None, verbose=False)
    except Exception as e:  # pragma: no cover - no Java runtime
        pytest.skip(f"actipy cannot read GT3X here: {e}")
    t = df.index.to_numpy("datetime64[ns]")
    rec = Recording(t, df[["x", "y", "z"]].to_numpy(np.float32), {})
    ch = _all(iter_chunks(rec, window_sec=30))
    # independent reference: neighbours of every grid point by pandas.merge_asof
    T = ch.X.shape[2]
    grid = (ch.starts[:, None] + (np.arange(T) * (NS / SAMPLE_RATE)).astype("timedelta64[ns]")).ravel()
    g = pd.DataFrame({"g": grid})
    r = pd.DataFrame({"t": t, "tt": t})
    back = pd.merge_asof(g, r, left_on="g", right_on="t", direction="backward")["tt"].to_numpy()
    fwd = pd.merge_asof(g, r, left_on="g", right_on="t", direction="forward")["tt"].to_numpy()
    ok = ~np.isnat(back) & ~np.isnat(fwd) & (((fwd - back) <= np.timedelta64(1, "s")) | (back == grid))
    want_valid = ok.reshape(-1, T).all(axis=1)
    np.testing.assert_array_equal(ch.valid, want_valid)
    assert 10 < (~ch.valid).sum() < len(ch)  # the idle-sleep seconds are there and are gaps
    assert (~ch.has_data).sum() >= 1  # a 261-s idle stretch leaves whole windows empty
