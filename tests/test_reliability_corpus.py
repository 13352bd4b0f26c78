"""The bad-input corpus: every damaged, odd or inconsistent input has a defined outcome.

Each case is generated here (no binary fixtures) and run through ``harnet predict`` in-process
(``harnet_cli.main.main``; a few also as a real subprocess at the end). Outcomes:

- ``processed``: exit 0, all outputs written, ``info.json`` strict JSON, the expected warning
  recorded in ``info.json`` (``reader.Warnings``) and the case's own checks on the results;
- ``refused``: exit 1 (input or model problem) or 2 (usage error), exactly one line on stderr
  that names the file and the problem, no traceback, and nothing left at the output path
  (no summary, series, info or temporary file).

The table in docs/reliability.md lists the same cases (a test below keeps the two in step).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from harnet._fileio import TMP_MARK
from harnet.io import write_cwa
from harnet.io.cwa_writer import corrupt_blocks, truncate
from harnet_cli.main import main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
FS = 25  # Hz: a CWA rate (3200 / 128), low to keep every case fast
LABELS = ("a", "b", "c")
NS = 1_000_000_000


# ---- generated data -----------------------------------------------------------------------

def moving(n: int, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """(n, 3) float32 g: gravity on z plus wrist-like movement (never non-wear)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    xyz = np.empty((n, 3), np.float32)
    xyz[:, 0] = amp * np.sin(2 * np.pi * 1.3 * t)
    xyz[:, 1] = 0.5 * amp * np.sin(2 * np.pi * 0.7 * t + 1.0)
    xyz[:, 2] = 1.0 + 0.3 * amp * np.sin(2 * np.pi * 2.1 * t)
    xyz += rng.normal(0.0, 0.02, (n, 3)).astype(np.float32)
    return xyz


def still(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) float32 g: a device lying flat on a table (2 mg of noise: non-wear)."""
    rng = np.random.default_rng(seed)
    return (np.array([0.0, 0.0, 1.0], np.float32) + rng.normal(0.0, 0.002, (n, 3))).astype(np.float32)


def times(start: str, n: int, fs: float = FS) -> np.ndarray:
    return np.datetime64(start, "ns").astype(np.int64) + np.rint(np.arange(n) * (NS / fs)).astype(np.int64)


def write_csv(path: Path, t_ns: np.ndarray, xyz: np.ndarray, header: str = "time,x,y,z",
              text: list[str] | None = None) -> Path:
    """A CSV with ISO millisecond times; ``text`` replaces the time strings when given."""
    ts = text if text is not None else np.datetime_as_string(t_ns.view("datetime64[ns]"), unit="ms").tolist()
    lines = [header] if header else []
    lines += [f"{a},{x:.5g},{y:.5g},{z:.5g}" for a, (x, y, z) in zip(ts, xyz.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


def ten_minutes(path: Path, start: str = "2024-01-10 10:00:00") -> Path:
    return write_cwa(path, start, moving(FS * 600), fs=FS)


# ---- outputs ------------------------------------------------------------------------------

def out_paths(out: Path) -> dict[str, Path]:
    stem = out.stem
    return {
        "daily": out,
        "windows": out.with_name(f"{stem}-timeseries.parquet"),
        "info": out.with_name(f"{stem}-info.json"),
    }


def leftovers(out: Path) -> list[str]:
    """Files at or beside the output path after a refused run (there must be none)."""
    found = [str(p) for p in out_paths(out).values() if p.exists()]
    if out.parent.exists():
        found += [p.name for p in out.parent.iterdir() if TMP_MARK in p.name or p.name.startswith(out.stem)]
    return found


@dataclass
class Run:
    rc: int
    err: str
    out: Path
    src: Path
    info: dict | None = None
    daily: pd.DataFrame | None = None
    windows: pd.DataFrame | None = None


# ---- cases --------------------------------------------------------------------------------

@dataclass
class Case:
    """One corpus entry. ``make(dir) -> (input path, extra CLI args)``."""

    id: str
    make: Callable[[Path], tuple[Path, list[str]]]
    outcome: str  # "processed" or "refused"
    code: int = 0
    expect: tuple[str, ...] = ()  # refused: substrings of the error line; processed: of a warning
    names: str | None = None  # refused: the name the error line must carry (default: the input's)
    model: str = "good"
    check: Callable[[Run], None] | None = None
    args: list[str] = field(default_factory=list)


def _bytes(name: str, data: bytes) -> Callable[[Path], tuple[Path, list[str]]]:
    def make(d: Path) -> tuple[Path, list[str]]:
        p = d / name
        p.write_bytes(data)
        return p, []

    return make


RANDOM = np.random.default_rng(1234).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes()


def _gzip_garbage(name: str) -> Callable[[Path], tuple[Path, list[str]]]:
    def make(d: Path) -> tuple[Path, list[str]]:
        p = d / name
        with gzip.open(p, "wb") as f:
            f.write(RANDOM)
        return p, []

    return make


def _gt3x_without_log(d: Path) -> tuple[Path, list[str]]:
    p = d / "nolog.gt3x"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("info.txt", "Serial Number: MOS2E00000000\nSample Rate: 30\nAcceleration Scale: 256.0\n")
    return p, []


def _cwa_truncated(d: Path) -> tuple[Path, list[str]]:
    p = ten_minutes(d / "truncated.cwa")
    truncate(p, 200)  # ends 312 bytes into the last block
    return p, []


BAD_BLOCKS = [3, 4, 40, 41, 42]


def _cwa_bad_checksums(d: Path) -> tuple[Path, list[str]]:
    p = ten_minutes(d / "checksums.cwa")
    corrupt_blocks(p, BAD_BLOCKS)
    return p, []


def _check_bad_checksums(r: Run) -> None:
    reader = r.info["reader"]
    assert reader["ChecksumErrors"] == len(BAD_BLOCKS) and reader["ReadErrors"] == len(BAD_BLOCKS)
    assert reader["ReadOK"] == 0
    # the rest is processed: 125 blocks of 120 samples, 5 skipped
    assert reader["NumSamples"] == FS * 600 - len(BAD_BLOCKS) * 120
    assert r.info["ValidWindows"] >= 50


def _cwa_all_damaged(d: Path) -> tuple[Path, list[str]]:
    p = write_cwa(d / "alldamaged.cwa", "2024-01-10 10:00:00", moving(FS * 60), fs=FS)
    corrupt_blocks(p, range(13))
    return p, []


def _cwa_header_only(d: Path) -> tuple[Path, list[str]]:
    p = ten_minutes(d / "headeronly.cwa")
    os.truncate(p, 1024)
    return p, []


def _cwa_two_sessions(d: Path) -> tuple[Path, list[str]]:
    """A quiet session, then (sequence restarting at 0) a vigorous one 40 min later."""
    p = write_cwa(d / "sessions.cwa", "2024-01-10 10:00:00", moving(FS * 600, seed=1, amp=0.05), fs=FS)
    write_cwa(p, "2024-01-10 10:50:00", moving(FS * 600, seed=2, amp=1.5), fs=FS, append=True, session_id=2)
    return p, []


def _check_two_sessions(r: Run) -> None:
    assert r.info["reader"]["NumSessionRestarts"] >= 1
    assert r.info["reader"]["NumDroppedOverlap"] == 0
    w = r.windows
    t = pd.to_datetime(w["time"])
    first = (t >= "2024-01-10 10:00:10") & (t < "2024-01-10 10:09:50")
    gap = (t >= "2024-01-10 10:10:10") & (t < "2024-01-10 10:49:50")
    second = (t >= "2024-01-10 10:50:10") & (t < "2024-01-10 10:59:50")
    assert gap.sum() == 238 and first.sum() == second.sum() == 58
    # the gap is a gap: nothing classified, no ENMO, nothing invented
    assert w.loc[gap, "label"].isna().all() and w.loc[gap, "acc"].isna().all() and not w.loc[gap, "wear"].any()
    # neither session overwrote the other: the quiet one stays quiet, the vigorous one vigorous
    assert w.loc[first, "acc"].max() < 60 < 300 < w.loc[second, "acc"].min()
    assert w.loc[first | second, "wear"].all()


def _csv_missing_column(d: Path) -> tuple[Path, list[str]]:
    t = times("2024-01-10 10:00:00", FS * 60)
    xyz = moving(len(t))
    p = d / "nocolumn.csv"
    lines = ["time,x,y"] + [f"{a},{x:.4f},{y:.4f}" for a, (x, y, _) in zip(np.datetime_as_string(t.view("datetime64[ns]"), unit="ms"), xyz.tolist())]
    p.write_text("\n".join(lines) + "\n")
    return p, []


def _csv_bad_time(d: Path) -> tuple[Path, list[str]]:
    t = times("2024-01-10 10:00:00", FS * 60)
    text = np.datetime_as_string(t.view("datetime64[ns]"), unit="ms").tolist()
    text[700] = "2024-01-10 noon"
    return write_csv(d / "badtime.csv", t, moving(len(t)), text=text), []


def _csv_duplicates(d: Path) -> tuple[Path, list[str]]:
    t = times("2024-01-10 10:00:00", FS * 600)
    xyz = moving(len(t))
    k = np.arange(0, len(t), 100)
    t2 = np.insert(t, k, t[k])  # every 100th time written twice
    return write_csv(d / "duplicates.csv", t2, np.insert(xyz, k, xyz[k] + 0.5, axis=0)), []


def _check_duplicates(r: Run) -> None:
    assert r.info["reader"]["NumDuplicateTimes"] == len(range(0, FS * 600, 100))
    assert r.info["reader"]["NumSamples"] == FS * 600


def _csv_backwards(d: Path) -> tuple[Path, list[str]]:
    t = times("2024-01-10 10:00:00", FS * 600)
    xyz = moving(len(t))
    order = np.arange(len(t))
    order[5000:5500] = order[5000:5500][::-1]  # 20 s written in reverse
    return write_csv(d / "backwards.csv", t[order], xyz[order]), []


def _check_backwards(r: Run) -> None:
    assert r.info["reader"]["NumTimesBackwards"] > 0 and r.info["reader"]["NumSamples"] == FS * 600
    assert r.info["ValidWindows"] >= 58


def _csv_nan_inf(d: Path) -> tuple[Path, list[str]]:
    t = times("2024-01-10 10:00:00", FS * 600)
    xyz = moving(len(t)).astype(np.float64)
    xyz[100:110, 0] = np.nan
    xyz[2000, 1] = np.inf
    xyz[3000, 2] = -np.inf
    return write_csv(d / "naninf.csv", t, xyz), []


def _check_nan_inf(r: Run) -> None:
    assert r.info["reader"]["NumNonFinite"] == 12
    assert r.info["reader"]["NumSamples"] == FS * 600 - 12


def _csv_ms2(d: Path) -> tuple[Path, list[str]]:
    t = times("2024-01-10 10:00:00", FS * 600)
    return write_csv(d / "ms2.csv", t, moving(len(t)) * 9.80665), []


def _csv_ms2_declared(d: Path) -> tuple[Path, list[str]]:
    p, _ = _csv_ms2(d)
    return p, ["--units", "m/s2"]


def _check_ms2_declared(r: Run) -> None:
    assert r.info["reader"]["Units"] == "m/s2"
    assert 0.95 < r.info["reader"]["MedianMagnitude(g)"] < 1.1


def _csv_single_row(d: Path) -> tuple[Path, list[str]]:
    return write_csv(d / "onerow.csv", times("2024-01-10 10:00:00", 1), moving(1)), []


def _csv_header_only(d: Path) -> tuple[Path, list[str]]:
    p = d / "headeronly.csv"
    p.write_text("time,x,y,z\n")
    return p, []


def _csv_all_nan(d: Path) -> tuple[Path, list[str]]:
    t = times("2024-01-10 10:00:00", FS * 60)
    return write_csv(d / "allnan.csv", t, np.full((len(t), 3), np.nan)), []


def _csv_stray_time(d: Path) -> tuple[Path, list[str]]:
    """Ten good minutes and one row typed 20 years later (a wrong clock or a typo)."""
    t = times("2024-01-10 10:00:00", FS * 600)
    t[-1] = np.datetime64("2044-01-10 10:00:00", "ns").astype(np.int64)
    return write_csv(d / "straytime.csv", t, moving(len(t))), []


def _short(d: Path) -> tuple[Path, list[str]]:
    return write_cwa(d / "short.cwa", "2024-01-10 10:00:03", moving(FS * 6), fs=FS), []


def _all_nonwear(d: Path) -> tuple[Path, list[str]]:
    return write_cwa(d / "nonwear.cwa", "2024-01-10 10:00:00", still(FS * 60 * 100), fs=FS), []


def _check_all_nonwear(r: Run) -> None:
    assert r.info["ValidWindows"] == 0 and r.info["WearTime(days)"] == 0
    assert r.windows["nonwear"].sum() >= 590 and r.windows["label"].isna().all()
    assert (r.daily["WearTime(hours)"] == 0).all()


def _multiday_gap(d: Path) -> tuple[Path, list[str]]:
    t = np.concatenate([times("2024-01-10 22:00:00", FS * 300), times("2024-01-13 09:00:00", FS * 300)])
    xyz = np.concatenate([moving(FS * 300, seed=3), moving(FS * 300, seed=4)])
    return write_csv(d / "gap.csv", t, xyz), []


def _check_multiday_gap(r: Run) -> None:
    day = r.daily.set_index("Date")
    assert list(day.index) == ["2024-01-10", "2024-01-11", "2024-01-12", "2024-01-13"]
    # the gap days are recorded time (windows exist) without wear or non-wear: a gap
    for date in ("2024-01-11", "2024-01-12"):
        assert day.loc[date, "WearTime(hours)"] == 0 and day.loc[date, "NonwearTime(hours)"] == 0
        assert day.loc[date, "RecordedTime(hours)"] == 24
    assert day["WearTime(hours)"].sum() == pytest.approx(r.info["ValidWindows"] * 10 / 3600)
    w = r.windows
    assert len(w) == (pd.Timestamp("2024-01-13 09:05") - pd.Timestamp("2024-01-10 22:00")).total_seconds() / 10
    assert w["wear"].sum() == r.info["ValidWindows"] >= 56
    assert r.info["reader"]["NumGaps"] == 1


def _dst_both(d: Path) -> tuple[Path, list[str]]:
    """Ten minutes across each 2024 change in London, on a device clock set in winter (GMT)."""
    p = write_cwa(d / "dst.cwa", "2024-03-31 00:55:00", moving(FS * 600, seed=5), fs=FS)
    write_cwa(p, "2024-10-27 00:55:00", moving(FS * 600, seed=6), fs=FS, append=True, session_id=2)
    return p, ["--timezone", "Europe/London"]


def _check_dst_both(r: Run) -> None:
    day = r.daily.set_index("Date")
    assert day.loc["2024-03-31", "DayLength(hours)"] == 23 and day.loc["2024-10-27", "DayLength(hours)"] == 25
    assert set(day.drop(["2024-03-31", "2024-10-27"])["DayLength(hours)"]) == {24}
    t = pd.to_datetime(r.windows["time"], utc=True)
    assert t.is_unique and t.is_monotonic_increasing and (t.diff().dropna() == pd.Timedelta(seconds=10)).all()
    s = r.windows["time"]
    # spring: 00:55 GMT runs on to 02:05 BST, the skipped hour never appears
    assert s.iloc[0] == "2024-03-31T00:55:00+00:00" and "2024-03-31T02:00:00+01:00" in set(s)
    assert not s.str.startswith("2024-03-31T01:").any()
    # autumn: device 00:55 GMT is 01:55 BST; the repeated hour appears once in each offset
    assert "2024-10-27T01:55:00+01:00" in set(s) and "2024-10-27T01:00:00+00:00" in set(s)
    assert s.iloc[-1] == "2024-10-27T01:04:50+00:00"
    assert day.loc["2024-03-31", "WearTime(hours)"] == pytest.approx(day.loc["2024-10-27", "WearTime(hours)"], abs=0.01)
    assert r.info["ValidWindows"] >= 116


def _fine_cwa(d: Path) -> tuple[Path, list[str]]:
    return ten_minutes(d / "fine.cwa"), []


def _usage(*args: str) -> Callable[[Path], tuple[Path, list[str]]]:
    def make(d: Path) -> tuple[Path, list[str]]:
        p, _ = _fine_cwa(d)
        return p, list(args)

    return make


def _check_nothing_classified(r) -> None:
    """Too short to classify: outputs exist, no window is classified, no wear time."""
    assert not r.windows["wear"].any()
    assert r.daily["WearTime(hours)"].sum() == 0
    assert r.info["ValidWindows"] == 0


CASES: list[Case] = [
    # device files
    Case("empty-cwa", _bytes("empty.cwa", b""), "refused", 1, ("empty",)),
    Case("empty-csv", _bytes("empty.csv", b""), "refused", 1, ("empty",)),
    Case("random-cwa", _bytes("random.cwa", RANDOM), "refused", 1, ("not an Axivity CWA",)),
    Case("random-gt3x", _bytes("random.gt3x", RANDOM), "refused", 1, ("not a zip",)),
    Case("random-bin", _bytes("random.bin", RANDOM), "refused", 1, (".bin",)),
    Case("gzip-garbage-cwa", _gzip_garbage("garbage.cwa.gz"), "refused", 1, ("not an Axivity CWA",)),
    Case("gzip-garbage-csv", _gzip_garbage("garbage.csv.gz"), "refused", 1, ("not a text CSV",)),
    Case("not-gzip-cwa-gz", _bytes("notgzip.cwa.gz", RANDOM), "refused", 1, ("cannot be decompressed",)),
    Case("cwa-truncated-mid-block", _cwa_truncated, "processed", expect=("ends inside a block",)),
    Case("cwa-bad-checksums", _cwa_bad_checksums, "processed", expect=("5 bad checksum",), check=_check_bad_checksums),
    Case("cwa-all-blocks-damaged", _cwa_all_damaged, "refused", 1, ("no readable data blocks",)),
    Case("cwa-header-only", _cwa_header_only, "refused", 1, ("no readable data blocks",)),
    Case("cwa-two-sessions", _cwa_two_sessions, "processed", expect=(), check=_check_two_sessions),
    Case("gt3x-without-log-bin", _gt3x_without_log, "refused", 1, ("no log.bin",)),
    # tables
    Case("csv-missing-column", _csv_missing_column, "refused", 1, ("no z column",)),
    Case("csv-unparseable-time", _csv_bad_time, "refused", 1, ("row 701", "2024-01-10 noon")),
    Case("csv-duplicate-times", _csv_duplicates, "processed", expect=("repeating an earlier time",), check=_check_duplicates),
    Case("csv-times-backwards", _csv_backwards, "processed", expect=("went backwards",), check=_check_backwards),
    Case("csv-nan-inf", _csv_nan_inf, "processed", expect=("NaN or infinite",), check=_check_nan_inf),
    Case("csv-m/s2-read-as-g", _csv_ms2, "refused", 1, ("m/s^2", "--units m/s2")),
    Case("csv-m/s2-declared", _csv_ms2_declared, "processed", check=_check_ms2_declared),
    Case("csv-single-row", _csv_single_row, "refused", 1, ("fewer than 2 samples",)),
    Case("csv-header-only", _csv_header_only, "refused", 1, ("no samples",)),
    Case("csv-all-nan", _csv_all_nan, "refused", 1, ("NaN or infinite",)),
    # recordings
    Case("csv-stray-time-decades-later", _csv_stray_time, "refused", 1, ("spans 7305 days", "clock")),
    Case("shorter-than-one-window", _short, "processed", expect=("shorter than one 10-s window",), check=_check_nothing_classified),
    Case("all-nonwear", _all_nonwear, "processed", expect=("no window was classified",), check=_check_all_nonwear),
    Case("multi-day-gap", _multiday_gap, "processed", check=_check_multiday_gap),
    Case("dst-both-changes", _dst_both, "processed", check=_check_dst_both),
    # models (the input is a good 10-minute recording)
    Case("model-missing-weights", _fine_cwa, "refused", 1, ("model.safetensors",), names="model.safetensors", model="no-weights"),
    Case("model-missing-config", _fine_cwa, "refused", 1, ("config.json is missing",), names="no-config", model="no-config"),
    Case("model-config-window-mismatch", _fine_cwa, "refused", 1, ("harnet10 weights", "arch=harnet30"), names="window",
         model="window"),
    Case("model-config-window-mismatch-torch", _fine_cwa, "refused", 1, ("do not fit harnet30",), names="window",
         model="window", args=["--backend", "torch"]),
    Case("model-config-arch-window-inconsistent", _fine_cwa, "refused", 1, ("takes 10-s windows",), names="arch-window",
         model="arch-window"),
    Case("model-hmm-wrong-classes", _fine_cwa, "refused", 1, ("2 classes",), names="hmm.json", model="hmm"),
    Case("model-weights-checksum", _fine_cwa, "refused", 1, ("sha256",), names="model.safetensors", model="tampered"),
    Case("model-weights-checksum-graph-cached", _fine_cwa, "refused", 1, ("sha256",), names="model.safetensors",
         model="tampered-with-graph"),
    Case("model-not-found", _fine_cwa, "refused", 1, ("no-such-model",), names="no-such-model", model="missing"),
    # usage errors (exit 2)
    Case("usage-no-out", _usage("--no-out-given"), "refused", 2, ("--out",), names="--out"),
    Case("usage-threads-0", _usage("--threads", "0"), "refused", 2, ("--threads",), names="--threads"),
    Case("usage-bad-units", _usage("--units", "furlongs"), "refused", 2, ("--units",), names="--units"),
    Case("usage-bad-timezone", _usage("--timezone", "Mars/Olympus_Mons"), "refused", 2, ("--timezone", "Mars/Olympus_Mons"),
         names="--timezone"),
    Case("usage-bad-start", _usage("--start", "yesterday-ish"), "refused", 2, ("--start",), names="--start"),
]


# ---- model directories --------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """The good tiny harnet10 model and one broken copy per model case."""
    import torch

    from harnet.hmm import HMM
    from harnet.model import build
    from harnet.modeldir import save_model_dir

    base = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    m = build("harnet10", labels=LABELS).eval()
    hmm = HMM(prior=np.full(3, 1 / 3), emission=np.eye(3) * 0.7 + 0.1, transition=np.eye(3) * 0.8 + 0.2 / 3, labels=LABELS)
    good = save_model_dir(m, base / "good", hmm=hmm, provenance={"source": "test", "licence": "BSD-3-Clause"})

    def copy(name: str) -> Path:
        return Path(shutil.copytree(good, base / name, ignore=shutil.ignore_patterns("*.onnx")))

    d = copy("no-weights")
    (d / "model.safetensors").unlink()
    d = copy("no-config")
    (d / "config.json").unlink()
    d = copy("window")
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(arch="harnet30", window_sec=30)  # harnet10 weights under a harnet30 config
    (d / "config.json").write_text(json.dumps(cfg))
    d = copy("arch-window")
    cfg = json.loads((d / "config.json").read_text())
    cfg["window_sec"] = 30  # a config at odds with itself: harnet10 with 30-s windows
    (d / "config.json").write_text(json.dumps(cfg))
    d = copy("hmm")
    h = json.loads((d / "hmm.json").read_text())
    h = {"labels": ["a", "b"], "prior": [0.5, 0.5], "emission": [[0.9, 0.1], [0.1, 0.9]], "transition": [[0.9, 0.1], [0.1, 0.9]]}
    (d / "hmm.json").write_text(json.dumps(h))
    for name in ("tampered", "tampered-with-graph"):
        d = copy(name)
        if name == "tampered-with-graph":  # a graph exported from the good weights is already there
            from harnet.predictor import get_backend

            get_backend(d, backend="auto")
            assert any(d.glob("*.onnx"))
        raw = bytearray((d / "model.safetensors").read_bytes())
        raw[-100] ^= 0x01  # one flipped bit in the last tensor's data
        (d / "model.safetensors").write_bytes(bytes(raw))
    return {"good": good, "missing": base / "no-such-model", **{p.name: p for p in base.iterdir()}}


def run_case(case: Case, models: dict[str, Path], d: Path, capsys, quiet: bool = True) -> Run:
    src, extra = case.make(d)
    out = d / "out" / "summary.csv"
    argv = ["predict", str(src), "--model", str(models[case.model]), *extra, *case.args]
    if "--no-out-given" in argv:
        argv.remove("--no-out-given")
    else:
        argv += ["--out", str(out)]
    if quiet:
        argv.append("-q")
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    r = Run(rc, err, out, src)
    if rc == 0:
        p = out_paths(out)
        r.info = json.loads(p["info"].read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
        r.daily = pd.read_csv(p["daily"])
        r.windows = pd.read_parquet(p["windows"])
    return r


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_meets_its_outcome(case, models, tmp_path, capsys):
    r = run_case(case, models, tmp_path, capsys)
    assert "Traceback" not in r.err
    if case.outcome == "processed":
        assert r.rc == 0, r.err
        assert r.err == ""  # -q: nothing on stderr
        warnings = r.info["reader"]["Warnings"]
        for s in case.expect:
            assert any(s in w for w in warnings), (s, warnings)
        assert len(r.windows) > 0 and len(r.daily) > 0
        assert not [p for p in r.out.parent.iterdir() if TMP_MARK in p.name]
        if case.check:
            case.check(r)
        return
    assert r.rc == case.code, r.err
    lines = r.err.strip().splitlines()
    if case.code == 1:
        assert len(lines) == 1, r.err
        line = lines[0]
        assert line.startswith("harnet: error: ")
    else:  # click's usage report: the usage line, a hint, then the one error line
        errors = [ln for ln in lines if ln.startswith("Error: ")]
        assert len(errors) == 1 and lines[0].startswith("Usage: harnet predict"), r.err
        assert all(ln.startswith(("Usage: ", "Try ", "Error: ")) for ln in lines if ln), r.err
        line = errors[0]
    name = case.names or r.src.name
    assert name in line, line
    for s in case.expect:
        assert s in line, line
    assert leftovers(r.out) == []


def test_an_earlier_good_output_is_not_replaced_by_a_refused_run(models, tmp_path, capsys):
    """A refused rerun into the same --out leaves the earlier outputs exactly as they were."""
    (tmp_path / "a").mkdir()
    good = run_case(Case("fine", _fine_cwa, "processed"), models, tmp_path / "a", capsys)
    assert good.rc == 0
    before = {k: p.read_bytes() for k, p in out_paths(good.out).items()}
    (tmp_path / "b").mkdir()
    bad = _bytes("random.cwa", RANDOM)(tmp_path / "b")[0]
    capsys.readouterr()
    assert main(["predict", str(bad), "--model", str(models["good"]), "--out", str(good.out), "-q"]) == 1
    assert {k: p.read_bytes() for k, p in out_paths(good.out).items()} == before
    assert not [p for p in good.out.parent.iterdir() if TMP_MARK in p.name]


def test_without_quiet_the_error_is_still_one_line_after_the_progress_line(models, tmp_path, capsys):
    case = next(c for c in CASES if c.id == "random-cwa")
    r = run_case(case, models, tmp_path, capsys, quiet=False)
    lines = r.err.strip().splitlines()
    assert r.rc == 1 and len(lines) == 2 and lines[0].startswith("harnet: reading ")
    assert lines[1].startswith("harnet: error: ") and "random.cwa" in lines[1]


def test_debug_shows_the_traceback(models, tmp_path):
    """--debug lets the error through (in-process: the exception itself)."""
    from harnet.errors import InputError

    p = _bytes("random.cwa", RANDOM)(tmp_path)[0]
    with pytest.raises(InputError, match="not an Axivity CWA"):
        main(["--debug", "predict", str(p), "--model", str(models["good"]), "--out", str(tmp_path / "o.csv")])


@pytest.mark.parametrize("case_id", ["random-cwa", "model-weights-checksum", "usage-threads-0"])
def test_real_process_prints_one_line_and_no_traceback(case_id, models, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    src, extra = case.make(tmp_path)
    out = tmp_path / "out" / "summary.csv"
    cmd = [sys.executable, "-m", "harnet_cli.main", "predict", str(src), "--model", str(models[case.model]),
           "--out", str(out), "-q", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == case.code, p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith(("harnet: error: ", "Error: "))]
    assert len(errors) == 1, p.stderr
    if case.code == 1:
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert leftovers(out) == []
    if case.code == 1:  # and --debug shows where it came from
        p = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode != 0 and "Traceback (most recent call last)" in p.stderr


def test_documented_table_lists_every_case():
    """docs/reliability.md has one table row per case, with the same outcome and exit code."""
    text = DOC.read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells
    missing = [c.id for c in CASES if c.id not in rows]
    assert not missing, f"cases missing from {DOC.name}: {missing}"
    for c in CASES:
        outcome = rows[c.id][2].lower()
        assert outcome.startswith(c.outcome), (c.id, outcome)
        if c.outcome == "refused":
            assert f"exit {c.code}" in outcome, (c.id, outcome)
