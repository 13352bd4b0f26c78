"""CSV / CSV.gz / parquet reading through read_device: options, bad rows, units, real files."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import shared_path
from harnet.errors import InputError
from harnet.io import read_device

T0 = np.datetime64("2024-05-06T07:08:09.000", "ns")
MS = np.timedelta64(1, "ms")


def _data(n: int = 500, fs: float = 50.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = T0 + (np.arange(n) * (1e9 / fs)).astype("timedelta64[ns]")
    xyz = rng.normal(0, 0.2, (n, 3))
    xyz[:, 1] += 1.0
    return t, np.round(xyz, 6)


def _fmt_time(t: np.ndarray) -> list[str]:
    return [str(x)[:23].replace("T", " ") for x in t.astype("datetime64[ms]")]


def _write_csv(path, t_text, xyz, header="time,x,y,z", extra_cols=0):
    rows = []
    for tt, v in zip(t_text, xyz):
        rows.append(",".join([str(tt), *(repr(float(a)) for a in v), *(["7"] * extra_cols)]))
    text = ((header + "\n") if header else "") + "\n".join(rows) + "\n"
    if str(path).endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_csv_with_header_iso_times(tmp_path):
    t, xyz = _data()
    rec = read_device(_write_csv(tmp_path / "a.csv", _fmt_time(t), xyz))
    assert len(rec) == len(t)
    np.testing.assert_array_equal(rec.time, t)
    np.testing.assert_allclose(rec.xyz, xyz, atol=1e-6)
    assert rec.xyz.dtype == np.float32
    assert rec.info["SampleRate"] == 50.0 and rec.info["Device"] == "CSV"
    assert rec.info["StartTime"] == "2024-05-06 07:08:09" and rec.info["NumSamples"] == len(t)
    assert rec.info["Warnings"] == []


def test_csv_gz_headerless_unix_seconds_and_ms(tmp_path):
    t, xyz = _data()
    secs = t.astype(np.int64) / 1e9
    rec = read_device(_write_csv(tmp_path / "s.csv.gz", [f"{s:.3f}" for s in secs], xyz, header=None))
    assert np.abs(rec.time - t).max() <= np.timedelta64(1, "us") and rec.info["TimeFormat"] == "unix_s"
    ms = t.astype(np.int64) // 1_000_000
    rec = read_device(_write_csv(tmp_path / "m.csv", [str(v) for v in ms], xyz, header=None))
    np.testing.assert_array_equal(rec.time, t)
    assert rec.info["TimeFormat"] == "unix_ms"
    rec = read_device(tmp_path / "m.csv", time_format="unix_ms", xyz_cols=(3, 2, 1))
    np.testing.assert_allclose(rec.xyz, xyz[:, ::-1], atol=1e-6)


def test_columns_by_name_and_index_and_strptime_format(tmp_path):
    t, xyz = _data(200)
    text = [str(x).replace("T", " ") for x in t.astype("datetime64[us]")]
    text = [f"{s[8:10]}/{s[5:7]}/{s[0:4]} {s[11:]}" for s in text]  # dd/mm/YYYY HH:MM:SS.ffffff
    path = _write_csv(tmp_path / "c.csv", text, xyz, header="Timestamp,AccX,AccY,AccZ,temp", extra_cols=1)
    rec = read_device(path, time_col="timestamp", xyz_cols=("accx", "AccY", "AccZ"), time_format="%d/%m/%Y %H:%M:%S.%f")
    np.testing.assert_array_equal(rec.time, t)
    rec2 = read_device(path, time_col=0, xyz_cols=(1, 2, 3), time_format="%d/%m/%Y %H:%M:%S.%f")
    np.testing.assert_array_equal(rec2.xyz, rec.xyz)
    with pytest.raises(InputError, match="cannot be parsed"):
        read_device(path, time_col=0, xyz_cols=(1, 2, 3))  # not ISO and no format


def test_m_s2_units_are_converted_and_refused_as_g(tmp_path):
    t, xyz = _data(1000)
    path = _write_csv(tmp_path / "ms2.csv", _fmt_time(t), xyz * 9.80665)
    rec = read_device(path, units="m/s2")
    np.testing.assert_allclose(rec.xyz, xyz, atol=1e-5)
    with pytest.raises(InputError, match=r"units='m/s2'") as e:
        read_device(path)
    assert "ms2.csv" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="units="):
        read_device(path, units="furlongs")


def test_implausible_magnitude_warns(tmp_path):
    t, xyz = _data(1000)
    rec = read_device(_write_csv(tmp_path / "small.csv", _fmt_time(t), xyz * 0.05))
    assert any("median acceleration magnitude" in w for w in rec.info["Warnings"])


def test_missing_columns_are_refused(tmp_path):
    t, xyz = _data(20)
    path = _write_csv(tmp_path / "a.csv", _fmt_time(t), xyz)
    with pytest.raises(InputError, match="no x column 'acc_x'"):
        read_device(path, xyz_cols=("acc_x", "y", "z"))
    with pytest.raises(InputError, match="column index 9"):
        read_device(path, time_col=9)
    path2 = _write_csv(tmp_path / "b.csv", _fmt_time(t), xyz, header="t,x,y,z")
    with pytest.raises(InputError, match="no time column 'time'"):
        read_device(path2)


def test_unparseable_timestamp_names_the_row(tmp_path):
    t, xyz = _data(50)
    text = _fmt_time(t)
    text[7] = "not a time"
    with pytest.raises(InputError, match=r"row 8: time 'not a time'"):
        read_device(_write_csv(tmp_path / "u.csv", text, xyz))
    with pytest.raises(InputError, match=r"row 8: time 'not a time'"):
        read_device(tmp_path / "u.csv", time_format="%Y-%m-%d %H:%M:%S.%f")


def test_non_numeric_value_is_refused(tmp_path):
    t, xyz = _data(50)
    path = _write_csv(tmp_path / "v.csv", _fmt_time(t), xyz)
    lines = path.read_text().splitlines()
    lines[20] = lines[20].rsplit(",", 1)[0] + ",abc"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"v.csv: cannot be parsed as CSV.*'abc'") as e:
        read_device(path)
    assert "\n" not in str(e.value)


def test_duplicate_and_backward_times_are_sorted_and_dropped(tmp_path):
    t, xyz = _data(100)
    order = np.arange(100)
    order[[10, 11]] = order[[11, 10]]  # one step backwards
    tt = np.concatenate([t[order], t[50:53]])  # three repeated times at the end
    vv = np.concatenate([xyz[order], xyz[50:53] + 0.5])
    rec = read_device(_write_csv(tmp_path / "d.csv", _fmt_time(tt), vv))
    assert len(rec) == 100
    np.testing.assert_array_equal(rec.time, t)
    np.testing.assert_allclose(rec.xyz, xyz, atol=1e-6)  # the first of each repeated time kept
    assert rec.info["NumTimesBackwards"] >= 1 and rec.info["NumDuplicateTimes"] == 3
    assert any("backwards" in w for w in rec.info["Warnings"]) and any("repeating" in w for w in rec.info["Warnings"])


def test_nan_and_inf_rows_are_dropped_all_nan_refused(tmp_path):
    t, xyz = _data(100)
    text = [",".join(v) for v in xyz.astype(str)]
    text[3] = "nan,0,1"
    text[4] = "0,inf,1"
    text[5] = "0,,1"
    path = tmp_path / "n.csv"
    path.write_text("time,x,y,z\n" + "\n".join(f"{a},{b}" for a, b in zip(_fmt_time(t), text)) + "\n")
    rec = read_device(path)
    assert len(rec) == 97 and rec.info["NumNonFinite"] == 3
    assert np.isfinite(rec.xyz).all()
    assert any("NaN or infinite" in w for w in rec.info["Warnings"])
    path.write_text("time,x,y,z\n" + "\n".join(f"{a},nan,nan,nan" for a in _fmt_time(t)) + "\n")
    with pytest.raises(InputError, match="every sample is NaN"):
        read_device(path)


def test_single_row_header_only_and_empty(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("time,x,y,z\n2024-01-01 00:00:00.000,0,0,1\n")
    rec = read_device(path)
    assert len(rec) == 1 and rec.info["SampleRate"] is None
    assert any("single sample" in w for w in rec.info["Warnings"])
    assert read_device(path, sample_rate=25).info["SampleRate"] == 25.0
    path.write_text("time,x,y,z\n")
    with pytest.raises(InputError, match="no samples"):
        read_device(path)
    path.write_text("")
    with pytest.raises(InputError, match="is empty"):
        read_device(path)
    gz = tmp_path / "g.csv.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00garbage-garbage-garbage")
    with pytest.raises(InputError, match="g.csv.gz"):
        read_device(gz)


def test_many_batches_and_a_short_row_estimate(tmp_path, monkeypatch):
    from harnet.io import table

    monkeypatch.setattr(table, "BATCH_BYTES", 4096)
    monkeypatch.setattr(table, "_estimate_rows", lambda path, line: 10)  # forces growth
    t, xyz = _data(3000)
    rec = read_device(_write_csv(tmp_path / "big.csv", _fmt_time(t), xyz))
    np.testing.assert_array_equal(rec.time, t)
    np.testing.assert_allclose(rec.xyz, xyz, atol=1e-6)


def test_parquet_timestamps_numbers_and_time_zones(tmp_path):
    t, xyz = _data(300)
    tab = pa.table({"time": pa.array(t), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    pq.write_table(tab, tmp_path / "a.parquet", row_group_size=64)
    rec = read_device(tmp_path / "a.parquet")
    np.testing.assert_array_equal(rec.time, t)
    np.testing.assert_allclose(rec.xyz, xyz, atol=1e-6)
    # a zone-aware column becomes wall-clock time in its zone
    utc = pa.array(t, pa.timestamp("ns", tz="UTC")).cast(pa.timestamp("ns", tz="Europe/London"))
    pq.write_table(tab.set_column(0, "time", utc), tmp_path / "tz.parquet")
    rec = read_device(tmp_path / "tz.parquet")
    assert rec.info["TimeZone"] == "Europe/London"
    np.testing.assert_array_equal(rec.time, t + np.timedelta64(1, "h"))  # BST in May
    ms = pa.array(t.astype(np.int64) // 1_000_000)
    pq.write_table(pa.table({"ts": ms, "a": xyz[:, 0], "b": xyz[:, 1], "c": xyz[:, 2]}), tmp_path / "u.parquet")
    rec = read_device(tmp_path / "u.parquet", time_col="ts", xyz_cols=("a", "b", "c"))
    np.testing.assert_array_equal(rec.time, t)
    with pytest.raises(InputError, match="no time column"):
        read_device(tmp_path / "u.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable parquet"):
        read_device(tmp_path / "bad.parquet")


# ---- real files (../shared/data)


@pytest.mark.shared_data
def test_ggir_csv_unix_seconds():
    path = shared_path("devices/GGIR/ax3_testfile_unix_timestamps.csv")
    ref = np.loadtxt(path, delimiter=",")
    rec = read_device(path)
    assert len(rec) == len(ref) and rec.info["SampleRate"] == 100.0
    np.testing.assert_allclose(rec.xyz, ref[:, 1:], atol=1e-6)
    t_ref = (np.rint(ref[:, 0] * 1e6).astype(np.int64) * 1000).astype("datetime64[ns]")
    np.testing.assert_array_equal(rec.time, t_ref)


@pytest.mark.shared_data
def test_ggir_csv_formatted_seven_columns():
    path = shared_path("devices/GGIR/ax6_testfile_formatted_timestamps.csv")
    text = np.loadtxt(path, delimiter=",", dtype=str)
    rec = read_device(path)  # headerless: time in 0, x y z in 1-3
    np.testing.assert_allclose(rec.xyz, text[:, 1:4].astype(float), atol=1e-6)
    np.testing.assert_array_equal(rec.time, text[:, 0].astype("datetime64[ns]"))
    rec2 = read_device(path, time_format="%Y-%m-%d %H:%M:%S.%f")
    np.testing.assert_array_equal(rec2.time, rec.time)


@pytest.mark.shared_data
def test_reference_csv_equals_cwa_reader():
    cwa = shared_path("devices/openmovement/example-610-steps.cwa")
    csv = shared_path("devices/openmovement/example-610-steps.cwa-convert.csv.gz")
    a, b = read_device(cwa), read_device(csv)
    assert len(a) == len(b) == 71400
    np.testing.assert_array_equal(a.xyz, b.xyz)
    assert np.abs(a.time - b.time).max() <= MS


def test_numeric_time_out_of_int64_range_is_refused(tmp_path):
    """A Unix time no nanosecond clock can hold is named by row, not cast into garbage."""
    import warnings

    t, xyz = _data(50)
    secs = [f"{s:.3f}" for s in t.astype(np.int64) / 1e9]
    secs[7] = "1e13"  # year ~318,000 as seconds
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        with pytest.raises(InputError, match=r"row 8 has a time out of range \(1e\+13 as unix_s\)"):
            read_device(_write_csv(tmp_path / "far.csv", secs, xyz, header=None), time_format="unix_s")


def test_parquet_with_a_column_name_that_is_not_utf8_is_a_one_line_input_error(tmp_path):
    """Found by tests/test_fuzz_readers.py: pyarrow raised UnicodeDecodeError (a traceback)."""
    import pandas as pd

    from harnet.errors import InputError
    from harnet.io import read_device

    df = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=10, freq="10ms"),
                       "x": np.zeros(10), "y": np.zeros(10), "z": np.ones(10)})
    good = tmp_path / "a.parquet"
    df.to_parquet(good)
    raw = good.read_bytes()
    assert raw.count(b"\x18\x04time") >= 1  # the schema's column name, thrift-encoded
    bad = tmp_path / "b.parquet"
    bad.write_bytes(raw.replace(b"\x18\x04time", b"\x18\x04\x8bime"))
    with pytest.raises(InputError, match="not a readable parquet file") as ei:
        read_device(bad)
    assert "\n" not in str(ei.value)
