"""Without a working Java, `harnet predict` reads every format; only --reader actipy asks for
Java (with the install advice). Two machines are faked: a `java` first on PATH that fails (and
records that it was called), and a PATH with no java at all."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _devicefiles import moving_xyz, write_geneactiv, write_gt3x, write_gt3x_v1
from harnet.io import write_cwa
from harnet.io.actipy_reader import JAVA_HELP, java_available
from harnet_cli.main import main

START = "2024-03-01 10:00:00"


def _inputs(d: Path) -> list[Path]:
    """One small recording (90 s) of every format harnet reads."""
    n30 = 30 * 90
    cwa = write_cwa(d / "a.cwa", START, moving_xyz(25 * 90, 25).astype(np.float32), fs=25)
    gz = d / "a.cwa.gz"
    gz.write_bytes(gzip.compress(cwa.read_bytes()))
    t = np.datetime64(START, "ns") + (np.arange(n30) * (1e9 / 30)).astype("timedelta64[ns]")
    xyz = moving_xyz(n30, 30)
    df = pd.DataFrame({"time": t, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    df.to_csv(d / "a.csv", index=False)
    df.to_parquet(d / "a.parquet")
    return [
        cwa, gz, d / "a.csv", d / "a.parquet",
        write_gt3x(d / "a.gt3x", START, xyz, 30, idle=[(40, 50)]),
        write_gt3x(d / "b.agdc", START, xyz, 30, kind="int16"),
        write_gt3x_v1(d / "v1.gt3x", START, xyz, 30),
        write_geneactiv(d / "a.bin", START, moving_xyz(300 * 30, 100), 100.0),
    ]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from _tinymodels import make_model_dir

    return make_model_dir(tmp_path_factory.mktemp("m") / "m10", "harnet10", labels=("a", "b", "c"))


@pytest.fixture
def failing_java(tmp_path, monkeypatch):
    """A `java` first on PATH that exits 1 and leaves a mark when anything runs it."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    mark = tmp_path / "java-was-called"
    java = bin_dir / "java"
    java.write_text(f"#!/bin/sh\necho called >> '{mark}'\necho 'Error: broken JVM' >&2\nexit 1\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert not java_available()
    mark.unlink()  # that check ran it; from here on nothing may
    return mark


def test_every_format_predicts_with_a_failing_java(tmp_path, model, failing_java, capsys):
    files = _inputs(tmp_path)
    out = tmp_path / "out"
    rc = main(["predict", *map(str, files), "--model", str(model), "--outdir", str(out), "-q", "--backend", "torch"])
    err = capsys.readouterr().err
    assert rc == 0, err
    infos = [json.loads(p.read_text()) for p in sorted(out.glob("*/info.json"))]
    assert sorted(i["input"]["name"] for i in infos) == sorted(f.name for f in files)
    for i in infos:
        assert i["reader"]["NumSamples"] > 2000, i["input"]["name"]
    assert not failing_java.exists()  # nothing ran java


def test_only_reader_actipy_asks_for_java(tmp_path, model, failing_java, capsys):
    src = write_gt3x(tmp_path / "a.gt3x", START, moving_xyz(30 * 60, 30), 30)
    out = tmp_path / "o" / "summary.csv"
    rc = main(["predict", str(src), "--model", str(model), "--out", str(out), "-q", "--reader", "actipy"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "a.gt3x" in err
    assert JAVA_HELP in err and "brew install openjdk" in err and "Traceback" not in err
    assert not out.exists()


def test_no_java_on_path_at_all_in_a_real_process(tmp_path, model):
    """A fresh interpreter whose PATH holds no java: every format reads, --reader actipy says why not."""
    files = _inputs(tmp_path)
    empty = tmp_path / "emptybin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME",)}
    env.update(PATH=str(empty), OMP_NUM_THREADS="1")
    code = (
        "import sys, shutil\n"
        "from harnet.io import read_device\n"
        "assert shutil.which('java') is None\n"
        "for f in sys.argv[1:]:\n"
        "    r = read_device(f)\n"
        "    print(f.rsplit('/', 1)[-1], len(r))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == len(files)
    cmd = [sys.executable, "-m", "harnet_cli.main", "predict", str(files[4]), "--model", str(model),
           "--out", str(tmp_path / "o.csv"), "-q", "--reader", "actipy"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "--reader actipy needs a Java runtime (8 or newer)" in p.stderr and "apt-get install default-jre-headless" in p.stderr
