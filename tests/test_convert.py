"""harnet.convert on files written here: SSL checkpoints, bundles like the published ones, and
pickles that try to run a command (they must be refused and the command must not run)."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import pickle
import subprocess
import sys
import types
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harnet.convert import convert, read_bundle
from harnet.errors import ChecksumError, InputError, ModelError, UnsafePickleError
from harnet.hmm import HMM
from harnet.model import build
from harnet.modeldir import load_model_dir
from harnet_cli.main import main as cli_main

# reference.md section 2: elements in the 131 feature-extractor tensors of each published checkpoint
EXPECTED_ELEMENTS = {"harnet5": 4_241_877, "harnet10": 10_481_877, "harnet30": 10_481_045}
PRETEXT_HEADS = ("aot_h", "scale_h", "permute_h", "time_w_h")


# ------------------------------------------------------------------------------------------
# SSL checkpoints
# ------------------------------------------------------------------------------------------
def _fake_checkpoint(arch: str, path: Path, *, legacy: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write a checkpoint laid out like the published ones; return its feature-extractor tensors."""
    torch.manual_seed(seed)
    model = build(arch, num_classes=5)
    for name, buf in model.named_buffers():  # BN statistics different from their defaults
        if name.endswith("running_mean"):
            buf.normal_()
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
        elif name.endswith("num_batches_tracked"):
            buf.fill_(1234)
    sd = model.state_dict()
    f = model.feature_extractor.out_features
    ckpt = {f"module.{k}": v.clone() for k, v in sd.items()}  # DDP prefix, random classifier.* included
    for head in PRETEXT_HEADS:
        ckpt[f"module.{head}.linear1.weight"] = torch.randn(2, f)
        ckpt[f"module.{head}.linear1.bias"] = torch.randn(2)
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return {k: v.clone() for k, v in sd.items() if k.startswith("feature_extractor.")}


@pytest.mark.parametrize("arch", ["harnet5", "harnet10", "harnet30"])
def test_checkpoint_converts_to_backbone_with_published_element_count(tmp_path, arch):
    src = tmp_path / "mtl_best.mdl"
    fe = _fake_checkpoint(arch, src, legacy=(arch == "harnet10"))  # one in torch's legacy format
    out = convert(src, tmp_path / "out")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "backbone" and cfg["arch"] == arch and cfg["labels"] == []
    assert cfg["conversion"]["tensors_loaded"] == 131
    assert cfg["conversion"]["elements_loaded"] == EXPECTED_ELEMENTS[arch]
    assert cfg["conversion"]["dropped"] == sorted([*PRETEXT_HEADS, "classifier"])
    assert cfg["provenance"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert "Academic Use" in cfg["provenance"]["licence"]

    model = load_model_dir(out, num_classes=3)  # strict load of the backbone, fresh 3-class head
    loaded = {k: v for k, v in model.state_dict().items() if k.startswith("feature_extractor.")}
    assert sum(v.numel() for v in loaded.values()) == EXPECTED_ELEMENTS[arch]
    assert loaded.keys() == fe.keys()
    for k, v in fe.items():
        assert torch.equal(loaded[k], v), k


def test_checkpoint_features_match_the_source_network(tmp_path):
    src = tmp_path / "mtl_5_best.mdl"
    fe = _fake_checkpoint("harnet5", src, seed=3)
    ref = build("harnet5")
    ref.load_state_dict({**ref.state_dict(), **fe})
    ref.eval()
    model = load_model_dir(convert(src, tmp_path / "out"))
    x = torch.randn(4, 3, 150, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model.features(x), ref.features(x), atol=1e-6)


def test_checkpoint_checked_against_registry_entry(tmp_path):
    src = tmp_path / "mtl_5_best.mdl"
    _fake_checkpoint("harnet5", src)
    data = src.read_bytes()
    gitsha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    entry = SimpleNamespace(name="harnet5", labels=(), window_sec=5, licence="Some Licence", checksum_algo="gitsha1",
                            checksum=gitsha1, urls=("https://example.org/mtl_5_best.mdl",), format="ssl-mdl",
                            description="test backbone")
    cfg = json.loads((convert(src, tmp_path / "ok", entry=entry) / "config.json").read_text())
    prov = cfg["provenance"]
    assert (prov["checksum_algo"], prov["checksum"], prov["registry_name"]) == ("gitsha1", gitsha1, "harnet5")
    assert prov["source"] == "https://example.org/mtl_5_best.mdl" and prov["licence"] == "Some Licence"

    wrong = SimpleNamespace(**{**vars(entry), "checksum": "0" * 40})
    with pytest.raises(ChecksumError, match="not the published file"):
        convert(src, tmp_path / "bad", entry=wrong)
    other_window = SimpleNamespace(**{**vars(entry), "window_sec": 30})
    with pytest.raises(ModelError, match="30-s windows"):
        convert(src, tmp_path / "bad2", entry=other_window)


def test_checkpoint_errors(tmp_path):
    src = tmp_path / "x.mdl"
    _fake_checkpoint("harnet5", src)
    out = tmp_path / "out"
    convert(src, out)
    with pytest.raises(ModelError, match="not empty.*--force"):
        convert(src, out)
    (out / "model.onnx").write_bytes(b"stale export")
    convert(src, out, overwrite=True)
    assert not (out / "model.onnx").exists()

    sd = torch.load(src, weights_only=True)
    sd["module.projection.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "extra.mdl")
    with pytest.raises(ModelError, match="neither the feature extractor"):
        convert(tmp_path / "extra.mdl", tmp_path / "o2")
    del sd["module.projection.weight"], sd["module.feature_extractor.layer2.1.conv1.weight"]
    torch.save(sd, tmp_path / "missing.mdl")
    with pytest.raises(ModelError, match="missing keys"):
        convert(tmp_path / "missing.mdl", tmp_path / "o3")
    with pytest.raises(InputError, match="does not exist"):
        convert(tmp_path / "nope.mdl", tmp_path / "o4")


# ------------------------------------------------------------------------------------------
# Bundles like the published ones, written here with classes of the upstream names
# ------------------------------------------------------------------------------------------
def _register(monkeypatch, module: str, name: str) -> type:
    """A class that pickles as ``module.name`` (the module exists only for this test)."""
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


def _cheap_state_dict(arch: str, num_classes: int, seed: int = 0, compressible: bool = False) -> "dict[str, torch.Tensor]":
    """A full state dict; ``compressible`` keeps only the signs of large tensors so lzma packs them fast."""
    torch.manual_seed(seed)
    sd = build(arch, num_classes=num_classes).state_dict()
    if compressible:
        sd = {k: v.sign() / 8 if v.is_floating_point() and v.numel() > 4096 else v for k, v in sd.items()}
    return sd


def _dump(obj, path: Path, compress: bool = False) -> None:
    joblib = pytest.importorskip("joblib")
    joblib.dump(obj, path, compress=("lzma", 1) if compress else 0)


def _hmm_arrays(c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    e = rng.random((c, c)) + np.eye(c) * 3
    t = rng.random((c, c)) + np.eye(c) * 20
    return np.full(c, 1.0 / c), (e / e.sum(1, keepdims=True)).astype(np.float32), t / t.sum(1, keepdims=True)


def test_asleep_like_bundle(tmp_path, monkeypatch):
    sleep_cls = _register(monkeypatch, "models", "SleepWindowSSL")
    hmm_cls = _register(monkeypatch, "stepcount.hmm_utils", "HMMSmoother")
    sd = _cheap_state_dict("harnet5", 4)  # same layout as asleep's harnet30, smaller
    prior, emission, transmat = _hmm_arrays(4)
    hmm = _obj(hmm_cls, use_hmmlearn=False, startprob=prior, emissionprob=emission, transmat=transmat,
               labels=np.array([0, 1, 2, 3]), n_iter=100)
    bundle = _obj(sleep_cls, device="cuda:0", repo_tag="v1.0.0", batch_size=2000, state_dict=sd, hmms=hmm)
    src = tmp_path / "ssl.joblib"
    _dump(bundle, src)

    raw = read_bundle(src)
    assert raw["__class__"] == "models.SleepWindowSSL" and raw["hmms"]["__class__"] == "stepcount.hmm_utils.HMMSmoother"
    np.testing.assert_array_equal(raw["hmms"]["emissionprob"], emission)
    assert raw["hmms"]["emissionprob"].dtype == np.float32

    out = convert(src, tmp_path / "out")
    model = load_model_dir(out)
    assert model.labels == ("light", "moderate-vigorous", "sedentary", "sleep")
    for k, v in sd.items():
        assert torch.equal(model.state_dict()[k], v), k
    np.testing.assert_allclose(model.hmm.emission, emission.astype(np.float64))
    np.testing.assert_allclose(model.hmm.transition, transmat)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preprocessing"]["lowpass_hz"] == 20.0
    assert cfg["provenance"]["upstream_class"] == "models.SleepWindowSSL"
    assert cfg["provenance"]["upstream_settings"]["repo_tag"] == "v1.0.0"


def test_actinet_like_bundle_reorders_hmm_to_output_order(tmp_path, monkeypatch):
    cls = _register(monkeypatch, "actinet.models", "ActivityClassifier")
    labels = np.array(["light", "moderate-vigorous", "sedentary", "sleep"])
    sd = {f"module.{k}": v for k, v in _cheap_state_dict("harnet5", 4, seed=1, compressible=True).items()}
    prior, emission, transmat = _hmm_arrays(4, seed=2)
    hmm_order = [3, 1, 0, 2]  # the HMM parameters listed in another class order than the outputs
    hmm = {"prior": prior[hmm_order], "emission": emission[np.ix_(hmm_order, hmm_order)],
           "transition": transmat[np.ix_(hmm_order, hmm_order)], "labels": labels[hmm_order]}
    src = tmp_path / "actinet.joblib.lzma"
    _dump(_obj(cls, labels=labels, window_sec=5, model_weights=sd, hmm_params=hmm), src, compress=True)
    out = convert(src, tmp_path / "out")
    model = load_model_dir(out)
    assert model.labels == tuple(labels)
    np.testing.assert_allclose(model.hmm.emission, emission.astype(np.float64))
    np.testing.assert_allclose(model.hmm.transition, transmat)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preprocessing"]["lowpass_hz"] is None and cfg["preprocessing"]["resample"] == "linear"

    entry = SimpleNamespace(name="x", labels=("sleep", "light", "sedentary", "moderate-vigorous"), window_sec=5,
                            licence="L", checksum_algo=None, checksum="", urls=(), format="actinet-bundle")
    with pytest.raises(ModelError, match="disagree"):
        convert(src, tmp_path / "o2", entry=entry)


def test_stepcount_like_nested_bundle_names_codes_from_entry(tmp_path, monkeypatch):
    """The integer classes of a stepcount bundle are named not-walking/walking; an entry's labels
    (when given) name them instead. The full stepcount layout: tests/test_convert_stepcount.py."""
    counter = _register(monkeypatch, "stepcount.models", "StepCounter")
    detector = _register(monkeypatch, "stepcount.models", "WalkDetectorSSL")
    hmm_cls = _register(monkeypatch, "stepcount.hmm_utils", "HMMSmoother")
    prior, emission, transmat = _hmm_arrays(2)
    wd = _obj(detector, state_dict=_cheap_state_dict("harnet10", 2, seed=4), labels=[0, 1],
              hmms=_obj(hmm_cls, startprob=prior, emissionprob=emission, transmat=transmat, labels=np.array([0, 1])))
    src = tmp_path / "stepcount.joblib"
    _dump(_obj(counter, window_sec=10, sample_rate=30, steptol=4, lowpass_hz=5,
               find_peaks_params={"distance": 0.4, "prominence": 0.3}, wd=wd), src)
    model = load_model_dir(convert(src, tmp_path / "o1"))
    assert model.labels == ("not-walking", "walking") and model.hmm.labels == model.labels
    entry = SimpleNamespace(name="stepcount-walk", labels=("not-walk", "walk"), window_sec=10, licence="L",
                            checksum_algo="sha256", checksum=hashlib.sha256(src.read_bytes()).hexdigest(),
                            urls=("https://example.org/ssl.joblib.lzma",), format="stepcount-bundle")
    model = load_model_dir(convert(src, tmp_path / "o2", entry=entry))
    assert model.config.arch == "harnet10" and model.labels == ("not-walk", "walk")
    assert model.hmm.labels == ("not-walk", "walk")
    assert model.meta["steps"]["peak_distance_s"] == 0.4


def test_joblib_inline_arrays_read_without_joblib_code(tmp_path):
    rng = np.random.default_rng(0)
    value = {
        "c": rng.random((3, 5)),
        "f": np.asfortranarray(rng.random((4, 6)).astype(np.float32)),
        "i": np.arange(7, dtype=np.int16),
        "empty": np.zeros((0, 3)),
        "strs": np.array(["light", "sleep"]),
        "objs": np.array(["a", 1, None], dtype=object),
        "scalar": np.float64(2.5),
        "b": b"\x00\x01raw",
        "nested": [np.arange(3), {"x": np.ones(2)}],
    }
    for compress, name in ((False, "a.joblib"), (True, "a.joblib.lzma")):
        src = tmp_path / name
        _dump(value, src, compress=compress)
        got = read_bundle(src)
        for k in ("c", "f", "i", "empty", "strs"):
            np.testing.assert_array_equal(got[k], value[k])
            assert got[k].dtype == value[k].dtype and got[k].shape == value[k].shape
        assert got["f"].flags.f_contiguous
        assert list(got["objs"]) == ["a", 1, None] and got["scalar"] == 2.5 and got["b"] == value["b"]
        np.testing.assert_array_equal(got["nested"][1]["x"], np.ones(2))
    # a plain pickle at protocol 2 (bytes via _codecs.encode, arrays via numpy's reconstruct)
    src = tmp_path / "p2.pkl"
    src.write_bytes(pickle.dumps({"a": np.arange(4.0), "b": b"\xffz"}, protocol=2))
    got = read_bundle(src)
    np.testing.assert_array_equal(got["a"], np.arange(4.0))
    assert got["b"] == b"\xffz"


def test_truncated_bundle_is_an_input_error(tmp_path):
    src = tmp_path / "t.joblib"
    _dump({"a": np.arange(1000.0)}, src)
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(src.read_bytes()[:-100])
    with pytest.raises(InputError, match="truncated"):
        read_bundle(cut)


# ------------------------------------------------------------------------------------------
# Pickles that try to run code
# ------------------------------------------------------------------------------------------
class _Reduce:
    """Pickles as a call of ``func(*args)``: what a malicious file does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, object]:
    return {
        "os.system": _Reduce(os.system, (f"touch {marker}",)),
        "subprocess": _Reduce(subprocess.call, (["touch", str(marker)],)),
        "eval": _Reduce(eval, (f"__import__('os').system('touch {marker}')",)),
    }


@pytest.mark.parametrize("kind", ["os.system", "subprocess", "eval"])
def test_malicious_pickle_refused_and_command_not_run(tmp_path, kind):
    marker = tmp_path / "pwned"
    data = pickle.dumps({"state_dict": {}, "x": _payloads(marker)[kind]})
    pickle.loads(data)  # the payload is live: an ordinary unpickler runs the command ...
    assert marker.exists()
    marker.unlink()
    src = tmp_path / "evil.pkl"
    src.write_bytes(data)
    with pytest.raises(UnsafePickleError) as err:  # ... harnet's reader refuses it
        convert(src, tmp_path / "out")
    msg = str(err.value)
    assert "refusing to load" in msg and str(src) in msg and "pickles can run code" in msg
    assert {"os.system": "system", "subprocess": "subprocess.call", "eval": "builtins.eval"}[kind] in msg
    assert not marker.exists()
    assert not (tmp_path / "out" / "config.json").exists()


def test_malicious_pickle_hidden_in_lzma_joblib_file(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    sleep_cls = _register(monkeypatch, "models", "SleepWindowSSL")
    state_dict = {"feature_extractor.layer1.0.weight": torch.randn(64, 3, 5)}  # refused before it matters
    bundle = _obj(sleep_cls, state_dict=state_dict, hmms={"startprob": np.ones(4) / 4},
                  extra=_payloads(marker)["os.system"])
    src = tmp_path / "ssl.joblib.lzma"
    _dump(bundle, src, compress=True)
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|os|nt)\.system"):
        convert(src, tmp_path / "out")
    with pytest.raises(UnsafePickleError):
        read_bundle(src)
    # the same without joblib: a plain pickle in an lzma ("alone") container
    src2 = tmp_path / "plain.lzma"
    with lzma.open(src2, "wb", format=lzma.FORMAT_ALONE) as f:
        pickle.dump([np.arange(3), _payloads(marker)["subprocess"]], f)
    with pytest.raises(UnsafePickleError, match="subprocess"):
        read_bundle(src2)
    assert not marker.exists()


def test_malicious_pickle_inside_embedded_torch_storage(tmp_path):
    marker = tmp_path / "pwned"
    evil_bytes = pickle.dumps(_payloads(marker)["os.system"], protocol=2)
    from torch.storage import _load_from_bytes

    src = tmp_path / "storage.pkl"
    src.write_bytes(pickle.dumps({"w": _Reduce(_load_from_bytes, (evil_bytes,))}))
    with pytest.raises(UnsafePickleError, match="weights_only"):
        read_bundle(src)
    assert not marker.exists()


def test_malicious_torch_checkpoint_refused(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "mtl_best.mdl"
    torch.save({"module.feature_extractor.layer1.0.weight": torch.zeros(1), "x": _payloads(marker)["os.system"]}, src)
    with pytest.raises(UnsafePickleError, match="weights_only"):
        convert(src, tmp_path / "out")
    assert not marker.exists()


@pytest.mark.parametrize(
    "data, match",
    [
        # BUILD on a set (not a type that may receive state)
        (b"\x80\x04cbuiltins\nset\n)R}b.", "set the state"),
        # persistent id
        (b"\x80\x02X\x03\x00\x00\x00abcQ.", "persistent"),
        # extension registry code 1
        (b"\x80\x02\x82\x01.", "extension"),
        # copyreg._reconstructor of a class outside the stand-ins
        (b"\x80\x02ccopyreg\n_reconstructor\ncbuiltins\ndict\ncbuiltins\nobject\nN\x87R.", "_reconstructor"),
        # getattr, the usual first step of a gadget chain
        (b"\x80\x02cbuiltins\ngetattr\n.", "builtins.getattr"),
    ],
)
def test_other_unsafe_opcodes_refused(tmp_path, data, match):
    src = tmp_path / "x.pkl"
    src.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=match):
        read_bundle(src)


def test_tensor_rebuild_out_of_bounds_refused(tmp_path):
    from torch.storage import _load_from_bytes
    from torch._utils import _rebuild_tensor_v2

    buf = io.BytesIO()
    with warnings.catch_warnings():  # a TypedStorage, as tensors in plain pickles carry
        warnings.simplefilter("ignore")
        torch.save(torch.zeros(4).storage(), buf, _use_new_zipfile_serialization=False)
    storage = _Reduce(_load_from_bytes, (buf.getvalue(),))
    src = tmp_path / "oob.pkl"
    src.write_bytes(pickle.dumps(_Reduce(_rebuild_tensor_v2, (storage, 0, (100,), (1,), False, {}))))
    with pytest.raises(ModelError, match="runs past its storage"):
        read_bundle(src)


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------
def test_cli_convert(tmp_path, capsys):
    src = tmp_path / "mtl_5_best.mdl"
    _fake_checkpoint("harnet5", src)
    assert cli_main(["convert", str(src), "--out", str(tmp_path / "out")]) == 0
    cap = capsys.readouterr()
    assert "Oxford Academic Use Licence" in cap.err
    assert "backbone harnet5" in cap.out and "4,241,877 elements" in cap.out
    assert cli_main(["convert", str(src), "--out", str(tmp_path / "out")]) == 1
    assert "--force" in capsys.readouterr().err
    assert cli_main(["convert", str(src), "--out", str(tmp_path / "out"), "--force"]) == 0
    capsys.readouterr()

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.joblib.lzma"
    with lzma.open(evil, "wb") as f:
        pickle.dump(_payloads(marker)["os.system"], f)
    assert cli_main(["convert", str(evil), "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("harnet: error: refusing to load") and len(err.splitlines()) == 1
    assert not marker.exists()
    assert cli_main(["convert", str(src), "--out", str(tmp_path / "o3"), "--name", "no-such-model"]) == 1
    assert "no-such-model" in capsys.readouterr().err


def test_hmm_from_bundle_is_harnet_hmm(tmp_path, monkeypatch):
    """hmm.json written by the converter reloads as harnet.hmm.HMM and smooths labels."""
    cls = _register(monkeypatch, "actinet.models", "ActivityClassifier")
    prior, emission, transmat = _hmm_arrays(2, seed=5)
    src = tmp_path / "b.joblib"
    _dump(_obj(cls, labels=["rest", "move"], model_weights=_cheap_state_dict("harnet5", 2),
               hmm={"startprob": prior, "emissionprob": emission, "transmat": transmat}), src)
    out = convert(src, tmp_path / "out")
    hmm = HMM.load(out / "hmm.json")
    assert hmm.labels == ("rest", "move")
    noisy = np.array([0] * 20 + [1] + [0] * 20)
    assert (hmm.smooth(noisy) == 0).all()  # one odd window inside a long run is smoothed away
