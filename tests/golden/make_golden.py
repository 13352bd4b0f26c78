"""Golden outputs of `harnet predict`: digests of every output file, to show a refactor changes nothing.

Each case runs `harnet predict` in-process (``harnet_cli.main.main``, the same library calls the
command makes) with a seeded harnet30 classifier made at run time (``tests/_tinymodels.py``, the
same model and HMM as the ``model30_dir`` fixture), torch backend, one thread, and stores:

- the sha256 of the daily CSV, the per-window parquet and info.json (less the run's own facts:
  ``harnet_version``, ``StageSeconds``, and the temporary paths, replaced by ``<TMP>``);
- the daily CSV and the cleaned info.json themselves (small, readable, diffable);
- the exit code and stderr (an input that fails must keep failing the same way).

Cases: every real device file in ``../shared/data/devices`` (skipped when absent) and a generated
"week" (``week_cwa``): 2024-03-28 20:00 to 2024-04-03 23:15 device time at 25 Hz (a CWA rate; a
quarter of the samples of 100 Hz to keep it fast), mostly still off the wrist (non-wear), with three
gaps (about 1 day, 2.4 days and 12 h), about 1.2 h of wear in short bouts, one of them across the
spring DST change in London (``--timezone Europe/London``). Only about 150 windows reach the
network (one thread, torch), so a case takes seconds on a quiet machine.
The week runs twice: as is, and with ``--start/--end --no-hmm --min-wear-per-day 1``.

Digests depend on float arithmetic, so they hold on the machine kind they were made on: a
"numerics fingerprint" (digest of the model's own forward pass on fixed windows) is stored with
them, and the test skips (saying why) where the fingerprint differs. The bytes of the seeded
model.safetensors depend on the process's string-hash seed (safetensors lays equal tensors out in
set order), so its sha256 is replaced by ``<WEIGHTS_SHA256>`` in the stored info.json.

Regenerate (only when an output changes ON PURPOSE; say which and why in the commit):

    python tests/golden/make_golden.py            # rewrites tests/golden/golden.json and cases/
    python tests/golden/make_golden.py --check    # compare only (what tests/test_golden.py does)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent
DEVICES = ROOT.parent / "shared" / "data" / "devices"
GOLDEN = HERE / "golden.json"
CASES_DIR = HERE / "cases"

LABELS = ("rest", "active", "walk")
BASE_ARGS = ["--backend", "torch", "--threads", "1", "-q"]

#: real device files: (path under ../shared/data/devices, extra predict options)
REAL = [
    ("openmovement/example-610-steps.cwa", []),
    ("openmovement/example-610-steps.cwa-convert.csv.gz", []),
    ("scikit-digital-health/ax3_sample.cwa", []),
    ("scikit-digital-health/ax6_sample.cwa", []),
    ("scikit-digital-health/gnactv_sample.bin", []),
    ("GGIRread/ax3_testfile.cwa", []),
    ("GGIRread/ax6_testfile.cwa", []),
    ("GGIRread/GENEActiv_testfile.bin", []),
    ("GGIR/actigraph_testfile.gt3x", []),
    ("GGIR/ax3_testfile_unix_timestamps.csv", ["--time-col", "0", "--xyz-cols", "1,2,3", "--time-format", "unix_s"]),
    ("GGIR/ax6_testfile_formatted_timestamps.csv",
     ["--time-col", "0", "--xyz-cols", "1,2,3", "--time-format", "%Y-%m-%d %H:%M:%S.%f"]),
]

#: the generated week: (device start time, [(activity, hours), ...]) per recorded segment
WEEK_FS = 25.0
WEEK = [
    ("2024-03-28 20:00:00", [("offwrist", 3.0), ("rest", 0.15), ("sit", 0.15), ("walk", 0.1), ("offwrist", 24.0)]),
    # worn from 00:50 to 01:05 GMT on 31 March: across the change to BST
    ("2024-03-31 00:50:00", [("sit", 0.1), ("walk", 0.15), ("offwrist", 20.0)]),
    ("2024-04-02 08:00:00", [("rest", 0.1), ("walk", 0.1), ("offwrist", 22.0), ("walk", 0.1)]),
    ("2024-04-03 20:00:00", [("offwrist", 3.0), ("walk", 0.1), ("sit", 0.15)]),
]
WEEK_CASES = {
    "week_cwa": ["--timezone", "Europe/London"],
    "week_cwa_start_end": ["--timezone", "Europe/London", "--start", "2024-03-30T12:00", "--end", "2024-04-03",
                           "--no-hmm", "--min-wear-per-day", "1"],
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_model(d: Path) -> Path:
    """The seeded harnet30 classifier + HMM of the ``model30_dir`` fixture."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from _tinymodels import make_model30_with_hmm

    return make_model30_with_hmm(d / "m30", LABELS)


def numerics_fingerprint(model_dir: Path) -> str:
    """Digest of the model's forward pass on fixed windows (one thread): equal where floats agree."""
    import torch

    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from _tinymodels import windows

    from harnet.loading import load

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = load(str(model_dir)).eval()
        with torch.no_grad():
            out = net(torch.from_numpy(windows(4, 900, seed=3))).numpy().astype(np.float32)
    finally:
        torch.set_num_threads(threads)
    return sha256(out.tobytes())


def make_week(path: Path) -> Path:
    from harnet.io.cwa_writer import write_cwa
    from harnet.synth import scripted_xyz

    for i, (start, pattern) in enumerate(WEEK):
        xyz = scripted_xyz(pattern, fs=WEEK_FS, seed=i)
        write_cwa(path, start, xyz, fs=WEEK_FS, append=i > 0, session_id=1)
    return path


def _clean(o, tmp: str, weights: str = "\0"):
    if isinstance(o, dict):
        return {k: _clean(v, tmp, weights) for k, v in o.items() if k not in ("harnet_version", "StageSeconds")}
    if isinstance(o, list):
        return [_clean(v, tmp, weights) for v in o]
    if isinstance(o, str):
        return o.replace(tmp, "<TMP>").replace(str(DEVICES), "<DEVICES>").replace(weights, "<WEIGHTS_SHA256>")
    return o


def run_case(name: str, path: Path, extra: list[str], model_dir: Path, work: Path) -> dict:
    """Run one case; return its record (digests and readable files' text)."""
    from harnet_cli.main import main

    out = work / name / "summary.csv"
    out.parent.mkdir(parents=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["predict", str(path), "--model", str(model_dir), "--out", str(out), *BASE_ARGS, *extra])
    tmp = str(work.parent)
    rec: dict = {"args": extra, "rc": rc, "stderr": _clean(err.getvalue(), tmp)}
    if rc == 0:
        daily = out.read_bytes()
        weights = json.loads((model_dir / "config.json").read_text())["weights_sha256"]
        info = json.dumps(_clean(json.loads(out.with_name("summary-info.json").read_text()), tmp, weights), indent=1,
                          sort_keys=True) + "\n"
        pq = out.with_name("summary-timeseries.parquet").read_bytes()
        rec.update(daily_sha256=sha256(daily), windows_sha256=sha256(pq), info_sha256=sha256(info.encode()),
                   _daily=daily.decode(), _info=info)
    return rec


def cases(work: Path, real: bool = True) -> list[tuple[str, Path, list[str]]]:
    """(name, input path, extra options) of every case available here."""
    week = make_week(work / "week.cwa")
    out = [(name, week, extra) for name, extra in WEEK_CASES.items()]
    if real and DEVICES.is_dir():
        out += [(rel.replace("/", "__"), DEVICES / rel, extra) for rel, extra in REAL if (DEVICES / rel).exists()]
    return out


def compute(work: Path, only: list[str] | None = None) -> dict:
    model_dir = make_model(work)
    res = {"fingerprint": numerics_fingerprint(model_dir), "cases": {}}
    runs = work / "runs"
    runs.mkdir()
    for name, path, extra in cases(work):
        if only is None or name in only:
            res["cases"][name] = run_case(name, path, extra, model_dir, runs)
    return res


def write(res: dict) -> None:
    if CASES_DIR.exists():
        shutil.rmtree(CASES_DIR)
    CASES_DIR.mkdir()
    stored = {"fingerprint": res["fingerprint"], "cases": {}}
    for name, rec in res["cases"].items():
        if "_daily" in rec:
            (CASES_DIR / name).mkdir()
            (CASES_DIR / name / "summary.csv").write_text(rec["_daily"])
            (CASES_DIR / name / "info.json").write_text(rec["_info"])
        stored["cases"][name] = {k: v for k, v in rec.items() if not k.startswith("_")}
    GOLDEN.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the stored goldens instead of writing them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="harnet-golden-") as t:
        res = compute(Path(t))
    if not args.check:
        write(res)
        print(f"wrote {GOLDEN} ({len(res['cases'])} cases)")
        return
    stored = json.loads(GOLDEN.read_text())
    bad = [n for n, r in res["cases"].items() if {k: v for k, v in r.items() if not k.startswith("_")} != stored["cases"].get(n)]
    print("fingerprint", "same" if res["fingerprint"] == stored["fingerprint"] else "DIFFERENT")
    print("differ:", bad or "none")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
