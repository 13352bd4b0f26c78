"""`harnet predict` end to end on a generated 26-hour, 100 Hz Axivity recording.

The recording (harnet.synth.DEMO_PATTERN) starts 2024-01-01 22:00 device time: 2 h still off the
wrist, 8 h rest with a brief movement every 10 min, then sitting and two 1-h walks, ending at
2024-01-03 00:00. Two calendar days: Jan 1 has 2 h recorded (all non-wear), Jan 2 has 24 h worn.
The model is a harnet30 classifier made at test time (random weights), so the *labels* are
arbitrary; what is checked is everything the pipeline owns: alignment, non-wear, days, ENMO,
crude/adjusted arithmetic and provenance.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from harnet._fileio import TMP_MARK
from harnet.measures.activity import daily_columns
from harnet.synth import write_scripted_cwa
from harnet_cli.main import main

LABELS = ["rest", "active", "walk"]
H = 1 / 120  # hours per 30-s window


@pytest.fixture(scope="module")
def run(tmp_path_factory, model30_dir):
    d = tmp_path_factory.mktemp("e2e")
    cwa = write_scripted_cwa(d / "participant.cwa", "2024-01-01 22:00:00")
    out = d / "out" / "summary.csv"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", str(cwa), "--model", str(model30_dir), "--out", str(out), "--plot", str(d / "out" / "days.png"), "-q"])
    assert rc == 0, err.getvalue()
    return rc, out


def test_exit_code_and_files(run):
    rc, out = run
    assert rc == 0
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["days.png", "summary-info.json", "summary-timeseries.parquet", "summary.csv"]
    assert not [n for n in names if TMP_MARK in n]


@pytest.fixture(scope="module")
def tables(run):
    _, out = run
    daily = pd.read_csv(out)
    ts = pd.read_parquet(out.with_name("summary-timeseries.parquet"))
    info = json.loads(out.with_name("summary-info.json").read_text())
    return daily, ts, info


def test_window_alignment_and_continuity(tables):
    _, ts, _ = tables
    t = pd.to_datetime(ts["time"])
    assert t.iloc[0] == pd.Timestamp("2024-01-01 22:00:00")
    assert t.iloc[-1] == pd.Timestamp("2024-01-02 23:59:30")
    assert len(ts) == 26 * 120
    assert (t.diff().dropna() == pd.Timedelta(seconds=30)).all()
    since_midnight = (t - t.dt.normalize()).dt.total_seconds()
    assert (since_midnight % 30 == 0).all()


def test_nonwear_period_detected(tables):
    _, ts, _ = tables
    t = pd.to_datetime(ts["time"])
    off = (t >= "2024-01-01 22:00") & (t < "2024-01-02 00:00")
    # the 2 h off the wrist: non-wear (detection works on 10-s windows, so allow one edge window)
    assert ts.loc[off, "nonwear"].sum() >= off.sum() - 1
    assert not ts.loc[off, "wear"].any()
    # the rest of the recording is worn (rest has a movement every 10 min: never 90 min still)
    assert not ts.loc[~off, "nonwear"].any()
    assert ts.loc[~off, "wear"].all()
    assert ts.loc[~off, "label"].isin(LABELS).all()
    assert ts.loc[off, "label"].isna().all()
    assert ts.loc[off, "acc"].isna().all()


def test_enmo_follows_the_script(tables):
    _, ts, _ = tables
    t = pd.to_datetime(ts["time"])
    rest = ts.loc[(t >= "2024-01-02 00:00") & (t < "2024-01-02 08:00"), "acc"]
    walk = ts.loc[(t >= "2024-01-02 12:05") & (t < "2024-01-02 12:55"), "acc"]
    assert rest.median() < 5  # mg: still on the wrist
    assert walk.median() > 100  # mg: 2 Hz steps with arm swing
    assert walk.median() > 20 * max(rest.median(), 1.0)


def test_days_and_arithmetic(tables):
    daily, ts, _ = tables
    assert list(daily.columns) == daily_columns(LABELS)
    assert list(daily["Date"]) == ["2024-01-01", "2024-01-02"]
    d1, d2 = daily.iloc[0], daily.iloc[1]
    assert d1["RecordedTime(hours)"] == pytest.approx(2.0)
    assert d2["RecordedTime(hours)"] == pytest.approx(24.0)
    assert d1["WearTime(hours)"] == 0 and d2["WearTime(hours)"] == pytest.approx(24.0)
    assert d1["NonwearTime(hours)"] == pytest.approx(2.0, abs=H)
    assert d2["ValidWindows"] == 2880
    t = pd.to_datetime(ts["time"])
    for day, row in (("2024-01-01", d1), ("2024-01-02", d2)):
        sel = ts[t.dt.strftime("%Y-%m-%d") == day]
        classes = sum(row[f"{c}(hours)"] for c in LABELS)
        # hours per class + non-wear (+ windows neither classified nor non-wear) = recorded time
        other = (~sel["wear"] & ~sel["nonwear"]).sum() * H
        assert classes + row["NonwearTime(hours)"] + other == pytest.approx(row["RecordedTime(hours)"])
        for c in LABELS:  # crude = windows of that label x 30 s
            assert row[f"{c}(hours)"] == pytest.approx((sel["label"] == c).sum() * H)
        assert row["ENMO(mg)"] == pytest.approx(sel.loc[sel["wear"], "acc"].mean(), nan_ok=True)
    # Jan 2 is fully observed: adjusted = crude. Jan 1 has nothing worn: every minute is filled
    # from the only other day, so its adjusted values are Jan 2's crude ones.
    for c in LABELS:
        assert d2[f"{c}Adjusted(hours)"] == pytest.approx(d2[f"{c}(hours)"])
        assert d1[f"{c}Adjusted(hours)"] == pytest.approx(d2[f"{c}(hours)"])
    assert d2["ENMOAdjusted(mg)"] == pytest.approx(d2["ENMO(mg)"])
    assert d1["ENMOAdjusted(mg)"] == pytest.approx(d2["ENMO(mg)"])
    assert np.isnan(d1["ENMO(mg)"])


def test_info_provenance_and_qc(tables, model30_dir):
    _, _, info = tables
    assert info["model"]["path"] == str(model30_dir)
    assert info["model"]["weights_sha256"] == json.loads((model30_dir / "config.json").read_text())["weights_sha256"]
    assert info["model"]["hmm"] is True
    assert info["options"]["timezone"] is None and info["options"]["hmm"] is True
    assert info["reader"]["Device"] == "Axivity"
    assert info["NumNonwearEpisodes"] == 1
    assert info["WearTime(days)"] == pytest.approx(1.0)
    assert info["GoodWear"] == 0  # 24 h of wear < 72 h
    assert info["Covers24hOK"] == 1
    assert len(info["HourOfDay/ENMO(mg)"]) == 24
    assert set(info["StageSeconds"]) >= {"read", "preprocess", "windows", "inference", "hmm", "summary"}


def test_no_hmm_keeps_raw_labels(tmp_path, model30_dir, run):
    _, out = run
    ts = pd.read_parquet(out.with_name("summary-timeseries.parquet"))
    # with the HMM on, label_raw is the argmax of the stored probabilities
    probs = ts[[f"prob_{c}" for c in LABELS]].to_numpy()
    worn = ts["wear"].to_numpy()
    assert (np.array(LABELS)[probs[worn].argmax(1)] == ts.loc[worn, "label_raw"].to_numpy()).all()


def test_demo_runs_the_main_job(tmp_path, model30_dir, monkeypatch):
    """README's first command: `harnet predict --demo --out ...` (here with a local model)."""
    import harnet.synth

    # a shorter script keeps the test fast; the CLI path is the same
    monkeypatch.setattr(harnet.synth, "DEMO_PATTERN", (("offwrist", 0.1), ("walk", 0.2)))
    monkeypatch.setattr(harnet.synth.write_scripted_cwa, "__defaults__",
                        ("2024-01-01 22:00:00", harnet.synth.DEMO_PATTERN))
    out = tmp_path / "demo" / "summary.csv"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", "--demo", "--model", str(model30_dir), "--out", str(out)])
    assert rc == 0, err.getvalue()
    assert (tmp_path / "demo" / "harnet-demo.cwa").is_file()
    assert pd.read_csv(out)["RecordedTime(hours)"].sum() == pytest.approx(0.3)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["predict", "--demo", "x.cwa", "--out", str(out)]) == 2
    assert "--demo makes its own input" in err.getvalue()
