"""harnet's own ActiGraph reader (harnet.io.gt3x): v2 log.bin, NHANES v1 activity.bin, idle
sleep, damage, streaming; files written by tests/_devicefiles.py (no fixtures)."""

from __future__ import annotations

import tracemalloc
import zipfile

import numpy as np
import pytest

from _devicefiles import moving_xyz, record, write_gt3x, write_gt3x_v1
from harnet.errors import InputError
from harnet.io import read_device
from harnet.io.blocks import collect
from harnet.io.gt3x import Gt3xReader, decode_parameter, read_gt3x

NS = 1_000_000_000
START = "2024-03-01 10:00:00"


def _expected_times(fs: int, seconds: np.ndarray) -> np.ndarray:
    t0 = np.datetime64(START, "ns").astype(np.int64)
    i = np.arange(fs)
    return (t0 + seconds[:, None] * NS + np.rint(i * NS / fs).astype(np.int64)[None, :]).reshape(-1)


@pytest.mark.parametrize("kind", ["packed", "int16"])
@pytest.mark.parametrize("fs", [30, 25])
def test_v2_round_trip_values_times_and_idle_sleep_gaps(tmp_path, kind, fs):
    xyz = moving_xyz(fs * 120, fs)
    path = write_gt3x(tmp_path / "a.gt3x", START, xyz, fs, kind=kind, idle=[(30, 50), (90, 91)])
    rec = read_device(path)
    awake = np.r_[0:30, 50:90, 91:120]
    assert len(rec) == fs * len(awake)  # no samples invented for the 21 idle-sleep seconds
    np.testing.assert_array_equal(rec.time.view(np.int64), _expected_times(fs, awake))
    want = np.rint(xyz.reshape(120, fs, 3)[awake].reshape(-1, 3) * 256) / 256
    assert np.abs(rec.xyz - want).max() < 1e-6
    info = rec.info
    assert info["Device"] == "Actigraph" and info["DeviceID"] == "MOS2E00000001"
    assert info["IdleSleepSeconds"] == 21 and info["IdleSleepEvents"] == 2
    assert info["ReadErrors"] == 0 and info["ReadOK"] == 1 and info["SampleRate"] == fs
    assert info["NumGaps"] == 2  # the idle-sleep stretches are gaps, nothing else
    assert rec.info["Warnings"] == []


def test_scale_from_parameters_record_wins_and_serial_fallback(tmp_path):
    assert decode_parameter(0x09400000) == 256.0  # the real wGT3X-BT file's parameter
    xyz = moving_xyz(30 * 10, 30)
    p = write_gt3x(tmp_path / "p.gt3x", START, xyz, 30, scale=341.0, info_scale=False, param_scale=True)
    assert read_gt3x(p).info["AccelerationScale"] == pytest.approx(341.0, rel=1e-6)
    p = write_gt3x(tmp_path / "s.gt3x", START, xyz, 30, scale=256.0, info_scale=False)
    rec = read_gt3x(p)
    assert rec.info["AccelerationScale"] == 256.0  # MOS serial
    p = write_gt3x(tmp_path / "n.gt3x", START, xyz, 30, info_scale=False, serial="XYZ123")
    with pytest.raises(InputError, match="no acceleration scale"):
        read_gt3x(p)


def test_nhanes_v1_activity_bin(tmp_path):
    xyz = moving_xyz(30 * 100 + 1, 30)  # an odd sample count: the stream ends in 5 bytes
    path = write_gt3x_v1(tmp_path / "v1.gt3x", START, xyz, 30)
    rec = read_device(path)
    assert len(rec) == len(xyz) and rec.info["Format"].startswith("GT3X v1")
    t0 = np.datetime64(START, "ns").astype(np.int64)
    np.testing.assert_array_equal(rec.time.view(np.int64), t0 + np.rint(np.arange(len(xyz)) * NS / 30).astype(np.int64))
    assert np.abs(rec.xyz - np.rint(xyz * 341) / 341).max() < 1e-6
    assert rec.info["AccelerationScale"] == 341.0 and rec.info["DeviceID"].startswith("NEO")
    # a truncated stream keeps the whole samples and says so
    bad = write_gt3x_v1(tmp_path / "v1t.gt3x", START, xyz[:300], 30, tail=b"\x01\x02")
    rec = read_device(bad)
    assert len(rec) == 300 and rec.info["ReadErrors"] == 1
    assert any("ends inside a sample" in w for w in rec.info["Warnings"])


def _log(path):
    with zipfile.ZipFile(path) as z:
        return z.read("info.txt"), z.read("log.bin")


def _rezip(path, info, log):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("info.txt", info)
        z.writestr("log.bin", log)
    return path


def test_bad_checksum_garbage_and_truncation_are_counted(tmp_path):
    xyz = moving_xyz(30 * 60, 30)
    info, log = _log(write_gt3x(tmp_path / "a.gt3x", START, xyz, 30))
    rec_len = 8 + 135 + 1
    first = log.index(bytes([0x1E, 0]))  # the first ACTIVITY record
    b = bytearray(log)
    b[first + 20] ^= 0xFF  # a flipped payload byte: checksum wrong
    b[first + 5 * rec_len : first + 5 * rec_len] = b"\x00garbage\x1e\x01"  # bytes that are no record
    b = bytes(b[:-70])  # cut inside the last record
    rec = read_device(_rezip(tmp_path / "d.gt3x", info, b))
    assert len(rec) == 30 * (60 - 2)  # the damaged record and the cut last one are lost
    i = rec.info
    assert i["ChecksumErrors"] == 1 and i["NumResyncs"] == 1 and i["ReadErrors"] == 3 and i["ReadOK"] == 0
    w = " | ".join(i["Warnings"])
    assert "wrong checksum" in w and "not records" in w and "ends inside a record" in w


@pytest.mark.parametrize(
    "members, match",
    [
        ({"info.txt": "Sample Rate: 30\r\n"}, "has no log.bin"),
        ({"log.bin": b""}, "has no info.txt"),
        ({"info.txt": "Serial Number: MOS1\r\nSample Rate: fast\r\n", "log.bin": b""}, "no usable 'Sample Rate'"),
        ({"info.txt": "Serial Number: MOS1\r\nSample Rate: 30\r\n", "log.bin": b""}, "holds no readable samples"),
        ({"info.txt": "Serial Number: MOS1\r\nSample Rate: 30\r\n", "log.bin": record(3, 5, b"\x08")},
         "holds no readable samples"),
    ],
)
def test_refusals_are_one_line(tmp_path, members, match):
    path = tmp_path / "r.gt3x"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    with pytest.raises(InputError, match=match) as e:
        read_device(path)
    assert "r.gt3x" in str(e.value) and "\n" not in str(e.value)


def test_streams_in_bounded_blocks_and_memory_is_the_output(tmp_path):
    fs = 100
    xyz = moving_xyz(fs * 3600, fs)  # one hour, 360,000 samples
    path = write_gt3x(tmp_path / "h.gt3x", START, xyz, fs)
    reader = Gt3xReader(path, chunk_bytes=1 << 16)
    sizes = [len(b) for b in reader.blocks()]
    assert len(sizes) > 20 and max(sizes) <= (1 << 16) * 2 // 9 + fs  # a chunk's worth each
    assert sum(sizes) == len(xyz) and reader.info["ReadErrors"] == 0
    whole = read_gt3x(path)
    t, v = collect(Gt3xReader(path, chunk_bytes=1 << 16).blocks(), len(xyz))
    np.testing.assert_array_equal(t, whole.time.view(np.int64))
    np.testing.assert_array_equal(v, whole.xyz)
    out_bytes = len(xyz) * (8 + 12)
    tracemalloc.start()
    read_gt3x(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.35 * out_bytes + 12 * (2 << 20), (peak, out_bytes)  # output + chunk work space


def test_agdc_suffix_reads_like_gt3x(tmp_path):
    xyz = moving_xyz(30 * 20, 30)
    a = read_device(write_gt3x(tmp_path / "a.gt3x", START, xyz, 30))
    b = read_device(write_gt3x(tmp_path / "a.agdc", START, xyz, 30))
    np.testing.assert_array_equal(a.xyz, b.xyz)


def test_pygt3x_agrees_when_installed(tmp_path):
    """Cross-check with ActiGraph's own reader (GPL, not a harnet dependency) where installed:
    the same samples once its idle-sleep filler rows are dropped."""
    pygt3x = pytest.importorskip("pygt3x.reader")
    fs = 30
    xyz = moving_xyz(fs * 120, fs)
    path = write_gt3x(tmp_path / "a.gt3x", START, xyz, fs, idle=[(30, 50)])
    with pygt3x.FileReader(str(path)) as r:
        df = r.to_pandas()
    df = df[~df["IdleSleepMode"]]
    rec = read_gt3x(path)
    assert len(df) == len(rec)
    np.testing.assert_allclose(df[["X", "Y", "Z"]].to_numpy(np.float64), rec.xyz, atol=1e-6)
    t = np.rint(df.index.to_numpy(np.float64) * 1e3).astype(np.int64) * 1_000_000
    assert np.abs(t - rec.time.view(np.int64)).max() <= 1_000_000


def test_a_member_size_the_zip_cannot_hold_is_refused(tmp_path):
    path = write_gt3x(tmp_path / "a.gt3x", START, moving_xyz(300, 30), 30)
    raw = bytearray(path.read_bytes())
    # the central directory's uncompressed size of log.bin (the second entry) set to 4 GB - 1
    cd = raw.rindex(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (2**32 - 1).to_bytes(4, "little")
    bad = tmp_path / "b.gt3x"
    bad.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="is a damaged .gt3x zip"):
        read_device(bad)


def test_uncalibrated_agdc_is_read_with_a_warning(tmp_path):
    path = write_gt3x(tmp_path / "a.agdc", START, moving_xyz(30 * 10, 30), 30)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("calibration.json", '{"isCalibrated": false, "calibrationMethod": 2}')
    rec = read_device(path)
    assert len(rec) == 300 and any("not factory-calibrated" in w for w in rec.info["Warnings"])
