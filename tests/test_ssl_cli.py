"""`harnet pretrain` on device files: generated CSV files and the real files in ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from harnet_cli.main import main


def _write_csv(path: Path, seed: int, minutes: float = 2.0, fs: float = 50.0) -> None:
    """A moving wrist as a time,x,y,z CSV (ISO times)."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * fs)
    t = np.datetime64("2024-03-01T10:00:00", "ns") + (np.arange(n) * (1e9 / fs)).astype(np.int64).astype("timedelta64[ns]")
    s = np.arange(n) / fs
    f = rng.uniform(0.8, 2.0)
    xyz = np.stack([0.4 * np.sin(2 * np.pi * f * s), 0.3 * np.cos(2 * np.pi * f * s) ** 3, 1 + 0.1 * np.sin(np.pi * f * s)], 1)
    xyz += 0.02 * rng.standard_normal((n, 3))
    times = np.datetime_as_string(t, unit="ms")
    lines = ["time,x,y,z"] + [f"{a},{b:.5f},{c:.5f},{d:.5f}" for a, (b, c, d) in zip(times, xyz)]
    path.write_text("\n".join(lines) + "\n")


def _tiny_args(out: Path) -> list[str]:
    return [
        "--out", str(out), "--arch", "harnet5", "--epochs", "1", "--subjects-per-batch", "2",
        "--windows-per-subject", "4", "--no-lr-scale", "--warmup-epochs", "0", "--threads", "1",
        "--no-calibrate",
    ]


def test_cli_pretrain_on_generated_files_resumes_and_continues(tmp_path: Path, capsys) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"wrist{i}.csv")
        _write_csv(files[-1], i)
    (tmp_path / "notes.txt").write_text("not a recording\n")
    out = tmp_path / "bb"
    # a folder expands to its device files (notes.txt is ignored)
    assert main(["pretrain", str(tmp_path), *_tiny_args(out)]) == 0
    cap = capsys.readouterr()
    assert "windows of" in cap.err and "held-out pretext accuracy" in cap.out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "backbone" and cfg["pretraining"]["recordings"] == {"train": 2, "val": 1}
    assert cfg["pretraining"]["windows"] == 3 * 24
    assert (tmp_path / "bb.pretrain-work" / "checkpoint.pt").is_file()
    # the same command with more epochs resumes from the checkpoint and the window store
    args2 = _tiny_args(out)
    args2[args2.index("--epochs") + 1] = "2"
    assert main(["pretrain", *map(str, files), *args2]) == 0
    err = capsys.readouterr().err
    assert "resuming" in err and "from the window store" in err
    assert len(json.loads((out / "config.json").read_text())["pretraining"]["history"]) == 2
    # continue from the backbone (its arch is taken from it) into a new directory
    out2 = tmp_path / "bb2"
    args3 = [a for a in _tiny_args(out2) if a not in ("--arch", "harnet5")]
    assert main(["pretrain", *map(str, files), *args3, "--resume-from", str(out)]) == 0
    cfg2 = json.loads((out2 / "config.json").read_text())
    assert cfg2["arch"] == "harnet5" and cfg2["provenance"]["init"] == str(out)


def test_cli_pretrain_errors(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.cwa"
    bad.write_bytes(b"\x00" * 1024)
    good = tmp_path / "ok.csv"
    _write_csv(good, 0, minutes=1.0)
    assert main(["pretrain", str(bad), str(good), *_tiny_args(tmp_path / "o")]) == 1
    assert "broken.cwa" in capsys.readouterr().err
    # --skip-unreadable reports the file and goes on
    assert main(["pretrain", str(bad), str(good), *_tiny_args(tmp_path / "o"), "--skip-unreadable"]) == 0
    assert "skipped" in capsys.readouterr().err
    assert main(["pretrain", str(good), *_tiny_args(tmp_path / "o2"), "--tasks", "aot,scale"]) == 1
    assert "pretext tasks" in capsys.readouterr().err
    assert main(["pretrain", str(good), *_tiny_args(tmp_path / "o3"), "--lowpass-hz", "fast"]) == 2


@pytest.mark.shared_data
def test_cli_pretrain_on_real_device_files(tmp_path: Path, capsys) -> None:
    files = [
        shared_path("devices/GGIRread/ax3_testfile.cwa"),
        shared_path("devices/scikit-digital-health/ax6_sample.cwa"),
        shared_path("devices/GGIRread/GENEActiv_testfile.bin"),
    ]
    out = tmp_path / "bb"
    code = main(["pretrain", *map(str, files), *_tiny_args(out), "--skip-unreadable"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    cfg = json.loads((out / "config.json").read_text())
    # AX3 176 s, AX6 105 s (accelerometer only) at 5-s windows; the GENEActiv file needs Java
    # (actipy) and is either read (56 s) or reported as skipped
    n = cfg["pretraining"]["windows"]
    assert 50 <= n <= 70 and cfg["pretraining"]["recordings"]["train"] >= 1
    import harnet

    model = harnet.load(out, num_classes=3)
    assert model.config.arch == "harnet5"


def test_cli_pretrain_bad_device(tmp_path: Path, capsys) -> None:
    good = tmp_path / "ok.csv"
    _write_csv(good, 0, minutes=1.0)
    assert main(["pretrain", str(good), *_tiny_args(tmp_path / "o"), "--device", "nonsense:7"]) == 1
    assert "cannot train on device 'nonsense:7'" in capsys.readouterr().err
