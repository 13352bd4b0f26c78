"""Week-long benchmark: `harnet predict` on a generated 7-day, 100 Hz Axivity file.

Generates the file once (about 60 million samples; cached in bench/out/), runs `harnet predict`
in a child process, and prints the wall time of each stage (from info.json), the end-to-end wall
time and the child's peak RSS.

    python bench/predict_week.py                       # default model: fetched from its registry sources
                                                       # in order (GitHub, then the asleep 0.5.0 sdist on
                                                       # the package index; same sha256) and converted
    python bench/predict_week.py --model DIR           # a converted model directory
    python bench/predict_week.py --compare-backend onnx --compare-backend torch
                                                       # then run it again with another backend and
                                                       # compare labels, probabilities, daily hours

Targets (issue: predict): peak RSS < 3 GB; non-inference stages together < 60 s; end to end
< 150 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
DAY = (("rest", 8.0), ("sit", 4.0), ("walk", 1.0), ("sit", 4.0), ("walk", 1.0), ("sit", 4.0), ("offwrist", 2.0))


def make_week(path: Path, days: int) -> Path:
    if path.is_file():
        return path
    from harnet.synth import write_scripted_cwa

    t = time.perf_counter()
    write_scripted_cwa(path, "2024-01-01 00:00:00", DAY, fs=100, days=days)
    print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="harnet30-c24-walmsley")
    ap.add_argument("--asleep-sdist", action="store_true",
                    help="kept for old command lines: the default --model is already the default model's weights, "
                    "which harnet fetches from every registry source in order (the asleep 0.5.0 sdist on the "
                    "package index among them) and converts")
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compare-backend", action="append", default=[],
                    help="also run with this backend (repeatable) and compare its outputs with the first run's")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8"], help="harnet predict --precision")
    ap.add_argument("--compare-precision", action="append", default=[], choices=["int8"],
                    help="also run with --precision int8 and compare (speed, labels, daily hours; bench/precision.py: more)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    cwa = make_week(OUT / f"week{args.days}.cwa", args.days)
    model = args.model
    out = OUT / "week-summary.csv"
    cmd = ["harnet", "predict", str(cwa), "--model", model, "--out", str(out), "--backend", args.backend, "-q"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += ["--precision", args.precision] if args.precision != "fp32" else []
    print("$", " ".join(cmd))
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t
    rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024  # kB on Linux
    info = json.loads(out.with_name("week-summary-info.json").read_text())
    st = info["StageSeconds"]
    n = info.get("ValidWindows")
    print(f"\nrecording: {info['reader']['NumSamples']:,} samples, {info['HasDataWindows']:,} windows, {n:,} classified "
          f"(backend {info['model']['backend']}, cores {os.cpu_count()})")
    print(f"{'stage':<12}{'seconds':>10}")
    for k in ("read", "preprocess", "windows", "inference", "hmm", "summary", "measures"):
        print(f"{k:<12}{st.get(k, 0.0):>10.1f}")
    non_inf = sum(v for k, v in st.items() if k != "inference")
    print(f"{'non-infer.':<12}{non_inf:>10.1f}   (target < 60 s)")
    print(f"{'end to end':<12}{wall:>10.1f}   (target < 150 s; includes start-up and writing)")
    print(f"inference: {n / max(st.get('inference', 1e-9), 1e-9):.0f} windows/s")
    print(f"peak RSS:   {rss_gb:.2f} GB   (target < 3 GB)")
    for other in args.compare_backend + [f"precision-{p}" for p in args.compare_precision]:
        compare(cmd, out, other, info["model"]["backend"])


def compare(cmd: list[str], out: Path, other: str, name: str) -> None:
    """Run the same command with backend `other` and compare window labels and daily hours."""
    import numpy as np
    import pandas as pd

    out2 = out.with_name(f"week-compare-{other}.csv")
    cmd2 = [c if c != str(out) else str(out2) for c in cmd]
    if other.startswith("precision-"):
        cmd2 += ["--precision", other.split("-", 1)[1]]
    else:
        cmd2[cmd2.index("--backend") + 1] = other
    print("\n$", " ".join(cmd2))
    t = time.perf_counter()
    subprocess.run(cmd2, check=True)
    wall = time.perf_counter() - t
    info2 = json.loads(out2.with_name(f"week-compare-{other}-info.json").read_text())
    b2 = info2["model"]["backend"]
    print(f"{b2}: inference {info2['ValidWindows'] / max(info2['StageSeconds'].get('inference', 1e-9), 1e-9):.0f} windows/s")
    a = pd.read_parquet(out.with_name("week-summary-timeseries.parquet"))
    b = pd.read_parquet(out2.with_name(f"week-compare-{other}-timeseries.parquet"))
    worn = a["wear"].to_numpy()
    assert len(a) == len(b) and (b["wear"].to_numpy() == worn).all()
    probs = [c for c in a.columns if c.startswith("prob_")]
    print(f"{b2}: end to end {wall:.1f} s; {name} vs {b2} on {int(worn.sum()):,} worn windows:")
    for col in ("label_raw", "label"):
        same = (a[col].astype(object).fillna("-") == b[col].astype(object).fillna("-")).to_numpy()
        print(f"  {col:<10} agreement {same[worn].mean():.4%} ({int((~same[worn]).sum())} windows differ)")
    d = np.abs(a[probs].to_numpy()[worn] - b[probs].to_numpy()[worn]).max()
    print(f"  max |probability difference| {d:.1e}")
    da, db = pd.read_csv(out), pd.read_csv(out2)
    hours = [c for c in da.columns if c.endswith("(hours)")]
    print(f"  daily summary: largest difference in any (hours) column {np.abs(da[hours].to_numpy() - db[hours].to_numpy()).max():.2e} h")


if __name__ == "__main__":
    main()
