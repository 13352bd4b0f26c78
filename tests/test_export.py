"""ONNX export: graph shape, metadata, parity with PyTorch, the CLI, and the int8 guard."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from _tinymodels import LABELS, T_OF, make_model_dir, windows

from harnet.errors import HarnetError, InputError, ModelError
from harnet.onnx.export import export_onnx, read_metadata
from harnet.onnx.graph import OPSET
from harnet.onnx.int8 import agreement, passes, quantize_int8


@pytest.fixture(scope="module")
def h10(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("h10") / "m", "harnet10", seed=1)


def _torch_logits(model_dir, x):
    import torch

    from harnet.modeldir import load_model_dir

    m = load_model_dir(model_dir)
    with torch.inference_mode():
        return m(torch.from_numpy(x)).numpy()


def _ort_logits(path, x):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(["logits"], {"x": x})[0]


def test_graph_interface_and_metadata(h10, tmp_path):
    out = export_onnx(h10, tmp_path / "h.onnx")
    m = onnx.load(str(out))
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [OPSET] and OPSET >= 17
    (inp,), (outp,) = m.graph.input, m.graph.output
    assert inp.name == "x" and outp.name == "logits"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 300]
    assert [d.dim_param or d.dim_value for d in outp.type.tensor_type.shape.dim] == ["batch", 4]
    meta = read_metadata(out)
    cfg = json.loads((h10 / "config.json").read_text())
    assert tuple(meta["labels"]) == LABELS and meta["window_sec"] == 10 and meta["sample_rate"] == 30
    assert meta["preprocessing"] == cfg["preprocessing"] and meta["provenance"]["source"] == "test"
    assert meta["weights_sha256"] == cfg["weights_sha256"]
    assert meta["_onnx_metadata"]["weights_sha256"] == cfg["weights_sha256"]


@pytest.mark.parametrize("arch", ["harnet10", "harnet30"])
def test_parity_with_torch_batches_1_7_64(arch, tmp_path):
    d = make_model_dir(tmp_path / "m", arch, seed=2)
    out = export_onnx(d)  # default: model.onnx inside the model directory
    assert out == d / "model.onnx"
    import onnxruntime as ort
    import torch

    from harnet.modeldir import load_model_dir

    net = load_model_dir(d)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = windows(64, T_OF[arch], seed=3)
    for n in (1, 7, 64):
        with torch.inference_mode():
            ref = net(torch.from_numpy(x[:n])).numpy()
        got = sess.run(["logits"], {"x": x[:n]})[0]
        assert got.shape == (n, 4)
        assert np.abs(got - ref).max() <= 1e-4, (n, np.abs(got - ref).max())


@pytest.mark.parametrize("arch", ["harnet5", "harnet30"])  # harnet5: every layer length needs a crop (150, 75, 37, 12, 4)
def test_winograd_graph_matches_torch(arch, tmp_path):
    import onnxruntime as ort
    import torch

    from harnet.onnx.graph import _winograd_matrices
    from harnet.modeldir import load_model_dir

    AT, G, BT = _winograd_matrices(4)  # exact F(4, 5): 4 outputs of a 5-tap correlation from 8 inputs
    d, g = np.random.default_rng(0).standard_normal(8), np.random.default_rng(1).standard_normal(5)
    assert np.abs(AT @ ((G @ g) * (BT @ d)) - np.array([g @ d[i : i + 5] for i in range(4)])).max() < 1e-12
    dmodel = make_model_dir(tmp_path / "m", arch, seed=21, negative_bn=True)
    out = export_onnx(dmodel, algorithm="winograd")
    assert out.name == "model.winograd.onnx"
    meta = read_metadata(out)["_onnx_metadata"]
    check = json.loads(meta["harnet_check"])
    assert meta["harnet_graph"] == "harnet-fp32-winograd"
    assert check["max_abs_logit_diff_vs_direct_graph"] <= 1e-3 and check["max_abs_logit_diff_vs_torch"] <= 1e-3
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    # every conv with >= 128 input channels is a GEMM plus its output transform
    assert ops.count("MatMul") == 2 * 15
    net = load_model_dir(dmodel)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = windows(7, T_OF[arch], seed=22)
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    for n in (1, 7):
        got = sess.run(["logits"], {"x": x[:n]})[0]
        assert np.abs(got - ref[:n]).max() <= 1e-3
        assert (got.argmax(1) == ref[:n].argmax(1)).all()


def test_unfoldable_batchnorm_kept_and_still_exact(tmp_path):
    pos = make_model_dir(tmp_path / "pos", "harnet5", seed=4)
    neg = make_model_dir(tmp_path / "neg", "harnet5", seed=4, negative_bn=True)
    ops_pos = [n.op_type for n in onnx.load(str(export_onnx(pos))).graph.node]
    ops_neg = [n.op_type for n in onnx.load(str(export_onnx(neg))).graph.node]
    # every BN folds into a convolution when all scales are positive; negative scales keep their BN
    assert "BatchNormalization" not in ops_pos
    assert ops_neg.count("BatchNormalization") > 0
    x = windows(7, 150, seed=5)
    assert np.abs(_ort_logits(neg / "model.onnx", x) - _torch_logits(neg, x)).max() <= 1e-4
    unfolded = export_onnx(pos, tmp_path / "plain.onnx", fold=False)
    assert [n.op_type for n in onnx.load(str(unfolded)).graph.node].count("BatchNormalization") == 13  # 2 bn1 x 4 stages + 5 stage BNs
    assert np.abs(_ort_logits(unfolded, x) - _ort_logits(pos / "model.onnx", x)).max() <= 1e-4


def test_export_refuses_bad_requests(h10, tmp_path):
    from harnet.model import build

    with pytest.raises(ModelError, match="give a path"):
        export_onnx(build("harnet5", num_classes=2))
    with pytest.raises(ModelError, match="opset"):
        export_onnx(h10, tmp_path / "x.onnx", opset=13)
    with pytest.raises(ModelError, match="no such directory|not a model directory"):
        export_onnx(tmp_path / "missing")
    # an in-memory network exports too, with its config
    out = export_onnx(build("harnet5", labels=("a", "b")).eval(), tmp_path / "mem.onnx")
    assert read_metadata(out)["labels"] == ["a", "b"]


def test_tampered_weights_refused(tmp_path):
    d = make_model_dir(tmp_path / "m", "harnet5")
    w = d / "model.safetensors"
    b = bytearray(w.read_bytes())
    b[-1] ^= 1
    w.write_bytes(bytes(b))
    with pytest.raises(ModelError, match="sha256"):
        export_onnx(d)
    assert not (d / "model.onnx").exists()


def test_read_metadata_needs_harnet_graph(tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), str(tmp_path / "other.onnx"))
    with pytest.raises(ModelError, match="harnet metadata"):
        read_metadata(tmp_path / "other.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="cannot read"):
        read_metadata(tmp_path / "junk.onnx")


def test_cli_export(h10, tmp_path):
    from harnet_cli.main import main

    out = tmp_path / "cli.onnx"
    assert main(["export", str(h10), "--onnx", str(out)]) == 0
    assert read_metadata(out)["arch"] == "harnet10"
    assert main(["export", str(h10), "--onnx", str(out), "--int8"]) == 2  # --int8 needs --calibrate
    assert main(["export", str(tmp_path / "nope")]) == 1


# ----------------------------------------------------------------------------------------------
# the agreement rule and int8


def test_agreement_rule():
    eye = np.eye(4, dtype=np.float32)
    ref = [eye[[0] * 500 + [1] * 300 + [2] * 150 + [3] * 50]]
    same = agreement(ref, ref)
    assert same["label_agreement"] == 1.0 and same["totals_rel_diff"] == 0.0 and passes(same)
    # 4 of 1000 windows flip from class 0 to 3: 99.6 % agreement, but class 3 grows by 8 %
    flipped = ref[0].copy()
    flipped[:4] = eye[3]
    r = agreement(ref, [flipped])
    assert r["label_agreement"] == pytest.approx(0.996) and r["totals_rel_diff"] == pytest.approx(4 / 50)
    assert not passes(r)
    # 4 flips 0 -> 1 and 4 flips 1 -> 0: totals equal, agreement 99.2 %: fails on agreement
    swap = ref[0].copy()
    swap[:4] = eye[1]
    swap[500:504] = eye[0]
    r = agreement(ref, [swap])
    assert r["totals_rel_diff"] == 0.0 and r["label_agreement"] == pytest.approx(0.992) and not passes(r)
    # pooled over recordings; a class seen in few windows is judged against 1 % of all windows
    r = agreement([eye[[0] * 99 + [1]]], [eye[[0] * 100]])
    assert r["totals_rel_diff"] == pytest.approx(1.0) and r["label_agreement"] == pytest.approx(0.99)


def test_int8_quantisation_and_its_guard(tmp_path):
    d = make_model_dir(tmp_path / "m", "harnet5", seed=6)
    fp32 = export_onnx(d)
    cal = windows(64, 150, seed=7)
    val = [windows(40, 150, seed=8), windows(24, 150, seed=9)]
    rep = quantize_int8(fp32, d / "model.int8.onnx", cal, validation=val, force=True)
    for k in ("label_agreement", "totals_rel_diff", "max_prob_diff", "windows", "passed"):
        assert k in rep
    assert rep["windows"] == 64 and rep["validated_on"] == "held-out recordings"
    q = onnx.load(str(d / "model.int8.onnx"))
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = {e.key: e.value for e in q.metadata_props}
    assert json.loads(meta["harnet_int8_check"])["label_agreement"] == rep["label_agreement"]
    assert meta["harnet_graph"] == "harnet-int8-qdq" and json.loads(meta["labels"]) == list(LABELS)
    # the guard: a check that cannot pass writes nothing
    import harnet.onnx.int8 as ex

    target = tmp_path / "refused.int8.onnx"
    orig = ex.MIN_LABEL_AGREEMENT
    try:
        ex.MIN_LABEL_AGREEMENT = 1.01
        with pytest.raises(HarnetError, match="int8 model disagrees"):
            quantize_int8(fp32, target, cal, validation=val)
    finally:
        ex.MIN_LABEL_AGREEMENT = orig
    assert not target.exists() and not list(tmp_path.glob(".refused*"))
    with pytest.raises(InputError, match="NaN"):
        bad = cal.copy()
        bad[0, 0, 0] = np.nan
        quantize_int8(fp32, target, bad)
    with pytest.raises(InputError, match="shape|non-empty"):
        quantize_int8(fp32, target, windows(4, 300))


def test_default_path_of_a_read_only_model_dir_is_the_cache(tmp_path, monkeypatch):
    import os

    d = make_model_dir(tmp_path / "ro", "harnet5", seed=23)
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    out = export_onnx(d)
    sha = json.loads((d / "config.json").read_text())["weights_sha256"]
    assert out.parts[-2] == sha and out.is_file() and not (d / "model.onnx").exists()
    from harnet.predictor import get_backend

    assert get_backend(d, backend="onnx").path == out  # the backend finds it there


def test_export_check_catches_a_wrong_graph(h10):
    """The export's own check refuses a graph that does not compute the network (here: one
    weight of the reference changed by 1 %), while float32 rounding passes."""
    from safetensors.numpy import load_file

    from harnet.onnx.export import _verify
    from harnet.onnx.graph import build_graph
    from harnet.modeldir import read_config

    cfg = read_config(h10)
    sd = load_file(str(h10 / "model.safetensors"))
    proto = build_graph(sd, "harnet10", 4)
    ok = _verify(proto, sd, cfg, 4, 1e-4, True, "direct")
    assert 0 <= ok["max_abs_logit_diff_vs_torch"] <= 1e-4
    bad = dict(sd)
    key = "feature_extractor.layer3.1.conv1.weight"
    bad[key] = (sd[key] * 1.01).astype(np.float32)
    with pytest.raises(ModelError, match="differs from the torch"):
        _verify(proto, bad, cfg, 4, 1e-4, True, "direct")
