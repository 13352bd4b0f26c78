"""fp32 against int8 (`harnet predict --precision int8`) side by side, in one run.

Prints, for the default fp32 path (auto: the Winograd graph) and the int8 graph of the same
model (made on first use by harnet.precision, calibrated on generated days):

- speed: windows/s of each on the same windows, interleaved rounds, best round each, and the ratio;
- agreement: share of windows whose label after the model's HMM is the same, on recordings
  held out from calibration (every readable device file in ../shared/data/devices, the HAPT
  recordings in ../shared/data/labelled when present, and generated days whose seeds the
  int8 recipe never used), and before the HMM;
- daily class totals: the worst relative difference of a class's time per day (generated days:
  one per recording; the device files and HAPT recordings pooled as one day each set; the
  denominator floored at 1 % of the day's windows, as the agreement rule does);
- the CPU model, its flags that matter (avx2, avx512_vnni, avx_vnni) and the load average.

    python bench/precision.py                     # the default model (fetched and converted as predict does)
    python bench/precision.py --model DIR --days 3 --json out.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "unknown CPU")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    have = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{name} ({os.cpu_count()} CPUs; {', '.join(have) or 'no AVX2'})"


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def held_out(pred, days: int, hours: float, seed0: int) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(set, name, valid windows, valid mask) of each held-out recording."""
    from harnet.io import read_device
    from harnet.predictor import prepared_windows
    from harnet.synth import day_pattern, scripted_recording

    w, prep = pred.window_sec, pred.preprocessing
    out = []
    for p in sorted(glob.glob(str(SHARED / "devices" / "**" / "*"), recursive=True)):
        if not p.endswith((".cwa", ".cwa.gz", ".bin", ".gt3x")):
            continue
        try:
            X, V = prepared_windows(read_device(p), w, prep)
        except Exception as e:  # a file a reader refuses is named, not fatal
            print(f"  (skipped {Path(p).name}: {type(e).__name__}: {e})")
            continue
        if len(X):
            out.append(("device files", Path(p).name, X, V))
    hapt = SHARED / "labelled" / "hapt_uci_raw_50hz.parquet"
    if hapt.is_file():
        import pandas as pd

        from harnet.io.recording import Recording

        df = pd.read_parquet(hapt, columns=["user", "recording", "acc_x", "acc_y", "acc_z"])
        for (u, r), g in df.groupby(["user", "recording"]):
            xyz = g[["acc_x", "acc_y", "acc_z"]].to_numpy(np.float32)
            t = np.datetime64("2024-01-01T10:00:00", "ns") + (np.arange(len(xyz)) * 20_000_000).astype("timedelta64[ns]")
            X, V = prepared_windows(Recording(t, xyz, {"SampleRate": 50.0}), w, prep)
            if len(X):
                out.append(("HAPT (waist, 50 Hz)", f"u{u:02d}r{r:02d}", X, V))
    for s in range(seed0, seed0 + days):
        rec = scripted_recording(day_pattern(s, hours), fs=100.0, seed=s)
        X, V = prepared_windows(rec, w, prep)
        out.append(("generated days", f"seed {s}", X, V))
    return out


def speed(backends: dict, X: np.ndarray, rounds: int) -> dict[str, float]:
    best = {k: 0.0 for k in backends}
    for b in backends.values():
        b.predict_proba(X[:64])  # warm-up
    for _ in range(rounds):
        for k, b in backends.items():
            t = time.perf_counter()
            b.predict_proba(X)
            best[k] = max(best[k], len(X) / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="harnet30-c24-walmsley")
    ap.add_argument("--days", type=int, default=3, help="generated held-out days (seeds from --seed)")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=201, help="first seed of the generated days (the int8 recipe uses 101-105)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--speed-windows", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from harnet.precision import int8_report, label_agreement, smoothed_labels
    from harnet.predictor import Predictor

    print(f"CPU: {cpu()}; load average at start {load()}")
    fp32 = Predictor(args.model, threads=args.threads)
    mdir = fp32.model_dir
    t = time.perf_counter()
    int8 = Predictor(model_dir=mdir, threads=args.threads, precision="int8")
    made = time.perf_counter() - t
    rep = int8_report(int8.backend.path)
    print(f"model {mdir}: fp32 {fp32.backend.name}, int8 {int8.backend.path.name} ready in {made:.0f} s "
          f"({len(rep.get('kept_fp32', []))} of {rep.get('layers', '?')} layers kept in fp32)")
    recs = held_out(fp32, args.days, args.hours, args.seed)
    c = len(fp32.labels)
    by_set: dict[str, dict[str, list]] = {}
    worst_day = 0.0
    for st, name, X, V in recs:
        pa = fp32.backend.predict_proba(X)
        pb = int8.backend.predict_proba(X)
        la, lb = smoothed_labels(pa, V, fp32.hmm), smoothed_labels(pb, V, fp32.hmm)
        s = by_set.setdefault(st, {"a": [], "b": [], "ra": [], "rb": []})
        s["a"].append(la)
        s["b"].append(lb)
        s["ra"].append(pa.argmax(1))
        s["rb"].append(pb.argmax(1))
        if st == "generated days":  # one day each
            worst_day = max(worst_day, label_agreement([la], [lb], c)["totals_rel_diff"])
    rows = {}
    print(f"\n{'held-out set':<22}{'windows':>9}{'labels after HMM':>18}{'before HMM':>12}{'class totals':>14}")
    for st, s in list(by_set.items()) + [("all", {k: sum((v[k] for v in by_set.values()), []) for k in ("a", "b", "ra", "rb")})]:
        h = label_agreement(s["a"], s["b"], c)
        r = label_agreement(s["ra"], s["rb"], c)
        rows[st] = {"windows": int(h["windows"]), "label_agreement_hmm": h["label_agreement"],
                    "label_agreement_raw": r["label_agreement"], "totals_rel_diff_hmm": h["totals_rel_diff"]}
        print(f"{st:<22}{int(h['windows']):>9}{h['label_agreement']:>17.2%} {r['label_agreement']:>11.2%}"
              f"{h['totals_rel_diff']:>13.2%}")
    print(f"worst class total of a generated day (after HMM): {worst_day:.2%} (target <= 1 %)")
    Xs = next(X for st, _, X, _ in recs if st == "generated days")
    Xs = Xs[np.linspace(0, len(Xs) - 1, min(len(Xs), args.speed_windows)).round().astype(int)]
    sp = speed({"fp32": fp32.backend, "int8": int8.backend}, Xs, args.rounds)
    ratio = sp["int8"] / sp["fp32"]
    print(f"\nspeed on {len(Xs)} windows, best of {args.rounds} interleaved rounds, threads {fp32.backend.threads}: "
          f"fp32 {sp['fp32']:.1f} w/s, int8 {sp['int8']:.1f} w/s, ratio {ratio:.2f}x (target >= 1.5x); "
          f"load average at end {load()}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu(), "load_end": load(), "speed": sp, "ratio": ratio, "sets": rows,
                                         "worst_day_totals": worst_day, "int8_check": rep}, indent=1, default=str))


if __name__ == "__main__":
    main()
