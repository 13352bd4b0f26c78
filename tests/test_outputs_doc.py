"""docs/outputs.md and the outputs agree: every column of every table and every info.json key
that predict writes is documented, and every documented one is written.

Predict runs on a generated 30-hour recording with a sleep-class model directory and steps (a
walking-detector directory, --step-times); stand-in backends (labels from the window's movement)
keep it fast: what is checked is the outputs' shape, not the network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harnet.io.recording import Recording
from harnet.outputs import output_paths, write_outputs
from harnet.pipeline import PredictOptions, predict_recording
from harnet.synth import scripted_xyz

DOC = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"
LABELS = ("light", "moderate-vigorous", "sedentary", "sleep")
SECTIONS = {
    "Per-window table": "windows",
    "Daily table": "daily",
    "Minute table and hour table": "minutes",
    "Sleep table": "sleep",
    "Bouts table": "bouts",
    "Steps table": "steps",
    "Step times": "step_times",
    "info.json": "info",
}


class MovementBackend:
    """Stand-in for a network: sleep when still, sedentary, light, moderate-vigorous by movement."""

    name = "test-movement"

    def __init__(self, labels, window_sec):
        self.labels, self.window_sec = tuple(labels), window_sec

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        sd = np.linalg.norm(x, axis=1).std(axis=1)
        k = np.digitize(sd, [0.01, 0.05, 0.2])  # 0 sleep, 1 sedentary, 2 light, 3 mvpa
        cls = np.array([3, 2, 0, 1])[k]  # -> index in LABELS
        p = np.full((len(x), len(self.labels)), 0.02, dtype=np.float32)
        p[np.arange(len(x)), cls] = 0.94
        return p


class WalkBackend:
    """Stand-in walking detector: walking when |a| varies."""

    name = "test-walk"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        w = np.linalg.norm(x, axis=1).std(axis=1) > 0.1
        return np.stack([np.where(w, 0.1, 0.9), np.where(w, 0.9, 0.1)], axis=1).astype(np.float32)


def documented() -> dict[str, list[tuple[str, str]]]:
    """{table: [(name, row text)]} from the first cells of the tables under each section."""
    out: dict[str, list[tuple[str, str]]] = {v: [] for v in SECTIONS.values()}
    cur = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            cur = SECTIONS.get(line[3:].strip())
            continue
        m = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if cur and m:
            out[cur].append((m.group(1), line))
    return out


def template(name: str, labels, bands) -> str:
    """A real column/key name -> its documented form (<label>, <band>, <axis>)."""
    for b in bands:
        name = name.replace(f"Cut{b}(", "Cut<band>(").replace(f"Cut{b}Adjusted(", "Cut<band>Adjusted(")
    for lab in sorted(labels, key=len, reverse=True):
        name = re.sub(rf"(^|/|prob_){re.escape(lab)}(?=\(|Adjusted\(|$)", r"\1<label>", name)
    return re.sub(r"^Calib[xyz](Intercept|Slope)$", r"Calib<axis>\1", name)


def _recording() -> Recording:
    """30 h from 10:00 at 25 Hz: off the wrist, sitting, a walk, an 8-h night."""
    pattern = [("offwrist", 2.0), ("sit", 6.0), ("walk", 1.0), ("sit", 5.0), ("rest", 8.0), ("sit", 8.0)]
    fs = 25.0
    xyz = scripted_xyz(pattern, fs=fs)
    t = np.datetime64("2024-01-01T10:00:00", "ns") + (np.arange(len(xyz)) * (1e9 / fs)).astype("timedelta64[ns]")
    return Recording(t, xyz, {"Device": "test"})


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    from _tinymodels import make_model_dir

    from harnet.predictor import Predictor

    d = tmp_path_factory.mktemp("outdoc")
    mdir = make_model_dir(d / "m", "harnet30", labels=LABELS)
    wdir = make_model_dir(d / "w", "harnet10", labels=("not-walking", "walking"))
    rec = _recording()
    det = Predictor(model_dir=wdir, backend_obj=WalkBackend(), hmm=False)
    opts = PredictOptions(min_wear_per_day=4, steps_model=str(wdir), step_times=True)
    res = predict_recording(rec, opts, backend=MovementBackend(LABELS, 30), model_dir=mdir, steps_predictor=det)
    paths = write_outputs(res, output_paths(out=d / "o" / "s.csv"))
    tables = {
        "windows": pd.read_parquet(paths["windows"]),
        "daily": pd.read_csv(paths["daily"]),
        "minutes": pd.read_parquet(paths["minutes"]),
        "hours": pd.read_parquet(paths["hours"]),
        "sleep": pd.read_csv(paths["sleep"]),
        "bouts": pd.read_csv(paths["bouts"]),
        "steps": pd.read_parquet(paths["steps"]),
        "step_times": pd.read_parquet(paths["step_times"]),
    }
    info = json.loads(paths["info"].read_text())
    return res, tables, info


def test_every_written_column_and_key_is_documented(outputs):
    res, tables, info = outputs
    bands = info["CutPoints"]["bands"]
    bands = [b[3:] for b in bands]
    doc = {k: {n for n, _ in v} for k, v in documented().items()}
    assert list(tables["hours"].columns) == list(tables["minutes"].columns)
    missing = []
    for name, df in tables.items():
        key = "minutes" if name == "hours" else name
        missing += [f"{name}: {c}" for c in df.columns if template(c, LABELS, bands) not in doc[key]]
    missing += [f"info: {k}" for k in info if template(k, LABELS, bands) not in doc["info"]]
    assert not missing, f"not in docs/outputs.md: {missing}"


def test_every_documented_column_and_key_is_written(outputs):
    res, tables, info = outputs
    bands = [b[3:] for b in info["CutPoints"]["bands"]]
    have = {k: {template(c, LABELS, bands) for c in df.columns} for k, df in tables.items()}
    have["info"] = {template(k, LABELS, bands) for k in info}
    stale = []
    for table, rows in documented().items():
        for name, line in rows:
            if "only when" in line and "sleep class" not in line:
                continue  # keys that depend on an option or outcome (calibration, non-wear detection)
            if name not in have[table]:
                stale.append(f"{table}: {name}")
    assert not stale, f"documented but not written: {stale}"


def test_the_run_has_nights_bouts_and_valid_days(outputs):
    res, tables, info = outputs
    assert len(tables["sleep"]) >= 1 and tables["sleep"]["SleepTime(hours)"].max() > 6
    assert info["NumValidDays"] == int(tables["daily"]["DayValid"].sum())
    assert set(tables["bouts"]["Kind"]) >= {"MVPA", "Sedentary", "Walking"}
    assert info["TotalSteps"] > 1000 and len(tables["step_times"]) == info["TotalSteps"]


def test_sleep_rules_change_the_class_hours(outputs, tmp_path):
    """--require-sleep-above longer than any sleep run: all sleep becomes sedentary, the hours move."""
    res, tables, info = outputs
    from _tinymodels import make_model_dir

    mdir = make_model_dir(tmp_path / "m", "harnet30", labels=LABELS)
    rec = _recording()
    opts = PredictOptions(min_wear_per_day=4, require_sleep_above_s=86_400)
    res2 = predict_recording(rec, opts, backend=MovementBackend(LABELS, 30), model_dir=mdir)
    d1, d2 = res.daily, res2.daily
    assert d1["sleep(hours)"].sum() > 6 and d2["sleep(hours)"].sum() == 0
    assert d2["sedentary(hours)"].sum() == pytest.approx(d1["sedentary(hours)"].sum() + d1["sleep(hours)"].sum())
    assert res2.windows["label_raw"].equals(res.windows["label_raw"])  # only the smoothed label changes
    assert res2.sleep["SleepTime(hours)"].isna().all()


def test_cli_refuses_bad_study_options(tmp_path, capsys):
    from harnet_cli.main import main

    out = str(tmp_path / "s.csv")
    assert main(["predict", "missing.cwa", "--out", out, "--cutpoints", "fast"]) == 1
    assert "--cutpoints 'fast'" in capsys.readouterr().err
    assert main(["predict", "missing.cwa", "--out", out, "--require-sleep-above", "soon"]) == 2
    assert main(["predict", "a.cwa", "b.cwa", "--outdir", str(tmp_path), "--plot", str(tmp_path / "x" / "d.png")]) == 2
    assert not list(tmp_path.iterdir())


def test_daily_csv_rounding_and_parquet_times(outputs):
    """Issue 12 part 7: hours 4 decimals, mg 2 in the daily CSV; parquet keeps timestamps; info.json
    keeps full precision."""
    res, tables, info = outputs
    d = tables["daily"]
    for c in d.columns:
        v = d[c].dropna()
        if c.endswith("(hours)") and len(v):
            assert (abs(v * 1e4 - (v * 1e4).round()) < 1e-6).all(), c  # 4 decimals (up to float rounding)
        if c.endswith("(mg)") and len(v):
            assert (abs(v * 100 - (v * 100).round()) < 1e-6).all(), c
    assert d["Weekday"].iloc[0] == "Monday"  # 2024-01-01
    assert str(tables["windows"]["time"].dtype).startswith("datetime64")
    assert str(tables["minutes"]["time"].dtype).startswith("datetime64")
    raw = res.daily["ENMO(mg)"].dropna().to_numpy()
    assert any(abs(x * 100 - round(x * 100)) > 1e-6 for x in raw)  # the table in memory is not rounded
    assert info["ENMO(mg)"] == pytest.approx(res.info["ENMO(mg)"], rel=0, abs=0)
