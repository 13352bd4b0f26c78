"""Batch prediction: inputs, folder names, thread budget, failures, resume rules (local mode).

The helpers at the top (a tiny harnet30 model, short generated CWA recordings) are shared with
test_batch_resume.py, test_batch_dask.py and test_collate.py.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harnet import batch
from harnet._fileio import TMP_MARK
from harnet.errors import HarnetError, InputError
from harnet.pipeline import PredictOptions

FS = 25


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A harnet30 classifier with its ONNX export (random weights, generated at test time)."""
    from _tinymodels import make_model_dir

    from harnet.onnx.export import ensure_onnx

    d = make_model_dir(tmp_path_factory.mktemp("batchmodel") / "m30", "harnet30", seed=3)
    ensure_onnx(d)
    return d


def make_recording(path: Path, seed: int, minutes: float = 10, start: str = "2024-03-01T23:50:00") -> Path:
    """A short CWA recording: gravity on z, a seeded movement and noise (25 Hz)."""
    from harnet.io import write_cwa

    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * FS)
    t = np.arange(n) / FS
    f, a = rng.uniform(0.3, 2.5), rng.uniform(0.05, 0.8)
    xyz = np.stack([a * np.sin(2 * np.pi * f * t), 0.5 * a * np.cos(2 * np.pi * f * t), np.ones(n)], 1)
    xyz += rng.standard_normal((n, 3)) * 0.02
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_cwa(path, start, xyz, fs=FS)


def make_cohort(root: Path, n: int, minutes: float = 10) -> list[Path]:
    return [make_recording(root / f"P{i:02d}.cwa", seed=i, minutes=minutes) for i in range(n)]


def opts_for(model: Path, **kw) -> PredictOptions:
    return PredictOptions(model=str(model), backend="onnx", **kw)


def read_failures(outdir: Path) -> list[dict[str, str]]:
    with open(outdir / batch.FAILURES_FILE, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def output_bytes(outdir: Path) -> dict[str, bytes]:
    """Every deterministic output file (run.json holds timings and is left out)."""
    return {
        str(p.relative_to(outdir)): p.read_bytes()
        for p in sorted(outdir.glob("*/*"))
        if p.name in batch.DONE_FILES
    }


# ---- inputs ------------------------------------------------------------------------------------

def test_expand_inputs_dirs_globs_lists_and_outdir_excluded(tmp_path):
    data = tmp_path / "data"
    for rel in ["a/P01.cwa", "a/P02.CWA.gz", "b/P03.csv", "b/deep/P04.cwa", "b/readme.txt", "a/.hidden.cwa", "a/.snapshot/P05.cwa",
                f"a/.x{TMP_MARK}1.cwa"]:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(b"x")
    out = data / "out"
    (out / "P01").mkdir(parents=True)
    (out / "P01" / "summary.csv").write_text("Date\n")  # an output must never become an input
    got = batch.expand_inputs([data], exclude=out)
    assert [p.relative_to(data).as_posix() for p in got] == ["a/P01.cwa", "a/P02.CWA.gz", "b/P03.csv", "b/deep/P04.cwa"]
    assert all(p.is_absolute() for p in got)

    got = batch.expand_inputs([data], pattern="**/*.cwa", exclude=out)
    assert [p.name for p in got] == ["P01.cwa", "P04.cwa"]
    got = batch.expand_inputs([str(data / "*" / "P0[13]*")], exclude=out)
    assert [p.name for p in got] == ["P01.cwa", "P03.csv"]

    lst = tmp_path / "lists" / "files.txt"
    lst.parent.mkdir()
    lst.write_text(f"# cohort\n../data/a/P01.cwa\n\n{data / 'b'}\n../data/a/P01.cwa\nmissing.cwa\n")
    got = batch.expand_inputs([f"@{lst}", data / "a" / "P01.cwa"], exclude=out)
    # relative entries are relative to the list; duplicates collapse; a missing file stays (it fails alone)
    assert [p.name for p in got] == ["P01.cwa", "P03.csv", "P04.cwa", "missing.cwa"]
    assert got[-1] == (lst.parent / "missing.cwa").absolute()


def test_expand_inputs_refuses_what_names_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no device files"):
        batch.expand_inputs([tmp_path / "empty"])
    with pytest.raises(InputError, match="no files match"):
        batch.expand_inputs([str(tmp_path / "*.cwa")])
    with pytest.raises(InputError, match="cannot read the file list"):
        batch.expand_inputs([f"@{tmp_path / 'nolist.txt'}"])
    with pytest.raises(InputError, match="files matching"):
        batch.expand_inputs([tmp_path], pattern="*.gt3x")


def test_names_unique_stems_hashed_clashes_stable_keeper(tmp_path):
    a, b, c = tmp_path / "s1" / "P01.cwa.gz", tmp_path / "s2" / "P01.cwa", tmp_path / "s1" / "P02.csv"
    assert batch.recording_stem(a) == "P01" and batch.recording_stem(c) == "P02"
    assert batch.recording_stem("notes.txt") == "notes"
    names = batch.recording_names([a, b, c])
    assert names == [f"P01-{batch.path_hash(a)}", f"P01-{batch.path_hash(b)}", "P02"]
    assert names[0] != names[1] and batch.recording_names([a, b, c]) == names  # stable
    # case-insensitive clash (one folder on macOS/Windows)
    assert batch.recording_names([tmp_path / "x" / "p01.cwa", b])[0].startswith("p01-")
    # outputs of a already in out/P01: a keeps that folder when b joins the cohort later
    out = tmp_path / "out"
    (out / "P01").mkdir(parents=True)
    (out / "P01" / "info.json").write_text(json.dumps({"input": {"path": os.path.abspath(a)}}))
    assert batch.recording_names([a, b, c], out) == ["P01", f"P01-{batch.path_hash(b)}", "P02"]
    assert batch.recording_names([b, a], out) == [f"P01-{batch.path_hash(b)}", "P01"]


def test_thread_budget_never_exceeds_cpus():
    import logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())  # type: ignore[method-assign]
    logging.getLogger("harnet").addHandler(handler)
    try:
        assert batch.thread_budget(1, None, 8) == (1, 8)
        assert batch.thread_budget(3, None, 8) == (3, 2)
        assert batch.thread_budget(2, 2, 8) == (2, 2)
        assert not seen
        assert batch.thread_budget(4, 4, 8) == (4, 2)  # capped, with a warning
        assert seen and "exceeds the 8 CPUs" in seen[-1]
    finally:
        logging.getLogger("harnet").removeHandler(handler)
    assert batch.thread_budget(16, None, 8) == (8, 1)
    for w in range(1, 20):
        for t in (None, 1, 3, 64):
            ww, tt = batch.thread_budget(w, t, 6)
            assert ww * tt <= 6 and ww >= 1 and tt >= 1
    with pytest.raises(InputError):
        batch.thread_budget(0, None, 4)


# ---- running ----------------------------------------------------------------------------------------

def test_bad_files_fail_alone_and_exit_nonzero(tmp_path, tiny_model, capsys):
    from harnet.io.cwa_writer import corrupt_blocks
    from harnet_cli.main import main

    good = make_cohort(tmp_path / "data", 2)
    corrupt = make_recording(tmp_path / "data" / "broken.cwa", seed=9)
    corrupt_blocks(corrupt, np.arange(10 * 60 * FS // 120))  # every data block fails its checksum
    unsupported = tmp_path / "data" / "notes.txt"
    unsupported.write_text("participant notes\n")
    out = tmp_path / "out"
    code = main(["predict", str(good[0]), str(corrupt), str(unsupported), str(good[1]), "--outdir", str(out),
                 "--model", str(tiny_model), "--backend", "onnx", "--threads", "1", "-q"])
    assert code == 1
    err = capsys.readouterr().err
    assert "2 of 4 input(s) failed" in err and str(out / "failures.csv") in err
    rows = read_failures(out)
    assert [(r["name"], r["error"]) for r in rows] == [("broken", "InputError"), ("notes", "InputError")]
    assert rows[0]["input"] == str(corrupt) and "format not supported" in rows[1]["reason"]
    assert all("\n" not in r["reason"] and r["reason"] for r in rows)
    for name in ("P00", "P01"):
        assert all((out / name / f).is_file() for f in (*batch.DONE_FILES, batch.RUN_FILE))
        info = json.loads((out / name / "info.json").read_text())
        assert info["input"]["path"] == str(tmp_path / "data" / f"{name}.cwa")
        assert "StageSeconds" not in info  # timings live in run.json
        assert "StageSeconds" in json.loads((out / name / "run.json").read_text())
    assert not (out / "broken").exists() and not (out / "notes").exists()

    # fix the inputs and rerun: the done ones are skipped, failures.csv is rewritten
    corrupt.unlink()
    unsupported.unlink()
    code = main(["predict", str(tmp_path / "data"), "--outdir", str(out), "--model", str(tiny_model),
                 "--backend", "onnx", "--threads", "1"])
    assert code == 0
    assert "2 input(s): 0 processed, 2 already done, 0 failed" in capsys.readouterr().err
    assert read_failures(out) == []


def test_resume_rules_options_model_force_and_size(tmp_path, tiny_model, monkeypatch):
    files = make_cohort(tmp_path / "data", 3, minutes=6)
    log = tmp_path / "events.log"
    monkeypatch.setenv(batch.EVENT_LOG_ENV, str(log))
    out = tmp_path / "out"

    def run(**kw):
        force = kw.pop("force", False)
        rep = batch.process_batch(files, out, opts_for(tiny_model, threads=1, **kw), force=force)
        assert rep.ok
        return rep

    rep = run()
    assert sorted(rep.processed) == ["P00", "P01", "P02"] and rep.skipped == []
    first = output_bytes(out)
    # speed-only options do not make a recording stale
    rep = run(batch_size=7)
    assert rep.processed == [] and sorted(rep.skipped) == ["P00", "P01", "P02"]
    # a result-changing option does; the new outputs replace the old ones
    rep = run(min_wear_per_day=0.05)
    assert sorted(rep.processed) == ["P00", "P01", "P02"]
    assert json.loads((out / "P00" / "info.json").read_text())["options"]["min_wear_per_day"] == 0.05
    # --force redoes everything, with identical bytes for identical options
    rep = run(force=True)
    assert sorted(rep.processed) == ["P00", "P01", "P02"]
    assert output_bytes(out) == first
    # a replaced input file (other size) is redone; a damaged info.json is not done
    make_recording(files[1], seed=11, minutes=7)
    (out / "P02" / "info.json").write_text("{not json")
    rep = run()
    assert sorted(rep.processed) == ["P01", "P02"] and rep.skipped == ["P00"]
    # other weights (same architecture and labels): everything is redone
    from _tinymodels import make_model_dir

    other = make_model_dir(tmp_path / "other", "harnet30", seed=4)
    rep = batch.process_batch(files, out, opts_for(other, threads=1))
    assert sorted(rep.processed) == ["P00", "P01", "P02"]
    names = [line.split("\t")[0] for line in log.read_text().splitlines()]
    assert len(names) == 3 + 3 + 3 + 2 + 3


def test_stale_temps_removed_and_lock_refuses_second_batch(tmp_path, tiny_model):
    files = make_cohort(tmp_path / "data", 1, minutes=4)
    out = tmp_path / "out"
    stale = [out / f".summary{TMP_MARK}abc.csv", out / "P00" / f".info{TMP_MARK}x.json", out / "P09" / f".t{TMP_MARK}"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("half")
    keep = out / "P09" / "notes.txt"
    keep.write_text("mine")
    assert sorted(batch.clean_stale_temps(out)) == sorted(stale)
    assert keep.exists() and not any(p.exists() for p in stale)

    import fcntl

    with open(out / batch.LOCK_FILE, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(HarnetError, match="another harnet batch"):
            batch.process_batch(files, out, opts_for(tiny_model, threads=1))
    assert batch.process_batch(files, out, opts_for(tiny_model, threads=1)).processed == ["P00"]


def test_backbone_and_outdir_errors(tmp_path, tiny_model):
    files = make_cohort(tmp_path / "data", 1, minutes=2)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        batch.process_batch(files, f, opts_for(tiny_model))
    cfg = json.loads((tiny_model / "config.json").read_text())
    bb = tmp_path / "bb"
    bb.mkdir()
    for p in tiny_model.iterdir():
        (bb / p.name).write_bytes(p.read_bytes())
    (bb / "config.json").write_text(json.dumps({**cfg, "kind": "backbone"}))
    with pytest.raises(HarnetError, match="backbone"):
        batch.process_batch(files, tmp_path / "o", opts_for(bb))


def test_cli_batch_usage_errors(tmp_path, tiny_model, capsys):
    from harnet_cli.main import main

    a = make_recording(tmp_path / "a.cwa", 0, minutes=2)
    assert main(["predict", str(a), str(a), "--out", str(tmp_path / "x.csv")]) == 2
    assert main(["predict", str(a), "--outdir", str(tmp_path / "o"), "--plot", str(tmp_path / "p.png")]) == 2
    assert main(["predict", str(a), "--outdir", str(tmp_path / "o"), "--workers", "2",
                 "--scheduler", "tcp://127.0.0.1:1"]) == 1
    assert "--workers is for the local mode" in capsys.readouterr().err


@pytest.mark.slow
def test_worker_processes_match_in_process(tmp_path, tiny_model):
    """Two spawned workers (one thread each) give the same bytes as one in-process worker, and a
    script without an ``if __name__ == "__main__":`` guard is not re-run by the workers."""
    import subprocess

    files = make_cohort(tmp_path / "data", 3, minutes=6)
    r1 = batch.process_batch(files, tmp_path / "o1", opts_for(tiny_model, threads=1), workers=1)
    assert sorted(r1.processed) == ["P00", "P01", "P02"]
    script = tmp_path / "analysis.py"
    script.write_text(
        "import harnet\n"
        f"cohort = harnet.predict_many({[str(f) for f in files]!r}, {str(tmp_path / 'o2')!r}, workers=2,\n"
        f"    model={str(tiny_model)!r}, backend='onnx', threads=1, progress=False)\n"
        "print('participants', len(cohort.participants), 'days', len(cohort.days))\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["participants", "3", "days", "3"]  # printed once: the workers never ran the script
    b1, b2 = output_bytes(tmp_path / "o1"), output_bytes(tmp_path / "o2")
    assert len(b1) == 9 and b1 == b2
    pids = {json.loads((tmp_path / "o2" / n / "run.json").read_text())["pid"] for n in ("P00", "P01", "P02")}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


@pytest.mark.slow
def test_worker_death_costs_only_its_recording(tmp_path, tiny_model, monkeypatch):
    """A worker process killed mid-recording (as by the OOM killer): that input fails, the rest run."""
    hook = tmp_path / "hook"
    hook.mkdir()
    # imported at start-up by the spawned workers only (they inherit PYTHONPATH): the recording
    # named CRASH kills its worker process with SIGKILL
    (hook / "sitecustomize.py").write_text(
        "import os, signal\n"
        "import harnet.batch.worker as b\n"
        "_real = b.process_recording\n"
        "def _crashy(task):\n"
        "    if task.name == 'CRASH':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return _real(task)\n"
        "b.process_recording = _crashy\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    files = make_cohort(tmp_path / "data", 3, minutes=3)
    crash = make_recording(tmp_path / "data" / "CRASH.cwa", seed=7, minutes=3)
    out = tmp_path / "out"
    rep = batch.process_batch([files[0], crash, files[1], files[2]], out, opts_for(tiny_model, threads=1), workers=2)
    assert sorted(rep.processed) == ["P00", "P01", "P02"]
    assert [(f.name, f.error) for f in rep.failures] == [("CRASH", "WorkerDied")]
    assert [r["name"] for r in read_failures(out)] == ["CRASH"] and "worker process died" in read_failures(out)[0]["reason"]
    assert not (out / "CRASH" / "info.json").exists()
    # in this process the hook is absent: the same recording works
    assert batch.process_batch([crash], out, opts_for(tiny_model, threads=1)).processed == ["CRASH"]
