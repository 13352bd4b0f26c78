"""Step-count data in stepcount's (OxWalk's) layout -> `harnet prepare --layout steps` -> `harnet
train`: a walking detector whose model directory follows the contract (labels not-walking /
walking, its HMM, config.json "steps" with the data's steptol and the default peak parameters)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import harnet
from harnet.errors import InputError
from harnet.modeldir import DEFAULT_STEP_PARAMS
from harnet.train.finetune import TrainOptions, train
from harnet.train.prepare import WindowOptions, WindowSet
from harnet.train.steps_data import prepare_steps, step_counts
from harnet_cli.main import main

FS = 50
T0 = pd.Timestamp("2024-05-01 09:00:00")
# per 10-s window of every participant: the annotated steps (0: still; 2: a shuffle under steptol)
SCRIPT = [0, 0, 18, 18, 2, 0, 17, 18, 0, 0, 18, 0]


def _participant_csv(path, seed: int, script=SCRIPT):
    """OxWalk-like file: timestamp, x, y, z (g, 50 Hz) and annotation (1 on each step's sample)."""
    rng = np.random.default_rng(seed)
    n = len(script) * 10 * FS
    s = np.arange(n) / FS
    xyz = np.zeros((n, 3)) + [0.0, 0.0, 1.0]
    ann = np.zeros(n)
    for w, k in enumerate(script):
        a = w * 10 * FS
        if k >= 4:  # walking: a 1.8-Hz swing, a step on each peak
            f = k / 10.0
            seg = slice(a, a + 10 * FS)
            xyz[seg, 0] += 0.5 * np.sin(2 * np.pi * f * s[seg])
            xyz[seg, 2] += 0.3 * np.sin(2 * np.pi * f * s[seg])
        # k steps spread over the window, well inside it (never on an edge)
        for j in range(k):
            ann[a + int((j + 0.5) * 10 * FS / k)] = 1
    xyz += rng.normal(0, 0.02, xyz.shape)
    pd.DataFrame({"timestamp": T0 + pd.to_timedelta(s, unit="s"), "x": xyz[:, 0], "y": xyz[:, 1],
                  "z": xyz[:, 2], "annotation": ann}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def oxwalk(tmp_path_factory):
    d = tmp_path_factory.mktemp("oxwalk")
    for i in range(3):
        _participant_csv(d / f"P{i + 1:02d}_wrist100.csv", seed=i)
    return d


def test_windows_are_labelled_by_their_step_counts(oxwalk):
    ws = prepare_steps(oxwalk)
    assert ws.meta["layout"] == "steps" and ws.meta["steps"]["steptol"] == 4
    assert ws.labels == ("not-walking", "walking") and ws.window_sec == 10
    assert sorted(set(ws.pid.tolist())) == ["P01", "P02", "P03"]
    assert len(ws) == 3 * len(SCRIPT) and ws.meta["counts"]["kept"] == len(ws)
    np.testing.assert_array_equal(ws.steps, np.tile(SCRIPT, 3))
    np.testing.assert_array_equal(ws.y == "walking", np.tile(SCRIPT, 3) >= 4)  # 2 steps: not walking
    assert ws.X.shape[1:] == (3, 300)


def test_window_file_keeps_the_step_counts(oxwalk, tmp_path):
    ws = prepare_steps(oxwalk, steptol=18)
    p = ws.save(tmp_path / "w.npz")
    back = WindowSet.load(p)
    np.testing.assert_array_equal(back.steps, ws.steps)
    assert back.meta["steps"]["steptol"] == 18
    assert (back.y == "walking").sum() == 3 * sum(k >= 18 for k in SCRIPT)
    assert back.subset(back.steps > 0).steps.min() > 0


def test_step_counts_skip_unannotated_samples():
    t = np.arange(20, dtype=np.int64) * 10**9  # one sample a second
    marks = np.zeros(20)
    marks[[1, 3, 5]] = 1
    marks[10:17] = np.nan  # window 2 (10-19 s) mostly unannotated
    steps, unl = step_counts(t, marks, np.array([0, 10 * 10**9]), 10 * 10**9)
    assert steps.tolist() == [3, 0] and unl[0] == 0.0 and unl[1] == pytest.approx(0.7)


def test_bad_step_data_is_refused(oxwalk, tmp_path):
    with pytest.raises(InputError, match="10-s windows"):
        prepare_steps(oxwalk, WindowOptions(window_sec=5))
    with pytest.raises(InputError, match="steptol"):
        prepare_steps(oxwalk, steptol=0)
    bad = tmp_path / "neg"
    bad.mkdir()
    df = pd.read_csv(next(oxwalk.glob("P01*")))
    df.loc[3, "annotation"] = -1
    df.to_csv(bad / "P01.csv", index=False)
    with pytest.raises(InputError, match="negative"):
        prepare_steps(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no"):
        prepare_steps(tmp_path / "empty")


def test_train_gives_a_walking_detector_following_the_contract(oxwalk, tmp_path, capsys):
    data = tmp_path / "steps.npz"
    assert main(["prepare", str(oxwalk), "--out", str(data)]) == 0  # layout auto: OxWalk's columns
    out = capsys.readouterr().out
    assert "walking:" in out and "not-walking:" in out
    mdir = tmp_path / "walk-model"
    rc = main(["train", str(data), "--out", str(mdir), "--from", "none", "--epochs", "2", "--batch-size", "8",
               "--threads", "1", "--seed", "3", "--val-frac", "0.3", "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "walking detector (steptol 4, peaks 0.4 s apart, prominence 0.2 g, low-pass 5 Hz)" in cap.out
    cfg = json.loads((mdir / "config.json").read_text())
    assert cfg["arch"] == "harnet10" and cfg["window_sec"] == 10
    assert cfg["labels"] == ["not-walking", "walking"]
    assert cfg["steps"] == {"steptol": 4, "lowpass_hz": DEFAULT_STEP_PARAMS["lowpass_hz"],
                            "peak_distance_s": DEFAULT_STEP_PARAMS["peak_distance_s"],
                            "peak_prominence_g": DEFAULT_STEP_PARAMS["peak_prominence_g"], "source": "harnet train"}
    model = harnet.load(mdir)
    assert model.labels == ("not-walking", "walking")
    assert model.hmm is not None and model.hmm.labels == model.labels  # fitted on the validation participant
    assert cfg["provenance"]["validation_subjects"] and len(cfg["provenance"]["validation_subjects"]) == 1


def test_train_takes_peak_parameters_and_checks_them(oxwalk, tmp_path):
    ws = prepare_steps(oxwalk, steptol=5)
    opts = TrainOptions(init="none", epochs=1, batch_size=8, threads=1, hmm=False, val_frac=0.3)
    train(ws, tmp_path / "m", opts, step_params={"peak_distance_s": 0.35, "peak_prominence_g": 0.3})
    steps = json.loads((tmp_path / "m" / "config.json").read_text())["steps"]
    assert steps["steptol"] == 5 and steps["peak_distance_s"] == 0.35 and steps["peak_prominence_g"] == 0.3
    assert steps["lowpass_hz"] == DEFAULT_STEP_PARAMS["lowpass_hz"]
    with pytest.raises(InputError, match="peak_prominence_g"):
        train(ws, tmp_path / "m2", opts, step_params={"peak_prominence_g": -1.0})
    assert not (tmp_path / "m2").exists()  # refused before any training
    activity = WindowSet(ws.X, np.where(ws.y == "walking", "move", "rest"), ws.pid, ws.recording, ws.time)
    with pytest.raises(InputError, match="no step-count data"):
        train(activity, tmp_path / "m3", opts, step_params={"peak_distance_s": 0.4})
