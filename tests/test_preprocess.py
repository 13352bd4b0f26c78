"""Gravity calibration and non-wear detection (harnet.signal) on generated recordings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harnet.io.recording import Recording
from harnet.signal.calibrate import calibrate_gravity
from harnet.signal.nonwear import NonwearResult, detect_nonwear
from harnet.signal.stats import window_stats
from harnet.timegrid import NS

FS = 25.0


def _build(parts, start="2024-05-06T08:03:17.25", fs=FS, seed=0) -> Recording:
    """parts: list of (seconds, kind, arg): kind 'still' (arg: unit vector), 'move', 'gap'."""
    rng = np.random.default_rng(seed)
    chunks, times = [], []
    t = 0.0
    for sec, kind, arg in parts:
        n = int(sec * fs)
        if kind != "gap":
            ts = t + np.arange(n) / fs
            if kind == "still":
                x = np.asarray(arg) + rng.normal(0, 0.003, (n, 3))
            else:
                x = np.array([0, 0, 1.0]) + rng.normal(0, 0.3, (n, 3))
            chunks.append(x)
            times.append(ts)
        t += n / fs
    ts = np.concatenate(times)
    time = np.datetime64(start, "ns") + np.round(ts * NS).astype("timedelta64[ns]")
    return Recording(time, np.concatenate(chunks).astype(np.float32), {})


def _orientations(k, seed=1):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(k, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _multi_orientation(k=40, still_s=180, seed=1):
    parts = []
    for d in _orientations(k, seed):
        parts += [(still_s, "still", d), (30, "move", None)]
    return _build(parts, seed=seed)


GAIN = np.array([1.03, 0.97, 1.02])
OFFSET = np.array([0.04, -0.03, 0.02])


def _distort(rec: Recording, gain=GAIN, offset=OFFSET) -> Recording:
    return Recording(rec.time, (rec.xyz * gain + offset).astype(np.float32), {})


# ------------------------------------------------------------------------------ window stats


def test_window_stats_match_pandas():
    rec = _build([(300, "move", None), (95, "gap", None), (200, "still", [0, 0.6, 0.8]), (100, "move", None)],
                 start="2024-05-06T23:58:03.3", fs=31.3)
    st = window_stats(rec, 10, block_samples=777)  # tiny blocks: the block seams must not show
    df = pd.DataFrame(rec.xyz.astype(np.float64), columns=list("xyz"))
    key = pd.Series(rec.time).dt.floor("10s")
    ref_mean = df.groupby(key).mean()
    ref_std = df.groupby(key).std(ddof=0)
    have = st.count > 0
    np.testing.assert_array_equal(st.start_ns[have], ref_mean.index.to_numpy("datetime64[ns]").astype(np.int64))
    np.testing.assert_allclose(st.mean[have], ref_mean.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(st.std[have], ref_std.to_numpy(), atol=1e-7)
    assert (np.diff(st.start_ns) == 10 * NS).all()
    assert (~have).sum() >= 8 and np.isnan(st.mean[~have]).all()  # the gap's empty windows are kept


# ------------------------------------------------------------------------------ calibration


def test_calibration_recovers_known_offset_and_gain():
    truth = _multi_orientation()
    rec = _distort(truth)
    info = calibrate_gravity(rec)
    assert info["CalibOK"] == 1 and info["CalibNote"] == ""
    assert info["CalibErrorBefore(mg)"] > 20
    assert info["CalibErrorAfter(mg)"] < 1.0
    assert info["CalibNumStationary"] >= 40 * 17
    slope = np.array([info[f"Calib{a}Slope"] for a in "xyz"])
    icpt = np.array([info[f"Calib{a}Intercept"] for a in "xyz"])
    np.testing.assert_allclose(slope, 1 / GAIN, atol=1e-3)
    np.testing.assert_allclose(icpt, -OFFSET / GAIN, atol=1e-3)
    # applied in place: the data are back to the truth within a few mg
    np.testing.assert_allclose(rec.xyz, truth.xyz, atol=3e-3)
    # the fit agrees with actipy's (the field's reference implementation) on the same data
    actipy_proc = pytest.importorskip("actipy.processing")
    df = pd.DataFrame(_distort(truth).xyz, index=pd.DatetimeIndex(truth.time, name="time"), columns=list("xyz"))
    _, ref = actipy_proc.calibrate_gravity(df)
    assert ref["CalibOK"] == 1
    for a in "xyz":
        assert info[f"Calib{a}Slope"] == pytest.approx(float(ref[f"Calib{a}Slope"]), abs=2e-3)
        assert info[f"Calib{a}Intercept"] == pytest.approx(float(ref[f"Calib{a}Intercept"]), abs=2e-3)


def test_calibration_skips_short_recordings_unchanged():
    rec = _distort(_multi_orientation(k=4, still_s=60))
    before = rec.xyz.copy()
    info = calibrate_gravity(rec)
    assert info["CalibOK"] == 0 and "skipped" in info["CalibNote"] and "50 needed" in info["CalibNote"]
    assert info["CalibNumStationary"] < 50
    assert info["CalibErrorAfter(mg)"] == info["CalibErrorBefore(mg)"] > 20
    np.testing.assert_array_equal(rec.xyz, before)
    assert rec.info["Warnings"] == []  # a normal outcome, not a warning


def test_calibration_needs_orientations_on_every_axis():
    flat = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0.6, 0.8, 0]] * 4, dtype=float)
    parts = [p for d in flat for p in ((180, "still", d), (30, "move", None))]
    rec = _distort(_build(parts))
    before = rec.xyz.copy()
    info = calibrate_gravity(rec)
    assert info["CalibOK"] == 0 and "axis z" in info["CalibNote"]
    np.testing.assert_array_equal(rec.xyz, before)
    info = calibrate_gravity(rec, sphere_crit=-0.5)  # loosening the rule lets the fit run
    assert info["CalibNumIters"] > 0


def test_calibration_rejects_a_fit_that_stays_off_the_sphere():
    rng = np.random.default_rng(7)
    dirs = _orientations(40, seed=3) * rng.uniform(0.9, 1.1, (40, 1))  # not an affine error: no fit helps
    parts = [p for d in dirs for p in ((180, "still", d), (30, "move", None))]
    rec = _build(parts)
    before = rec.xyz.copy()
    info = calibrate_gravity(rec)
    assert info["CalibOK"] == 0 and info["CalibNote"].startswith("rejected")
    assert info["CalibErrorAfter(mg)"] == info["CalibErrorBefore(mg)"] > 10
    np.testing.assert_array_equal(rec.xyz, before)
    assert any("calibration" in w for w in rec.info["Warnings"])


# ------------------------------------------------------------------------------ non-wear


def _wear_pattern():
    return _build([(1800, "move", None), (7200, "still", [0, 0, -1]), (1800, "move", None),
                   (3600, "still", [0.6, 0, 0.8]), (1800, "move", None)], start="2024-05-06T21:00:04.5")


def test_nonwear_two_hours_flagged_one_hour_not():
    rec = _wear_pattern()
    before = rec.xyz.copy()
    nw = detect_nonwear(rec)
    assert isinstance(nw, NonwearResult) and len(nw) == 1
    t0 = rec.time[0].astype(np.int64)
    s, e = (nw.start_ns[0] - t0) / NS, (nw.end_ns[0] - t0) / NS
    assert abs(s - 1800) <= 10 and abs(e - 9000) <= 10  # within one 10-s window of the truth
    assert (nw.start_ns - (nw.start_ns // (86_400 * NS)) * 86_400 * NS) % (10 * NS) == 0  # clock-aligned
    assert nw.info["NumNonwearEpisodes"] == 1
    assert nw.info["NonwearTime(days)"] == pytest.approx(2 / 24, abs=20 / 86_400)
    np.testing.assert_array_equal(rec.xyz, before)  # raw data untouched
    m = nw.mask(rec.time)
    rel = (rec.time.astype(np.int64) - t0) / NS
    assert m[(rel > 1810) & (rel < 8990)].all() and not m[(rel < 1790) | (rel > 9010)].any()


def test_nonwear_patience_and_threshold_are_parameters():
    rec = _wear_pattern()
    assert len(detect_nonwear(rec, patience_min=45)) == 2
    assert len(detect_nonwear(rec, patience_min=150)) == 0
    assert len(detect_nonwear(rec, stationary_std_g=0.002)) == 0  # the 3-mg noise is above it


def test_gaps_break_stationary_runs():
    rec = _build([(600, "move", None), (3300, "still", [0, 0, 1]), (600, "gap", None),
                  (3300, "still", [0, 0, 1]), (600, "move", None)])
    assert len(detect_nonwear(rec)) == 0  # two 55-min runs, split by a gap: no non-wear
    assert len(detect_nonwear(rec, patience_min=50)) == 2


def test_nonwear_matches_actipy():
    actipy_proc = pytest.importorskip("actipy.processing")
    rec = _wear_pattern()
    df = pd.DataFrame(rec.xyz, index=pd.DatetimeIndex(rec.time, name="time"), columns=list("xyz"))
    out, ref = actipy_proc.flag_nonwear(df)
    nw = detect_nonwear(rec)
    assert nw.info["NumNonwearEpisodes"] == ref["NumNonwearEpisodes"] == 1
    assert nw.info["NonwearTime(days)"] == pytest.approx(ref["NonwearTime(days)"], abs=30 / 86_400)
    flagged = out["x"].isna().to_numpy()
    agree = (nw.mask(rec.time) == flagged).mean()
    assert agree > 0.998
