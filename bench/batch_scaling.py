"""Batch throughput with 1 and 2 (or more) local workers on generated day-long recordings.

    python bench/batch_scaling.py --files 4 --hours 24 --fs 50 --backend onnx

Generates N CWA recordings (a day of wrist-like movement: night-time stillness, day-time
bouts), a harnet30 classifier with random weights (inference cost is the same as a trained
one), then runs ``harnet.batch.process_batch`` over the same files into fresh folders with each
worker count, one inference thread per worker by default (so each worker adds one core).
Prints files/hour, windows/s, the speed-up over one worker, the scaling efficiency
(speed-up / workers), the mean seconds per file inside the workers (it stays flat when the
extra workers found free cores) and the load average before each run; and checks that every
worker count wrote identical summaries. On a machine shared with other work the efficiency
says more about the neighbours than about harnet: read it with the load column.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_day(path: Path, seed: int, hours: float, fs: float) -> Path:
    """A recording starting at 09:00: still 23:00-07:00 (lying), bouts of movement by day."""
    from harnet.io import write_cwa

    rng = np.random.default_rng(seed)
    n = int(hours * 3600 * fs)
    t = np.arange(n, dtype=np.float64) / fs
    hour = (9 + t / 3600) % 24
    night = (hour >= 23) | (hour < 7)
    xyz = np.zeros((n, 3), np.float32)
    xyz[:, 2] = np.where(night, 0.0, 1.0)
    xyz[:, 0] = np.where(night, 1.0, 0.0)
    # day-time bouts: 10-min blocks of a random intensity and cadence
    block = (t // 600).astype(np.int64)
    nb = int(block.max()) + 1
    amp = rng.choice([0.02, 0.1, 0.3, 0.8], nb, p=[0.4, 0.3, 0.2, 0.1])[block]
    freq = rng.uniform(0.5, 2.5, nb)[block]
    move = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    xyz[~night, 0] += move[~night]
    xyz[~night, 1] += 0.5 * move[~night]
    xyz += rng.standard_normal((n, 3)).astype(np.float32) * np.float32(0.01)
    return write_cwa(path, "2024-03-04T09:00:00", xyz, fs=fs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--fs", type=float, default=50.0, help="sample rate of the generated CWA recordings (Hz: 25, 50, 100...)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1, help="inference threads per worker")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--arch", default="harnet30")
    ap.add_argument("--workdir", default=None, help="keep the files here (default: a temporary folder)")
    args = ap.parse_args()

    from harnet.batch import process_batch
    from harnet.model import build
    from harnet.modeldir import read_config, save_model_dir
    from harnet.pipeline import PredictOptions

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="harnet-batch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    if not (model / "config.json").is_file():
        import torch

        torch.manual_seed(0)
        save_model_dir(build(args.arch, labels=("light", "moderate-vigorous", "sedentary", "sleep")).eval(), model,
                       provenance={"source": "bench (random weights)"})
    window_sec = int(read_config(model)["window_sec"])
    if args.backend.startswith("onnx"):
        from harnet.onnx.export import ensure_onnx

        ensure_onnx(model)  # export before timing
    t0 = time.perf_counter()
    files = []
    for i in range(args.files):
        p = work / "data" / f"D{i:02d}.cwa"
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.is_file():
            make_day(p, i, args.hours, args.fs)
        files.append(p)
    print(f"data: {args.files} x {args.hours:g} h at {args.fs:g} Hz ({sum(f.stat().st_size for f in files) / 1e6:.0f} MB), "
          f"made in {time.perf_counter() - t0:.0f} s; model {args.arch}, backend {args.backend}, "
          f"{args.threads} thread(s) per worker, {len(os.sched_getaffinity(0))} CPUs", flush=True)
    opts = PredictOptions(model=str(model), backend=args.backend, threads=args.threads)
    n_windows = args.files * args.hours * 3600 / window_sec

    rows = []
    summaries = {}
    for w in args.workers:
        out = work / f"out-w{w}"
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        t = time.perf_counter()
        rep = process_batch(files, out, opts, workers=w)
        sec = time.perf_counter() - t
        if rep.failures:
            sys.exit(f"failures with {w} workers: {[f.reason for f in rep.failures]}")
        summaries[w] = {p.parent.name: p.read_bytes() for p in sorted(out.glob("*/summary.csv"))}
        # per-file seconds inside the workers: if they grow with the worker count, the CPUs were not free
        per_file = float(np.mean([json.loads(p.read_text())["seconds"] for p in out.glob("*/run.json")]))
        rows.append((w, rep.threads, sec, per_file, load))
        print(f"  {w} worker(s): {sec:.1f} s (load average before: {load:.1f})", flush=True)

    w0, _, t_first = rows[0][:3]  # speed-up and efficiency relative to the first worker count (1 by default)
    print(f"\n{'workers':>7} {'threads':>7} {'seconds':>8} {'files/h':>8} {'windows/s':>9} {'speed-up':>8} "
          f"{'efficiency':>10} {'s/file':>7} {'load':>5}")
    for w, th, sec, per_file, load in rows:
        speed = t_first / sec
        print(f"{w:>7} {th:>7} {sec:>8.1f} {args.files / sec * 3600:>8.1f} {n_windows / sec:>9.0f} {speed:>8.2f} "
              f"{speed * w0 / w:>10.2f} {per_file:>7.1f} {load:>5.1f}")
    same = all(s == summaries[rows[0][0]] for s in summaries.values())
    print(f"\nsummaries identical across worker counts: {same}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
