"""Axivity CWA reader and writer: round trips, damaged files, sessions, and real files."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from conftest import shared_path
from harnet.errors import InputError
from harnet.io import read_device
from harnet.io.cwa import pack_timestamp, read_cwa, unpack_timestamp
from harnet.io.cwa_writer import corrupt_blocks, quantise, sample_times, truncate, write_cwa

START = "2024-03-01 10:00:00.250"
MS = np.timedelta64(1, "ms")


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0, 0.4, (n, 3)).astype(np.float32)
    xyz[:, 2] += 1.0
    xyz[: n // 20] *= 5  # some samples beyond +-2 g use the packed exponent
    return xyz


def _java() -> bool:
    from harnet.io.actipy_reader import java_available

    return java_available()


def _actipy_raw(path):
    import actipy

    data, _ = actipy.read_device(
        str(path), lowpass_hz=None, calibrate_gravity=False, detect_nonwear=False, resample_hz=None, verbose=False
    )
    return data.index.values, data[["x", "y", "z"]].to_numpy()


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"packed": False},
        {"packed": False, "range_g": 16},
        {"fractional": False},
        {"gzip": True},
        {"fs": 50.0},
        {"fs": 200.0, "range_g": 4},
    ],
    ids=["packed", "int16", "int16-16g", "old-timestamps", "gzip", "50Hz", "200Hz-4g"],
)
def test_round_trip(tmp_path, kw):
    n = 5000
    xyz = _signal(n)
    path = tmp_path / ("r.cwa.gz" if kw.get("gzip") else "r.cwa")
    write_cwa(path, START, xyz, **kw)
    rec = read_device(path)
    fs = kw.get("fs", 100.0)
    expect = quantise(xyz, packed=kw.get("packed", True), range_g=kw.get("range_g", 8))
    assert len(rec) == n
    np.testing.assert_array_equal(rec.xyz, expect)
    truth = sample_times(START, n, fs)
    # fractional stamps are exact to 1/32768 s; whole-second stamps to half a sample
    tol = np.timedelta64(int(0.5e9 / fs) + 1, "ns") if kw.get("fractional") is False else MS
    assert np.abs(rec.time - truth).max() <= tol
    assert rec.xyz.dtype == np.float32 and rec.time.dtype == np.dtype("datetime64[ns]")
    assert rec.info["Device"] == "Axivity" and rec.info["SampleRate"] == fs
    assert rec.info["ReadErrors"] == 0 and rec.info["ReadOK"] == 1 and rec.info["Warnings"] == []
    assert rec.info["AccelRange"] == kw.get("range_g", 8)
    assert rec.info["NumSamples"] == n


def test_packed_quantisation_is_1_256_g_within_2g(tmp_path):
    xyz = np.array([[0.5, -1.25, 1.99], [0.001, -0.003, 0.0]] * 60, np.float32)
    write_cwa(tmp_path / "q.cwa", START, xyz)
    rec = read_cwa(tmp_path / "q.cwa")
    np.testing.assert_allclose(rec.xyz, np.rint(xyz * 256) / 256, atol=0)


def test_six_axis_takes_accelerometer_not_gyro(tmp_path):
    n = 800
    xyz = _signal(n, 1)
    gyro = np.random.default_rng(2).integers(-20000, 20000, (n, 3))
    write_cwa(tmp_path / "ax6.cwa", START, xyz, gyro=gyro, range_g=16)
    rec = read_cwa(tmp_path / "ax6.cwa")
    np.testing.assert_array_equal(rec.xyz, quantise(xyz, packed=False, range_g=16))
    assert rec.info["NumSamples"] == n


def test_drifting_clock_gives_effective_rate(tmp_path):
    n = 12000
    write_cwa(tmp_path / "d.cwa", START, _signal(n), fs=100.0, fs_actual=98.6)
    rec = read_cwa(tmp_path / "d.cwa")
    assert rec.info["SampleRate"] == 100.0
    assert abs(rec.info["SampleRateEffective"] - 98.6) < 0.05
    truth = sample_times(START, n, 100.0, 98.6)
    # offsets are converted at the nominal rate (the reference rule): error < offset * 1.4 %
    assert np.abs(rec.time - truth).max() < np.timedelta64(20, "ms")
    assert np.all(np.diff(rec.time.view(np.int64)) > 0)


def test_small_chunks_give_identical_output(tmp_path):
    path = tmp_path / "c.cwa"
    write_cwa(path, START, _signal(5000))
    corrupt_blocks(path, [3, 17])
    a = read_cwa(path)
    b = read_cwa(path, chunk_blocks=5)
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.xyz, b.xyz)


def test_bad_checksum_blocks_are_skipped_and_counted(tmp_path):
    n = 120 * 30
    xyz = _signal(n)
    path = tmp_path / "bad.cwa"
    write_cwa(path, START, xyz)
    corrupt_blocks(path, [0, 7, 8, 29])
    rec = read_device(path)
    assert rec.info["ReadErrors"] == 4 and rec.info["ChecksumErrors"] == 4 and rec.info["ReadOK"] == 0
    assert len(rec) == n - 4 * 120
    keep = np.ones(n, bool)
    for k in (0, 7, 8, 29):
        keep[k * 120 : (k + 1) * 120] = False
    np.testing.assert_array_equal(rec.xyz, quantise(xyz)[keep])
    assert np.abs(rec.time - sample_times(START, n)[keep]).max() <= MS
    assert any("damaged data block" in w for w in rec.info["Warnings"])


def test_truncated_mid_block_reads_whole_blocks_and_warns(tmp_path):
    path = tmp_path / "t.cwa"
    write_cwa(path, START, _signal(1200))  # 10 blocks
    truncate(path, 200)
    rec = read_device(path)
    assert len(rec) == 1080
    assert any("ends inside a block" in w for w in rec.info["Warnings"])


def test_truncated_gzip_stream_is_refused(tmp_path):
    path = tmp_path / "t.cwa.gz"
    write_cwa(path, START, _signal(6000), gzip=True)
    truncate(path, os.path.getsize(path) // 2)
    with pytest.raises(InputError, match="t.cwa.gz.*damaged or incomplete"):
        read_device(path)


def test_two_sessions_with_gap(tmp_path):
    path = tmp_path / "two.cwa"
    a, b = _signal(1200, 1), _signal(2400, 2)
    write_cwa(path, START, a, session_id=1)
    start_b = np.datetime64(START) + np.timedelta64(3, "h")
    write_cwa(path, start_b, b, session_id=2, append=True)
    rec = read_device(path)
    assert len(rec) == 3600
    np.testing.assert_array_equal(rec.xyz, quantise(np.concatenate([a, b])))
    assert np.all(np.diff(rec.time.view(np.int64)) > 0)
    assert rec.info["NumGaps"] == 1 and rec.info["NumDroppedOverlap"] == 0
    assert rec.info["NumSessionRestarts"] >= 1
    assert abs(rec.time[1200] - start_b) <= MS


def test_second_session_earlier_in_time_is_sorted_not_overwritten(tmp_path):
    path = tmp_path / "back.cwa"
    a, b = _signal(1200, 1), _signal(1200, 2)
    write_cwa(path, START, a)
    start_b = np.datetime64(START) - np.timedelta64(1, "D")
    write_cwa(path, start_b, b, append=True)
    rec = read_device(path)
    assert len(rec) == 2400
    np.testing.assert_array_equal(rec.xyz, quantise(np.concatenate([b, a])))
    assert np.all(np.diff(rec.time.view(np.int64)) > 0)
    assert any("out of time order" in w for w in rec.info["Warnings"])


def test_overlapping_session_drops_later_samples_and_counts(tmp_path):
    path = tmp_path / "ov.cwa"
    a, b = _signal(2400, 1), _signal(2400, 2)  # 24 s each at 100 Hz
    write_cwa(path, START, a)
    start_b = np.datetime64(START) + np.timedelta64(12, "s")  # overlaps the second half of a
    write_cwa(path, start_b, b, append=True)
    rec = read_device(path)
    t = rec.time.view(np.int64)
    assert np.all(np.diff(t) > 0)
    dropped = rec.info["NumDroppedOverlap"]
    assert 1100 <= dropped <= 1300  # the ~12 s of b that falls inside a
    assert len(rec) == 4800 - dropped
    # the first session is intact: later data never overwrote it
    np.testing.assert_array_equal(rec.xyz[:2400], quantise(a))
    np.testing.assert_array_equal(rec.xyz[2400:], quantise(b)[dropped:])


def test_identical_duplicate_blocks_are_dropped(tmp_path):
    path = tmp_path / "dup.cwa"
    a = _signal(1200, 3)
    write_cwa(path, START, a)
    data = path.read_bytes()
    path.write_bytes(data + data[1024 + 512 * 4 : 1024 + 512 * 6])  # blocks 4 and 5 again
    rec = read_cwa(path)
    assert len(rec) == 1200 and rec.info["NumDroppedOverlap"] == 240
    np.testing.assert_array_equal(rec.xyz, quantise(a))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "is empty"),
        (bytes(np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8)), "not an Axivity CWA file"),
        (b"MD" + b"\x00" * 600, "ends inside its 1024-byte header"),
    ],
    ids=["empty", "random-bytes", "short-header"],
)
def test_bad_cwa_files_are_refused(tmp_path, content, match):
    path = tmp_path / "x.cwa"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as e:
        read_device(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_gzip_of_garbage_is_refused(tmp_path):
    path = tmp_path / "g.cwa.gz"
    path.write_bytes(gzip.compress(bytes(range(256)) * 20))
    with pytest.raises(InputError, match="not an Axivity CWA file"):
        read_device(path)
    path.write_bytes(b"\x1f\x8b" + bytes(range(200)))  # gzip magic, garbage stream
    with pytest.raises(InputError, match="cannot be decompressed"):
        read_device(path)


def test_all_blocks_damaged_is_refused(tmp_path):
    path = tmp_path / "all.cwa"
    write_cwa(path, START, _signal(360))
    corrupt_blocks(path, [0, 1, 2])
    with pytest.raises(InputError, match="no readable data blocks"):
        read_device(path)


def test_header_only_is_refused(tmp_path):
    path = tmp_path / "h.cwa"
    write_cwa(path, START, _signal(120))
    truncate(path, 512)
    with pytest.raises(InputError, match="no readable data blocks"):
        read_device(path)


def test_device_id_and_session_id_from_header(tmp_path):
    path = tmp_path / "id.cwa"
    write_cwa(path, START, _signal(240), device_id=6012858, session_id=4242)
    rec = read_cwa(path)
    assert rec.info["DeviceID"] == 6012858 and rec.info["SessionID"] == 4242


def test_packed_timestamp_round_trip_and_invalid_dates():
    t = np.array(["2000-01-01T00:00:00", "2024-02-29T23:59:59", "2063-12-31T12:34:56"], "datetime64[ns]")
    ns, ok = unpack_timestamp(pack_timestamp(t))
    assert ok.all() and np.array_equal(ns, t.astype(np.int64))
    v = int(pack_timestamp(np.array(["2023-04-30T00:00:00"], "datetime64[ns]"))[0])
    bad = [v + (1 << 17), v & ~(15 << 22), (v & ~63) | 61]  # 31 April, month 0, second 61
    assert not unpack_timestamp(np.array(bad, np.uint32))[1].any()


def test_writer_is_read_by_actipy(tmp_path):
    if not _java():
        pytest.skip("actipy needs Java")
    n = 3000
    xyz = _signal(n, 4)
    for kw in ({}, {"packed": False}, {"gyro": np.zeros((n, 3), np.int16), "range_g": 16}):
        path = tmp_path / "w.cwa"
        write_cwa(path, START, xyz, **kw)
        t, v = _actipy_raw(path)
        assert len(t) == n
        packed = kw.get("packed", True) and "gyro" not in kw
        np.testing.assert_array_equal(v, quantise(xyz, packed=packed, range_g=kw.get("range_g", 8)))
        # actipy ignores the fractional timestamps: within one sample
        assert np.abs(t - sample_times(START, n)).max() <= np.timedelta64(11, "ms")


# ---- real files (../shared/data)


@pytest.mark.shared_data
def test_example_610_steps_matches_reference_converter():
    cwa = shared_path("devices/openmovement/example-610-steps.cwa")
    ref = shared_path("devices/openmovement/example-610-steps.cwa-convert.csv.gz")
    rec = read_device(cwa)
    text = np.loadtxt(gzip.open(ref, "rt"), delimiter=",", dtype=str)
    t_ref = text[:, 0].astype("datetime64[ns]")
    v_ref = text[:, 1:].astype(np.float64)
    assert len(rec) == len(t_ref) == 71400
    np.testing.assert_array_equal(rec.xyz.astype(np.float64), v_ref)
    assert np.abs(rec.time - t_ref).max() <= MS
    assert abs(rec.info["SampleRateEffective"] - 98.5) < 0.1


CWA_FILES = [
    "devices/openmovement/example-610-steps.cwa",
    "devices/scikit-digital-health/ax3_sample.cwa",
    "devices/scikit-digital-health/ax6_sample.cwa",
    "devices/GGIRread/ax3_testfile.cwa",
    "devices/GGIRread/ax6_testfile.cwa",
]


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", CWA_FILES)
def test_real_cwa_matches_actipy(rel):
    path = shared_path(rel)
    if not _java():
        pytest.skip("actipy needs Java")
    t, v = _actipy_raw(path)
    rec = read_cwa(path)
    assert len(rec) == len(t)
    np.testing.assert_array_equal(rec.xyz, v.astype(np.float32))
    fs = rec.info["SampleRate"]
    # actipy ignores the fractional-second timestamps; with them off, times agree within 1 ms
    assert np.abs(rec.time - t).max() <= np.timedelta64(int(1e9 / fs) + 1_000_000, "ns")
    plain = read_cwa(path, use_fraction=False)
    assert np.abs(plain.time - t).max() <= MS
    assert np.abs(np.median(np.linalg.norm(rec.xyz, axis=1)) - 1) < 0.1  # AX6: accel, not gyro
