"""Step counting (issue 16): the pure step function, walking bouts, and steps as a second consumer
of predict's windows (a stand-in walking detector: what is checked is the counting and the tables,
not a network)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harnet.errors import InputError
from harnet.io.recording import Recording
from harnet.measures.steps import DEFAULT_STEP_PARAMS, StepParams, count_steps
from harnet.measures.stepsummary import detect_bouts
from harnet.pipeline import PredictOptions, predict_recording
from harnet.predictor import Predictor
from harnet.synth import scripted_xyz

FS = 30


def walking_windows(cadence_hz: float, n: int = 3, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    """(n, 3, 300) windows in g: gravity plus one |a| bump per step at ``cadence_hz``, the first step
    half a step after the window starts (so every step lies inside the window)."""
    rng = np.random.default_rng(seed)
    t = np.arange(10 * FS) / FS
    bump = amp * np.cos(2 * np.pi * cadence_hz * (t - 0.5 / cadence_hz))  # peaks at (k + 1/2) / f
    X = np.zeros((n, 3, len(t)), dtype=np.float32)
    X[:, 2] = 1.0 + bump
    X += rng.normal(0, 0.005, X.shape).astype(np.float32)
    return X


@pytest.mark.parametrize("cadence", [1.5, 1.8, 2.0, 2.3])
def test_scripted_walking_gives_its_cadence(cadence):
    X = walking_windows(cadence)
    steps, peaks = count_steps(X, return_peaks=True)
    want = int(np.floor(10 * cadence - 0.5)) + 1  # steps at (k + 1/2)/f inside [0, 10) s
    assert steps.tolist() == [want] * 3
    assert all(np.all(np.diff(p) >= DEFAULT_STEP_PARAMS.peak_distance_s * FS) for p in peaks)


def test_a_window_under_steptol_counts_zero():
    X = walking_windows(0.3)  # 3 steps in 10 s, steptol 4
    steps, _ = count_steps(X)
    assert steps.tolist() == [0, 0, 0]
    steps, _ = count_steps(X, StepParams(steptol=3))
    assert steps.tolist() == [3, 3, 3]


def test_nan_samples_and_gaps_never_give_steps():
    X = walking_windows(2.0, n=4)
    X[1, :, 100:130] = np.nan  # a one-second gap inside a walk
    X[2] = np.nan  # a missing window
    steps, peaks = count_steps(X, return_peaks=True)
    assert steps[0] == steps[3] == 20
    assert np.isnan(steps[1]) and np.isnan(steps[2])
    assert len(peaks[1]) == len(peaks[2]) == 0


def test_still_windows_and_not_walking_give_zero():
    X = walking_windows(2.0, n=3)
    X[1, 2] = 1.0  # standing still
    steps, _ = count_steps(X, walking=np.array([True, True, False]))
    assert steps.tolist() == [20, 0, 0]


def test_each_window_is_filtered_on_its_own():
    """A window's count does not depend on its neighbours (stepcount filters per window)."""
    X = np.concatenate([walking_windows(2.0, 1), walking_windows(1.6, 1, amp=1.5), walking_windows(0.3, 1)])
    together, _ = count_steps(X)
    alone = [count_steps(X[i:i + 1])[0][0] for i in range(3)]
    assert together.tolist() == alone == [20, 16, 0]


def test_step_parameters_from_config():
    assert StepParams.from_config({}) is DEFAULT_STEP_PARAMS
    p = StepParams.from_config({"steps": {"steptol": 3, "lowpass_hz": 4, "peak_distance_s": 0.3,
                                          "peak_prominence_g": 0.25, "source": "a stepcount bundle"}})
    assert (p.steptol, p.lowpass_hz, p.peak_distance_s, p.peak_prominence_g) == (3, 4.0, 0.3, 0.25)
    with pytest.raises(InputError, match="lowpass_hz 20"):
        StepParams.from_config({"steps": {"lowpass_hz": 20}})
    with pytest.raises(InputError, match="not a number"):
        StepParams.from_config({"steps": {"steptol": "many"}})


def test_walking_bouts_as_stepcount_defines_them():
    """The example in stepcount's bout definition: >= min_walk walking, <= max_idle idle windows."""
    arr = np.array([0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0])
    assert detect_bouts(arr, 0.5, 3) == [(1, 1), (4, 2), (9, 10)]
    assert detect_bouts(arr, 0.5, 2) == [(1, 1), (4, 2), (9, 3), (15, 4)]
    assert detect_bouts(np.ones(5), 0.8, 3) == [(0, 5)]
    assert detect_bouts(np.zeros(5), 0.8, 3) == []


# ---- steps on predict's windows ------------------------------------------------------------------


class ConstBackend:
    """Stand-in activity network: every window the first class."""

    name = "test-const"

    def __init__(self, n):
        self.n = n

    def predict_proba(self, x):
        p = np.full((len(x), self.n), 0.1, dtype=np.float32)
        p[:, 0] = 1.0
        return p


class WalkBackend:
    """Stand-in walking detector: walking when |a| varies (SD above 0.1 g)."""

    name = "test-walk"

    def __init__(self):
        self.calls = 0

    def predict_proba(self, x):
        self.calls += len(x)
        w = np.linalg.norm(x, axis=1).std(axis=1) > 0.1
        return np.stack([np.where(w, 0.1, 0.9), np.where(w, 0.9, 0.1)], axis=1).astype(np.float32)


def walking_model(path, arch="harnet10", steps=None):
    import json

    from _tinymodels import make_model_dir

    d = make_model_dir(path, arch, labels=("not-walking", "walking"))
    if steps is not None:
        cfg = json.loads((d / "config.json").read_text())
        cfg["steps"] = steps
        (d / "config.json").write_text(json.dumps(cfg))
    return d


def _recording(pattern, fs=25.0, t0="2024-01-01T10:00:00"):
    xyz = scripted_xyz(pattern, fs=fs)
    t = np.datetime64(t0, "ns") + (np.arange(len(xyz)) * (1e9 / fs)).astype("timedelta64[ns]")
    return Recording(t, xyz, {"Device": "test"})


@pytest.fixture(scope="module")
def walk_run(tmp_path_factory):
    from _tinymodels import make_model_dir

    d = tmp_path_factory.mktemp("steps")
    labels = ("rest", "active")
    mdir = make_model_dir(d / "m", "harnet30", labels=labels)
    wdir = walking_model(d / "w", steps={"steptol": 4, "lowpass_hz": 5, "peak_distance_s": 0.4,
                                         "peak_prominence_g": 0.2, "source": "test"})
    rec = _recording([("sit", 0.5), ("walk", 0.25), ("sit", 0.5)])
    be = WalkBackend()
    det = Predictor(model_dir=wdir, backend_obj=be, hmm=False)
    opts = PredictOptions(min_wear_per_day=0.5, steps_model=str(wdir), step_times=True)
    res = predict_recording(rec, opts, backend=ConstBackend(2), model_dir=mdir, steps_predictor=det)
    return res, be


def test_steps_tables_agree(walk_run):
    res, be = walk_run
    w = res.steps
    assert list(w.columns) == ["time", "wear", "walk_detected", "walking", "steps"]
    assert len(w) == 3 * len(res.windows)  # every activity window cut into three 10-s windows
    assert be.calls == int(w["wear"].sum())
    walk_min = w["walking"].sum() / 6
    assert 13 <= walk_min <= 15  # the 15-min walk
    total = w["steps"].sum()
    cadence = total / walk_min
    assert 100 < cadence < 125  # scripted steps at 1.8-2 Hz
    assert res.info["TotalSteps"] == total
    assert res.daily["Steps"].sum() == pytest.approx(total)
    assert res.minutes["Steps"].sum() == pytest.approx(total)
    assert res.hours["Steps"].sum() == pytest.approx(total)
    assert res.daily["Walking(min)"].sum() == pytest.approx(walk_min)
    assert res.daily["StepsAdjusted"].sum() >= total
    assert len(res.step_times) == total
    assert res.step_times["time"].is_monotonic_increasing
    assert 100 < res.daily["CadencePeak1(steps/min)"].iloc[0] < 130
    assert res.daily["Steps5thAt"].iloc[0] < res.daily["Steps50thAt"].iloc[0] < res.daily["Steps95thAt"].iloc[0]
    b = res.bouts[res.bouts["Kind"] == "Walking"]
    assert len(b) >= 1 and b["Steps"].sum() <= total and b["Duration(min)"].max() > 10
    assert res.info["StepsModel"]["parameters"]["source"] == "test"
    assert {"steps_inference", "steps"} <= set(res.info["StageSeconds"])
    assert res.info["options"]["steps_model"]


def test_steps_are_opt_in():
    d = PredictOptions().to_dict()
    assert not {"steps", "steps_model", "step_times"} & set(d)
    assert PredictOptions(steps=True).to_dict()["steps"] is True


def test_a_grid_that_cannot_be_split_is_refused(tmp_path):
    from _tinymodels import make_model_dir

    mdir = make_model_dir(tmp_path / "m", "harnet10", labels=("rest", "active"))
    wdir = walking_model(tmp_path / "w", "harnet30")
    rec = _recording([("sit", 0.1)])
    det = Predictor(model_dir=wdir, backend_obj=WalkBackend(), hmm=False)
    with pytest.raises(InputError, match="30-s windows, which do not divide the activity model's 10-s"):
        predict_recording(rec, PredictOptions(steps_model=str(wdir)), backend=ConstBackend(2), model_dir=mdir,
                          steps_predictor=det)


def test_a_model_that_is_not_a_walking_detector_is_refused(tmp_path):
    from harnet.pipeline import predict_file
    from _tinymodels import make_model_dir

    d = make_model_dir(tmp_path / "w", "harnet10", labels=("a", "b", "c"))
    with pytest.raises(InputError, match="is not a walking detector"):
        predict_file(tmp_path / "never-read.cwa", options=PredictOptions(steps_model=str(d)))
