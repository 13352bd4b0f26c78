"""Where the time goes in harnet's Winograd ONNX graph, and how far it is from the hardware.

    python bench/profile_onnx.py --model DIR            # a harnet model directory
    python bench/profile_onnx.py --arch harnet10        # a random-init proxy (same cost)

Runs the fp32 Winograd graph (the `auto` CPU path) single-threaded under ONNX Runtime's
profiler, on one core (so the figures do not depend on thread-pool behaviour or neighbours),
and prints:

- the share of operator time by operator type;
- the two parts that do the arithmetic, with their FLOPs per window and achieved GFLOP/s: the
  direct convolutions of layers with fewer than 128 input channels (the first stage and the
  first convolution of the second) and the Winograd GEMMs of the others (2.5x fewer
  multiplications than the direct 5-tap convolutions they replace);
- the single-thread fp32 matrix-multiply peak measured in the same run;
- the ceiling: windows/s per core if every other operator (Winograd transforms, circular
  padding, ReLU, residual adds, layout reorders) took no time at all, as a multiple of the
  single-thread eager PyTorch baseline measured in the same run.

That ceiling is what limits any fp32 ONNX graph of this network on this CPU (docs/performance.md,
"Limits").
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from inference import WINDOW  # noqa: E402 (bench/ is on sys.path above)


def conv_flops(arch: str) -> tuple[float, float]:
    """(first-stage direct conv FLOPs, Winograd GEMM FLOPs) per window, from the network itself."""
    import torch

    from harnet.model import build

    m = build(arch, labels=("a", "b")).eval()
    rows: list[tuple[str, int, int, int, int]] = []
    hooks = []
    for name, mod in m.named_modules():
        if isinstance(mod, torch.nn.Conv1d) and mod.groups == 1:
            hooks.append(mod.register_forward_hook(
                lambda mod, i, o, n=name: rows.append((n, mod.in_channels, mod.out_channels, mod.kernel_size[0], o.shape[-1]))))
    with torch.no_grad():
        m(torch.zeros(1, 3, WINDOW[arch] * 30))
    for h in hooks:
        h.remove()
    first = sum(2 * ci * co * k * t for n, ci, co, k, t in rows if ci < 128)  # emitted as direct convolutions (min_channels)
    wino = sum(2 * ci * co * k * t for n, ci, co, k, t in rows if ci >= 128) / 2.5  # F(4,5): 8 products per 4 outputs, not 20
    return first, wino


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="harnet model directory (default: random-init proxy)")
    ap.add_argument("--arch", default="harnet30", choices=list(WINDOW))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="a smoke run (small GEMM peak, one baseline round)")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from harnet.onnx.export import export_onnx
    from harnet.modeldir import load_model_dir, read_config
    from inference import matmul_peak, proxy_model_dir

    with tempfile.TemporaryDirectory(prefix="harnet-prof-") as tmp:
        model_dir = args.model
        if model_dir is None:
            model_dir = proxy_model_dir(args.arch, Path(tmp) / "proxy")
        arch = read_config(model_dir)["arch"]
        T = WINDOW[arch] * 30
        graph = export_onnx(model_dir, Path(tmp) / "w.onnx", algorithm="winograd", compare_torch=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "prof")
        s = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((args.batch, 3, T)).astype(np.float32)
        name = s.get_inputs()[0].name
        for _ in range(2):
            s.run(None, {name: x})
        t = time.perf_counter()
        for _ in range(args.runs):
            s.run(None, {name: x})
        ort_ws = args.batch * args.runs / (time.perf_counter() - t)
        events = json.loads(Path(s.end_profiling()).read_text())

        # the baseline of bench/inference.py (eager PyTorch fp32, batch 256), on one thread
        from harnet.backends.torch_backend import num_threads

        net = load_model_dir(model_dir).eval()
        xt = torch.from_numpy(np.resize(x, (256, 3, T)))
        with torch.no_grad(), num_threads(1):
            net(xt[:32])
            best = 0.0
            for _ in range(1 if args.quick else 3):
                t = time.perf_counter()
                net(xt)
                best = max(best, 256 / (time.perf_counter() - t))
            torch_ws = best
        peak = max(matmul_peak(1, n=n, reps=4) for n in ((512,) if args.quick else (2048, 3072)))

    by_op: collections.Counter[str] = collections.Counter()
    part: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op, d = e["args"].get("op_name", "?"), float(e["dur"])
        by_op[op] += d
        nm = e["name"]
        if op == "FusedMatMul" or (op == "MatMul" and ".Y" in nm and ".O" not in nm):
            part["winograd GEMM"] += d
        elif op == "Conv" and ".V_" not in nm and ".down_" not in nm:  # not a Winograd transform or anti-alias filter
            part["direct convolutions"] += d
        else:
            part["other"] += d
    total = sum(by_op.values())
    per_window_s = 1.0 / ort_ws
    first, wino = conv_flops(arch)
    print(f"# {arch}, 1 thread: ONNX Winograd (batch {args.batch}) {ort_ws:.1f} w/s, eager PyTorch (batch 256) {torch_ws:.1f} w/s "
          f"({ort_ws / torch_ws:.2f}x); fp32 GEMM peak, 1 thread: {peak:.1f} GFLOP/s")
    print("\nshare of operator time by type")
    for op, d in by_op.most_common():
        if d / total >= 0.002:
            print(f"  {op:24s} {d / total:6.1%}")
    print("\nthe arithmetic")
    rows = (("direct convolutions", first), ("winograd GEMM", wino))
    busy = 0.0
    for label, fl in rows:
        sec = part[label] / total * per_window_s
        busy += sec
        print(f"  {label:24s} {part[label] / total:6.1%} of the time, {fl / 1e6:6.1f} MFLOP/window, "
              f"{fl / sec / 1e9:6.1f} GFLOP/s = {fl / sec / 1e9 / peak:5.0%} of the measured GEMM peak")
    print(f"  {'everything else':24s} {part['other'] / total:6.1%} of the time")
    ceiling = 1.0 / busy
    print(f"\nceiling if everything else took no time: {ceiling:.0f} w/s per core = {ceiling / torch_ws:.2f}x the "
          f"single-thread eager PyTorch baseline (now {ort_ws / torch_ws:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
