"""actinet 0.8.0 bundles (``ActivityClassifier`` + ``actinet.hmm.HMM``), written here with stand-in
classes under those module names and ``joblib.dump(..., compress=("lzma", 3))``, convert safely."""

from __future__ import annotations

import collections
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from harnet.convert import convert, read_bundle
from harnet.errors import UnsafePickleError
from harnet.model import build
from harnet.modeldir import load_model_dir

joblib = pytest.importorskip("joblib")
LABELS = np.array(["light", "moderate-vigorous", "sedentary", "sleep"])  # numpy unicode, as actinet stores them


def _register(monkeypatch, module: str, name: str) -> type:
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        mod_name = ".".join(parts[:i])
        if mod_name not in sys.modules:
            monkeypatch.setitem(sys.modules, mod_name, types.ModuleType(mod_name))
    cls = type(name, (), {"__module__": module, "__qualname__": name})
    monkeypatch.setattr(sys.modules[module], name, cls, raising=False)
    return cls


def _obj(cls: type, **attrs) -> object:
    o = cls()
    o.__dict__.update(attrs)
    return o


def _weights(seed: int = 3) -> "collections.OrderedDict[str, torch.Tensor]":
    """harnet5 (the asleep/actinet layout, smaller) with 4 outputs; big tensors made lzma-friendly."""
    torch.manual_seed(seed)
    sd = build("harnet5", num_classes=4).state_dict()
    return collections.OrderedDict(
        (k, v.sign() / 8 if v.is_floating_point() and v.numel() > 4096 else v) for k, v in sd.items()
    )


def _hmm_arrays():
    rng = np.random.default_rng(5)
    e = rng.random((4, 4)) + np.eye(4) * 3
    t = rng.random((4, 4)) + np.eye(4) * 20
    return np.full(4, 0.25), e / e.sum(1, keepdims=True), t / t.sum(1, keepdims=True)


def _actinet_080(monkeypatch, sd, *, hmm_extra: dict | None = None, top_extra: dict | None = None) -> object:
    clf_cls = _register(monkeypatch, "actinet.models", "ActivityClassifier")
    hmm_cls = _register(monkeypatch, "actinet.hmm", "HMM")
    prior, emission, transition = _hmm_arrays()
    hmm = _obj(hmm_cls, **{**dict(prior=prior, emission=emission, transition=transition, uniform_prior=True,
                                  ignore_transition_gaps=False, handle_sleep_transitions=True), **(hmm_extra or {})})
    attrs = dict(device="cpu", repo_tag="v1.0.0", batch_size=512, window_sec=5, labels=LABELS, verbose=False,
                 model_weights=sd, model=None, hmm=hmm)
    return _obj(clf_cls, **{**attrs, **(top_extra or {})})


def _dump(obj, path: Path) -> Path:
    joblib.dump(obj, path, compress=("lzma", 3))
    return path


def test_actinet_080_bundle_converts_with_its_hmm_and_flags(tmp_path, monkeypatch):
    sd = _weights()
    src = _dump(_actinet_080(monkeypatch, sd), tmp_path / "ssl-ukb-c24-rw-30s.joblib.lzma")
    raw = read_bundle(src)
    assert raw["__class__"] == "actinet.models.ActivityClassifier" and raw["hmm"]["__class__"] == "actinet.hmm.HMM"
    assert raw["labels"].dtype.kind == "U" and list(raw["labels"]) == list(LABELS)  # a NumpyArrayWrapper, read inline
    assert isinstance(raw["model_weights"], collections.OrderedDict) and raw["model"] is None

    out = convert(src, tmp_path / "out")
    model = load_model_dir(out)
    assert model.labels == tuple(LABELS)
    for k, v in sd.items():
        assert torch.equal(model.state_dict()[k], v), k
    prior, emission, transition = _hmm_arrays()
    np.testing.assert_allclose(model.hmm.prior, prior)
    np.testing.assert_allclose(model.hmm.emission, emission)
    np.testing.assert_allclose(model.hmm.transition, transition)
    cfg = json.loads((out / "config.json").read_text())
    prov = cfg["provenance"]
    assert prov["upstream_class"] == "actinet.models.ActivityClassifier"
    assert prov["upstream_settings"]["repo_tag"] == "v1.0.0" and prov["upstream_settings"]["window_sec"] == 5
    assert prov["upstream_hmm"] == {"class": "actinet.hmm.HMM", "uniform_prior": True,
                                    "ignore_transition_gaps": False, "handle_sleep_transitions": True}


def test_actinet_hmm_with_its_own_label_order_is_reordered(tmp_path, monkeypatch):
    order = [3, 1, 0, 2]
    prior, emission, transition = _hmm_arrays()
    obj = _actinet_080(monkeypatch, _weights())
    obj.hmm.__dict__.update(prior=prior[order], emission=emission[np.ix_(order, order)],
                            transition=transition[np.ix_(order, order)], labels=LABELS[order])
    model = load_model_dir(convert(_dump(obj, tmp_path / "b.joblib.lzma"), tmp_path / "out"))
    np.testing.assert_allclose(model.hmm.emission, emission)
    np.testing.assert_allclose(model.hmm.transition, transition)


def test_older_hmm_utils_layout_still_converts(tmp_path, monkeypatch):
    clf_cls = _register(monkeypatch, "actinet.models", "ActivityClassifier")
    smoother = _register(monkeypatch, "actinet.hmm_utils", "HMMSmoother")
    prior, emission, transition = _hmm_arrays()
    obj = _obj(clf_cls, window_sec=5, labels=LABELS, model_weights=_weights(),
               hmms=_obj(smoother, prior=prior, emission=emission, transition=transition, labels=LABELS))
    model = load_model_dir(convert(_dump(obj, tmp_path / "old.joblib.lzma"), tmp_path / "out"))
    assert model.labels == tuple(LABELS)
    np.testing.assert_allclose(model.hmm.transition, transition)


def test_same_weights_give_the_same_logits_as_the_asleep_bundle(tmp_path, monkeypatch):
    sd = _weights(seed=11)
    sleep_cls = _register(monkeypatch, "models", "SleepWindowSSL")
    smoother = _register(monkeypatch, "stepcount.hmm_utils", "HMMSmoother")
    prior, emission, transition = _hmm_arrays()
    asleep = _obj(sleep_cls, device="cpu", repo_tag="v1.0.0", batch_size=2000, state_dict=sd,
                  hmms=_obj(smoother, startprob=prior, emissionprob=emission, transmat=transition,
                            labels=np.array([0, 1, 2, 3])))
    a = load_model_dir(convert(_dump(asleep, tmp_path / "asleep.joblib.lzma"), tmp_path / "a"))
    b = load_model_dir(convert(_dump(_actinet_080(monkeypatch, sd), tmp_path / "actinet.joblib.lzma"), tmp_path / "b"))
    assert a.labels == b.labels
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.5, (6, 3, 150)).astype(np.float32))
    with torch.no_grad():
        la, lb = a.eval()(x), b.eval()(x)
    assert torch.equal(la, lb) and la.abs().sum() > 0
    np.testing.assert_array_equal(a.hmm.transition, b.hmm.transition)


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("where", ["hmm-attribute", "top-attribute", "object-array", "other-actinet-class",
                                   "model-module"])
def test_malicious_actinet_bundles_are_refused(tmp_path, monkeypatch, where):
    marker = tmp_path / "pwned"
    payload = _Reduce(os.system, (f"touch {marker}",))
    hmm_extra, top_extra = {}, {}
    if where == "hmm-attribute":
        hmm_extra = {"labels": payload}
    elif where == "top-attribute":
        top_extra = {"verbose": payload}
    elif where == "object-array":  # a numpy object array: joblib pickles its items inline
        top_extra = {"labels": np.array(["light", payload], dtype=object)}
    elif where == "other-actinet-class":  # only the known actinet classes become stand-ins
        evil = _register(monkeypatch, "actinet.utils", "Loader")
        top_extra = {"extra": _obj(evil, x=1)}
    elif where == "model-module":  # a whole pickled torch module instead of model=None
        top_extra = {"model": torch.nn.Linear(2, 2)}
    tiny = collections.OrderedDict({"feature_extractor.layer1.0.weight": torch.randn(4, 3, 5)})  # refused before it matters
    src = _dump(_actinet_080(monkeypatch, tiny, hmm_extra=hmm_extra, top_extra=top_extra),
                tmp_path / "evil.joblib.lzma")
    with pytest.raises(UnsafePickleError, match="refusing") as ei:
        convert(src, tmp_path / "out")
    assert "pickles can run code" in str(ei.value)
    assert not marker.exists() and not (tmp_path / "out" / "config.json").exists()
