"""stepcount 3.20.0 bundles (``StepCounter`` > ``WalkDetectorSSL`` > ``HMMSmoother``), written here
with stand-in classes and ``joblib.dump(..., compress=("lzma", 3))``, convert safely into a
walking-detector model directory: labels not-walking/walking, the bundle's HMM, and the step
counter's parameters under config.json's ``"steps"`` key."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import pickle
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from harnet import registry
from harnet.convert import convert, read_bundle
from harnet.errors import ModelError, UnsafePickleError
from harnet.modeldir import load_model_dir, steps_config
from harnet_cli.main import main as cli_main

import _stepcountbundle as SB

joblib = pytest.importorskip("joblib")
NAME = "stepcount-walk-20230208"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return SB.write_stepcount_bundle(tmp_path_factory.mktemp("stepcount") / "ssl-20230208.joblib.lzma")


@pytest.fixture(scope="module")
def converted(bundle, tmp_path_factory):
    return convert(bundle, tmp_path_factory.mktemp("converted") / "walk")


def test_bundle_is_written_like_stepcount_s(bundle):
    assert bundle.read_bytes()[:1] == b"]"  # lzma 'alone' format, as joblib's lzma compressor writes it
    assert "stepcount" not in sys.modules  # the stand-ins were there only while pickling
    raw = read_bundle(bundle)
    assert raw["__class__"] == "stepcount.models.StepCounter"
    assert raw["wd"]["__class__"] == "stepcount.models.WalkDetectorSSL"
    assert raw["wd"]["hmms"]["__class__"] == "stepcount.hmm_utils.HMMSmoother"
    assert len(raw["wd"]["state_dict"]) == 135
    assert tuple(raw["wd"]["state_dict"]["classifier.linear2.weight"].shape) == (2, 512)


def test_converted_directory_follows_the_walking_detector_contract(bundle, converted):
    cfg = json.loads((converted / "config.json").read_text())
    assert cfg["kind"] == "classifier" and cfg["arch"] == "harnet10" and cfg["window_sec"] == 10
    assert cfg["labels"] == ["not-walking", "walking"]
    assert cfg["steps"] == {
        "steptol": SB.STEPTOL,
        "lowpass_hz": float(SB.LOWPASS_HZ),
        "peak_distance_s": SB.PEAKS["distance"],
        "peak_prominence_g": SB.PEAKS["prominence"],
        "source": "stepcount bundle",
    }
    assert isinstance(cfg["steps"]["steptol"], int)
    # stepcount's own reading: calibrated, non-wear removed, no low-pass, nearest-neighbour 30 Hz
    assert cfg["preprocessing"] == {"calibrate_gravity": True, "detect_nonwear": True, "lowpass_hz": None,
                                    "resample": "nearest"}
    prov = cfg["provenance"]
    assert prov["upstream_class"] == "stepcount.models.StepCounter"
    assert prov["upstream_walk_detector"]["repo_tag"] == "v1.0.0"
    assert prov["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert cfg["conversion"]["tensors_loaded"] == 135


def test_hmm_and_weights_equal_the_bundle_s(bundle, converted):
    model = load_model_dir(converted)
    assert model.labels == ("not-walking", "walking") and model.hmm.labels == model.labels
    prior, emission, transmat = SB.hmm_arrays(0)  # what was pickled
    np.testing.assert_array_equal(model.hmm.prior, prior)
    np.testing.assert_array_equal(model.hmm.emission, emission)
    np.testing.assert_array_equal(model.hmm.transition, transmat)
    sd = SB.state_dict(0)
    own = model.state_dict()
    assert set(own) == set(sd)
    for k, v in sd.items():
        assert torch.equal(own[k], v), k


def test_cli_convert_writes_the_steps_config(bundle, tmp_path, capsys):
    out = tmp_path / "walk"
    assert cli_main(["convert", str(bundle), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "Oxford Academic Use Licence" in cap.err
    assert "labels: not-walking, walking, with HMM, step counter: steptol 4, low-pass 5 Hz" in cap.out
    assert "peaks 0.3133 s apart, prominence 0.2417 g" in cap.out
    assert json.loads((out / "config.json").read_text())["steps"]["steptol"] == SB.STEPTOL


def test_registry_entry_converts_on_download(bundle, monkeypatch):
    """The published entry, served from 127.0.0.1 with this bundle's md5, converts on first load."""
    from harnet.loading import resolve_model_dir
    from test_hub import FakeServer

    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HARNET_OFFLINE", raising=False)
    data = bundle.read_bytes()
    published = registry.get(NAME)
    assert published.labels == ("not-walking", "walking") and published.format == "stepcount-bundle"
    server = FakeServer()
    try:
        server.files["/stepcount/ssl-20230208.joblib.lzma"] = data
        entry = dataclasses.replace(published, urls=(server.url("/stepcount/ssl-20230208.joblib.lzma"),),
                                    checksum=hashlib.md5(data).hexdigest())
        monkeypatch.setitem(registry._BY_NAME, NAME, entry)
        d = resolve_model_dir(NAME)
        assert resolve_model_dir(NAME) == d  # converted once, then reused
        assert server.hits["/stepcount/ssl-20230208.joblib.lzma"] == 1
    finally:
        server.close()
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["labels"] == ["not-walking", "walking"] and cfg["steps"]["source"] == "stepcount bundle"
    assert cfg["provenance"]["registry_name"] == NAME and cfg["provenance"]["checksum_algo"] == "md5"
    assert load_model_dir(d).hmm is not None


def test_stale_converted_copy_without_steps_is_converted_again(bundle, monkeypatch):
    """A copy converted by an older harnet (entry labels not-walk/walk, no "steps") is not reused."""
    from harnet.loading import _is_converted

    entry = dataclasses.replace(registry.get(NAME), checksum=hashlib.md5(bundle.read_bytes()).hexdigest())
    cfg = {"labels": ["not-walk", "walk"], "provenance": {"checksum": entry.checksum}}
    d = bundle.parent / "stale"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))
    assert not _is_converted(d, entry)
    cfg["labels"] = list(entry.labels)
    (d / "config.json").write_text(json.dumps(cfg))
    assert not _is_converted(d, entry)  # still no "steps"
    cfg["steps"] = {"steptol": 4}
    (d / "config.json").write_text(json.dumps(cfg))
    assert _is_converted(d, entry)


def test_predict_with_the_converted_walking_detector(converted, tmp_path):
    from harnet.synth import write_scripted_cwa

    cwa = write_scripted_cwa(tmp_path / "rec.cwa", "2024-01-01 10:00:00", [("sit", 0.1), ("walk", 0.1)], fs=50.0)
    out = tmp_path / "out" / "summary.csv"
    rc = cli_main(["predict", str(cwa), "--model", str(converted), "--out", str(out), "-q"])
    assert rc == 0
    ts = pd.read_parquet(out.parent / "summary-timeseries.parquet")
    assert len(ts) >= 60  # 12 minutes of 10-s windows
    assert (ts["time"].diff().dropna() == pd.Timedelta(seconds=10)).all()
    assert set(ts["label"].dropna().unique()) <= {"not-walking", "walking"}
    assert {"prob_not-walking", "prob_walking"} <= set(ts.columns)
    info = json.loads((out.parent / "summary-info.json").read_text())
    assert info["model"]["labels"] == ["not-walking", "walking"] and info["model"]["hmm"] is True
    assert info["model"]["preprocessing"]["resample"] == "nearest"


# ------------------------------------------------------------------------------------------
# refusals


class _Reduce:
    """Pickles as a call of ``func(*args)``: what a malicious file does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _tiny_sd():
    return collections.OrderedDict({"feature_extractor.layer1.0.weight": torch.randn(4, 3, 5)})


def _evil_tensor(marker):
    """A tensor whose embedded storage bytes need more than weights_only loading (a payload)."""
    from torch._utils import _rebuild_tensor_v2
    from torch.storage import _load_from_bytes

    evil = pickle.dumps(_Reduce(os.system, (f"touch {marker}",)), protocol=2)
    return _Reduce(_rebuild_tensor_v2, (_Reduce(_load_from_bytes, (evil,)), 0, (1,), (1,), False,
                                        collections.OrderedDict()))


@pytest.mark.parametrize("where", ["os.system-in-peaks", "eval-in-cv-results", "reduce-in-hmm-labels",
                                   "other-stepcount-class", "storage-not-weights-only", "torch-module"])
def test_malicious_stepcount_bundles_are_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    kw: dict = {"sd": _tiny_sd()}
    if where == "os.system-in-peaks":
        kw["peaks"] = {"distance": _Reduce(os.system, (f"touch {marker}",)), "prominence": 0.2}
    elif where == "eval-in-cv-results":
        kw["counter_extra"] = {"cv_results": {"x": _Reduce(eval, (f"__import__('os').system('touch {marker}')",))}}
    elif where == "reduce-in-hmm-labels":
        kw["hmm_extra"] = {"labels": _Reduce(os.system, (f"touch {marker}",))}
    elif where == "other-stepcount-class":  # only the three known stepcount classes become stand-ins
        kw["rf_detector"] = True
    elif where == "storage-not-weights-only":
        kw["sd"] = collections.OrderedDict({"feature_extractor.layer1.0.weight": _evil_tensor(marker)})
    elif where == "torch-module":  # a whole pickled network instead of model=None
        kw["wd_extra"] = {"model": torch.nn.Linear(2, 2)}
    src = SB.write_stepcount_bundle(tmp_path / "evil.joblib.lzma", **kw)
    with pytest.raises(UnsafePickleError, match="refus") as ei:
        convert(src, tmp_path / "out")
    msg = str(ei.value)
    assert "pickles can run code" in msg
    if where == "storage-not-weights-only":
        assert "weights_only" in msg
    if where == "eval-in-cv-results":
        assert "builtins.eval" in msg
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, match", [
    ("head-3-outputs", "3 network outputs"),
    ("feature-shape", "do not fit harnet10"),
])
def test_wrong_state_dict_shapes_are_refused(tmp_path, change, match):
    sd = SB.state_dict(1, n_out=3 if change == "head-3-outputs" else 2)
    if change == "feature-shape":
        k = "feature_extractor.layer1.0.weight"
        sd[k] = torch.zeros(tuple(sd[k].shape[:-1]) + (sd[k].shape[-1] + 2,))
    src = SB.write_stepcount_bundle(tmp_path / "b.joblib", compress=0, sd=sd)
    with pytest.raises(ModelError, match=match):
        convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kw, match", [
    ({"peaks": None}, "never fitted"),
    ({"peaks": {"distance": 0.5}}, "'distance' and 'prominence'"),
    ({"peaks": {"distance": float("nan"), "prominence": 0.5}}, "not a finite number"),
    ({"peaks": {"distance": -0.5, "prominence": 0.5}}, "peak_distance_s must be a positive number"),
    ({"steptol": 2.5}, "not a whole number"),
    ({"steptol": "4"}, "not a finite number"),
    ({"counter_extra": {"lowpass_hz": 20}}, "Nyquist"),
    ({"counter_extra": {"window_sec": 5}}, "window_sec=5"),
])
def test_unusable_step_counters_are_refused(tmp_path, kw, match):
    src = SB.write_stepcount_bundle(tmp_path / "b.joblib.lzma", sd=_tiny_sd(), **kw)
    with pytest.raises(ModelError, match=match):
        convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_steps_config_checks_its_values():
    good = dict(steptol=4, lowpass_hz=5, peak_distance_s=0.5, peak_prominence_g=0.5, source="x")
    assert steps_config(**good)["lowpass_hz"] == 5.0
    for k, bad in (("steptol", -1), ("steptol", True), ("lowpass_hz", 0), ("peak_prominence_g", float("inf")),
                   ("peak_distance_s", "0.5"), ("source", "")):
        with pytest.raises(ModelError, match=k):
            steps_config(**{**good, k: bad})
