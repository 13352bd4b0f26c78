"""Week-long benchmark: `harnet predict` on a generated 7-day (or ``--days 28``), 100 Hz Axivity file.

Generates the file once (about 60 million samples a week; cached in bench/out/; 28 days are four
generated weeks appended one after another), runs `harnet predict` in a child process, and prints
the wall time of each stage (from info.json), the end-to-end wall time, the child's peak RSS, the
CPU and the load average.

    python bench/predict_week.py                       # default model: fetched from its registry sources
                                                       # in order (GitHub, then the asleep 0.5.0 sdist on
                                                       # the package index; same sha256) and converted
    python bench/predict_week.py --model DIR           # a converted model directory
    python bench/predict_week.py --days 28 --stand-in  # the default model's preprocessing and HMM, with a
                                                       # stand-in for the network (no inference cost): the
                                                       # non-inference stages and the memory of the stream
    python bench/predict_week.py --compare-backend onnx --compare-backend torch
                                                       # then run it again with another backend and
                                                       # compare labels, probabilities, daily hours

Targets (issue 15): peak RSS <= 0.8 GB for the week and <= 1.0 GB for 28 days; non-inference
stages of the week <= 6 s on 2 cores (issue: predict: end to end < 150 s on a 2-core machine).
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
    """The scripted recording of ``days`` days at 100 Hz; beyond a week, whole weeks (each made
    like the week, seeds 0, 1, ...) appended one after another (a generated month is never held
    whole in memory)."""
    if path.is_file():
        return path
    import numpy as np

    from harnet.io.cwa_writer import write_cwa
    from harnet.synth import scripted_xyz

    t = time.perf_counter()
    tmp = path.with_name(path.name + ".part")
    tmp.unlink(missing_ok=True)
    start = np.datetime64("2024-01-01T00:00:00", "ns")
    done = 0
    while done < days:
        k = min(7, days - done)
        xyz = scripted_xyz(list(DAY) * k, fs=100, seed=done // 7)
        write_cwa(tmp, start + np.timedelta64(done * 86_400, "s"), xyz, fs=100, append=done > 0, session_id=1)
        del xyz
        done += k
    tmp.rename(path)
    print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    return path


class StandIn:
    """A stand-in for the network (labels by movement, no inference cost): ``--stand-in``."""

    name = "stand-in"

    def __init__(self, n: int) -> None:
        self.n = n

    def predict_proba(self, x):
        import numpy as np

        sd = np.linalg.norm(x, axis=1).std(axis=1)
        p = np.full((len(x), self.n), 0.01, dtype=np.float32)
        p[np.arange(len(x)), np.minimum(np.digitize(sd, [0.01, 0.05, 0.2]), self.n - 1)] = 0.9
        return p


def child_stand_in(cwa: str, model: str, out: str, runs: int = 1) -> None:
    """In the child: read, predict (stand-in network) and write, as `harnet predict` does;
    ``runs`` times in the same process (the later runs: the one-time imports and numba's start-up
    already done, as for every file after the first in a batch)."""
    from harnet.loading import resolve_model_dir
    from harnet.outputs import output_paths, write_outputs
    from harnet.pipeline import PredictOptions, StageTimer, predict_recording, read_recording
    from harnet.predictor import Predictor

    opts = PredictOptions(model=model)
    mdir = resolve_model_dir(model)
    pred = Predictor(model, model_dir=mdir, backend_obj=StandIn(0))
    pred.backend.n = len(pred.labels)
    all_runs = []
    for _ in range(runs):
        timer = StageTimer()
        t0 = time.perf_counter()
        rec = read_recording(cwa, opts)
        timer.add("read", time.perf_counter() - t0)
        res = predict_recording(rec, opts, predictor=pred, timer=timer)
        del rec
        t1 = time.perf_counter()
        res.info["StageSeconds"] = {}
        write_outputs(res, output_paths(out=Path(out)))
        timer.add("write", time.perf_counter() - t1)
        all_runs.append({k: round(v, 3) for k, v in timer.times.items()})
        del res
    info_path = Path(out).with_name(Path(out).stem + "-info.json")
    info = json.loads(info_path.read_text())
    info["StageSeconds"] = all_runs[0]
    info["StageSecondsLaterRuns"] = all_runs[1:]
    info_path.write_text(json.dumps(info, indent=1))


def machine() -> str:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = ["?"]
    return f"{cpu}, {os.cpu_count()} cores, load average {' '.join(load)}"


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
    ap.add_argument("--stand-in", action="store_true",
                    help="a stand-in for the network (no inference cost), the model's preprocessing and HMM: measures "
                    "the non-inference stages and the memory")
    ap.add_argument("--child-stand-in", nargs=4, metavar=("CWA", "MODEL", "OUT", "RUNS"), help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=1,
                    help="with --stand-in: process the file this many times in one process and print each run's "
                    "stages (runs after the first: imports and numba's start-up done, as for later files of a batch)")
    ap.add_argument("--compare-backend", action="append", default=[],
                    help="also run with this backend (repeatable) and compare its outputs with the first run's")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8"], help="harnet predict --precision")
    ap.add_argument("--compare-precision", action="append", default=[], choices=["int8"],
                    help="also run with --precision int8 and compare (speed, labels, daily hours; bench/precision.py: more)")
    ap.add_argument("--before", metavar="DIR", default=None,
                    help="with --stand-in: also run a 'before' harnet tree (e.g. `git archive fa39ab7 harnet | tar -x -C DIR`) "
                    "side by side, alternating, and print both trees' non-inference stages and their ratio")
    ap.add_argument("--rounds", type=int, default=2, help="with --before: alternating rounds (each tree once per round)")
    args = ap.parse_args()
    if args.before:
        OUT.mkdir(exist_ok=True)
        before_after(make_week(OUT / f"week{args.days}.cwa", args.days), args)
        return
    if args.child_stand_in:
        cwa, model, out, runs = args.child_stand_in
        child_stand_in(cwa, model, out, int(runs))
        return
    OUT.mkdir(exist_ok=True)
    cwa = make_week(OUT / f"week{args.days}.cwa", args.days)
    model = args.model
    out = OUT / "week-summary.csv"
    cmd = ["harnet", "predict", str(cwa), "--model", model, "--out", str(out), "--backend", args.backend, "-q"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.stand_in:
        cmd = [sys.executable, __file__, "--child-stand-in", str(cwa), model, str(out), str(args.runs)]
    print(f"machine: {machine()}")
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
    for k in ("read", "preprocess", "windows", "inference", "hmm", "summary", "measures", "write"):
        if k in st or k != "write":
            print(f"{k:<12}{st.get(k, 0.0):>10.2f}")
    non_inf = sum(v for k, v in st.items() if k != "inference")
    week = args.days <= 7
    print(f"{'non-infer.':<12}{non_inf:>10.2f}   (target for the week <= 6 s; 'windows' includes pass 2's decoding)")
    print(f"{'end to end':<12}{wall:>10.1f}   (includes start-up and writing)")
    for j, later in enumerate(info.get("StageSecondsLaterRuns", []), 2):
        parts = "  ".join(f"{k} {v:.2f}" for k, v in later.items() if k != "inference")
        print(f"run {j} in the same process: non-inference {sum(v for k, v in later.items() if k != 'inference'):.2f} s ({parts})")
    if not args.stand_in:
        print(f"inference: {n / max(st.get('inference', 1e-9), 1e-9):.0f} windows/s")
    print(f"peak RSS:   {rss_gb:.2f} GB   (target <= {'0.8' if week else '1.0'} GB for {args.days} days)")
    print(f"machine after the run: {machine()}")
    for other in args.compare_backend + [f"precision-{p}" for p in args.compare_precision]:
        compare(cmd, out, other, info["model"]["backend"])


def before_after(cwa: Path, args: argparse.Namespace) -> None:
    """The stand-in run of a 'before' tree (PYTHONPATH=DIR) and of this checkout, alternating;
    each run processes the file ``--runs`` times (default here 2: a cold and a warm run)."""
    import statistics

    runs = max(2, args.runs)
    print(f"machine: {machine()}")
    res: dict[str, list[tuple[float, float, float]]] = {"before": [], "after": []}
    outs = {}
    for r in range(args.rounds):
        for name in ("before", "after"):
            out = OUT / f"ab-{name}.csv"
            env = dict(os.environ)
            if name == "before":
                env["PYTHONPATH"] = str(Path(args.before).resolve())
            cmd = [sys.executable, __file__, "--child-stand-in", str(cwa), args.model, str(out), str(runs)]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            wall = time.perf_counter() - t
            info = json.loads(out.with_name(out.stem + "-info.json").read_text())
            cold = sum(v for k, v in info["StageSeconds"].items() if k != "inference")
            warm = statistics.median(sum(v for k, v in x.items() if k != "inference") for x in info["StageSecondsLaterRuns"])
            res[name].append((cold, warm, wall))
            outs[name] = out
            print(f"round {r + 1} {name:<6}: non-inference cold {cold:6.2f} s, warm {warm:6.2f} s "
                  f"(first run: {', '.join(f'{k} {v:.2f}' for k, v in info['StageSeconds'].items() if k != 'inference')})")
    med = {k: (statistics.median(c for c, _, _ in v), statistics.median(w for _, w, _ in v)) for k, v in res.items()}
    print(f"\nmedian non-inference stages of the week (stand-in network), before -> after:")
    print(f"  cold (first file of a process): {med['before'][0]:.2f} -> {med['after'][0]:.2f} s ({med['before'][0] / med['after'][0]:.2f}x)")
    print(f"  warm (later files of a process): {med['before'][1]:.2f} -> {med['after'][1]:.2f} s ({med['before'][1] / med['after'][1]:.2f}x)")
    same = outs["before"].read_bytes() == outs["after"].read_bytes()
    print(f"  daily summary CSV byte-identical before/after: {same}")
    print(f"machine after the runs: {machine()}")


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
