"""read_device: dispatch, refusals, Java detection, actipy-backed formats, real device files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, shared_path
from harnet.errors import InputError, JavaMissingError
from harnet.io import actipy_reader, read_device, strictly_increasing
from harnet.io.actipy_reader import JAVA_HELP, java_available
from harnet.io.cwa_writer import write_cwa

needs_java = pytest.mark.skipif(not java_available(), reason="actipy needs a Java runtime")


def test_import_is_cheap():
    code = "import sys, harnet.io; print(sorted(m for m in ('torch', 'numpy', 'pandas', 'pyarrow', 'actipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unsupported_suffix_missing_file_and_directory(tmp_path):
    (tmp_path / "a.xlsx").write_bytes(b"x")
    with pytest.raises(InputError, match=r"format not supported.*\.cwa, \.cwa\.gz, \.gt3x, \.agdc, \.bin, \.csv"):
        read_device(tmp_path / "a.xlsx")
    with pytest.raises(InputError, match="no such file"):
        read_device(tmp_path / "missing.cwa")
    (tmp_path / "d.cwa").mkdir()
    with pytest.raises(InputError, match="is not a file"):
        read_device(tmp_path / "d.cwa")


def test_table_options_rejected_for_device_files(tmp_path):
    path = write_cwa(tmp_path / "a.cwa", "2024-01-01", np.tile([0, 0, 1.0], (240, 1)))
    with pytest.raises(InputError, match="time_format.*CSV/parquet files only"):
        read_device(path, time_format="unix_s")
    rec = read_device(path, sample_rate=64)
    assert rec.info["SampleRate"] == 64.0 and rec.info["SampleRateFile"] == 100.0


def test_strictly_increasing_helper():
    t = np.array([5, 1, 2, 2, 3, 9, 9], np.int64)
    v = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    t2, v2, back, dup = strictly_increasing(t, v)
    np.testing.assert_array_equal(t2, [1, 2, 3, 5, 9])
    np.testing.assert_array_equal(v2[:, 0], [3, 6, 12, 0, 15])  # first of each repeated time
    assert back == 1 and dup == 2
    same = np.arange(5, dtype=np.int64)
    assert strictly_increasing(same, v[:5])[0] is same


def test_java_missing_says_how_to_install(tmp_path, monkeypatch):
    path = tmp_path / "a.gt3x"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("info.txt", "Sample Rate: 30\n")
        z.writestr("log.bin", b"\x1e" * 64)
    monkeypatch.setattr(actipy_reader.shutil, "which", lambda name: None)
    assert not java_available()
    with pytest.raises(JavaMissingError) as e:
        read_device(path, reader="actipy")
    msg = str(e.value)
    assert "a.gt3x" in msg and "Java runtime (8 or newer)" in msg and "apt-get install default-jre-headless" in msg
    assert "--reader actipy" in msg
    assert "conda install -c conda-forge openjdk" in msg and "brew install openjdk" in msg
    assert JAVA_HELP in msg and isinstance(e.value, InputError)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


RANDOM = bytes(np.random.default_rng(7).integers(0, 256, 6000, dtype=np.uint8))


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("e.gt3x", b"", "is empty"),
        ("e.bin", b"", "is empty"),
        ("r.gt3x", RANDOM, "not a zip archive"),
        ("z.bin", None, "is a zip archive"),
        ("nolog.gt3x", None, "has no log.bin"),
    ],
)
@pytest.mark.parametrize("reader", ["auto", "actipy"])
def test_bad_gt3x_bin_refused_before_java(tmp_path, name, content, match, reader):
    path = tmp_path / name
    if content is None:
        _zip(path, {"info.txt": b"Sample Rate: 30\r\n"})
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=match) as e:
        read_device(path, reader=reader)
    assert name in str(e.value) and "\n" not in str(e.value)


def test_reader_option_checks(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("time,x,y,z\n2024-01-01 00:00:00,0,0,1\n2024-01-01 00:00:01,0,0,1\n")
    with pytest.raises(InputError, match="applies to device files only"):
        read_device(csv, reader="actipy")
    with pytest.raises(InputError, match="is not one of auto, harnet, actipy"):
        read_device(csv, reader="java")
    (tmp_path / "a.agdc").write_bytes(b"PK")
    with pytest.raises(InputError, match="actipy does not read .agdc"):
        read_device(tmp_path / "a.agdc", reader="actipy")


@needs_java
@pytest.mark.parametrize(
    "name",
    ["r.bin", "garbage-log.gt3x"],
)
def test_bad_files_through_actipy_give_one_line_errors(tmp_path, capfd, name):
    path = tmp_path / name
    if name.endswith(".gt3x"):
        _zip(path, {"info.txt": b"Serial Number: MOS2E39180594\r\nSample Rate: 30\r\n", "log.bin": RANDOM})
    else:
        path.write_bytes(RANDOM)
    with pytest.raises(InputError, match="actipy could not read this") as e:
        read_device(path, reader="actipy")
    assert name in str(e.value) and "\n" not in str(e.value)
    out, err = capfd.readouterr()
    assert "\tat " not in err and "Exception in thread" not in err  # no Java stack trace shown


def test_finalize_counts_nonfinite_and_refuses_empty(tmp_path):
    path = write_cwa(tmp_path / "a.cwa", "2024-01-01", np.tile([0, 0, 1.0], (240, 1)))
    rec = read_device(path)
    assert rec.info["NumNonFinite"] == 0 and rec.info["NumDuplicateTimes"] == 0
    assert rec.info["MedianMagnitude(g)"] == 1.0 and rec.info["NumGaps"] == 0


# ---- real files (../shared/data): every device file actipy reads, read_device reads


def _device_files() -> list[str]:
    root = SHARED_DATA / "devices"
    if not root.exists():
        return ["(absent)"]
    return sorted(str(p.relative_to(SHARED_DATA)) for p in root.rglob("*") if p.is_file())


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", _device_files())
def test_every_shared_device_file_reads(rel):
    if rel == "(absent)":
        pytest.skip("../shared/data not present")
    path = shared_path(rel)
    rec = read_device(path)  # every format with harnet's own readers: no Java needed
    assert len(rec) > 100 and rec.xyz.dtype == np.float32
    assert np.all(np.diff(rec.time.view(np.int64)) > 0) and np.isfinite(rec.xyz).all()
    assert rec.info["SampleRate"] > 0 and rec.info["NumSamples"] == len(rec)
    if "ax6_testfile_formatted" not in rel:  # GGIR's 2-s AX6 excerpt starts in free fall
        assert 0.8 < rec.info["MedianMagnitude(g)"] < 1.2


def _actipy_raw(path):
    import actipy

    data, info = actipy.read_device(
        str(path), lowpass_hz=None, calibrate_gravity=False, detect_nonwear=False, resample_hz=None, verbose=False
    )
    return data, info


REAL_GT3X_BIN = ["devices/GGIR/actigraph_testfile.gt3x", "devices/scikit-digital-health/gnactv_sample.bin",
                 "devices/GGIRread/GENEActiv_testfile.bin"]


def _real_gt3x_bin() -> list[str]:
    """REAL_GT3X_BIN plus any other .gt3x/.bin that appears in ../shared/data later."""
    found = [r for r in _device_files() if r.endswith((".gt3x", ".bin"))]
    return sorted(set(REAL_GT3X_BIN) | set(found))


def parity(rec, data) -> dict:
    """Compare harnet's reading with actipy's raw one, like with like: actipy rounds GT3X v2
    values to 0.001 g (half up) and times to whole milliseconds (GENEActiv: truncated, GT3X:
    rounded), so harnet's values are rounded the same way before comparing; times are compared
    as they are. Returns the figures the test asserts on (and prints)."""
    a = data[["x", "y", "z"]].to_numpy(np.float64)
    ours = rec.xyz.astype(np.float64)
    if rec.info["Device"] == "Actigraph" and rec.info.get("Format", "").startswith("GT3X v2"):
        ours = np.floor(ours * 1000 + 0.5) / 1000
    ta = data.index.values.astype("datetime64[ns]").view(np.int64)
    to = rec.time.view(np.int64)
    gaps = lambda t: np.flatnonzero(np.diff(t) >= 1_000_000_000)  # noqa: E731
    return {
        "n": (len(rec), len(data)),
        "max_abs_g": float(np.abs(a - ours).max()),
        "max_abs_g_unrounded": float(np.abs(a - rec.xyz).max()),
        "max_time_ms": float(np.abs(ta - to).max() / 1e6),
        "same_gaps": np.array_equal(gaps(ta), gaps(to)),
        "num_gaps": len(gaps(to)),
    }


@pytest.mark.shared_data
@needs_java
@pytest.mark.parametrize("rel", _real_gt3x_bin())
def test_own_readers_match_actipy_on_real_files(rel):
    """Every real .gt3x and .bin: harnet's reader and actipy's (Java) give the same samples:
    values within 1e-4 g, times within 1 ms, the same gaps (GT3X: the idle-sleep stretches)."""
    path = shared_path(rel)
    data, info = _actipy_raw(path)
    rec = read_device(path)
    p = parity(rec, data)
    print(rel, p)
    assert p["n"][0] == p["n"][1]
    assert p["max_abs_g"] <= 1e-4 and p["max_time_ms"] < 1.0 and p["same_gaps"]
    for k in ("Device", "DeviceID", "SampleRate"):
        assert rec.info[k] == info[k], k


@pytest.mark.shared_data
@needs_java
@pytest.mark.parametrize("rel", REAL_GT3X_BIN)
def test_reader_actipy_equals_actipy_raw(rel):
    path = shared_path(rel)
    data, info = _actipy_raw(path)
    rec = read_device(path, reader="actipy")
    assert len(rec) == len(data)
    np.testing.assert_array_equal(rec.time, data.index.values)
    np.testing.assert_array_equal(rec.xyz, data[["x", "y", "z"]].to_numpy(np.float32))
    for k in ("Device", "DeviceID", "ReadErrors", "SampleRate"):
        assert rec.info[k] == info[k]
    assert not any("deprecated" in w for w in rec.info["Warnings"])


@needs_java
def test_own_readers_match_actipy_on_generated_files(tmp_path):
    """The formats no real file here holds: ACTIVITY2 (int16) GT3X, NHANES v1 and an odd rate."""
    from _devicefiles import moving_xyz, write_geneactiv, write_gt3x, write_gt3x_v1

    files = [
        write_gt3x(tmp_path / "int16.gt3x", "2024-03-01 10:00:00", moving_xyz(25 * 90, 25), 25, kind="int16",
                   idle=[(20, 40)]),
        write_gt3x_v1(tmp_path / "v1.gt3x", "2024-03-01 10:00:00", moving_xyz(30 * 90 + 1, 30), 30),
        write_geneactiv(tmp_path / "g.bin", "2024-03-01 10:00:00", moving_xyz(300 * 5, 85.7), 85.7),
    ]
    for path in files:
        data, _ = _actipy_raw(path)
        p = parity(read_device(path), data)
        assert p["n"][0] == p["n"][1] and p["max_abs_g"] <= 1e-4 and p["max_time_ms"] < 1.0 and p["same_gaps"], (path, p)


@pytest.mark.shared_data
def test_gt3x_idle_sleep_stays_gaps():
    rec = read_device(shared_path("devices/GGIR/actigraph_testfile.gt3x"))
    assert len(rec) == 17640  # the real samples only, no idle-sleep filler
    d = np.diff(rec.time.view(np.int64))
    assert rec.info["NumGaps"] == int((d >= 1_000_000_000).sum()) > 0
    assert abs(rec.info["SampleRateEffective"] - 30) < 0.1
    assert rec.info["IdleSleepEvents"] > 0 and rec.info["IdleSleepSeconds"] > 0
    assert rec.info["DeviceID"] == "MOS2E39180594" and rec.info["ReadErrors"] == 0


@pytest.mark.shared_data
def test_truncated_geneactiv_reads_with_warnings():
    rec = read_device(shared_path("devices/GGIRread/GENEActiv_testfile.bin"))
    assert len(rec) == 4800 and rec.info["ReadErrors"] == 1 and rec.info["NumPagesTruncated"] == 1
    assert rec.info["NumPagesHeader"] == 222048 and rec.info["NumPagesMissing"] == 222048 - 17
    assert any("page count differs" in w for w in rec.info["Warnings"])
    assert any("ends inside a page" in w for w in rec.info["Warnings"])


def test_block_reader_streams_what_read_device_reads(tmp_path):
    from _devicefiles import moving_xyz, write_geneactiv, write_gt3x
    from harnet.io import block_reader

    for path in (write_gt3x(tmp_path / "a.gt3x", "2024-03-01", moving_xyz(30 * 60, 30), 30),
                 write_geneactiv(tmp_path / "a.bin", "2024-03-01", moving_xyz(300 * 10, 50), 50.0)):
        r = block_reader(path, chunk_bytes=1 << 16)
        blocks = list(r.blocks())
        t = np.concatenate([b.time for b in blocks])
        rec = read_device(path)
        np.testing.assert_array_equal(t, rec.time.view(np.int64))
        assert r.info["ReadErrors"] == 0 and sum(map(len, blocks)) <= r.capacity()
    with pytest.raises(InputError, match="block_reader streams"):
        block_reader(tmp_path / "x.cwa")


@needs_java
def test_reader_actipy_reads_cwa_too(tmp_path):
    path = write_cwa(tmp_path / "a.cwa", "2024-01-01", np.tile([0, 0, 1.0], (2400, 1)))
    rec = read_device(path, reader="actipy")
    assert len(rec) == 2400 and rec.info["Device"] == "Axivity"
    with pytest.raises(InputError, match="not used for --reader actipy"):
        read_device(path, reader="actipy", use_fraction=False)
