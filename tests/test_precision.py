"""`harnet predict --precision int8`: the option, the int8 graph made on first use and cached,
its agreement gate, and the refusals where int8 cannot be used (issue 15, point 3)."""

from __future__ import annotations

import json

import pytest
from _tinymodels import make_model_dir

import harnet.onnx.int8 as int8mod
import harnet.precision as precision
from harnet.arch import INT8_FILE
from harnet.errors import HarnetError
from harnet.pipeline import PredictOptions
from harnet.predictor import get_backend, resolve_backend
from harnet_cli.main import main

#: short generated days at 30 Hz, no per-layer probes: a build takes seconds on a tiny model
SHORT = precision.Int8Recipe(hours=0.5, sample_rate=30.0, calibration_windows=64, sensitivity_windows=48, step=8,
                             calibrate_method="minmax", probe_layers=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny model directory whose int8 graph was made by the first --precision int8 use."""
    d = make_model_dir(tmp_path_factory.mktemp("int8") / "m", "harnet5", seed=21)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(precision, "DEFAULT_RECIPE", SHORT)
        b = get_backend(d, precision="int8", threads=1)
    return d, b


def test_int8_graph_is_made_on_first_use_and_cached(built, monkeypatch):
    d, b = built
    assert b.name == "onnx-int8" and b.precision == "int8"
    q = d / INT8_FILE
    assert b.path == q and q.is_file()
    rep = precision.int8_report(q)
    assert rep["passed"] is True and rep["label_agreement"] >= int8mod.MIN_LABEL_AGREEMENT
    assert rep["recipe"]["validation_seeds"] != rep["recipe"]["calibration_seeds"]
    assert set(rep["recipe"]["validation_seeds"]).isdisjoint([*rep["recipe"]["calibration_seeds"], rep["recipe"]["sensitivity_seed"]])
    assert 0 <= len(rep["kept_fp32"]) < rep["layers"]
    # the second use finds it: nothing is built again
    monkeypatch.setattr(precision, "build_int8", lambda *a, **k: pytest.fail("int8 graph built twice"))
    assert get_backend(d, precision="int8", threads=1).path == q
    assert get_backend(d, backend="onnx-int8", threads=1).path == q


def test_auto_never_picks_int8(built):
    d, _ = built
    assert (d / INT8_FILE).is_file()
    assert resolve_backend(d) == "onnx-winograd"
    assert get_backend(d, threads=1).name == "onnx-winograd"


def test_int8_refusals_are_one_line(built):
    d, _ = built
    for kw, match in [
        (dict(backend="torch"), "fp32 only"),
        (dict(backend="onnx-winograd"), "fp32 only"),
        (dict(device="cuda"), "runs on the CPU"),
        (dict(model_dir=d / INT8_FILE), "exported graph"),
    ]:
        md = kw.pop("model_dir", d)
        with pytest.raises(HarnetError, match=match) as e:
            resolve_backend(md, precision="int8", **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(HarnetError, match="unknown precision"):
        resolve_backend(d, precision="fp16")


def test_gate_refuses_and_writes_nothing(tmp_path, monkeypatch):
    from dataclasses import replace

    d = make_model_dir(tmp_path / "m", "harnet5", seed=22)
    # no per-layer probes and a single try (every layer int8): the refusal path in seconds
    monkeypatch.setattr(precision, "DEFAULT_RECIPE", replace(SHORT, probe_layers=False, step=10_000))
    monkeypatch.setattr(int8mod, "MIN_LABEL_AGREEMENT", 1.01)  # no graph can pass
    with pytest.raises(HarnetError, match="use --precision fp32"):
        get_backend(d, precision="int8", threads=1)
    assert not (d / INT8_FILE).exists()
    assert not [p for p in d.iterdir() if "int8" in p.name and not p.name.endswith(".lock")]  # no partial file


@pytest.mark.slow
def test_per_layer_sensitivity_probes_each_layer_alone(built, tmp_path):
    import onnx
    from _tinymodels import windows

    from harnet.onnx.export import ensure_onnx

    d, _ = built
    fp32 = ensure_onnx(d)
    groups = precision.layer_groups(onnx.load(str(fp32)).graph.node)
    x = windows(24, 150, seed=5)
    flips = precision.layer_sensitivity(fp32, x, x, groups, ranges_cache=tmp_path / "r.json")
    assert list(flips) == list(groups) and all(0 <= v <= 1 for v in flips.values())
    assert (tmp_path / "r.json").is_file()  # calibrated once, reused for every layer


def test_layer_groups_cover_every_node_once(built):
    import onnx

    from harnet.onnx.export import ensure_onnx

    d, _ = built
    nodes = onnx.load(str(ensure_onnx(d))).graph.node
    g = precision.layer_groups(nodes)
    flat = [m for v in g.values() for m in v]
    assert sorted(flat) == sorted(n.name for n in nodes) and len(flat) == len(set(flat))
    assert all(v[-1] == k for k, v in list(g.items())[:-1])  # each group ends with its layer


def test_option_is_recorded_in_info_json(built, tmp_path, capsys):
    from harnet.synth import write_scripted_cwa

    d, _ = built
    f = write_scripted_cwa(tmp_path / "r.cwa", pattern=[("sit", 0.3), ("walk", 0.2)], fs=50.0, seed=3)
    out = tmp_path / "s.csv"
    assert main(["predict", str(f), "--model", str(d), "--precision", "int8", "--threads", "1", "--out", str(out), "-q"]) == 0
    info = json.loads((tmp_path / "s-info.json").read_text())
    assert info["options"]["precision"] == "int8"
    assert info["model"]["backend"] == "onnx-int8"
    assert info["model"]["int8"]["passed"] is True
    # fp32 (the default) leaves info.json as it was before the option
    out2 = tmp_path / "f.csv"
    assert main(["predict", str(f), "--model", str(d), "--threads", "1", "--out", str(out2), "-q"]) == 0
    info2 = json.loads((tmp_path / "f-info.json").read_text())
    assert "precision" not in info2["options"] and "int8" not in info2["model"]
    assert info2["model"]["backend"] == "onnx-winograd"
    assert "precision" not in PredictOptions().to_dict()
    assert PredictOptions(precision="int8").to_dict()["precision"] == "int8"


def test_cli_refuses_int8_with_torch_before_any_output(built, tmp_path, capsys):
    from harnet.synth import write_scripted_cwa

    d, _ = built
    f = write_scripted_cwa(tmp_path / "r.cwa", pattern=[("sit", 0.2)], fs=50.0, seed=4)
    capsys.readouterr()
    rc = main(["predict", str(f), "--model", str(d), "--precision", "int8", "--backend", "torch", "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert rc != 0
    assert "fp32 only" in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "s-info.json").exists()
    with pytest.raises(SystemExit) as e:
        from harnet_cli.main import app

        app(["predict", str(f), "--precision", "fp16"], standalone_mode=True)
    assert e.value.code == 2
