import json

import pytest
import torch

from harnet.errors import ModelError
from harnet.hmm import HMM
from harnet.model import build
from harnet.modeldir import load_model_dir, save_model_dir


def _hmm(labels):
    c = len(labels)
    return HMM(prior=[1 / c] * c, emission=torch.eye(c).numpy() * 0.8 + 0.2 / c, transition=torch.eye(c).numpy() * 0.9 + 0.1 / c, labels=labels)


def test_roundtrip_classifier(tmp_path):
    torch.manual_seed(0)
    m = build("harnet30", labels=("a", "b", "c")).eval()
    save_model_dir(m, tmp_path / "m", hmm=_hmm(("a", "b", "c")), provenance={"source": "test"})
    m2 = load_model_dir(tmp_path / "m")
    x = torch.randn(2, 3, 900)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert m2.labels == ("a", "b", "c") and m2.hmm.num_classes == 3
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["provenance"]["source"] == "test" and cfg["kind"] == "classifier"


def test_backbone_dir_gives_fresh_head(tmp_path):
    m = build("harnet10", num_classes=5)
    save_model_dir(m, tmp_path / "b", backbone_only=True)
    b = load_model_dir(tmp_path / "b", num_classes=3)
    assert b.classifier.linear2.out_features == 3
    for k, v in m.feature_extractor.state_dict().items():
        assert torch.equal(v, b.feature_extractor.state_dict()[k])


def test_tampered_weights_refused(tmp_path):
    save_model_dir(build("harnet5", num_classes=2), tmp_path / "m")
    w = tmp_path / "m" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_model_dir(tmp_path / "m")


def test_config_window_mismatch_refused(tmp_path):
    save_model_dir(build("harnet10", num_classes=2), tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(arch="harnet30", window_sec=30)
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="do not fit harnet30"):
        load_model_dir(tmp_path / "m")


def test_hmm_wrong_size_refused(tmp_path):
    m = build("harnet10", labels=("a", "b"))
    save_model_dir(m, tmp_path / "m")
    _hmm(("a", "b", "c")).save(tmp_path / "m" / "hmm.json")
    with pytest.raises(ModelError, match="3 classes"):
        load_model_dir(tmp_path / "m")


def test_missing_files(tmp_path):
    with pytest.raises(ModelError, match="config.json is missing"):
        load_model_dir(tmp_path)
    save_model_dir(build("harnet10", num_classes=2), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="lacks model.safetensors"):
        load_model_dir(tmp_path / "m")
