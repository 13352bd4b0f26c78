"""Pre-train a harnet backbone on the real unlabelled data available offline (issue 7).

Inputs: every device file under ``../shared/data/devices`` that ``harnet.io.read_device`` reads
(unreadable ones are reported and skipped) plus the 61 HAPT recordings of
``../shared/data/labelled/hapt_uci_raw_50hz.parquet`` with their labels ignored (one
:class:`harnet.train.ssl.RecordingSource` per recording, grouped by participant so that the
held-out split is by person). Prints the pretext accuracies on the held-out recordings.

    OMP_NUM_THREADS=2 nice -n 10 python bench/ssl_pretrain_real.py --out /work/artifacts/ssl-backbone
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
#: Every device recording in ../shared/data/devices, except example-610-steps.cwa-convert.csv.gz:
#: the same recording as example-610-steps.cwa converted to CSV (it would be seen twice, possibly
#: once on each side of the held-out split).
DEVICE_FILES = (
    "openmovement/example-610-steps.cwa",
    "GGIR/ax3_testfile_unix_timestamps.csv",
    "GGIR/ax6_testfile_formatted_timestamps.csv",
    "scikit-digital-health/ax3_sample.cwa",
    "scikit-digital-health/ax6_sample.cwa",
    "scikit-digital-health/gnactv_sample.bin",
    "GGIRread/ax3_testfile.cwa",
    "GGIRread/ax6_testfile.cwa",
    "GGIRread/GENEActiv_testfile.bin",
    "GGIR/actigraph_testfile.gt3x",
)


def hapt_sources(path: Path) -> list:
    """One in-memory recording per HAPT (user, recording); time = sequence / 50 Hz; no labels."""
    import pandas as pd

    from harnet.io.recording import Recording
    from harnet.train.ssl import RecordingSource

    df = pd.read_parquet(path, columns=["user", "recording", "sequence", "acc_x", "acc_y", "acc_z"])
    out = []
    t0 = np.datetime64("2000-01-01T00:00:00", "ns")
    for (user, rec), g in df.groupby(["user", "recording"], sort=True):
        g = g.sort_values("sequence")
        time = t0 + (g["sequence"].to_numpy(np.int64) * 20_000_000).astype("timedelta64[ns]")
        xyz = g[["acc_x", "acc_y", "acc_z"]].to_numpy(np.float32)
        out.append(RecordingSource(f"hapt-u{int(user):02d}-r{int(rec)}", Recording(time, xyz), group=f"hapt-u{int(user):02d}"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--arch", default="harnet10")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--subjects-per-batch", type=int, default=4)
    ap.add_argument("--windows-per-subject", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--no-lr-scale", action="store_true")
    ap.add_argument("--warmup-epochs", type=int, default=5)
    ap.add_argument("--lowpass-hz", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-devices", action="store_true")
    ap.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    a = ap.parse_args()

    from harnet.train.ssl import PretrainConfig, pretrain

    sources: list = []
    if not a.no_devices:
        sources += [DATA / "devices" / f for f in DEVICE_FILES if (DATA / "devices" / f).exists()]
    sources += hapt_sources(DATA / "labelled" / "hapt_uci_raw_50hz.parquet")
    cfg = PretrainConfig(
        arch=a.arch, subjects_per_batch=a.subjects_per_batch, windows_per_subject=a.windows_per_subject,
        lr=a.lr, lr_scale=not a.no_lr_scale, warmup_epochs=a.warmup_epochs, max_epochs=a.epochs,
        patience=a.patience, seed=a.seed, lowpass_hz=a.lowpass_hz,
    )
    t0 = time.perf_counter()
    res = pretrain(sources, a.out, cfg, work_dir=a.work_dir, threads=a.threads, skip_unreadable=True, restart=a.restart,
                   progress=lambda s: print(time.strftime("%H:%M:%S"), s, flush=True))
    print(json.dumps({
        "seconds": round(time.perf_counter() - t0, 1), "stopped": res.stopped, "best_epoch": res.best_epoch,
        "val_loss": res.best_val_loss, "val_accuracy": res.val_accuracy, "windows": res.n_windows,
        "train_recordings": res.n_train_recordings, "val_recordings": res.n_val_recordings,
    }, indent=1))


if __name__ == "__main__":
    main()
