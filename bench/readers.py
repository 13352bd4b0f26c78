"""Device-file reading speed: harnet's own readers against actipy (Java), side by side in one run.

    python bench/readers.py                 # real files + generated 6-h GENEActiv and 12-h GT3X
    python bench/readers.py --hours 24 --rounds 7 --json out.json
    python bench/readers.py --quick         # real files and 1-h generated files, 3 rounds

For every file it reads the same bytes with ``read_device(path)`` (harnet's reader: GT3X
``harnet.io.gt3x``, GENEActiv ``harnet.io.geneactiv``) and with ``read_device(path,
reader="actipy")`` (actipy's Java reader, every processing step off; the time includes starting
the JVM, which actipy does on every read, and moving its output back into Python). Readers and
files run interleaved over several rounds; min and median per reader are reported with the
ratio actipy / harnet (> 1: harnet is faster). Both readings are also checked to hold the same
number of samples. Inputs: the real .gt3x/.bin files in ../shared/data (when present) and files
generated here (a GENEActiv .bin and a GT3X v2 of ``--hours`` / 2 and ``--hours`` hours, written
by tests/_devicefiles.py). CPU model and load average are printed: on a shared machine the
figures are noisy, compare the ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "devices"
sys.path.insert(0, str(ROOT / "tests"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def generated(d: Path, hours: float) -> list[Path]:
    from _devicefiles import moving_xyz, write_geneactiv, write_gt3x

    g_hours = max(hours / 2, 0.05)
    n = int(g_hours * 3600 * 100) // 300 * 300
    gene = write_geneactiv(d / f"generated-{g_hours:g}h-100Hz.bin", "2024-03-01 10:00:00", moving_xyz(n, 100), 100.0)
    secs = int(hours * 3600)
    fs = 100
    gt3x = d / f"generated-{hours:g}h-100Hz.gt3x"
    # whole hours of the same signal (the file's size and structure are what matter here)
    hour = moving_xyz(fs * min(secs, 3600), fs)
    reps = max(secs // min(secs, 3600), 1)
    import numpy as np

    write_gt3x(gt3x, "2024-03-01 10:00:00", np.concatenate([hour] * reps), fs, idle=[(600, 900)])
    return [gene, gt3x]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=12.0, help="length of the generated GT3X (the GENEActiv gets half)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="1-h generated files, 3 rounds")
    ap.add_argument("--no-actipy", action="store_true", help="time harnet's readers only")
    ap.add_argument("--json", type=Path, help="write the figures here")
    a = ap.parse_args(argv)
    if a.quick:
        a.hours, a.rounds = 1.0, 3
    from harnet.io import read_device
    from harnet.io.actipy_reader import java_available

    use_actipy = not a.no_actipy and java_available()
    real = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".gt3x", ".bin")) if SHARED.exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = real + generated(Path(tmp), a.hours)
        print(f"# generated inputs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        readers = {"harnet": {}, **({"actipy": {"reader": "actipy"}} if use_actipy else {})}
        times: dict[tuple[str, str], list[float]] = {}
        counts: dict[tuple[str, str], int] = {}
        for r in range(a.rounds):
            for f in files:
                order = list(readers) if r % 2 == 0 else list(reversed(readers))
                for name in order:
                    gc.collect()
                    t = time.perf_counter()
                    rec = read_device(f, **readers[name])
                    el = time.perf_counter() - t
                    times.setdefault((f.name, name), []).append(el)
                    counts[(f.name, name)] = len(rec)
                    del rec
        print(f"# CPU: {cpu_model()} ({os.cpu_count()} logical); load average {load()} (after the run); "
              f"python {platform.python_version()}; {a.rounds} rounds, interleaved")
        print("# actipy times include starting the JVM (actipy does so on every read)" if use_actipy else
              "# actipy not timed (--no-actipy or no Java runtime)")
        head = f"{'file':44} {'MB':>6} {'samples':>10} {'harnet min':>10} {'median':>8}"
        if use_actipy:
            head += f" {'actipy min':>10} {'median':>8} {'ratio':>6} {'same n':>6}"
        print(head)
        rows = []
        for f in files:
            own = times[(f.name, "harnet")]
            row = {"file": f.name, "MB": round(f.stat().st_size / 1e6, 1), "samples": counts[(f.name, "harnet")],
                   "harnet_min_s": min(own), "harnet_median_s": statistics.median(own)}
            line = (f"{f.name[:44]:44} {row['MB']:6.1f} {row['samples']:10d} {min(own):10.3f} "
                    f"{statistics.median(own):8.3f}")
            if use_actipy:
                act = times[(f.name, "actipy")]
                row.update(actipy_min_s=min(act), actipy_median_s=statistics.median(act),
                           ratio_min=min(act) / min(own), same_n=counts[(f.name, "actipy")] == row["samples"])
                line += f" {min(act):10.3f} {statistics.median(act):8.3f} {row['ratio_min']:6.1f} {str(row['same_n']):>6}"
            rows.append(row)
            print(line)
        if a.json:
            a.json.write_text(json.dumps({"cpu": cpu_model(), "load": load(), "rounds": a.rounds, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
