"""Cohort tables: locked schema, values traced to the per-recording outputs, failures, refusals."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_batch import make_recording, opts_for, tiny_model  # noqa: F401  (fixture)

from harnet import batch
from harnet.collate import collate, cohort_paths, write_cohort
from harnet.errors import InputError

LABELS = ("light", "moderate-vigorous", "sedentary", "sleep")

DAY_SCHEMA = {
    "Participant": "string",
    "File": "string",
    "Date": "string",
    "DayLength(hours)": "float64",
    "RecordedTime(hours)": "float64",
    "WearTime(hours)": "float64",
    "NonwearTime(hours)": "float64",
    "ValidWindows": "Int64",
    "DayValid": "boolean",
    "ENMO(mg)": "float64",
    "ENMOAdjusted(mg)": "float64",
    **{c: "float64" for lab in LABELS for c in (f"{lab}(hours)", f"{lab}Adjusted(hours)")},
    # the study measures (docs/outputs.md), default cut-points
    "Weekday": "string",
    **{f"Cut{b}{k}(min)": "float64" for b in ("Inactive", "Light", "Moderate", "Vigorous") for k in ("", "Adjusted")},
    **{f"{kind}Bouts{m}min({u})": ("Int64" if u == "count" else "float64")
       for kind, ms in (("MVPA", (1, 5, 10)), ("Sedentary", (30,)), ("CutMVPA", (1, 5, 10)), ("CutSedentary", (30,)))
       for m in ms for u in ("count", "min")},
    "IntensityGradient": "float64", "IntensityGradientIntercept": "float64", "IntensityGradientR2": "float64",
    **{f"M{x}(mg)": "float64" for x in (60, 30, 15, 5, 2)},
    "M10(mg)": "float64", "M10Start": "string", "L5(mg)": "float64", "L5Start": "string", "RA": "float64",
}

PARTICIPANT_SCHEMA = {
    "Participant": "string",
    "File": "string",
    "Path": "string",
    "Status": "string",
    "Reason": "string",
    "Model": "string",
    "ModelSHA256": "string",
    "Backend": "string",
    "HarnetVersion": "string",
    "Device": "string",
    "DeviceID": "string",
    "StartTime": "string",
    "EndTime": "string",
    "SampleRate": "float64",
    "SampleRateEffective": "float64",
    "ReadOK": "Int64",
    "ReadErrors": "Int64",
    "NumGaps": "Int64",
    "NumWarnings": "Int64",
    "CalibOK": "Int64",
    "CalibErrorBefore(mg)": "float64",
    "CalibErrorAfter(mg)": "float64",
    "NumNonwearEpisodes": "Int64",
    "HasDataWindows": "Int64",
    "ValidWindows": "Int64",
    "WearTime(days)": "float64",
    "NonwearTime(days)": "float64",
    "RecordedTime(days)": "float64",
    "NumDays": "Int64",
    "NumValidDays": "Int64",
    "Covers24hOK": "Int64",
    "GoodWear": "Int64",
    "ENMO(mg)": "float64",
    "ENMOAdjusted(mg)": "float64",
    "NotImputable(hours)": "float64",
    "NumDSTCrossings": "Int64",
    "Timezone": "string",
    "MinWearPerDay(hours)": "float64",
    **{c: "float64" for lab in LABELS
       for c in (f"{lab}(hours/day)", f"{lab}Adjusted(hours/day)", f"{lab}(%)", f"{lab}Adjusted(%)")},
    **{c: t for grp in ("Weekday", "Weekend")
       for c, t in [(f"{grp}/NumDays", "Int64"), (f"{grp}/ENMO(mg)", "float64"), (f"{grp}/ENMOAdjusted(mg)", "float64")]
       + [(f"{grp}/{lab}{k}(hours/day)", "float64") for lab in LABELS for k in ("", "Adjusted")]},
}


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory, tiny_model):  # noqa: F811
    root = tmp_path_factory.mktemp("collate")
    files = [
        make_recording(root / "data" / "A01.cwa", 1, minutes=4, start="2024-03-01T23:58:00"),  # two days
        make_recording(root / "data" / "site2" / "A01.cwa", 2, minutes=3),  # same stem
        make_recording(root / "data" / "B07.cwa", 3, minutes=2, start="2024-03-02T10:00:00"),  # one day
    ]
    bad = root / "data" / "C03.cwa"
    bad.write_bytes(b"MD" + bytes(2000))  # a header and no data
    rep = batch.process_batch([*files, bad], root / "out", opts_for(tiny_model, threads=1, timezone="Europe/London", min_wear_per_day=0),
                              plot="days.png")
    assert len(rep.processed) == 3 and [f.name for f in rep.failures] == ["C03"]
    return root / "out"


def _study_participant_schema():
    from harnet.measures.intensity import parse_cutpoints
    from harnet.measures.study import recording_columns

    out = {}
    for c in recording_columns(LABELS, parse_cutpoints(None)):
        if c.endswith("(clock)"):
            out[c] = "string"
        elif c.endswith("StartHour") or c in ("Sleep/NumNights", "Sleep/NumValidNights"):
            out[c] = "Int64"
        else:
            out[c] = "float64"
    return out


PARTICIPANT_SCHEMA.update(_study_participant_schema())


def test_schema_locked(batch_out, tmp_path):
    c = collate(batch_out)
    assert c.labels == LABELS
    assert {k: str(v) for k, v in c.days.dtypes.items()} == DAY_SCHEMA
    assert list(c.days.columns) == list(DAY_SCHEMA)
    assert {k: str(v) for k, v in c.participants.dtypes.items()} == PARTICIPANT_SCHEMA
    assert list(c.participants.columns) == list(PARTICIPANT_SCHEMA)
    # the files keep it: parquet exactly, CSV by names
    for suffix in (".parquet", ".csv"):
        paths = write_cohort(c, tmp_path / f"cohort{suffix}")
        assert paths == cohort_paths(tmp_path / f"cohort{suffix}")
        assert paths["participants"].name == f"cohort-participants{suffix}"
        read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
        d, p = read(paths["days"]), read(paths["participants"])
        assert list(d.columns) == list(DAY_SCHEMA) and list(p.columns) == list(PARTICIPANT_SCHEMA)
        if suffix == ".parquet":
            pd.testing.assert_frame_equal(d, c.days)
            pd.testing.assert_frame_equal(p, c.participants)


def test_rows_trace_back_to_recording_outputs(batch_out):
    c = collate(batch_out)
    a2 = f"A01-{batch.path_hash(batch_out.parent / 'data' / 'site2' / 'A01.cwa')}"
    a1 = f"A01-{batch.path_hash(batch_out.parent / 'data' / 'A01.cwa')}"
    assert list(c.participants["Participant"]) == sorted([a1, a2, "B07"]) + ["C03"]
    p = c.participants.set_index("Participant")
    assert list(p["Status"]) == ["ok", "ok", "ok", "failed"]
    assert p.loc["C03", "Reason"] and p.loc["C03", "File"] == "C03.cwa" and pd.isna(p.loc["C03", "WearTime(days)"])
    assert (p.loc[[a1, a2, "B07"], "Reason"] == "").all()
    # one day row per day of each recording, values as in its summary.csv
    assert c.days.groupby("Participant").size().to_dict() == {a1: 2, a2: 1, "B07": 1}
    for name in (a1, a2, "B07"):
        info = json.loads((batch_out / name / "info.json").read_text())
        own = pd.read_csv(batch_out / name / "summary.csv")
        mine = c.days[c.days["Participant"] == name].reset_index(drop=True)
        assert list(mine["Date"]) == list(own["Date"])
        for col in ("WearTime(hours)", "ENMO(mg)", "sleepAdjusted(hours)", "DayLength(hours)"):
            assert mine[col].to_numpy() == pytest.approx(own[col].to_numpy(), nan_ok=True)
        row = p.loc[name]
        assert row["File"] == "A01.cwa" if name != "B07" else row["File"] == "B07.cwa"
        assert row["ModelSHA256"] == info["model"]["weights_sha256"] and row["Backend"] == "onnx"
        assert row["NumDays"] == info["NumDays"] == len(own)
        assert row["WearTime(days)"] == pytest.approx(info["WearTime(days)"])
        assert row["light(hours/day)"] == pytest.approx(info["light(hours/day)"], nan_ok=True)
        assert row["Weekend/NumDays"] == info["Weekend/NumDays"]
        assert row["ReadOK"] == 1 and row["Device"] == "Axivity" and row["SampleRate"] == 25.0
        assert row["Timezone"] == "Europe/London" and row["NumDSTCrossings"] == 0
    assert list(c.days.loc[c.days["Participant"] == a1, "Date"]) == ["2024-03-01", "2024-03-02"]
    assert len(c.failed) == 1


def test_cli_collate(batch_out, tmp_path, capsys):
    from harnet_cli.main import main

    assert main(["collate", str(batch_out), "--out", str(tmp_path / "c.csv.gz")]) == 0
    assert "3 participant(s), 4 day(s), 1 failed input(s)" in capsys.readouterr().err
    d = pd.read_csv(tmp_path / "c.csv.gz")
    p = pd.read_csv(tmp_path / "c-participants.csv.gz")
    assert len(d) == 4 and len(p) == 4 and list(d.columns) == list(DAY_SCHEMA)
    assert main(["collate", str(batch_out), "--out", str(tmp_path / "c.xlsx")]) == 1
    assert main(["collate", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "c.csv")]) == 2


def test_stacked_tables(batch_out, tmp_path):
    from harnet_cli.main import main

    assert main(["collate", str(batch_out), "--out", str(tmp_path / "c.csv"), "--tables", "-q"]) == 0
    names = {"minutes": "c-minutes.parquet", "hours": "c-hours.parquet", "sleep": "c-sleep.csv", "bouts": "c-bouts.csv"}
    for kind, fname in names.items():
        assert (tmp_path / fname).is_file(), fname
    m = pd.read_parquet(tmp_path / "c-minutes.parquet")
    own = {p.name: pd.read_parquet(p / "minutes.parquet") for p in batch_out.iterdir() if (p / "minutes.parquet").is_file()}
    assert m.columns[0] == "Participant" and m.groupby("Participant").size().to_dict() == {k: len(v) for k, v in own.items()}
    for name, t in own.items():
        mine = m[m["Participant"] == name].drop(columns="Participant").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, t)
    assert str(m["time"].dt.tz) == "Europe/London"
    # batch --plot: one picture in each recording's folder
    assert all((batch_out / name / "days.png").is_file() for name in own)
    s = pd.read_csv(tmp_path / "c-sleep.csv")
    assert s.columns[0] == "Participant" and set(s["Participant"]) == set(own)


def test_refuses_mixed_models_and_unfinished_folders(batch_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(batch_out, out)
    info_p = out / "B07" / "info.json"
    info = json.loads(info_p.read_text())
    info["model"]["weights_sha256"] = "0" * 64
    info_p.write_text(json.dumps(info))
    with pytest.raises(InputError, match="other model weights"):
        collate(out)
    assert collate(out, allow_mixed_models=True).participants.set_index("Participant").loc["B07", "ModelSHA256"] == "0" * 64
    info["model"]["labels"] = ["a", "b"]
    info_p.write_text(json.dumps(info))
    with pytest.raises(InputError, match="labels"):
        collate(out, allow_mixed_models=True)
    (out / "B07" / "summary.csv").unlink()
    with pytest.raises(InputError, match="without summary.csv"):
        collate(out)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no recording outputs"):
        collate(empty)
