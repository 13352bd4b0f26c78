"""Resume after SIGKILL: each recording processed exactly once overall, identical bytes, no temp files."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_batch import make_cohort, opts_for, output_bytes, tiny_model  # noqa: F401  (fixture)

from harnet import batch
from harnet._fileio import TMP_MARK

N = 5


def _cli(files, out, model) -> list[str]:
    return [sys.executable, "-m", "harnet_cli.main", "predict", *map(str, files), "--outdir", str(out),
            "--model", str(model), "--backend", "onnx", "--workers", "2", "--threads", "1", "-q"]


@pytest.mark.slow
def test_sigkill_midway_then_rerun(tmp_path, tiny_model):  # noqa: F811
    files = make_cohort(tmp_path / "data", N, minutes=8)
    names = [f"P{i:02d}" for i in range(N)]

    # reference: one uninterrupted batch (in this process, one thread: same numbers as the workers)
    ref = batch.process_batch(files, tmp_path / "ref", opts_for(tiny_model, threads=1), workers=1)
    assert sorted(ref.processed) == names

    out = tmp_path / "out"
    log = tmp_path / "events.log"
    env = {**os.environ, batch.EVENT_LOG_ENV: str(log), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli(files, out, tiny_model), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker processes
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    n_first = len(log.read_text().splitlines())
    assert 2 <= n_first < N
    # a killed writer may leave temporary files; plant one the way atomic_path names them
    (out / names[-1]).mkdir(parents=True, exist_ok=True)
    (out / names[-1] / f".summary{TMP_MARK}k1ll3d.csv").write_text("Date,half")

    done = subprocess.run(_cli(files, out, tiny_model), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    counts = collections.Counter(line.split("\t")[0] for line in log.read_text().splitlines())
    assert counts == {n: 1 for n in names}  # every recording exactly once over both runs
    assert output_bytes(out) == output_bytes(tmp_path / "ref")
    assert len(output_bytes(out)) == 3 * N
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]
    assert (out / batch.FAILURES_FILE).read_text().strip() == ",".join(batch.FAILURE_COLUMNS)
