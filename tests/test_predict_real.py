"""`harnet predict` on the real device files in ../shared/data/devices (skipped when absent)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA, shared_path
from harnet.io.actipy_reader import java_available
from harnet.measures.activity import daily_columns
from harnet_cli.main import main

LABELS = ["rest", "active", "walk"]
CASES = [
    ("devices/openmovement/example-610-steps.cwa", []),
    ("devices/scikit-digital-health/ax3_sample.cwa", []),
    ("devices/scikit-digital-health/ax6_sample.cwa", []),
    ("devices/GGIRread/ax3_testfile.cwa", []),
    ("devices/GGIRread/ax6_testfile.cwa", []),
    ("devices/scikit-digital-health/gnactv_sample.bin", ["java"]),
    ("devices/GGIRread/GENEActiv_testfile.bin", ["java"]),
    ("devices/GGIR/actigraph_testfile.gt3x", ["java"]),
    ("devices/GGIR/ax3_testfile_unix_timestamps.csv", ["--time-col", "0", "--xyz-cols", "1,2,3", "--time-format", "unix_s"]),
    ("devices/GGIR/ax6_testfile_formatted_timestamps.csv",
     ["--time-col", "0", "--xyz-cols", "1,2,3", "--time-format", "%Y-%m-%d %H:%M:%S.%f"]),
]


def _predict(args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", *args, "-q"])
    return rc, err.getvalue()


@pytest.mark.shared_data
@pytest.mark.parametrize("rel,extra", CASES, ids=[c[0].split("/")[-1] for c in CASES])
def test_every_device_file_predicts(rel, extra, tmp_path, model30_dir):
    path = shared_path(rel)
    if "java" in extra:
        if not java_available():
            pytest.skip("no Java runtime: actipy cannot read .gt3x/.bin here")
        extra = []
    out = tmp_path / "summary.csv"
    rc, err = _predict([str(path), "--model", str(model30_dir), "--out", str(out), *extra])
    assert rc == 0, err
    daily = pd.read_csv(out)
    assert list(daily.columns) == daily_columns(LABELS)
    assert len(daily) >= 1
    ts = pd.read_parquet(tmp_path / "summary-timeseries.parquet")
    info = json.loads((tmp_path / "summary-info.json").read_text())
    assert info["reader"]["NumSamples"] > 0
    # recorded time in the summary = windows in the series
    assert daily["RecordedTime(hours)"].sum() == pytest.approx(len(ts) * 30 / 3600)
    assert info["ValidWindows"] == int(ts["wear"].sum())


@pytest.fixture(scope="module")
def asleep_model(tmp_path_factory):
    """The published asleep 0.5.0 classifier (the default model's weights), converted once."""
    from _pypi import asleep_bundle

    model = tmp_path_factory.mktemp("asleep") / "m"
    assert main(["convert", str(asleep_bundle()), "--out", str(model), "--name", "harnet30-c24-walmsley"]) == 0
    return model


@pytest.mark.shared_data
@pytest.mark.pypi
@pytest.mark.slow
def test_asleep_model_on_real_walk(tmp_path, asleep_model):
    """The published asleep classifier (converted from the PyPI sdist) on 12 minutes of real
    walking recorded with an AX3 (610 steps): most worn time is moderate-vigorous, none is sleep."""
    path = shared_path("devices/openmovement/example-610-steps.cwa")
    out = tmp_path / "summary.csv"
    rc, err = _predict([str(path), "--model", str(asleep_model), "--out", str(out)])
    assert rc == 0, err
    ts = pd.read_parquet(tmp_path / "summary-timeseries.parquet")
    worn = ts[ts["wear"]]
    assert len(worn) >= 20
    share = worn["label"].value_counts(normalize=True)
    assert share.get("moderate-vigorous", 0) > 0.5
    assert share.get("sleep", 0) == 0
    # labelled moderate-vigorous windows move more than the others
    mv = worn["label"] == "moderate-vigorous"
    assert worn.loc[mv, "acc"].median() > 3 * worn.loc[~mv, "acc"].median()
    daily = pd.read_csv(out)
    assert daily["moderate-vigorous(hours)"].sum() > 0.1
    info = json.loads((tmp_path / "summary-info.json").read_text())
    assert "Oxford" in info["model"]["licence"]



@pytest.mark.shared_data
@pytest.mark.pypi
@pytest.mark.slow
@pytest.mark.parametrize("rel,extra", CASES, ids=[c[0].split("/")[-1] for c in CASES])
def test_onnx_backends_give_the_torch_labels_on_real_recordings(rel, extra, tmp_path, asleep_model):
    """`harnet predict --backend onnx` and the default (Winograd) give the labels of
    `--backend torch`, window by window and in the daily totals, with the real classifier."""
    path = shared_path(rel)
    if "java" in extra:
        if not java_available():
            pytest.skip("no Java runtime: actipy cannot read .gt3x/.bin here")
        extra = []
    got = {}
    for backend in ("torch", "onnx", "auto"):
        out = tmp_path / backend / "summary.csv"
        rc, err = _predict([str(path), "--model", str(asleep_model), "--out", str(out), "--backend", backend, *extra])
        assert rc == 0, err
        info = json.loads((out.parent / "summary-info.json").read_text())
        got[info["model"]["backend"]] = (pd.read_parquet(out.parent / "summary-timeseries.parquet"), pd.read_csv(out))
    assert set(got) == {"torch", "onnx", "onnx-winograd"}
    ts_t, daily_t = got["torch"]
    probs = [c for c in ts_t.columns if c.startswith("prob_")]
    worn = ts_t["wear"].to_numpy()  # files with no complete worn window compare as all-NaN
    for name in ("onnx", "onnx-winograd"):
        ts, daily = got[name]
        for col in ("label_raw", "label"):  # NaN where no complete worn window
            a, b = ts[col].astype(object).fillna("-"), ts_t[col].astype(object).fillna("-")
            assert len(a) == len(b) and (a == b).all(), (name, col, int((a != b).sum()))
        assert (ts["wear"].to_numpy() == worn).all()
        if worn.any():
            d = np.abs(ts[probs].to_numpy()[worn] - ts_t[probs].to_numpy()[worn]).max()
            assert d <= 1e-4, (name, d)
        hours = [c for c in daily_t.columns if c.endswith("(hours)")]
        pd.testing.assert_frame_equal(daily[hours], daily_t[hours], check_exact=False, atol=1e-9)


def test_shared_data_folder_is_referenced_not_copied():
    import subprocess

    from conftest import ROOT

    if not SHARED_DATA.exists():
        pytest.skip("../shared/data not present")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    names = {p.name for p in SHARED_DATA.rglob("*") if p.is_file() and p.stat().st_size > 10_000}
    assert not [t for t in tracked if t.split("/")[-1] in names]
