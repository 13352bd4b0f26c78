"""Backends: one predict_proba protocol, torch/ONNX parity, auto choice, no torch on the ONNX path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _tinymodels import LABELS, make_model_dir, windows

from harnet.backends import BACKENDS, Backend
from harnet.predictor import get_backend, resolve_backend
from harnet.errors import HarnetError, InputShapeError, ModelError


@pytest.fixture(scope="module")
def h10(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("b10") / "m", "harnet10", seed=11)


@pytest.fixture(scope="module")
def x10():
    return windows(64, 300, seed=12)


def test_protocol_and_parity_torch_vs_onnx(h10, x10):
    tb = get_backend(h10, backend="torch", threads=1)
    ob = get_backend(h10, backend="onnx", threads=1, batch_size=16)  # exports model.onnx on first use
    assert (h10 / "model.onnx").is_file()
    for b in (tb, ob):
        assert isinstance(b, Backend)
        assert b.labels == LABELS and b.window_sec == 10 and b.input_length == 300
    assert (tb.name, ob.name) == ("torch", "onnx")
    for n in (1, 7, 64):
        lt = tb.predict_logits(x10[:n])
        lo = ob.predict_logits(x10[:n])
        assert lo.shape == (n, 4) and lo.dtype == np.float32
        assert np.abs(lt - lo).max() <= 1e-4
        p = ob.predict_proba(x10[:n])
        assert p.dtype == np.float32 and np.allclose(p.sum(1), 1, atol=1e-5)
        assert np.abs(p - tb.predict_proba(x10[:n])).max() <= 1e-5
    # batching inside the backend does not change results (64 windows in batches of 16 vs 5)
    ob5 = get_backend(h10, backend="onnx", threads=1, batch_size=5)
    assert np.abs(ob5.predict_logits(x10) - ob.predict_logits(x10)).max() <= 1e-5
    assert ob.predict_proba(x10[:0]).shape == (0, 4)


def test_winograd_backend_is_the_auto_choice(h10, x10):
    tb = get_backend(h10, backend="torch", threads=1)
    wb = get_backend(h10, threads=1)
    assert wb.name == "onnx-winograd" and (h10 / "model.winograd.onnx").is_file()
    for n in (1, 7, 64):
        lw, lt = wb.predict_logits(x10[:n]), tb.predict_logits(x10[:n])
        assert np.abs(lw - lt).max() <= 1e-3 and (lw.argmax(1) == lt.argmax(1)).all()


def test_wrong_input_rejected(h10):
    for name in ("torch", "onnx", "onnx-winograd"):
        b = get_backend(h10, backend=name, threads=1)
        for bad in (np.zeros((2, 3, 900), np.float32), np.zeros((2, 300, 3), np.float32), np.zeros((3, 300), np.float32)):
            with pytest.raises(InputShapeError, match=r"\(N, 3, 300\)"):
                b.predict_proba(bad)


def test_torch_threads_restored(h10, x10):
    import torch

    before = torch.get_num_threads()
    b = get_backend(h10, backend="torch", threads=1)
    b.predict_proba(x10[:2])
    assert torch.get_num_threads() == before


def test_onnx_file_as_model_and_auto(h10, tmp_path):
    from harnet.onnx.export import export_onnx

    f = export_onnx(h10, tmp_path / "alone.onnx")
    b = get_backend(f)  # a bare .onnx file describes itself (labels, window) through its metadata
    assert b.name == "onnx" and b.labels == LABELS
    assert resolve_backend(h10) == "onnx-winograd"
    assert resolve_backend(f) == "onnx"
    assert resolve_backend(h10, device="cuda") == "torch"
    with pytest.raises(HarnetError, match="CPU only"):
        resolve_backend(h10, "onnx", device="cuda")
    with pytest.raises(HarnetError, match="unknown backend"):
        get_backend(h10, backend="tensorrt")
    with pytest.raises(HarnetError, match="ONNX file"):
        get_backend(f, backend="torch")
    assert set(BACKENDS) >= {"auto", "torch", "onnx", "onnx-int8"}


def test_auto_never_picks_int8_even_when_validated(tmp_path):
    """auto never changes results: a validated int8 graph is used only when asked for
    (--precision int8 or --backend onnx-int8); one that failed its check is never loaded."""
    import onnx

    from harnet.backends.onnx_backend import OnnxBackend
    from harnet.onnx.int8 import quantize_int8

    d = make_model_dir(tmp_path / "m", "harnet5", seed=13)
    assert resolve_backend(d) == "onnx-winograd"
    fp32 = get_backend(d, backend="onnx").path
    q = d / "model.int8.onnx"
    quantize_int8(fp32, q, windows(32, 150, seed=14), force=True)

    def mark(passed: bool) -> None:
        m = onnx.load(str(q))
        for e in m.metadata_props:
            if e.key == "harnet_int8_check":
                e.value = json.dumps({**json.loads(e.value), "passed": passed})
        onnx.save(m, str(q))

    mark(False)
    with pytest.raises(ModelError, match="agreement check"):
        OnnxBackend(q, model_dir=d)
    mark(True)
    assert resolve_backend(d) == "onnx-winograd"
    assert get_backend(d).name == "onnx-winograd"
    assert get_backend(d, backend="onnx-int8").path == q  # validated, same weights: used, nothing built
    assert get_backend(d, precision="int8").path == q


def test_stale_onnx_is_reexported(tmp_path):
    a = make_model_dir(tmp_path / "a", "harnet5", seed=15)
    b = make_model_dir(tmp_path / "b", "harnet5", seed=16)
    get_backend(b, backend="onnx")
    (a / "model.onnx").write_bytes((b / "model.onnx").read_bytes())  # other weights' graph
    ob = get_backend(a, backend="onnx", threads=1)
    tb = get_backend(a, backend="torch", threads=1)
    x = windows(3, 150, seed=19)
    assert np.abs(ob.predict_logits(x) - tb.predict_logits(x)).max() <= 1e-4


def test_read_only_dir_exports_into_cache(tmp_path, monkeypatch):
    import os

    d = make_model_dir(tmp_path / "ro", "harnet5", seed=17)
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    b = get_backend(d, backend="onnx", threads=1)
    sha = json.loads((d / "config.json").read_text())["weights_sha256"]
    assert not (d / "model.onnx").exists()
    assert b.path.parts[-2] == sha and b.path.name == "model.onnx" and b.path.is_file()


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_onnx_backend_imports_no_torch(h10, x10, tmp_path):
    get_backend(h10)  # the auto choice's graph (model.winograd.onnx) exists from here on
    np.save(tmp_path / "x.npy", x10[:5])
    r = _run_isolated(f"""
        import sys
        import numpy as np
        from harnet.predictor import get_backend
        b = get_backend({str(h10)!r})
        p = b.predict_proba(np.load({str(tmp_path / 'x.npy')!r}))
        assert b.name == "onnx-winograd", b.name
        assert p.shape == (5, 4), p.shape
        bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not bad, bad
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_onnx_export_works_without_torch(tmp_path):
    d = make_model_dir(tmp_path / "m", "harnet5", seed=18)
    r = _run_isolated(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import numpy as np
        from harnet.predictor import get_backend
        x = np.zeros((2, 3, 150), np.float32)
        x[:, 2] = 1.0
        for name in ("onnx", "auto"):
            b = get_backend({str(d)!r}, backend=name)
            print(b.name, b.predict_proba(x).shape)
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[:2] == ["onnx (2, 4)", "onnx-winograd (2, 4)"]
    assert (d / "model.onnx").is_file() and (d / "model.winograd.onnx").is_file()


@pytest.mark.slow
def test_inference_benchmark_runs(tmp_path):
    from conftest import ROOT

    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "inference.py"), "--quick", "--arch", "harnet10", "--synthetic",
         "--no-int8", "--n-windows", "8", "--rounds", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["matmul_peak_gflops"] > 0
    rows = res["results"]["harnet10"]
    assert {k.split(" [")[0] for k in rows} >= {"(a) baseline: torch eager fp32", "(b) harnet torch backend",
                                               "(c) harnet onnx fp32 (direct convolutions)",
                                               "(d) harnet onnx fp32 Winograd F(4,5)"}
    for row in rows.values():
        assert row["windows_per_s"] > 0 and row["label_agreement"] == 1.0 and row["max_prob_diff"] < 1e-3
    assert "[predict default]" in r.stdout
    assert "one session, intra-op thread pool" in r.stdout  # the old threading mode stays measured


def test_profile_benchmark_accounts_for_the_time():
    """bench/profile_onnx.py: shares add up and the arithmetic FLOPs are the network's."""
    import re

    from conftest import ROOT

    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "profile_onnx.py"), "--arch", "harnet10", "--batch", "4", "--runs", "1", "--quick"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    shares = [float(v) for v in re.findall(r"^\s+\S+\s+([\d.]+)%$", r.stdout.split("the arithmetic")[0], re.M)]
    assert 95.0 <= sum(shares) <= 100.1  # types under 0.2 % are not printed
    parts = dict(re.findall(r"^\s+(direct convolutions|winograd GEMM|everything else)\s+([\d.]+)% of the time", r.stdout, re.M))
    assert abs(sum(map(float, parts.values())) - 100.0) < 0.3
    # harnet10: direct convs 3->64 and 64->64 x4 at T=300, 64->128 at T=150; Winograd = the rest / 2.5
    assert "62.0 MFLOP/window" in r.stdout and "204.9 MFLOP/window" in r.stdout
    assert re.search(r"ceiling if everything else took no time: \d+ w/s per core = [\d.]+x", r.stdout)


def test_onnx_parallel_requests_matches_one_session(h10, x10):
    """Concurrent single-thread runs (the multi-core default) give the same windows, in order."""
    import threading

    from harnet.backends.onnx_backend import OnnxBackend, softmax
    from harnet.onnx.export import ensure_onnx

    before = threading.active_count()
    graph = ensure_onnx(h10, "winograd")
    req = OnnxBackend(graph, model_dir=h10, threads=2, batch_size=10)
    assert req.parallel == "requests" and threading.active_count() == before  # no threads until used
    intra = OnnxBackend(graph, model_dir=h10, threads=2, batch_size=10, parallel="intra")
    one = OnnxBackend(graph, model_dir=h10, threads=1)
    assert (intra.parallel, one.parallel) == ("intra", "intra")
    x = np.concatenate([x10, x10[::-1][:3]])  # 67 windows: parts of 5, the last one short
    ref = np.concatenate([one.predict_logits(x[i : i + 1]) for i in range(len(x))])  # one window at a time
    for b in (req, intra, one):
        got = b.predict_logits(x)
        assert got.shape == (67, 4)
        # batch composition changes GEMM blocking, so rounding: logits reach ~30 here
        assert np.abs(got - ref).max() <= 1e-4
        assert (got.argmax(1) == ref.argmax(1)).all()
        assert np.abs(b.predict_proba(x) - softmax(ref)).max() <= 1e-5
    assert np.abs(req.predict_logits(x[:1]) - ref[:1]).max() <= 1e-4
    assert req.predict_logits(x[:0]).shape == (0, 4)
    req.close()
    assert threading.active_count() == before
    with pytest.raises(ValueError, match="parallel"):
        OnnxBackend(graph, parallel="processes")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_onnx_parallel_backend_works_in_a_forked_child(h10, x10):
    """A backend used before a fork (multiprocessing's default on Linux) still runs in the child:
    the child makes its own worker threads instead of waiting on the parent's, which it lacks."""
    import os

    from harnet.backends.onnx_backend import OnnxBackend
    from harnet.onnx.export import ensure_onnx

    b = OnnxBackend(ensure_onnx(h10, "winograd"), model_dir=h10, threads=2, batch_size=8)
    ref = b.predict_logits(x10[:16])  # the parent's pool now exists
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: answer within the timeout or be killed
        try:
            os.close(r)
            import signal

            signal.alarm(60)
            ok = np.abs(b.predict_logits(x10[:16]) - ref).max() <= 1e-4
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    try:
        got = os.read(r, 1)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert got == b"1"
