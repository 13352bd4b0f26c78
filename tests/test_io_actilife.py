"""ActiLife raw CSV exports (harnet.io.actilife) and the CSV layout options (start row, delimiter).

Every file is written here in ActiLife's layout: the 10-line header exactly as ActiLife writes it,
a column-name line, then samples.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json

import numpy as np
import pandas as pd
import pytest

from harnet.errors import InputError
from harnet.io import read_device, write_cwa
from harnet.io.actilife import is_actilife, parse_header
from harnet_cli.main import main

HEADER = """------------ Data File Created By ActiGraph GT3X+ ActiLife v6.13.4 Firmware v2.5.0 date format {fmt} at {hz} Hz  Filter Normal -----------
Serial Number: NEO1C04110003
Start Time {time}
Start Date {date}
Epoch Period (hh:mm:ss) {epoch}
Download Time 12:09:58
Download Date 12/20/2021
Current Memory Address: 0
Current Battery Voltage: 4.26     Mode = 12
--------------------------------------------------
"""


def signal(n: int, fs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    xyz = np.stack([0.3 * np.sin(2 * np.pi * 1.1 * t), 0.2 * np.cos(2 * np.pi * 0.6 * t), 1.0 + 0.1 * np.sin(2 * np.pi * 2 * t)], 1)
    return (xyz + rng.normal(0, 0.02, xyz.shape)).astype(np.float32)


def actilife(path, xyz, *, fmt="M/d/yyyy", hz=30, date="12/20/2021", time="11:55:00", epoch="00:00:00",
             times=None, columns=True, gz=False):
    """Write an ActiLife raw CSV export; ``times`` (strings) adds a Timestamp column."""
    lines = [HEADER.format(fmt=fmt, hz=hz, date=date, time=time, epoch=epoch)]
    if columns:
        lines.append(("Timestamp," if times is not None else "") + "Accelerometer X,Accelerometer Y,Accelerometer Z\n")
    rows = [",".join(f"{v:.9g}" for v in r) for r in xyz]
    if times is not None:
        rows = [f"{t},{r}" for t, r in zip(times, rows)]
    text = "".join(lines) + "\n".join(rows) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_header_as_actilife_writes_it(tmp_path):
    xyz = signal(300, 30)
    p = actilife(tmp_path / "NEO1C04110003 (2021-12-20)RAW.csv", xyz)
    assert is_actilife(p)
    rec = read_device(p)
    assert rec.info["DeviceID"] == "NEO1C04110003" and rec.info["Device"] == "ActiGraph"
    assert rec.info["SampleRate"] == 30.0 and rec.info["Format"] == "ActiLife CSV"
    assert rec.info["ActiLifeVersion"] == "6.13.4" and rec.info["Firmware"] == "2.5.0"
    assert rec.time[0] == np.datetime64("2021-12-20T11:55:00")
    # sample i at start + i/30 s, to the nanosecond
    steps = np.diff(rec.time.view(np.int64))
    assert steps.min() >= 33_333_333 and steps.max() <= 33_333_334
    assert rec.time[-1] == np.datetime64("2021-12-20T11:55:00") + np.timedelta64(round(299 * 1e9 / 30), "ns")
    np.testing.assert_allclose(rec.xyz, xyz, rtol=1e-6)
    assert rec.info["StartTime"] == "2021-12-20 11:55:00"


def test_gzipped_export(tmp_path):
    xyz = signal(120, 30)
    p = actilife(tmp_path / "x.csv.gz", xyz, gz=True)
    assert is_actilife(p)
    rec = read_device(p)
    assert len(rec) == 120 and rec.info["DeviceID"] == "NEO1C04110003"
    np.testing.assert_allclose(rec.xyz, xyz, rtol=1e-6)


@pytest.mark.parametrize("fmt,date", [("d/M/yyyy", "20/12/2021"), ("yyyy-MM-dd", "2021-12-20"), ("dd.MM.yyyy", "20.12.2021"),
                                      ("M/d/yyyy", "12/20/2021")])
def test_date_format_stated_in_the_first_line(tmp_path, fmt, date):
    p = actilife(tmp_path / "a.csv", signal(60, 30), fmt=fmt, date=date)
    assert read_device(p).time[0] == np.datetime64("2021-12-20T11:55:00")


def test_day_first_is_not_read_month_first(tmp_path):
    """3 April written day-first must not become 4 March."""
    p = actilife(tmp_path / "a.csv", signal(60, 30), fmt="d/M/yyyy", date="3/4/2022", time="08:00:00")
    assert read_device(p).time[0] == np.datetime64("2022-04-03T08:00:00")


def test_other_rates_and_no_column_names(tmp_path):
    p = actilife(tmp_path / "a.csv", signal(200, 100), hz=100, columns=False)
    rec = read_device(p)
    assert rec.info["SampleRate"] == 100.0 and len(rec) == 200
    assert np.all(np.diff(rec.time.view(np.int64)) == 10_000_000)


def test_timestamp_column_is_used_instead(tmp_path):
    t0 = pd.Timestamp("2021-12-20 11:55:00")
    # a 2-s gap after 30 samples: the Timestamp column, not the header's rate, times the rows
    times = [t0 + pd.Timedelta(seconds=i / 30 + (2 if i >= 30 else 0)) for i in range(90)]
    text = [f"{t.month}/{t.day}/{t.year} {t:%H:%M:%S}.{t.microsecond // 1000:03d}" for t in times]
    p = actilife(tmp_path / "a.csv", signal(90, 30), times=text)
    rec = read_device(p)
    assert rec.info["TimesFrom"] == "Timestamp column"
    got = rec.time.astype("datetime64[ms]")
    assert (got == np.array([t.to_datetime64() for t in times]).astype("datetime64[ms]")).all()
    assert rec.info["NumGaps"] == 1


@pytest.mark.parametrize("change,expect", [
    ({"fmt": "dd-MMM-yyyy"}, "date format 'dd-MMM-yyyy' in the first line is not understood"),
    ({"date": "2021-12-20"}, "Start Date '2021-12-20' does not match the date format M/d/yyyy"),
    ({"time": "noon"}, "Start Time 'noon'"),
    ({"epoch": "00:01:00"}, "epoch (counts) export with 00:01:00 epochs"),
    ({"hz": "??"}, "states no sample rate"),
])
def test_bad_headers_are_one_line_errors(tmp_path, change, expect):
    p = actilife(tmp_path / "bad.csv", signal(60, 30), **change)
    with pytest.raises(InputError) as e:
        read_device(p)
    msg = str(e.value)
    assert expect in msg and "\n" not in msg and str(p) in msg


def test_header_without_closing_dashes_or_xyz_columns(tmp_path):
    p = tmp_path / "cut.csv"
    p.write_text(HEADER.format(fmt="M/d/yyyy", hz=30, date="12/20/2021", time="11:55:00", epoch="00:00:00").split("Download")[0])
    with pytest.raises(InputError, match="does not end with a line of dashes"):
        read_device(p)
    q = actilife(tmp_path / "cols.csv", signal(10, 30))
    q.write_text(q.read_text().replace("Accelerometer Z", "Temperature"))
    with pytest.raises(InputError, match="no 'Accelerometer Z' column"):
        read_device(q)


def test_table_options_are_refused_for_actilife(tmp_path):
    p = actilife(tmp_path / "a.csv", signal(60, 30))
    with pytest.raises(InputError, match="read from its own header; drop --time-col"):
        read_device(p, time_col="Timestamp")
    with pytest.raises(InputError, match="drop --csv-start-row"):
        read_device(p, start_row=11)


def test_parse_header_fields(tmp_path):
    h = parse_header(actilife(tmp_path / "a.csv", signal(3, 30)))
    assert h["rate"] == 30.0 and h["header_lines"] == 10 and h["serial"] == "NEO1C04110003"
    assert h["date_format"] == "%m/%d/%Y" and h["model"] == "GT3X+"


# ---- other tables: start row and delimiter (actinet's --csv-start-row) -------------------------

def test_csv_start_row_and_delimiter(tmp_path):
    p = tmp_path / "logger.csv"
    rows = [f"2024-01-10 10:00:{i / 10:04.1f};0.1;0.2;0.9" for i in range(50)]
    p.write_text("exported by some logger\nsubject 7\n\ntime;x;y;z\n" + "\n".join(rows) + "\n")
    rec = read_device(p, start_row=4, delimiter=";")
    assert len(rec) == 50 and rec.time[0] == np.datetime64("2024-01-10T10:00:00")
    with pytest.raises(InputError, match="line 60 .*is empty"):
        read_device(p, start_row=60, delimiter=";")
    with pytest.raises(InputError, match="--csv-start-row 0 must be a line number"):
        read_device(p, start_row=0)
    with pytest.raises(InputError, match="--csv-delimiter"):
        read_device(p, start_row=4, delimiter=";;")


def test_cli_start_row_and_delimiter(tmp_path, model30_dir):
    p = tmp_path / "logger.csv"
    t0 = pd.Timestamp("2024-01-10 10:00:00")
    xyz = signal(25 * 120, 25)
    rows = [f"{t0 + pd.Timedelta(seconds=i / 25)}\t" + "\t".join(f"{v:.6f}" for v in r) for i, r in enumerate(xyz)]
    p.write_text("junk line\ntime\tx\ty\tz\n" + "\n".join(rows) + "\n")
    out = tmp_path / "o" / "s.csv"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", str(p), "--model", str(model30_dir), "--out", str(out), "-q",
                   "--csv-start-row", "2", "--csv-delimiter", "tab"])
    assert rc == 0, err.getvalue()
    info = json.loads(out.with_name("s-info.json").read_text())
    assert info["reader"]["NumSamples"] == len(xyz)


# ---- the same recording as .cwa and as an ActiLife export gives the same summary -------------

def test_cwa_and_actilife_export_give_the_same_summary(tmp_path, model30_dir):
    from harnet.pipeline import PredictOptions, predict_file

    fs = 50
    xyz = signal(fs * 60 * 20, fs, seed=3)
    xyz[fs * 60 * 8: fs * 60 * 11] = [0.0, 0.0, 1.0]  # a still stretch
    cwa = write_cwa(tmp_path / "rec.cwa", "2024-01-10 10:00:00", xyz, fs=fs)
    rec = read_device(cwa)  # the stored (quantised) samples; block times to 1/65536 s
    assert rec.time[0] == np.datetime64("2024-01-10T10:00:00")
    assert np.abs(np.diff(rec.time.view(np.int64)) - 20_000_000).max() < 1000  # within 1 us of 50 Hz
    csv = actilife(tmp_path / "rec.csv", rec.xyz, hz=fs, date="1/10/2024", time="10:00:00")
    opts = PredictOptions(model=str(model30_dir), backend="torch")
    a, b = predict_file(cwa, options=opts), predict_file(csv, options=opts)
    assert b.info["reader"]["DeviceID"] == "NEO1C04110003"
    # the same windows, wear, labels and hours; ENMO within 0.1% (the CWA's times are not exactly 20 ms apart)
    pd.testing.assert_frame_equal(a.daily, b.daily, check_exact=False, rtol=1e-3)
    for col in ("time", "wear", "nonwear", "label", "label_raw"):
        assert (a.windows[col].astype(str) == b.windows[col].astype(str)).all(), col
    np.testing.assert_allclose(a.windows["acc"], b.windows["acc"], rtol=1e-3, atol=0.05, equal_nan=True)  # mg
