"""Fine-tuning: determinism, the model directory it writes, the out-of-sample HMM, freezing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import harnet
from harnet.errors import InputError, ModelError
from harnet.hmm import HMM
from harnet.model import build
from harnet.modeldir import save_model_dir
from harnet.train.finetune import (
    TrainOptions,
    class_weights,
    fit,
    init_model,
    predict_proba,
    split_subjects,
    train,
)

from train_synth import CLASSES, synth_windows

FAST = dict(epochs=1, batch_size=8, threads=1, max_rotation_deg=15.0)


def test_training_is_deterministic_with_a_seed(tmp_path):
    ws = synth_windows(n_participants=3)
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a = train(ws, tmp_path / "a", TrainOptions(init="none", seed=3, **{**FAST, "epochs": 2}))
    b = train(ws, tmp_path / "b", TrainOptions(init="none", seed=3, **{**FAST, "epochs": 2}))
    c = train(ws, tmp_path / "c", TrainOptions(init="none", seed=4, **FAST))
    from safetensors.torch import load_file

    # compare tensors bit for bit (the file bytes are not: safetensors writes its metadata map
    # in a random key order)
    wa, wb, wc = (load_file(str(tmp_path / d / "model.safetensors")) for d in "abc")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"two runs with the same seed differ at {k}"
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert (tmp_path / "a" / "hmm.json").read_text() == (tmp_path / "b" / "hmm.json").read_text()
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert c.history[0] != a.history[0]
    # nothing global was touched
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_saved_directory_loads_and_predicts(tmp_path):
    ws = synth_windows(n_participants=4)
    res = train(ws, tmp_path / "m", TrainOptions(init="none", seed=0, **FAST))
    model = harnet.load(tmp_path / "m")
    assert model.labels == CLASSES and model.config.arch == "harnet5"
    assert isinstance(model.hmm, HMM) and model.hmm.labels == CLASSES
    p = predict_proba(model, ws.X)
    np.testing.assert_array_equal(p, predict_proba(res.model, ws.X))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["kind"] == "classifier" and cfg["preprocessing"]["calibrate_gravity"] is False
    assert cfg["provenance"]["init"] == "none" and cfg["training"]["options"]["seed"] == 0
    hist = json.loads((tmp_path / "m" / "training.json").read_text())["history"]
    assert len(hist) == 1 and np.isfinite(hist[0]["val_loss"])


def test_saved_directory_runs_in_the_predict_pipeline(tmp_path):
    predictor = pytest.importorskip("harnet.predictor")
    if not hasattr(predictor, "get_backend"):
        pytest.skip("the inference backends are not in this checkout yet")
    from harnet.io.recording import Recording
    from harnet.pipeline import PredictOptions, predict_recording

    ws = synth_windows(n_participants=3)
    train(ws, tmp_path / "m", TrainOptions(init="none", seed=0, **FAST))
    # 3 minutes at 30 Hz of the "lie" posture
    n = 180 * 30
    t = np.datetime64("2024-01-01T10:00:00", "ns") + (np.arange(n) * (1e9 / 30)).astype("timedelta64[ns]")
    xyz = np.zeros((n, 3), np.float32)
    xyz[:, 0] = 1.0
    rec = Recording(t, xyz, {"SampleRate": 30})
    out = predict_recording(rec, PredictOptions(model=str(tmp_path / "m"), calibrate=False, detect_nonwear=False),
                            model_dir=tmp_path / "m")
    assert len(out.windows) == 180 // 5
    assert set(out.windows["label"].dropna()) <= set(CLASSES)


def test_hmm_is_fitted_on_validation_subjects_only():
    ws = synth_windows(n_participants=6)
    labels = ws.labels
    y = ws.label_index(labels)
    seg = ws.segments()
    res = fit(ws.X, y, ws.pid, labels, TrainOptions(init="none", seed=1, val_frac=0.34, **FAST), segments=seg)
    val_p, tr_p = set(ws.pid[res.val_index]), set(ws.pid[res.train_index])
    assert val_p and tr_p and not (val_p & tr_p)
    assert set(res.info["val_subjects"]) == val_p
    # the saved HMM is exactly the one fitted on the validation windows' probabilities ...
    va = res.val_index
    expect = HMM.fit(predict_proba(res.model, ws.X[va]), y[va], labels, groups=seg[va], uniform_prior=True)
    np.testing.assert_allclose(res.hmm.emission, expect.emission, rtol=1e-6)
    np.testing.assert_allclose(res.hmm.transition, expect.transition)
    # ... and one that also used training windows (leakage) would differ
    allw = np.arange(len(y))
    leaky = HMM.fit(predict_proba(res.model, ws.X), y, labels, groups=seg[allw], uniform_prior=True)
    assert not np.allclose(leaky.emission, res.hmm.emission, rtol=1e-4, atol=1e-6)


def test_freeze_keeps_the_backbone_and_finetune_changes_it(tmp_path):
    src = build("harnet5", num_classes=2)
    bdir = save_model_dir(src, tmp_path / "bb", backbone_only=True,
                          provenance={"licence": "Oxford Academic Use Licence (non-commercial research only)"})
    ws = synth_windows(n_participants=4)
    start, _ = init_model(str(bdir), ws.labels, 5, seed=0)
    frozen = train(ws, tmp_path / "frozen", TrainOptions(init=str(bdir), freeze=True, seed=0, **FAST))
    fe0 = src.feature_extractor.state_dict()
    for k, v in frozen.model.feature_extractor.state_dict().items():
        assert torch.equal(v, fe0[k]), f"frozen backbone changed at {k}"
    assert not torch.equal(frozen.model.classifier.linear2.weight, start.classifier.linear2.weight)
    tuned = train(ws, tmp_path / "tuned", TrainOptions(init=str(bdir), freeze=False, seed=0, **FAST))
    w = "layer1.0.weight"
    assert not torch.equal(tuned.model.feature_extractor.state_dict()[w], fe0[w])
    cfg = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert "Oxford" in cfg["provenance"]["licence"] and cfg["provenance"]["init_kind"] == "backbone"


def test_bad_inputs_are_refused(tmp_path):
    ws = synth_windows(n_participants=1)
    with pytest.raises(InputError, match="at least 2 participants"):
        train(ws, tmp_path / "x", TrainOptions(init="none", **FAST))
    bdir = save_model_dir(build("harnet10"), tmp_path / "bb10", backbone_only=True)
    with pytest.raises(ModelError, match="10-s windows"):
        init_model(str(bdir), CLASSES, 5, seed=0)


def test_class_weights_and_subject_split():
    w = class_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    np.testing.assert_allclose(w, [6 / 9, 2.0, 1.0, 0.0])
    g = np.repeat(np.array(["a", "b", "c", "d", "e"]), 3)
    m = split_subjects(g, 0.2, np.random.default_rng(0))
    assert len(set(g[m])) == 1 and not (set(g[m]) & set(g[~m]))
    with pytest.raises(InputError):
        split_subjects(np.array(["a", "a"]), 0.2, np.random.default_rng(0))
