"""Subject-wise evaluation: folds, no leakage into fits or HMMs, metrics, report files, RF features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score

from harnet.train import evaluate as ev
from harnet.train import finetune as ft
from harnet.train.evaluate import EvalOptions, evaluate, subject_folds, subject_metrics
from harnet.train.features import FEATURE_NAMES, extract_features
from harnet.train.finetune import TrainOptions

from train_synth import synth_windows


@pytest.mark.parametrize("n,k", [(5, 5), (7, 3), (30, 5), (11, 2)])
def test_subject_folds_partition_participants(n, k):
    groups = np.repeat([f"s{i}" for i in range(n)], 4)
    folds = subject_folds(groups, k, seed=1)
    flat = np.concatenate(folds)
    assert len(folds) == k and sorted(flat.tolist()) == sorted(set(groups.tolist()))
    assert len(flat) == len(set(flat.tolist()))  # never a participant in two folds
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert [f.tolist() for f in subject_folds(groups, k, seed=1)] == [f.tolist() for f in folds]
    loso = subject_folds(groups, k, seed=1, loso=True)
    assert [f.tolist() for f in loso] == [[g] for g in sorted(set(groups.tolist()))]


def test_subject_metrics_match_sklearn_and_handle_one_class():
    yt = np.array([0, 0, 1, 1, 2, 2])
    yp = np.array([0, 1, 1, 1, 2, 0])
    m = subject_metrics(yt, yp)
    assert m["f1_macro"] == pytest.approx(f1_score(yt, yp, average="macro"))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(yt, yp))
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    one = subject_metrics(np.zeros(4, int), np.zeros(4, int))
    assert np.isnan(one["kappa"]) and one["f1_macro"] == 1.0


def test_evaluate_never_lets_test_participants_into_fits_or_hmms(tmp_path, monkeypatch):
    ws = synth_windows(n_participants=6, per_class=3)
    data = ws.save(tmp_path / "w.npz")
    seg_all = ws.segments()
    calls = []
    real_fit_hmm = ft.fit_hmm

    def spy(probs, y, segments, labels):
        calls.append(set(ws.pid[np.isin(seg_all, segments)].tolist()))
        assert len(probs) == len(segments)
        return real_fit_hmm(probs, y, segments, labels)

    monkeypatch.setattr(ft, "fit_hmm", spy)
    opts = EvalOptions(settings=("rf", "scratch"), cv=3, seed=0, rf_trees=10, inner_cv=2,
                       train=TrainOptions(epochs=1, batch_size=8, threads=1, val_frac=0.25, max_rotation_deg=15.0))
    report = evaluate(data, tmp_path / "out", opts)
    for f in ("results.json", "results.md", "confusion.png", "predictions.csv", "settings/rf.json", "settings/scratch.json"):
        assert (tmp_path / "out" / f).is_file(), f
    assert len(calls) == 6  # one HMM per setting and fold
    for i, name in enumerate(("rf", "scratch")):
        folds = report["settings"][name]["folds"]
        assert sorted(sum((f["test_subjects"] for f in folds), [])) == sorted(set(ws.pid.tolist()))
        for k, f in enumerate(folds):
            test = set(f["test_subjects"])
            used = calls[i * 3 + k]  # participants whose windows reached HMM.fit
            assert not (used & test), f"{name} fold {k}: HMM saw test participants {used & test}"
            assert not (set(f["fit_subjects"]) & test)
            assert set(f["hmm_subjects"]) == used
            if name == "scratch":
                assert not (set(f["val_subjects"]) & test) and not (set(f["val_subjects"]) & set(f["fit_subjects"]))
                assert used == set(f["val_subjects"])  # the network's HMM: validation participants only
    # the reported means are the per-participant metrics recomputed from the written predictions
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv", dtype={"participant": str})
    for col, name, variant in (("rf", "rf", "raw"), ("rf+hmm", "rf", "hmm"), ("scratch", "scratch", "raw")):
        f1 = [f1_score(g["label"], g[col], average="macro", zero_division=0) for _, g in pred.groupby("participant")]
        s = report["settings"][name]["variants"][variant]["summary"]["f1_macro"]
        assert s["mean"] == pytest.approx(np.mean(f1)) and s["sd"] == pytest.approx(np.std(f1, ddof=1))
        assert np.sum(report["settings"][name]["variants"][variant]["confusion"]) == len(ws)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| rf | yes |" in md and "| scratch | no |" in md
    # these three classes are easy: the forest must find them
    assert report["settings"]["rf"]["variants"]["raw"]["summary"]["f1_macro"]["mean"] > 0.9


def test_cached_settings_are_reused_until_options_change(tmp_path, monkeypatch):
    ws = synth_windows(n_participants=4, per_class=2)
    data = ws.save(tmp_path / "w.npz")
    opts = EvalOptions(settings=("rf",), cv=2, rf_trees=5, inner_cv=2)
    first = evaluate(data, tmp_path / "out", opts)
    ran = []
    real = ev.run_setting
    monkeypatch.setattr(ev, "run_setting", lambda name, *a, **k: ran.append(name) or real(name, *a, **k))
    again = evaluate(data, tmp_path / "out", opts)
    assert ran == [] and again["settings"]["rf"]["variants"] == first["settings"]["rf"]["variants"]
    evaluate(data, tmp_path / "out", EvalOptions(settings=("rf",), cv=2, rf_trees=6, inner_cv=2))
    assert ran == ["rf"]
    evaluate(data, tmp_path / "out", EvalOptions(settings=("rf",), cv=2, rf_trees=6, inner_cv=2, force=True))
    assert ran == ["rf", "rf"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["settings"]["rf"]["options"]["trees"] == 6


def test_features_of_known_signals():
    t = np.arange(300) / 30.0
    x = np.stack([np.sin(2 * np.pi * 2 * t), 0.5 * np.cos(2 * np.pi * 5 * t), np.ones(300)])[None]
    still = np.zeros((1, 3, 300))
    still[0, 2] = 1.0
    f = dict(zip(FEATURE_NAMES, extract_features(np.concatenate([x, still]))[0]))
    g = dict(zip(FEATURE_NAMES, extract_features(np.concatenate([x, still]))[1]))
    assert len(FEATURE_NAMES) == 22
    assert f["z_mean"] == pytest.approx(1.0) and f["x_std"] == pytest.approx(np.sqrt(0.5), rel=1e-4)
    assert f["y_range"] == pytest.approx(1.0, rel=1e-4) and f["corr_xz"] == 0.0
    # |v|^2 = 1 + sin^2(4 pi t) + 0.25 cos^2(10 pi t): VM oscillates at 4 Hz and 10 Hz
    assert (f["vm_dominant_freq_1"], f["vm_dominant_freq_2"]) == (4.0, 10.0)
    assert f["enmo_mean"] == pytest.approx(f["vm_mean"] - 1.0, rel=1e-5)
    assert 0.0 < f["vm_spectral_entropy"] < 1.0
    assert g["vm_mean"] == pytest.approx(1.0) and g["vm_std"] == 0.0 and g["enmo_mean"] == 0.0
    assert g["vm_skew"] == 0.0 and g["vm_dominant_freq_1"] == 0.0


def test_feature_moments_match_scipy():
    from scipy import stats

    x = np.random.default_rng(0).normal(size=(6, 3, 300)) + np.array([0.0, 0.0, 1.0])[None, :, None]
    f = extract_features(x)
    vm = np.sqrt((x**2).sum(axis=1))
    np.testing.assert_allclose(f[:, FEATURE_NAMES.index("vm_skew")], stats.skew(vm, axis=1), atol=1e-5)
    np.testing.assert_allclose(f[:, FEATURE_NAMES.index("vm_kurt")], stats.kurtosis(vm, axis=1), atol=1e-5)
    mad = np.median(np.abs(vm - np.median(vm, axis=1, keepdims=True)), axis=1)
    np.testing.assert_allclose(f[:, FEATURE_NAMES.index("vm_mad")], mad, rtol=1e-5)
    np.testing.assert_allclose(f[:, FEATURE_NAMES.index("corr_xy")],
                               [np.corrcoef(w[0], w[1])[0, 1] for w in x], atol=1e-6)
