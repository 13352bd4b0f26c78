"""Daylight saving: a recording across the last Sunday of March 2024 with --timezone Europe/London.

The device clock keeps the offset it had at set-up (GMT), so device time runs on without a
jump; harnet converts it to local time. 31 March 2024 must be a 23-hour day, with no window lost
or duplicated. The recording is mostly off the wrist (non-wear is not sent to the network), with
a worn half hour every 12 hours, to keep inference short.
"""

from __future__ import annotations

import contextlib
import io

import pandas as pd
import pytest

from harnet.synth import write_scripted_cwa
from harnet_cli.main import main

PATTERN = [("offwrist", 11.5), ("sit", 0.5)] * 4  # 48 h from 2024-03-30 12:00 GMT


@pytest.fixture(scope="module")
def dst_run(tmp_path_factory, model30_dir):
    d = tmp_path_factory.mktemp("dst")
    cwa = write_scripted_cwa(d / "dst.cwa", "2024-03-30 12:00:00", PATTERN, fs=25)
    out = d / "summary.csv"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", str(cwa), "--model", str(model30_dir), "--out", str(out), "--timezone", "Europe/London", "-q"])
    assert rc == 0, err.getvalue()
    return pd.read_csv(out), pd.read_parquet(d / "summary-timeseries.parquet"), pd.read_parquet(d / "summary-hours.parquet")


def test_spring_forward_day_has_23_hours(dst_run):
    daily, _, _ = dst_run
    day = daily.set_index("Date")
    assert list(day.index) == ["2024-03-30", "2024-03-31", "2024-04-01"]
    assert day.loc["2024-03-31", "DayLength(hours)"] == 23
    assert day.loc["2024-03-31", "RecordedTime(hours)"] == pytest.approx(23.0)
    assert day.loc["2024-03-30", "RecordedTime(hours)"] == pytest.approx(12.0)
    # 48 h of device time end at 12:00 GMT on 1 April = 13:00 BST: 12 + 23 + 13 = 48
    assert day.loc["2024-04-01", "RecordedTime(hours)"] == pytest.approx(13.0)
    assert day["RecordedTime(hours)"].sum() == pytest.approx(48.0)
    assert (day["DayLength(hours)"] == [24, 23, 24]).all()


def test_no_window_lost_or_duplicated(dst_run):
    _, ts, _ = dst_run
    assert str(ts["time"].dt.tz) == "Europe/London"  # parquet keeps an aware timestamp, not text
    t = ts["time"].dt.tz_convert("UTC")
    assert len(ts) == 48 * 120
    assert t.is_unique and t.is_monotonic_increasing
    assert (t.diff().dropna() == pd.Timedelta(seconds=30)).all()
    # local times carry the offset: GMT before 01:00 UTC on 31 March, BST after
    assert ts["time"].iloc[0].isoformat() == "2024-03-30T12:00:00+00:00"
    assert ts["time"].iloc[-1].isoformat() == "2024-04-01T12:59:30+01:00"
    assert not ts["time"].map(lambda x: x.isoformat()).str.startswith("2024-03-31T01:").any()  # the skipped local hour


def test_hour_table_has_23_hours_on_the_spring_forward_day(dst_run):
    daily, _, hours = dst_run
    assert len(hours) == 48 and hours["time"].is_unique
    per_day = hours.groupby(hours["time"].dt.strftime("%Y-%m-%d")).size()
    assert per_day.to_dict() == {"2024-03-30": 12, "2024-03-31": 23, "2024-04-01": 13}
    assert (hours["RecordedTime(min)"] == 60).all()
