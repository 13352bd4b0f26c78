"""Inference speed of harnet's backends against plain PyTorch, side by side in one run.

    python bench/inference.py                       # harnet10 and harnet30, ~4 min on 2 quiet cores
    python bench/inference.py --model DIR10 --model DIR30 --json out.json   # your own model directories
    python bench/inference.py --quick               # fewer windows and paths, ~1 min

For each architecture, on the same machine and the same input windows, it times:

(a) the baseline: the network in eager PyTorch fp32, batch 256, default threads, exactly as a
    ``torch.hub.load`` user runs it (``model.eval()``; ``with torch.no_grad(): model(x)``);
(b) harnet's torch backend; (c) harnet's ONNX backend fp32 (what ``harnet predict`` uses by
    default); and (d) the other levers tried (batch size, threads, graph optimisation, graph layout,
    int8), each as windows/s, ratio to (a), achieved GFLOP/s and share of the machine's fp32
    matrix-multiply peak (measured in the same run), label agreement and max |prob diff| vs (a).

Paths run interleaved, several rounds; each path's best round is reported (robust to other
load on a shared machine). Inputs: real recordings from ``../shared/data`` (device files and
the HAPT raw accelerometer set, cut into the model's windows) when present, else synthetic
windows (then agreement figures say little). Model: ``--model DIR`` (a harnet model
directory); else a randomly initialised network with non-trivial batch-norm statistics, a
weaker proxy for agreement (printed in the header).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MFLOP = {"harnet5": 234.5, "harnet10": 575.5, "harnet30": 923.7}  # per window (reference.md)
WINDOW = {"harnet5": 5, "harnet10": 10, "harnet30": 30}


# ----------------------------------------------------------------------------------------------
# inputs


def _read_device(path: Path) -> Any:
    from harnet.io.recording import Recording

    try:
        from harnet.io import read_device  # type: ignore[attr-defined]
    except ImportError:  # the reader module may not be there yet: actipy as a stand-in
        import actipy

        data, _ = actipy.read_device(str(path), lowpass_hz=None, calibrate_gravity=False,
                                     detect_nonwear=False, resample_hz=None, verbose=False)
        return Recording(data.index.to_numpy(), data[["x", "y", "z"]].to_numpy(np.float32))
    return read_device(path)


def _windows(rec: Any, window_sec: int) -> np.ndarray:
    from harnet.signal.windows import iter_chunks

    parts = [ch.X[ch.valid] for ch in iter_chunks(rec, window_sec=window_sec, lowpass_hz=20.0)]
    return np.concatenate(parts) if parts else np.empty((0, 3, window_sec * 30), np.float32)


def real_recordings(window_sec: int) -> tuple[dict[str, np.ndarray], str]:
    """{recording name: valid windows (N, 3, T)} from ../shared/data, and a description."""
    from harnet.io.recording import Recording

    recs: dict[str, np.ndarray] = {}
    dev = SHARED_DATA / "devices"
    if dev.is_dir():
        for p in sorted(dev.glob("*/*")):
            if p.suffix.lower() not in (".cwa", ".gt3x", ".bin"):
                continue
            try:
                X = _windows(_read_device(p), window_sec)
            except Exception as e:  # a reader that is not ready must not stop the benchmark
                print(f"  (skipped {p.name}: {type(e).__name__}: {str(e)[:80]})", file=sys.stderr)
                continue
            if len(X):
                recs["device:" + p.name] = X
    hapt = SHARED_DATA / "labelled" / "hapt_uci_raw_50hz.parquet"
    if hapt.is_file():
        import pandas as pd

        df = pd.read_parquet(hapt, columns=["user", "recording", "acc_x", "acc_y", "acc_z"])
        t0 = np.datetime64("2020-01-01T00:00:00", "ns")
        for (u, r), g in df.groupby(["user", "recording"], sort=True):
            t = t0 + (np.arange(len(g), dtype=np.int64) * 20_000_000).astype("timedelta64[ns]")  # 50 Hz
            X = _windows(Recording(t, g[["acc_x", "acc_y", "acc_z"]].to_numpy(np.float32)), window_sec)
            if len(X):
                recs[f"hapt:u{int(u):02d}r{int(r):02d}"] = X
    n = sum(len(v) for v in recs.values())
    return recs, f"real: {len(recs)} recordings, {n} windows ({sum(k.startswith('device') for k in recs)} device files + HAPT)"


def pick(recs: dict[str, np.ndarray], n: int, seed: int = 0) -> np.ndarray:
    X = np.concatenate(list(recs.values()))
    idx = np.random.default_rng(seed).permutation(len(X))[:n]
    return np.ascontiguousarray(X[np.sort(idx)])


def synthetic(n: int, T: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, 3, 1))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    t = np.arange(T) / 30.0
    move = rng.uniform(0, 0.5, (n, 3, 1)) * np.sin(2 * np.pi * rng.uniform(0.5, 3, (n, 1, 1)) * t)
    return (g + move + 0.01 * rng.standard_normal((n, 3, T))).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# models


def proxy_model_dir(arch: str, out: Path, seed: int = 0) -> Path:
    """A random-init network whose BNs carry non-trivial statistics (a weak proxy for real weights)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from _tinymodels import make_model_dir

    return make_model_dir(out, arch, seed=seed)


# ----------------------------------------------------------------------------------------------
# timing


def matmul_peak(threads: int, n: int = 2048, reps: int = 6) -> float:
    """Best fp32 GEMM GFLOP/s (torch, MKL) with ``threads`` threads."""
    import torch

    from harnet.backends.torch_backend import num_threads

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    best = 0.0
    with num_threads(threads):
        a @ b
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            a @ b
            best = max(best, 2 * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


@dataclass
class Path_:
    name: str
    batch: int
    threads: str
    run: Callable[[np.ndarray], np.ndarray]  # windows -> probabilities
    note: str = ""
    best: float = 0.0
    cpu: float = 0.0  # windows per CPU-second of this process, best round
    probs: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def baseline_path(model_dir: Path, threads: int | None = None) -> Path_:
    import torch

    from harnet.backends.torch_backend import num_threads
    from harnet.modeldir import load_model_dir

    model = load_model_dir(model_dir).eval()

    def run(X: np.ndarray) -> np.ndarray:  # what a torch.hub user writes
        out = []
        with num_threads(threads), torch.no_grad():
            for i in range(0, len(X), 256):
                out.append(torch.softmax(model(torch.from_numpy(X[i : i + 256])), 1).numpy())
        return np.concatenate(out)

    if threads:
        return Path_("    baseline at 1 thread (torch eager, batch 256)", 256, str(threads), run)
    return Path_("(a) baseline: torch eager fp32", 256, f"default ({torch.get_num_threads()})", run)


def jit_path(model_dir: Path, batch: int = 64) -> Path_:
    """torch.jit trace + freeze + optimize_for_inference (oneDNN fusions): tried, not kept."""
    import torch

    from harnet.modeldir import load_model_dir

    model = load_model_dir(model_dir).eval()
    ex = torch.zeros(2, 3, model.config.input_length)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        f = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, ex, check_trace=False)))

    def run(X: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([torch.softmax(f(torch.from_numpy(X[i : i + batch])), 1).numpy()
                                   for i in range(0, len(X), batch)])

    return Path_("    torch.jit freeze + optimize_for_inference", batch, f"default ({torch.get_num_threads()})", run)


def backend_path(label: str, model_dir: Path, backend: str, threads: int | None, batch: int | None, **kw: Any) -> Path_:
    from harnet.predictor import get_backend

    if kw:
        from harnet.backends.onnx_backend import OnnxBackend
        from harnet.onnx.export import ensure_onnx

        graph = ensure_onnx(model_dir, kw.pop("algorithm", "direct"))
        b: Any = OnnxBackend(graph, model_dir=model_dir, threads=threads, batch_size=batch, **kw)
    else:
        b = get_backend(model_dir, backend=backend, threads=threads, batch_size=batch)
    th = str(getattr(b, "threads", None) or "default")
    if getattr(b, "parallel", None) == "requests":
        th += " req"  # `threads` single-threaded runs of one session at once (the ONNX default)
    return Path_(label, b.batch_size, th, b.predict_proba)


def onnx_file_path(label: str, path: Path, threads: int, batch: int, level: str = "all", default_session: bool = False) -> Path_:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not default_session:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        }[level]
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name

    def run(X: np.ndarray) -> np.ndarray:
        return softmax(np.concatenate([s.run(None, {name: X[i : i + batch]})[0] for i in range(0, len(X), batch)]))

    return Path_(label, batch, "ORT default" if default_session else str(threads), run)


def time_paths(paths: list[Path_], X: np.ndarray, rounds: int, budget_s: float) -> None:
    for p in paths:  # warm-up (first-call allocations, oneDNN primitive creation)
        p.run(X[: min(len(X), max(p.batch, 8))])
    t_start = time.perf_counter()
    for r in range(rounds):
        for p in paths:
            gc.collect()
            c = time.process_time()
            t = time.perf_counter()
            out = p.run(X)
            dt = time.perf_counter() - t
            p.best = max(p.best, len(X) / dt)
            p.cpu = max(p.cpu, len(X) / max(time.process_time() - c, 1e-9))
            if p.probs is None:
                p.probs = out
        if r >= 1 and time.perf_counter() - t_start > budget_s:
            break


# ----------------------------------------------------------------------------------------------


def bench_arch(arch: str, model_dir: Path | None, args: argparse.Namespace, peak: float, threads: int, tmp: Path) -> list[Path_]:
    from harnet.onnx.export import export_onnx
    from harnet.onnx.int8 import agreement, passes, quantize_int8
    from harnet.modeldir import read_config

    w = WINDOW[arch]
    T = w * 30
    if model_dir is None:
        model_dir = proxy_model_dir(arch, tmp / f"proxy-{arch}")
        model_desc = "random-init proxy with non-trivial BN statistics (agreement figures are weak evidence)"
    else:
        cfg = read_config(model_dir)
        if cfg["arch"] != arch:
            raise SystemExit(f"--model {model_dir} is {cfg['arch']}, not {arch}")
        model_desc = f"{model_dir} ({cfg.get('description') or cfg['arch']})"
        work = tmp / f"model-{arch}"  # a private copy: the benchmark writes model.onnx / int8 files
        work.mkdir()
        for f in ("config.json", "model.safetensors"):
            (work / f).symlink_to(Path(model_dir).resolve() / f)
        model_dir = work
    recs: dict[str, np.ndarray] = {}
    if not args.synthetic:
        recs, data_desc = real_recordings(w)
    n = args.n_windows or (256 if arch != "harnet30" else 128) // (2 if args.quick else 1)
    if recs:
        X = pick(recs, n)
    else:
        X = synthetic(n, T)
        data_desc = "synthetic windows (no ../shared/data): agreement figures say little"
    print(f"\n## {arch}: {len(X)} windows of {w} s; model: {model_desc}\n   inputs: {data_desc}", flush=True)

    fp32 = export_onnx(model_dir)  # model.onnx inside the (private) model dir
    from harnet.predictor import resolve_backend

    auto = resolve_backend(model_dir)
    paths = [baseline_path(model_dir)]
    paths.append(backend_path("(b) harnet torch backend", model_dir, "torch", None, None))
    paths.append(backend_path("(c) harnet onnx fp32 (direct convolutions)", model_dir, "onnx", None, None))
    paths.append(backend_path("(d) harnet onnx fp32 Winograd F(4,5)", model_dir, "onnx-winograd", None, None))
    for p in paths[1:]:
        if p.name.startswith("(d)") and auto == "onnx-winograd" or p.name.startswith("(c)") and auto == "onnx":
            p.name += " [predict default]"
    paths.append(backend_path("    Winograd, one session, intra-op thread pool", model_dir, "", None, None,
                              algorithm="winograd", parallel="intra"))
    if not args.quick:
        paths.append(backend_path("    direct, one session, intra-op thread pool", model_dir, "", None, None,
                                  algorithm="direct", parallel="intra"))
        paths.append(backend_path("    torch backend, batch 256", model_dir, "torch", None, 256))
        paths.append(jit_path(model_dir))
        paths.append(backend_path("    Winograd, batch 16", model_dir, "onnx-winograd", None, 16))
        paths.append(backend_path("    Winograd, batch 128", model_dir, "onnx-winograd", None, 128))
        paths.append(backend_path("    Winograd, batch 256", model_dir, "onnx-winograd", None, 256))
        paths.append(baseline_path(model_dir, threads=1))
        paths.append(backend_path("    Winograd, 1 thread", model_dir, "onnx-winograd", 1, None))
        paths.append(backend_path("    direct, 1 thread", model_dir, "onnx", 1, None))
        paths.append(backend_path("    direct, basic graph opts only (no NCHWc)", model_dir, "onnx", None, None,
                                  optimization="basic"))
        unf = export_onnx(model_dir, tmp / f"{arch}-unfolded.onnx", fold=False)
        paths.append(onnx_file_path("    direct, BNs not folded", unf, threads, 64))
        traced = _torch_onnx_export(model_dir, tmp / f"{arch}-traced.onnx")
        if traced is not None:
            paths.append(onnx_file_path("    torch.onnx 1-D graph, ORT default session", traced, threads, 64,
                                        default_session=True))
    int8_report = None
    if recs and not args.no_int8:
        # static int8, calibrated on HAPT users 1-9, checked on every other recording
        cal_keys = [k for k in recs if k.startswith("hapt:u0")]
        cal = np.concatenate([recs[k] for k in cal_keys])
        cal = cal[np.linspace(0, len(cal) - 1, min(len(cal), 512)).round().astype(int)]
        val = [recs[k] for k in recs if k not in cal_keys]
        cap = 400 if not args.quick else 200  # held-out windows checked (an even spread keeps the run short)
        val = [v[:: max(1, sum(map(len, val)) // cap)] for v in val]
        q = fp32.parent / "model.int8.onnx"
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            int8_report = quantize_int8(fp32, q, cal, validation=val, calibrate_method="minmax", force=True)
        print(f"   int8 calibration + check: {time.perf_counter() - t:.0f} s; on {int(int8_report['windows'])} held-out "
              f"windows: agreement {int8_report['label_agreement']:.2%}, class totals {int8_report['totals_rel_diff']:.1%}"
              f" -> {'PASSES' if passes(int8_report) else 'FAILS'} the 99.5 % / 1 % rule", flush=True)
        paths.append(onnx_file_path("(e) onnx int8 static QDQ (u8s8)" + ("" if passes(int8_report) else " [fails check]"),
                                    q, threads, 64))
    rounds = 2 if args.quick else args.rounds
    time_paths(paths, X, rounds, budget_s=args.budget_s)
    base = paths[0]
    assert base.probs is not None
    print(f"\n   {'path':56s} {'batch':>5s} {'threads':>11s} {'win/s':>7s} {'x(a)':>5s} {'GFLOP/s':>7s} "
          f"{'%peak':>5s} {'w/cpu-s':>7s} {'agree':>7s} {'max|dp|':>8s}")
    for p in paths:
        assert p.probs is not None
        a = agreement([base.probs], [p.probs])
        gf = p.best * MFLOP[arch] / 1000
        print(f"   {p.name:56s} {p.batch:5d} {p.threads:>11s} {p.best:7.1f} {p.best / base.best:5.2f} {gf:7.1f} "
              f"{100 * gf / peak:5.1f} {p.cpu:7.1f} {a['label_agreement']:7.2%} {a['max_prob_diff']:8.1e}", flush=True)
        p.extra = {"ratio": p.best / base.best, "gflops": gf, "windows_per_cpu_s": p.cpu, **a}
    one = {p.name.strip(): p for p in paths if p.threads == "1"}
    b1 = one.get("baseline at 1 thread (torch eager, batch 256)")
    if b1 is not None:
        # single-threaded runs use no spin-waiting thread pool, so windows per CPU-second measure the
        # work itself even on a machine shared with other jobs
        print("   single thread, windows per CPU-second relative to torch eager: " + ", ".join(
            f"{k.replace(', 1 thread', '')} {p.cpu / b1.cpu:.2f}x" for k, p in one.items() if p is not b1))
    return paths


def _torch_onnx_export(model_dir: Path, out: Path) -> Path | None:
    """The graph torch.onnx gives (1-D convs, circular pads as Slice+Concat), for comparison."""
    import torch

    from harnet.modeldir import load_model_dir

    m = load_model_dir(model_dir)
    x = torch.zeros(2, 3, m.config.input_length)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, (x,), str(out), input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    except Exception as e:  # the legacy exporter may be gone in a future torch
        print(f"   (torch.onnx export unavailable: {type(e).__name__})", file=sys.stderr)
        return None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=["harnet10", "harnet30", "both"], default="both")
    ap.add_argument("--model", action="append", default=[], type=Path,
                    help="harnet model directory (repeat for one per architecture); default: a random-init proxy")
    ap.add_argument("--n-windows", type=int, default=None,
                    help="windows timed per path and round (default 256 for harnet10, 128 for harnet30; quick: half)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=60.0, help="stop adding rounds after this long per architecture")
    ap.add_argument("--quick", action="store_true", help="fewer windows and only the main paths")
    ap.add_argument("--no-int8", action="store_true", help="skip int8 calibration and timing")
    ap.add_argument("--synthetic", action="store_true", help="use synthetic windows even if real data are present")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)
    import torch

    from harnet.backends.onnx_backend import default_threads

    threads = default_threads()
    archs = ["harnet10", "harnet30"] if args.arch == "both" else [args.arch]
    models: dict[str, Path] = {}
    from harnet.modeldir import read_config

    for d in args.model:
        models[read_config(d)["arch"]] = d
    import onnxruntime as ort

    from harnet import __version__

    peak = matmul_peak(threads, n=1024 if args.quick else 2048, reps=3 if args.quick else 6)
    print(f"# harnet {__version__} inference benchmark; torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
          f"onnxruntime {ort.__version__}, {threads} CPUs, torch default threads {torch.get_num_threads()}")
    nmm = 1024 if args.quick else 2048
    print(f"# fp32 matrix-multiply peak (torch {nmm}x{nmm}, {threads} threads): {peak:.1f} GFLOP/s "
          f"-> fp32 ceilings: harnet10 {peak * 1000 / MFLOP['harnet10']:.0f} w/s, harnet30 {peak * 1000 / MFLOP['harnet30']:.0f} w/s")
    results = {}
    with tempfile.TemporaryDirectory(prefix="harnet-bench-") as tmp:
        for arch in archs:
            paths = bench_arch(arch, models.get(arch), args, peak, threads, Path(tmp))
            results[arch] = {p.name.strip(): {"batch": p.batch, "threads": p.threads, "windows_per_s": p.best, **p.extra}
                             for p in paths}
    if args.json:
        args.json.write_text(json.dumps({"matmul_peak_gflops": peak, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HARNET_BENCH", "1")
    sys.exit(main())
