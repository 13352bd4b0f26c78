"""The published asleep classifier bundle (inside the asleep 0.5.0 sdist on PyPI), converted for real.

Needs PyPI once (the sdist, ~41 MB, is then kept in <repo>/.cache/pypi); skipped when PyPI is out
of reach. Nothing from asleep is imported or run: the bundle is read with harnet's safe reader.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harnet.convert import read_bundle
from harnet.modeldir import load_model_dir
from harnet_cli.main import main as cli_main

from _pypi import ASLEEP_SSL_SHA256  # tests/ is on sys.path (pytest rootdir-relative imports)
from _pypi import asleep_bundle as _asleep_bundle
LABELS = ("light", "moderate-vigorous", "sedentary", "sleep")


@pytest.fixture(scope="module")
def asleep_bundle():
    return _asleep_bundle()


def _still(rng: np.random.Generator, n: int, gravity: tuple[float, float, float]) -> np.ndarray:
    """A wrist at rest: constant gravity vector in g plus 3 mg of sensor noise, 30 s at 30 Hz."""
    return np.asarray(gravity, dtype=np.float64)[None, :, None] + rng.normal(0.0, 0.003, (n, 3, 900))


def _shaking(rng: np.random.Generator, n: int, f_hz: tuple[float, float], amp_g: tuple[float, float]) -> np.ndarray:
    """Sinusoidal shaking on every axis (random phases) on top of gravity, plus 50 mg of noise."""
    t = np.arange(900) / 30.0
    f = rng.uniform(*f_hz, (n, 1, 1))
    amp = rng.uniform(*amp_g, (n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 3, 1))
    x = amp * np.sin(2 * np.pi * f * t + phase) + np.array([0.0, 0.0, 1.0])[None, :, None]
    return x + rng.normal(0.0, 0.05, x.shape)


@pytest.mark.pypi
@pytest.mark.slow
def test_asleep_bundle_converts_loads_and_predicts(asleep_bundle, tmp_path, capsys):
    out = tmp_path / "asleep-ssl"
    rc = cli_main(["convert", str(asleep_bundle), "--out", str(out), "--name", "harnet30-c24-walmsley"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "Oxford Academic Use Licence" in cap.err

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "classifier" and cfg["arch"] == "harnet30" and cfg["window_sec"] == 30
    assert tuple(cfg["labels"]) == LABELS
    prov = cfg["provenance"]
    assert prov["sha256"] == ASLEEP_SSL_SHA256 and prov["checksum"] == ASLEEP_SSL_SHA256
    assert prov["upstream_class"] == "models.SleepWindowSSL" and prov["registry_name"] == "harnet30-c24-walmsley"
    assert cfg["conversion"]["tensors_loaded"] == 135

    model = load_model_dir(out)  # strict: every one of the 135 tensors has its name and shape
    assert model.labels == LABELS

    # the weights and HMM are exactly what the safe reader found in the bundle
    raw = read_bundle(asleep_bundle)
    assert raw["__class__"] == "models.SleepWindowSSL"
    hmms = raw["hmms"]
    assert hmms["__class__"] == "stepcount.hmm_utils.HMMSmoother"
    assert hmms["startprob"].shape == (4,) and hmms["emissionprob"].shape == (4, 4) and hmms["transmat"].shape == (4, 4)
    assert list(hmms["labels"]) == [0, 1, 2, 3]
    sd = raw["state_dict"]
    assert len(sd) == 135 and tuple(sd["classifier.linear2.weight"].shape) == (4, 512)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    np.testing.assert_array_equal(model.hmm.prior, hmms["startprob"].astype(np.float64))
    np.testing.assert_array_equal(model.hmm.emission, hmms["emissionprob"].astype(np.float64))
    np.testing.assert_array_equal(model.hmm.transition, hmms["transmat"].astype(np.float64))
    assert model.hmm.labels == LABELS

    # Predictions on synthetic windows. What is asserted, honestly:
    # - a motionless wrist is never called active: sleep or sedentary (the two cannot be told apart
    #   without context); seen: sleep, p ~ 0.9-0.99;
    # - 2-2.5 Hz shaking of 1-1.5 g (running-like cadence and force) is moderate-vigorous; seen:
    #   all windows, mean p ~ 0.9-1.0;
    # - any 2-3 Hz shaking of 1-1.5 g is never sleep or sedentary. Pure sinusoids near 3 Hz are
    #   often called "light" (unlike human movement), so no more than that is claimed for them.
    rng = np.random.default_rng(20240607)
    still = np.concatenate([_still(rng, 3, (0, 0, 1)), _still(rng, 3, (1, 0, 0)), _still(rng, 2, (0.6, 0, -0.8))])
    running = _shaking(rng, 8, (2.0, 2.5), (1.0, 1.5))
    shaking = _shaking(rng, 8, (2.0, 3.0), (1.0, 1.5))
    with torch.no_grad():
        probs = [torch.softmax(model(torch.as_tensor(x, dtype=torch.float32)), 1).numpy()
                 for x in (still, running, shaking)]
    p_still, p_run, p_shake = probs
    idx = {name: i for i, name in enumerate(LABELS)}
    assert {LABELS[i] for i in p_still.argmax(1)} <= {"sedentary", "sleep"}, p_still.round(3)
    assert p_still[:, idx["moderate-vigorous"]].max() < 0.05, p_still.round(3)
    run_labels = [LABELS[i] for i in p_run.argmax(1)]
    assert run_labels.count("moderate-vigorous") >= 7 and p_run[:, idx["moderate-vigorous"]].mean() > 0.7, p_run.round(3)
    assert not {LABELS[i] for i in p_shake.argmax(1)} & {"sedentary", "sleep"}, p_shake.round(3)

    # the HMM keeps a run of sleep as sleep through one odd window
    run = np.array([idx["sleep"]] * 30 + [idx["light"]] + [idx["sleep"]] * 30)
    assert (model.hmm.smooth(run) == idx["sleep"]).all()
