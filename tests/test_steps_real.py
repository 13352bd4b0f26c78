"""Steps on the real device files of ../shared/data (issue 16 B): the 610-steps walk through the
step function, and `harnet predict --steps-model DIR` end to end on every device file with a
walking detector made at test time."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import shared_path
from harnet.measures.steps import DEFAULT_STEP_PARAMS, count_steps

WALK_610 = "openmovement/example-610-steps.cwa"
#: every device file predict reads without reader options (the CSVs need column options)
DEVICE_FILES = [
    WALK_610,
    "scikit-digital-health/ax3_sample.cwa",
    "scikit-digital-health/ax6_sample.cwa",
    "scikit-digital-health/gnactv_sample.bin",
    "GGIRread/ax3_testfile.cwa",
    "GGIRread/ax6_testfile.cwa",
    "GGIRread/GENEActiv_testfile.bin",
    "GGIR/actigraph_testfile.gt3x",
]


def walk_610_steps(params=DEFAULT_STEP_PARAMS):
    """The test-only path: read and preprocess as predict does (harnet's default preprocessing),
    30-Hz 10-s windows, every complete window taken as walking, the step function."""
    from harnet.io import read_device
    from harnet.modeldir import Preprocessing
    from harnet.predictor import prepare_recording, window_chunks

    rec = read_device(shared_path("devices/" + WALK_610))
    prep = Preprocessing()
    _, nonwear = prepare_recording(rec, prep, None)
    X = np.concatenate([c.X for c in window_chunks(rec, 10, prep, nonwear, None)])
    steps, _ = count_steps(X, params)
    return steps


@pytest.mark.shared_data
def test_610_steps_walk_counts_what_was_walked_where_the_signal_allows():
    steps = walk_610_steps()
    assert np.isnan(steps[0]) and np.isnan(steps[-1])  # the partial first and last windows
    assert len(steps) == 74
    assert (steps[22:40] == 0).all()  # a still stretch in the middle of the file gives no steps
    assert 300 < np.nansum(steps) < 700


@pytest.mark.shared_data
@pytest.mark.xfail(strict=True, reason=(
    "with the defaults (peak distance 0.4 s, prominence 0.2 g, chosen from stepcount's published "
    "method before this file was looked at) the walk counts 394 steps, not 610 +- 5 %: this "
    "recording shows two |a| peaks per stride 0.33 s apart, and a 0.4-s distance keeps one of them"))
def test_610_steps_walk_within_5_percent_with_the_defaults():
    total = float(np.nansum(walk_610_steps()))
    assert abs(total - 610) <= 0.05 * 610, total


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from _tinymodels import LABELS, make_model_dir

    from harnet.hmm import HMM

    d = tmp_path_factory.mktemp("stepmodels")
    act = make_model_dir(d / "act", "harnet30", labels=LABELS)
    walk = make_model_dir(d / "walk", "harnet10", labels=("not-walking", "walking"), seed=1)
    HMM(prior=np.array([0.5, 0.5]), emission=np.array([[0.9, 0.1], [0.2, 0.8]]),
        transition=np.array([[0.95, 0.05], [0.1, 0.9]]), labels=("not-walking", "walking")).save(walk / "hmm.json")
    cfg = json.loads((walk / "config.json").read_text())
    cfg["steps"] = {"steptol": 4, "lowpass_hz": 5.0, "peak_distance_s": 0.4, "peak_prominence_g": 0.2, "source": "test"}
    (walk / "config.json").write_text(json.dumps(cfg))
    return act, walk


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", DEVICE_FILES)
def test_predict_steps_on_real_device_files_writes_every_table(rel, models, tmp_path, capsys):
    from harnet_cli.main import main

    path = shared_path("devices/" + rel)
    act, walk = models
    out = tmp_path / "s.csv"
    code = main(["predict", str(path), "--out", str(out), "--model", str(act), "--steps-model", str(walk),
                 "--step-times", "--backend", "torch", "--threads", "1", "-q"])
    assert code == 0, capsys.readouterr().err
    names = ["s.csv", "s-timeseries.parquet", "s-info.json", "s-minutes.parquet", "s-hours.parquet", "s-sleep.csv",
             "s-bouts.csv", "s-steps.parquet", "s-steptimes.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    info = json.loads((tmp_path / "s-info.json").read_text())
    steps = pd.read_parquet(tmp_path / "s-steps.parquet")
    times = pd.read_parquet(tmp_path / "s-steptimes.parquet")
    assert len(steps) == 3 * len(pd.read_parquet(tmp_path / "s-timeseries.parquet"))
    assert info["TotalSteps"] == steps["steps"].sum() == len(times)
    assert info["StepsModel"]["path"] == str(walk) and info["StepsModel"]["hmm"] is True
    daily = pd.read_csv(out)
    assert {"Steps", "StepsAdjusted", "Walking(min)", "CadencePeak1(steps/min)", "Steps50thAt"} <= set(daily.columns)
    assert "Steps" in pd.read_parquet(tmp_path / "s-minutes.parquet").columns
    assert {"Steps", "Cadence(steps/min)"} <= set(pd.read_csv(tmp_path / "s-bouts.csv").columns)
