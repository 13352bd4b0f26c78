"""Faults from the machine: a full disk, a quota, a read-only file system, a shared read-only cache.

Faults are made real where the test can (a small tmpfs, a read-only bind mount: both need root
and a sandbox that permits mounts; the tests skip cleanly otherwise) and injected otherwise (an
``OSError`` raised from the write path). As root, permission bits do not stop writes, so no
test relies on chmod. docs/reliability.md's "Machine faults" table lists the cases of
:data:`CASES`; a test keeps the two in step.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harnet import cachedirs, hub, registry
from harnet._fileio import TMP_MARK
from harnet.errors import WriteError, fault_errno, write_error
from harnet_cli.main import main

FS = 25
DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"

#: case -> (outcome as the table says it, the test that shows it)
CASES = {
    "predict-disk-full": ("refused (exit 1)", "test_predict_on_a_full_disk"),
    "predict-quota-readonly-permission-name": ("refused (exit 1)", "test_predict_write_faults_injected"),
    "predict-out-read-only": ("refused before reading (exit 1)", "test_out_on_a_read_only_mount_is_refused_before_reading"),
    "predict-out-under-a-file": ("refused before reading (exit 1)", "test_out_paths_that_cannot_be_made"),
    "convert-disk-full": ("refused (exit 1)", "test_convert_on_a_full_disk"),
    "export-disk-full": ("refused (exit 1)", "test_export_on_a_full_disk"),
    "download-disk-full": ("refused (exit 1)", "test_download_into_a_full_cache"),
    "batch-one-folder-read-only": ("processed, one listed in failures.csv (exit 1)", "test_batch_lists_a_recording_whose_folder_is_read_only"),
    "batch-disk-full": ("stopped at once (exit 1), resumes", "test_batch_stops_when_the_output_disk_fills_and_resumes"),
    "hpc-recipe": ("processed", "test_hpc_recipe_download_then_read_only_offline"),
    "read-only-cache-lacking-derived": ("processed, built per user", "test_read_only_cache_lacking_derived_files"),
    "nothing-writable": ("refused (exit 1)", "test_read_only_cache_lacking_derived_files"),
    "many-jobs-fresh-cache": ("converted and exported once", "test_jobs_starting_together_convert_and_export_once"),
    # errors found before the work (issue 12, part 6)
    "usage-out-is-a-folder": ("refused (exit 2)", "test_errors_found_before_the_work"),
    "usage-start-after-end": ("refused (exit 2)", "test_errors_found_before_the_work"),
    "no-windows-in-span": ("refused (exit 1)", "test_errors_found_before_the_work"),
    "errors-name-cli-options": ("refused (exit 1)", "test_errors_name_cli_options"),
}


# ---- mounts -----------------------------------------------------------------------------------

class Mounts:
    def __init__(self) -> None:
        self.made: list[Path] = []

    def _mount(self, *args: str) -> None:
        if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("needs root and mount(8) to make the fault real")
        p = subprocess.run(["mount", *args], capture_output=True, text=True)
        if p.returncode != 0:
            pytest.skip(f"mount is not permitted here: {p.stderr.strip()}")

    def tmpfs(self, path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        self.made.append(path)
        return path

    def read_only(self, path: Path) -> Path:
        """Make ``path`` (a folder) read-only in place, until :meth:`undo` or the test ends."""
        path.mkdir(parents=True, exist_ok=True)
        self._mount("--bind", str(path), str(path))
        self.made.append(path)
        self._mount("-o", "remount,ro,bind", str(path))
        return path

    def undo(self, path: Path) -> None:
        subprocess.run(["umount", str(path)], check=True)
        self.made.remove(path)

    def close(self) -> None:
        for p in reversed(self.made):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)


@pytest.fixture
def mounts():
    m = Mounts()
    yield m
    m.close()


def fill_up(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; return the filler file."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    with open(filler, "ab", buffering=0) as f:  # the last partial block
        try:
            for _ in range(64):
                f.write(b"\0" * 1024)
        except OSError:
            pass
    return filler


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("harnet: error:") or "Traceback" in ln or "internal error" in ln]
    assert len(lines) == 1 and lines[0].startswith("harnet: error:"), err
    return lines[0]


# ---- inputs and models --------------------------------------------------------------------------

def recording(path: Path, minutes: float = 10, seed: int = 0) -> Path:
    from harnet.io import write_cwa

    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * FS)
    t = np.arange(n) / FS
    a = rng.uniform(0.1, 0.6)
    xyz = np.stack([a * np.sin(2 * np.pi * 1.3 * t), 0.5 * a * np.cos(2 * np.pi * 0.7 * t), np.ones(n)], 1)
    xyz += rng.standard_normal((n, 3)) * 0.02
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_cwa(path, "2024-03-01T10:00:00", xyz.astype(np.float32), fs=FS)


@pytest.fixture(scope="module")
def model5(tmp_path_factory) -> Path:
    """A harnet5 classifier directory with its direct ONNX graph (used with --backend onnx)."""
    from _tinymodels import make_model_dir

    from harnet.onnx.export import ensure_onnx

    d = make_model_dir(tmp_path_factory.mktemp("fault-model") / "m5", "harnet5", seed=1)
    ensure_onnx(d)
    return d


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, bytes]:
    pytest.importorskip("joblib")
    from _fakebundle import write_bundle

    p = tmp_path_factory.mktemp("bundle") / "ssl.joblib"
    return p, write_bundle(p)


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Path:
    return recording(tmp_path_factory.mktemp("rec") / "rec.cwa")


@pytest.fixture
def server():
    from test_hub import FakeServer

    s = FakeServer()
    s.httpd.handle_error = lambda *a: None  # a client that stops reading (its disk is full) is no server error
    yield s
    s.close()


@pytest.fixture
def registered(server, bundle, monkeypatch):
    """The test bundle served on 127.0.0.1 as registry entry ``tiny-classifier``."""
    from _fakebundle import entry_for

    server.files["/w/ssl.joblib"] = bundle[1]
    entry = entry_for(server.url("/w/ssl.joblib"), bundle[1])
    monkeypatch.setitem(registry._BY_NAME, entry.name, entry)
    return entry


@pytest.fixture
def user_dirs(tmp_path, monkeypatch):
    """Per-user fallback folders inside the test's tmp_path (never the real home or /tmp)."""
    xdg, tmp = tmp_path / "xdg", tmp_path / "tmpdir"
    xdg.mkdir()
    tmp.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(cachedirs, "_ANNOUNCED", set())
    return xdg, tmp


# ---- the translation itself ---------------------------------------------------------------------

@pytest.mark.parametrize("n, words", [
    (errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota"), (errno.EROFS, "read-only"),
    (errno.EACCES, "permission denied"), (errno.EPERM, "not permitted"), (errno.ENAMETOOLONG, "too long"),
])
def test_write_error_names_path_cause_and_fix(n, words):
    e = write_error(OSError(n, os.strerror(n)), "/data/out/summary.csv", what="the summary", fix="then run again")
    assert isinstance(e, WriteError) and e.errno == n and e.exit_code == 1
    msg = str(e)
    assert "/data/out/summary.csv" in msg and words in msg and errno.errorcode[n] in msg and msg.endswith("then run again")
    assert "\n" not in msg


def test_fault_numbers_read_from_library_texts():
    class SafetensorError(Exception):  # safetensors' Rust error carries the number in its text only
        pass

    assert fault_errno(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")) == errno.ENOSPC
    assert fault_errno(OSError("Error writing bytes to file. Detail: [errno 122] Disk quota exceeded")) == errno.EDQUOT
    assert fault_errno(ValueError("[errno 28] is not about the disk")) is None  # only OS-level errors
    assert fault_errno(FileNotFoundError(errno.ENOENT, "missing")) is None  # not a machine fault
    assert write_error(RuntimeError("a bug")) is None


# ---- predict -----------------------------------------------------------------------------------

def test_predict_on_a_full_disk(tmp_path, mounts, model5, rec, capsys):
    mnt = mounts.tmpfs(tmp_path / "full", "256k")
    fill_up(mnt)
    code = main(["predict", str(rec), "--model", str(model5), "--backend", "onnx", "--out", str(mnt / "out" / "s.csv")])
    err = capsys.readouterr().err
    assert code == 1, err
    line = one_error_line(err)
    assert "no space left on the device (ENOSPC)" in line and str(mnt / "out") in line and "free space" in line
    assert [p for p in mnt.rglob("*") if p.is_file() and p.name != "filler"] == []  # nothing half-written


@pytest.mark.parametrize("n, words", [
    (errno.EDQUOT, "disk quota is exceeded"), (errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
    (errno.EPERM, "not permitted"), (errno.ENAMETOOLONG, "too long"),
])
def test_predict_write_faults_injected(n, words, tmp_path, model5, rec, monkeypatch, capsys):
    import pandas as pd

    def refuse(self, path, *a, **k):
        raise OSError(n, os.strerror(n))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", refuse)
    out = tmp_path / "out"
    args = ["predict", str(rec), "--model", str(model5), "--backend", "onnx", "--out", str(out / "s.csv")]
    assert main(args) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"the per-window series {out / 's-timeseries.parquet'}" in line and words in line
    assert list(out.iterdir()) == []  # neither the summary nor a temporary file
    with pytest.raises(WriteError):  # --debug: the exception and its traceback
        main(["--debug", *args])


def test_out_on_a_read_only_mount_is_refused_before_reading(tmp_path, mounts, model5, rec, capsys):
    ro = mounts.read_only(tmp_path / "ro")
    code = main(["predict", str(rec), "--model", str(model5), "--backend", "onnx", "--out", str(ro / "sub" / "s.csv")])
    err = capsys.readouterr().err
    assert code == 1
    line = one_error_line(err)
    assert "read-only (EROFS)" in line and str(ro / "sub") in line
    assert "harnet: reading" not in err  # refused before the recording was read


def test_out_paths_that_cannot_be_made(tmp_path, model5, rec, capsys):
    (tmp_path / "afile").write_text("x")
    base = ["predict", str(rec), "--model", str(model5), "--backend", "onnx"]
    assert main([*base, "--out", str(tmp_path / "afile" / "sub" / "s.csv")]) == 1
    err = capsys.readouterr().err
    assert "not a folder (ENOTDIR)" in one_error_line(err) and "harnet: reading" not in err
    assert main([*base, "--out", str(tmp_path / ("n" * 300) / "s.csv")]) == 1
    assert "too long (ENAMETOOLONG)" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing made


def test_errors_found_before_the_work(tmp_path, model5, rec, capsys):
    base = ["predict", str(rec), "--model", str(model5), "--backend", "onnx"]
    # a folder given to --out: use --outdir (a usage error)
    assert main([*base, "--out", str(tmp_path)]) == 2
    assert "use --outdir" in capsys.readouterr().err
    # --start after --end
    assert main([*base, "--out", str(tmp_path / "s.csv"), "--start", "2024-03-02", "--end", "2024-03-01"]) == 2
    assert "--start 2024-03-02 is not before --end 2024-03-01" in capsys.readouterr().err
    # no windows in the span: the recording's own first and last times, not a file that is not written
    assert main([*base, "--out", str(tmp_path / "s.csv"), "--start", "2025-01-01", "--end", "2025-01-02"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "2024-03-01 10:00:00" in line and "2024-03-01 10:09:55" in line and "info.json" not in line
    assert not (tmp_path / "s.csv").exists()


def test_errors_name_cli_options(tmp_path, model5, capsys):
    csv = tmp_path / "t.csv"
    csv.write_text("when,x,y,z\n2024-01-01 00:00:00,0,0,1\n2024-01-01 00:00:01,0,0,1\n")
    assert main(["predict", str(csv), "--model", str(model5), "--backend", "onnx", "--out", str(tmp_path / "s.csv")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "--time-col" in line and "time_col" not in line, line


# ---- convert, export, download -------------------------------------------------------------------

def test_convert_on_a_full_disk(tmp_path, mounts, bundle, capsys):
    mnt = mounts.tmpfs(tmp_path / "full", "4m")
    code = main(["convert", str(bundle[0]), "--out", str(mnt / "m")])
    err = capsys.readouterr().err
    assert code == 1
    line = one_error_line(err)
    assert "no space left on the device (ENOSPC)" in line and str(mnt / "m" / "model.safetensors") in line
    assert "internal error" not in err and "SafetensorError" not in err
    assert listing(mnt) == []  # no model directory, no weights, no temporary file


def test_export_on_a_full_disk(tmp_path, mounts, model5, capsys):
    mnt = mounts.tmpfs(tmp_path / "full", "1m")
    assert main(["export", str(model5), "--onnx", str(mnt / "m.onnx")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "no space left on the device (ENOSPC)" in line and str(mnt / "m.onnx") in line
    assert listing(mnt) == []


def test_download_into_a_full_cache(tmp_path, mounts, registered, monkeypatch, capsys):
    mnt = mounts.tmpfs(tmp_path / "full", "2m")
    monkeypatch.setenv("HARNET_CACHE", str(mnt))
    assert main(["download", registered.name, "--no-progress"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "no space left on the device (ENOSPC)" in line and "HARNET_CACHE" in line
    assert not [p for p in mnt.rglob("*") if TMP_MARK in p.name]
    assert not hub.cached_path(registered).exists()


# ---- batches -----------------------------------------------------------------------------------

def test_batch_lists_a_recording_whose_folder_is_read_only(tmp_path, mounts, model5, capsys):
    recs = [recording(tmp_path / "in" / f"P{i}.cwa", seed=i) for i in range(3)]
    out = tmp_path / "out"
    mounts.read_only(out / "P1")
    code = main(["predict", *map(str, recs), "--model", str(model5), "--backend", "onnx", "--outdir", str(out), "-q"])
    assert code == 1
    with open(out / "failures.csv") as f:
        rows = list(__import__("csv").DictReader(f))
    assert [r["name"] for r in rows] == ["P1"] and rows[0]["error"] == "WriteError"
    assert "read-only (EROFS)" in rows[0]["reason"] and str(out / "P1") in rows[0]["reason"]
    assert (out / "P0" / "info.json").is_file() and (out / "P2" / "info.json").is_file()


def test_batch_stops_when_the_output_disk_fills_and_resumes(tmp_path, mounts, model5, monkeypatch, capsys):
    from harnet.batch import local

    recs = [recording(tmp_path / "in" / f"P{i}.cwa", seed=i) for i in range(3)]
    out = mounts.tmpfs(tmp_path / "out", "512k")
    filler = fill_up(out)
    calls = []
    real = local.process_recording
    monkeypatch.setattr(local, "process_recording", lambda t: calls.append(t.name) or real(t))
    args = ["predict", *map(str, recs), "--model", str(model5), "--backend", "onnx", "--outdir", str(out), "-q"]
    assert main(args) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "batch stopped" in line and "no space left on the device (ENOSPC)" in line and "2 left undone, 0 done now" in line
    assert len(calls) == 1  # it stopped at once
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name or p.name in ("summary.csv", "info.json")]
    filler.unlink()  # space again: the same command resumes and finishes
    calls.clear()
    assert main(args) == 0
    assert sorted(calls) == ["P0", "P1", "P2"]
    assert all((out / f"P{i}" / "info.json").is_file() for i in range(3))


# ---- the shared cache and the HPC recipe ---------------------------------------------------------

def test_hpc_recipe_download_then_read_only_offline(tmp_path, mounts, registered, rec, user_dirs, monkeypatch, capsys):
    """README, "On an HPC cluster": download on the login node, then read-only and offline on compute nodes."""
    os.umask(0o022)
    cache = hub.cache_dir()
    assert main(["download", registered.name, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    model_dir = cache / "models" / f"{registered.name}-{registered.checksum[:12]}"
    assert out.splitlines() == [
        f"{registered.name}: raw: {hub.cached_path(registered)}",
        f"{registered.name}: model: {model_dir}",
        f"{registered.name}: onnx-winograd: {model_dir / 'model.winograd.onnx'}",
    ]
    assert "Oxford Academic Use Licence" in err
    for p in cache.rglob("*"):  # a shared cache: readable by the group and others (umask 022)
        if TMP_MARK not in p.name and not p.name.endswith(".lock"):
            want = 0o055 if p.is_dir() else 0o044
            assert os.stat(p).st_mode & want == want, (p, oct(os.stat(p).st_mode))
    # compute node: the cache mounted read-only, no network
    mounts.read_only(cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["predict", str(rec), "--model", registered.name, "--out", str(tmp_path / "o" / "s.csv")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "cannot be written" not in err
    assert (tmp_path / "o" / "s.csv").is_file()
    assert [listing(d) for d in user_dirs] == [[], []]  # nothing built anywhere else


def test_read_only_cache_lacking_derived_files(tmp_path, mounts, registered, rec, user_dirs, monkeypatch, capsys):
    xdg, tmp = user_dirs
    cache = hub.cache_dir()
    hub.fetch(registered, progress=False)  # the raw file only, as older harnet versions left it
    mounts.read_only(cache)
    monkeypatch.setenv("HARNET_OFFLINE", "1")
    args = ["predict", str(rec), "--model", registered.name, "--backend", "onnx", "--out", str(tmp_path / "o" / "s.csv")]
    # nothing writable: one line saying what to run where
    mounts.read_only(xdg)
    mounts.read_only(tmp)
    assert main(args) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"run `harnet download {registered.name}` where {cache} is writable" in line
    # a writable per-user folder: built there, said once
    mounts.undo(xdg)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("cannot be written") == 1 and f"{xdg / 'harnet'}" in err
    built = xdg / "harnet" / "models" / f"{registered.name}-{registered.checksum[:12]}"
    assert (built / "config.json").is_file() and (built / "model.onnx").is_file()
    assert main(args) == 0  # found there next time
    assert "cannot be written" not in capsys.readouterr().err


WORKER = r"""
import json, os, sys
from harnet import registry
from harnet.registry import WeightsEntry
entry = WeightsEntry(**json.loads(sys.argv[1]))
registry._BY_NAME[entry.name] = entry
import harnet.convert, harnet.onnx.export
def counted(kind, f):
    def run(*a, **k):
        with open(os.environ["COUNT_FILE"], "a") as fh:
            fh.write(kind + "\n")
        return f(*a, **k)
    return run
harnet.convert.convert = counted("convert", harnet.convert.convert)
harnet.onnx.export.export_onnx = counted("export", harnet.onnx.export.export_onnx)
import torch  # noqa: F401 (loaded before the start signal, so that the jobs overlap)
from harnet.offline import fill
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps([str(p) for _, p in fill(entry.name, backend="onnx")]), flush=True)
"""


def test_jobs_starting_together_convert_and_export_once(tmp_path, registered, user_dirs):
    hub.fetch(registered, progress=False)
    env = {**os.environ, "COUNT_FILE": str(tmp_path / "count"), "HARNET_OFFLINE": "1"}
    d = registered.to_dict()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(d)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:  # all at once
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        o, e = p.communicate(timeout=300)
        assert p.returncode == 0, e
        results.append(json.loads(o.strip().splitlines()[-1]))
    assert all(r == results[0] for r in results)
    counts = (tmp_path / "count").read_text().split()
    assert sorted(counts) == ["convert", "export"], counts  # once each, not once per job
    assert not [p for p in hub.cache_dir().rglob("*") if TMP_MARK in p.name or ".tmp-" in p.name]


# ---- the documented table ------------------------------------------------------------------------

def test_documented_machine_faults_table():
    """docs/reliability.md's "Machine faults" table has one row per case, outcome as here, and each test exists."""
    text = DOC.read_text()
    assert "## Machine faults" in text
    section = text.split("## Machine faults", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells
    assert sorted(rows) == sorted(CASES), (sorted(set(rows) ^ set(CASES)))
    for case, (outcome, test) in CASES.items():
        assert rows[case][2].lower().startswith(outcome.lower()), (case, rows[case][2])
        assert callable(globals().get(test)), test
        assert f"`{test}`" in rows[case][-1], (case, rows[case][-1])


def test_atomic_files_follow_the_umask_even_when_the_writer_replaces_them(tmp_path):
    """safetensors writes a new 0600 file over the temporary one; the final file still gets 0666 & ~umask."""
    from harnet._fileio import atomic_path

    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "w.bin") as tmp:
            tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"x")
            os.close(fd)
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "w.bin").st_mode & 0o777) == oct(0o640)
