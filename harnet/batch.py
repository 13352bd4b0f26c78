"""Many recordings at once: local worker processes or a Dask cluster, resume, a failures report.

``harnet predict A.cwa B.cwa data/ @list.txt --outdir DIR`` and :func:`predict_many` both come
here. Every recording gets its own folder ``DIR/<name>/`` with ``summary.csv``,
``timeseries.parquet`` and ``info.json`` (as one ``harnet predict --outdir`` writes them) plus
``run.json`` (timings, host, threads: the only file that differs between two runs of the same
input). ``<name>`` is the file name without its device suffix (``P01`` for ``P01.cwa.gz``); when
two inputs share it, each gets ``<name>-<8 hex digits of the sha1 of its absolute path>``, except
that an input whose outputs already sit in ``DIR/<name>/`` keeps that folder, so adding files to
a cohort later never renames earlier outputs.

Resume. A recording is *done*, and skipped, when ``summary.csv``, ``timeseries.parquet`` and
``info.json`` exist and info.json records the same model weights (sha256), the same inference
backend and the same result-changing options, for an input with the same file name and size.
Options that only change speed (``threads``, ``batch_size``, ``device``) and the way the model
was named (``model``: the weights' checksum identifies it) are not compared. ``force=True``
redoes everything. Outputs are written atomically (temporary names, renamed at the end); old
outputs of a recording being redone are removed just before the new ones are renamed into
place, so a killed run never leaves a folder that looks done but is not. Temporary files left
by a killed run are removed when the next batch starts in the same folder; a lock file
(``DIR/.harnet-batch.lock``) keeps two batches from writing into one folder at the same time.

Failures. An input that cannot be processed is recorded in ``DIR/failures.csv`` (``input``,
``name``, ``error``, ``reason``: one line) and the batch goes on; a worker process that dies
(out of memory, a crash in a reader) costs only the recording it was working on. The CLI exits
with 1 when any input failed.

Parallelism. Local (the default): ``workers`` processes, each loading the model once, with
``threads`` inference threads each, so that ``workers x threads`` stays within the CPUs this
process may use (``threads`` defaults to ``cpus // workers``). Dask: pass a
``distributed.Client`` (or ``--scheduler tcp://HOST:PORT``; ``--cluster slurm|pbs|sge`` starts
workers through dask-jobqueue); each Dask worker thread runs one recording with one inference
thread (``threads`` to change it), loading the model once per worker process. Dask is optional
(``pip install 'harnet[dask]'``); the local mode does not need it.

This module imports nothing heavy at import time (worker processes import it first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import os
import sys
import time as _time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from .errors import DISK_FULL, HarnetError, InputError, WriteError, write_error

if TYPE_CHECKING:  # pragma: no cover
    from .collate import Cohort
    from .pipeline import PredictOptions

log = logging.getLogger("harnet")

#: Per-recording output files that together mean "done" (names inside ``DIR/<name>/``).
DONE_FILES = ("summary.csv", "timeseries.parquet", "info.json")
#: Volatile per-run details beside info.json: timings, host, process, threads.
RUN_FILE = "run.json"
FAILURES_FILE = "failures.csv"
FAILURE_COLUMNS = ("input", "name", "error", "reason")
LOCK_FILE = ".harnet-batch.lock"
#: Options that change speed, not results (and the model's name: its checksum is compared).
NEUTRAL_OPTIONS = ("model", "backend", "threads", "batch_size", "device")
#: When set, each finished recording appends ``<name>\\t<pid>`` to this file (tests, debugging).
EVENT_LOG_ENV = "HARNET_TEST_EVENT_LOG"
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class BatchFailed(HarnetError):
    """Some inputs of a batch failed (the rest were processed); exit code 1."""


# ---- inputs and names ----------------------------------------------------------------------

def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def _is_hidden_or_temp(p: Path) -> bool:
    from ._fileio import TMP_MARK

    return p.name.startswith(".") or TMP_MARK in p.name


def _inside(p: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        p.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _dir_files(d: Path, pattern: str | None, exclude: Path | None) -> list[Path]:
    from .io import SUFFIXES

    if pattern:
        found = (f for f in d.glob(pattern) if f.is_file())
    else:
        found = (f for f in d.rglob("*") if f.is_file() and f.name.lower().endswith(SUFFIXES))
    files = sorted(
        f for f in found
        if not any(part.startswith(".") for part in f.relative_to(d).parts)  # hidden files and folders
        and not _is_hidden_or_temp(f) and not _inside(f, exclude)
    )
    if not files:
        what = f"files matching {pattern!r}" if pattern else f"device files ({', '.join(SUFFIXES)})"
        raise InputError(f"{d}: holds no {what}; check the folder or --pattern")
    return files


def expand_inputs(
    inputs: Iterable[str | os.PathLike], pattern: str | None = None, *, exclude: str | os.PathLike | None = None
) -> list[Path]:
    """The recordings named by ``inputs``, in order, each once (by absolute path).

    Each input is a file (kept as given, even when missing or of an unknown format: that
    becomes a failure of its own, not of the batch), a folder (the files under it that harnet
    reads, recursively; or those matching ``pattern``, a glob relative to the folder such as
    ``"*.cwa.gz"`` or ``"**/*.cwa"``), a quoted glob (``"data/*/P*.cwa"``), or ``@list.txt``: a
    text file with one input per line (blank lines and ``#`` comments skipped; relative entries
    are relative to the list's folder). Files under ``exclude`` (the output folder) and hidden
    or temporary files are never taken from folders or globs.
    """
    ex = Path(exclude).resolve() if exclude is not None else None
    out: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            out.append(Path(key))

    def one(s: str, base: Path | None, depth: int) -> None:
        if s.startswith("@"):
            if depth:
                raise InputError(f"{s}: a list inside a list is not supported; put the files in one list")
            lst = Path(s[1:]).expanduser()
            if base is not None and not lst.is_absolute():
                lst = base / lst
            try:
                lines = lst.read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise InputError(f"{lst}: cannot read the file list ({e.strerror or e}); check the path after @") from None
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    one(line, lst.parent, depth + 1)
            return
        p = Path(s).expanduser()
        if base is not None and not p.is_absolute():
            p = base / p
        if p.is_dir():
            for f in _dir_files(p, pattern, ex):
                add(f)
        elif not p.exists() and _has_magic(s):
            hits = sorted(Path(h) for h in glob.glob(str(p), recursive=True))
            files: list[Path] = []
            for h in hits:
                if h.is_dir():
                    if not _inside(h, ex):
                        with contextlib.suppress(InputError):  # an empty folder among the matches
                            files += _dir_files(h, pattern, ex)
                elif h.is_file() and not _is_hidden_or_temp(h) and not _inside(h, ex):
                    files.append(h)
            if not files:
                raise InputError(f"{s}: no files match this pattern; check it (quote it to let harnet expand it)")
            for f in files:
                add(f)
        else:
            add(p)

    for s in inputs:
        one(os.fspath(s), None, 0)
    if not out:
        raise InputError("no input files given; name files, folders, globs or @list.txt")
    return out


def recording_stem(path: str | os.PathLike) -> str:
    """The file name without its device suffix: ``P01`` for ``P01.cwa.gz``, ``notes`` for ``notes.txt``."""
    from .io import SUFFIXES

    name = Path(path).name
    low = name.lower()
    for suf in sorted(SUFFIXES, key=len, reverse=True):
        if low.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    stem = Path(name).stem
    return stem or name


def path_hash(path: str | os.PathLike) -> str:
    """8 hex digits of the sha1 of the absolute path (the suffix of clashing folder names)."""
    return hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _recorded_input(folder: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    inp = info.get("input") if isinstance(info, dict) else None
    return inp if isinstance(inp, dict) else None


def recording_names(paths: Sequence[str | os.PathLike], outdir: str | os.PathLike | None = None) -> list[str]:
    """One output folder name per path (same order), unique within the batch and stable.

    ``stem`` when no other input has that stem; otherwise ``stem-<path_hash>``, except that the
    input whose outputs ``outdir/stem/info.json`` already records keeps ``stem``.
    """
    stems = [recording_stem(p) for p in paths]
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(stems):
        groups.setdefault(s.lower(), []).append(i)  # case-insensitive: folders on macOS/Windows
    names = list(stems)
    for idx in groups.values():
        if len(idx) == 1:
            continue
        keeper = None
        if outdir is not None:
            for i in idx:
                inp = _recorded_input(Path(outdir) / stems[i])
                if inp is not None and inp.get("path") == os.path.abspath(paths[i]):
                    keeper = i
                    break
        for i in idx:
            if i != keeper:
                names[i] = f"{stems[i]}-{path_hash(paths[i])}"
    return names


# ---- the per-recording task ------------------------------------------------------------------

@dataclass(frozen=True)
class RecordingTask:
    """Everything a worker needs for one recording (small and picklable)."""

    path: str
    name: str
    outdir: str
    options: dict[str, Any]
    model_dir: str
    backend: str
    threads: int | None
    event_log: str | None = None

    @property
    def folder(self) -> Path:
        return Path(self.outdir) / self.name


@dataclass
class Failure:
    input: str
    name: str
    error: str
    reason: str
    traceback: str = ""

    def row(self) -> list[str]:
        return [self.input, self.name, self.error, self.reason]


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if isinstance(e, HarnetError) else f"{type(e).__name__}: {msg}"


_BACKENDS: dict[tuple, Any] = {}
_BACKENDS_LOCK = None


def _worker_backend(task: RecordingTask) -> Any:
    """The task's backend, built once per process (Dask runs several tasks per process)."""
    global _BACKENDS_LOCK
    import threading

    if _BACKENDS_LOCK is None:
        _BACKENDS_LOCK = threading.Lock()
    key = (task.model_dir, task.backend, task.threads, task.options.get("device"), task.options.get("batch_size"))
    with _BACKENDS_LOCK:
        b = _BACKENDS.get(key)
        if b is None:
            from .backends import get_backend

            b = get_backend(
                task.model_dir, backend=task.backend, threads=task.threads,
                device=task.options.get("device"), batch_size=task.options.get("batch_size"),
            )
            _BACKENDS[key] = b
    return b


def _remove_outputs(folder: Path) -> None:
    # info.json first: without it the folder never looks done, whatever else is left
    for n in ("info.json", *DONE_FILES, RUN_FILE):
        with contextlib.suppress(FileNotFoundError):
            (folder / n).unlink()


def process_recording(task: RecordingTask) -> dict[str, Any]:
    """Run one recording and write its outputs; never raises (a failure is returned).

    Returns ``{"name", "input", "status": "done"|"failed", "seconds", ...}`` with ``error``,
    ``reason`` and ``traceback`` for a failure.
    """
    t_start = _time.time()
    out: dict[str, Any] = {"name": task.name, "input": task.path}
    try:
        from .io import read_device
        from .pipeline import PredictOptions, _Timer, output_paths, predict_recording, write_outputs

        opts = PredictOptions(**task.options)
        backend = _worker_backend(task)
        timer = _Timer()
        t0 = _time.perf_counter()
        rec = read_device(task.path, **opts.reader)
        timer.add("read", _time.perf_counter() - t0)
        res = predict_recording(rec, opts, backend=backend, model_dir=task.model_dir, timer=timer)
        del rec
        size = os.path.getsize(task.path)
        res.info.pop("StageSeconds", None)  # volatile: goes to run.json
        res.info["input"] = {"path": task.path, "name": Path(task.path).name, "size": size}
        paths = output_paths(outdir=task.outdir, name=task.name)
        _remove_outputs(task.folder)
        write_outputs(res, paths)
        from ._fileio import atomic_write_text

        run = {
            "started": _iso(t_start),
            "finished": _iso(_time.time()),
            "seconds": round(_time.time() - t_start, 3),
            "StageSeconds": {k: round(v, 3) for k, v in timer.times.items()},
            "host": _hostname(),
            "pid": os.getpid(),
            "threads": task.threads,
            "backend": getattr(backend, "name", task.backend),
        }
        atomic_write_text(task.folder / RUN_FILE, json.dumps(run, indent=1) + "\n")
        if task.event_log:
            fd = os.open(task.event_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{task.name}\t{os.getpid()}\n".encode())
            finally:
                os.close(fd)
        out.update(status="done")
    except Exception as e:  # one bad file never stops the batch: report it
        fault = write_error(e)  # the machine refused a write: one line naming the path, not a bare OSError
        err = e if fault is None else fault
        out.update(status="failed", error=type(err).__name__, reason=_one_line(err), traceback=traceback.format_exc())
        if fault is not None:
            out.update(errno=fault.errno, fault_path=fault.path)
    out["seconds"] = round(_time.time() - t_start, 3)
    return out


def _iso(t: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="seconds")


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _init_worker(threads: int) -> None:
    # Runs in a fresh (spawned) worker before numpy is imported there: BLAS and OpenMP pools
    # then stay within the worker's share of the CPUs.
    for k in _THREAD_ENV:
        os.environ[k] = str(threads)


# ---- done checks, stale files, lock -----------------------------------------------------------

def _norm(o: Any) -> Any:
    from .pipeline import json_clean

    return json.loads(json.dumps(json_clean(o), default=str))


def result_identity(options: dict[str, Any], model_config: dict[str, Any], backend: str) -> dict[str, Any]:
    """What info.json must record for an existing output to count as done."""
    return _norm(
        {
            "weights_sha256": model_config.get("weights_sha256"),
            "checksum": (model_config.get("provenance") or {}).get("checksum"),
            "backend": backend,
            "options": {k: v for k, v in options.items() if k not in NEUTRAL_OPTIONS},
        }
    )


def is_done(folder: str | os.PathLike, identity: dict[str, Any], input_path: str | os.PathLike) -> bool:
    """Whether ``folder`` holds complete outputs of ``input_path`` made with ``identity``."""
    folder = Path(folder)
    if not all((folder / n).is_file() for n in DONE_FILES):
        return False
    try:
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
        model = info["model"]
        got = _norm(
            {
                "weights_sha256": model.get("weights_sha256"),
                "checksum": model.get("checksum"),
                "backend": model.get("backend"),
                "options": {k: v for k, v in info["options"].items() if k not in NEUTRAL_OPTIONS},
            }
        )
        inp = info["input"]
        same_input = inp.get("name") == Path(input_path).name and inp.get("size") == os.path.getsize(input_path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return same_input and got == identity


def clean_stale_temps(outdir: str | os.PathLike) -> list[Path]:
    """Remove temporary files a killed run left in ``outdir`` and its recording folders."""
    from ._fileio import TMP_MARK

    d = Path(outdir)
    removed: list[Path] = []
    if not d.is_dir():
        return removed
    for p in [*d.glob(f"*{TMP_MARK}*"), *d.glob(f"*/*{TMP_MARK}*")]:
        if p.is_file() or p.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def _batch_lock(outdir: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        yield
        return
    f = open(outdir / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnetError(
                f"another harnet batch is writing to {outdir}; wait for it to finish or use another --outdir"
            ) from None
        except OSError as e:  # a file system without locks (some network mounts)
            log.warning("cannot lock %s (%s): do not run two batches into this folder at once", outdir, e)
        yield
    finally:
        f.close()


# ---- running -----------------------------------------------------------------------------------

@dataclass
class BatchReport:
    """What a batch did: names processed now, names skipped as done, failures."""

    outdir: Path
    total: int = 0
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    threads: int | None = None
    mode: str = "local"

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def thread_budget(workers: int, threads: int | None, cpus: int) -> tuple[int, int]:
    """``(workers, threads)`` with ``workers x threads <= cpus`` (a warning when capped)."""
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if workers > cpus:
        log.warning("%d workers asked for but only %d CPUs available: using %d workers", workers, cpus, cpus)
        workers = cpus
    budget = max(1, cpus // workers)
    if threads is None:
        return workers, budget
    if threads > budget:
        log.warning(
            "%d workers x %d threads exceeds the %d CPUs: using %d threads per worker", workers, threads, cpus, budget
        )
        return workers, budget
    return workers, threads


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _spawn_without_main() -> Iterator[None]:
    """Start worker processes that do not re-run the caller's main script.

    ``spawn`` normally imports the parent's ``__main__`` in every worker; ours need nothing from
    it (they run :func:`process_recording` on plain data), and a user's script without an
    ``if __name__ == "__main__":`` guard would otherwise start the whole batch again in each
    worker. The stand-in module is in place only while processes are being started.
    """
    import types

    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__, no __spec__
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _run_local(tasks: list[RecordingTask], workers: int, threads: int, on_result: Callable[[dict], None]) -> None:
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            on_result(process_recording(t))
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")  # no fork: inherited threads and locks are unsafe
    queue = deque(tasks)
    suspect: set[str] = set()  # in flight when a worker died: run alone next time
    pool: ProcessPoolExecutor | None = None
    inflight: dict[Any, RecordingTask] = {}
    try:
        while queue or inflight:
            if pool is None:
                pool = ProcessPoolExecutor(min(workers, len(queue)), mp_context=ctx, initializer=_init_worker, initargs=(threads,))
            while queue and len(inflight) < workers:
                if queue[0].name in suspect and inflight:
                    break
                t = queue.popleft()
                with _spawn_without_main():  # submit starts the worker processes it needs
                    inflight[pool.submit(process_recording, t)] = t
                if t.name in suspect:
                    break
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            broken = False
            for f in done:
                t = inflight.pop(f)
                try:
                    on_result(f.result())
                except BrokenProcessPool:
                    broken = True
                    inflight[f] = t  # handled below with the others
                except _OutputDiskFull:
                    raise  # stop the batch (the pool is shut down below)
                except Exception as e:  # e.g. a result that cannot be sent back
                    on_result(_failed(t, e))
            if broken:
                lost = list(inflight.values())
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = None
                for t in reversed(lost):
                    if len(lost) == 1 or t.name in suspect:
                        on_result(
                            {
                                "name": t.name, "input": t.path, "status": "failed", "error": "WorkerDied",
                                "reason": "the worker process died while processing this file (killed, perhaps out "
                                "of memory, or crashed in a reader); check the file, or use fewer --workers",
                                "seconds": 0.0,
                            }
                        )
                    else:
                        suspect.add(t.name)
                        queue.appendleft(t)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _failed(t: RecordingTask, e: BaseException) -> dict[str, Any]:
    return {
        "name": t.name, "input": t.path, "status": "failed", "error": type(e).__name__,
        "reason": _one_line(e), "traceback": "".join(traceback.format_exception(e)), "seconds": 0.0,
    }


def _run_dask(client: Any, tasks: list[RecordingTask], on_result: Callable[[dict], None]) -> None:
    from distributed import as_completed

    futures = client.map(process_recording, tasks, pure=False)
    by_future = dict(zip(futures, tasks))
    try:
        for fut in as_completed(futures):
            t = by_future[fut]
            try:
                r = fut.result()
            except Exception as e:  # KilledWorker, a lost connection: this recording only
                r = _failed(t, e)
            on_result(r)
            fut.release()
    except _OutputDiskFull:
        client.cancel(futures)
        raise


class _OutputDiskFull(Exception):
    """Raised from a result callback to stop a batch whose output disk is full."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("reason", ""))
        self.result = result


def _fills_outdir(r: dict[str, Any], out: Path) -> bool:
    """Whether a failed result is the output disk being full (then every further one fails too)."""
    if r.get("errno") not in DISK_FULL:
        return False
    p = r.get("fault_path")
    return p is None or _inside(Path(p).absolute(), out)


def _write_failures(outdir: Path, failures: list[Failure]) -> Path:
    import csv

    from ._fileio import atomic_open

    p = outdir / FAILURES_FILE
    with atomic_open(p, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(FAILURE_COLUMNS)
        for fl in sorted(failures, key=lambda x: x.input):
            w.writerow(fl.row())
    return p


def process_batch(
    inputs: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    options: "PredictOptions | None" = None,
    *,
    workers: int | None = None,
    pattern: str | None = None,
    force: bool = False,
    client: Any = None,
    progress: bool = False,
) -> BatchReport:
    """Run :func:`harnet.predict_file` over many recordings into ``outdir`` (see the module doc).

    ``client``: a ``distributed.Client`` to run on a Dask cluster instead of local processes.
    Returns a :class:`BatchReport`; failed inputs are also listed in ``outdir/failures.csv``.
    """
    from .backends import resolve_backend
    from .loading import resolve_model_dir
    from .modeldir import read_config
    from .pipeline import PredictOptions

    t_start = _time.perf_counter()
    opts = options or PredictOptions()
    if outdir is None:
        raise InputError("several inputs need an output folder: give --outdir DIR")
    out = Path(outdir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; --outdir needs a folder")
    paths = expand_inputs(inputs, pattern, exclude=out)
    from ._fileio import check_writable, faults_named

    # an output folder that cannot be written is refused before any recording is read
    check_writable(out / FAILURES_FILE, fix="give another --outdir")
    with faults_named(out, what="the output folder", fix="give another --outdir"):
        out.mkdir(parents=True, exist_ok=True)

    mdir = resolve_model_dir(opts.model)
    cfg = read_config(mdir)
    if cfg.get("kind") == "backbone":
        raise HarnetError(
            f"{opts.model} is a self-supervised backbone without a trained head; use a classifier "
            "(see `harnet models`) or fine-tune it with `harnet train`"
        )
    backend = resolve_backend(mdir, opts.backend, opts.device)
    if backend.startswith("onnx"):
        from .backends.onnx_backend import ensure_onnx

        if backend != "onnx-int8":  # export once here, not in every worker at the same time
            ensure_onnx(mdir, "winograd" if backend == "onnx-winograd" else "direct")
    identity = result_identity(opts.to_dict(), cfg, backend)

    if client is not None:
        n_workers, threads, mode = 0, (opts.threads or 1), "dask"
    else:
        n_workers, threads = thread_budget(workers or 1, opts.threads, _available_cpus())
        mode = "local"
    report = BatchReport(outdir=out, total=len(paths), workers=n_workers, threads=threads, mode=mode)
    event_log = os.environ.get(EVENT_LOG_ENV) or None
    task_opts = opts.to_dict()

    with _batch_lock(out):
        stale = clean_stale_temps(out)
        if stale:
            log.info("removed %d temporary files left by an interrupted run in %s", len(stale), out)
        names = recording_names(paths, out)
        tasks: list[RecordingTask] = []
        for p, name in zip(paths, names):
            if not force and p.is_file() and is_done(out / name, identity, p):
                report.skipped.append(name)
                continue
            tasks.append(RecordingTask(str(p), name, str(out), task_opts, str(mdir), backend, threads, event_log))

        bar = None
        if progress and tasks:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(tasks), unit="file", desc="harnet", file=sys.stderr, dynamic_ncols=True)

        def on_result(r: dict[str, Any]) -> None:
            if r["status"] == "done":
                report.processed.append(r["name"])
            else:
                report.failures.append(Failure(r["input"], r["name"], r.get("error", "Error"), r.get("reason", ""), r.get("traceback", "")))
                # outputs of an earlier run (other options, an older file) must not stand in for this one
                with contextlib.suppress(OSError):
                    _remove_outputs(out / r["name"])
                log.info("failed: %s: %s", r["input"], r.get("reason"))
                if _fills_outdir(r, out):
                    raise _OutputDiskFull(r)
            if bar is not None:
                bar.update(1)
                if report.failures:
                    bar.set_postfix(failed=len(report.failures))

        full: _OutputDiskFull | None = None
        try:
            if client is not None:
                _run_dask(client, tasks, on_result)
            else:
                _run_local(tasks, n_workers, threads, on_result)
        except _OutputDiskFull as e:
            full = e
        finally:
            if bar is not None:
                bar.close()
        if full is not None:
            with contextlib.suppress(WriteError, OSError):  # listed when it can still be written
                _write_failures(out, report.failures)
            r = full.result
            left = len(tasks) - len(report.processed) - len(report.failures)
            raise WriteError(
                f"batch stopped: {r.get('reason')}. Every further recording would fail the same way: "
                f"{left} left undone, {len(report.processed)} done now, {len(report.skipped)} done before; "
                "free space (or use another --outdir) and run the same command again: finished recordings "
                "are skipped",
                path=r.get("fault_path"), errno=r.get("errno"),
            )
        _write_failures(out, report.failures)
    report.seconds = _time.perf_counter() - t_start
    return report


# ---- Dask clients --------------------------------------------------------------------------------

#: How long to wait for ``--scheduler`` to answer.
SCHEDULER_TIMEOUT = "30s"
#: dask-jobqueue cluster classes by ``--cluster`` value.
CLUSTERS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster"}


@dataclass
class JobOptions:
    """Batch-system jobs for ``--cluster``: each job is one Dask worker process on one node.

    ``jobs``: how many jobs to submit; ``cores`` and ``memory`` (e.g. ``"16GB"``) per job (each
    core runs one recording at a time); ``walltime`` (``HH:MM:SS``); ``queue`` (partition);
    ``account`` (project to charge); ``extra``: further scheduler directives, e.g.
    ``"--gres=gpu:0"`` or ``"-l scratch=10G"``; ``prologue``: shell lines run before the
    worker starts, e.g. ``"module load python"``, ``"source ~/venvs/harnet/bin/activate"``.
    """

    jobs: int = 1
    cores: int = 4
    memory: str = "16GB"
    walltime: str = "04:00:00"
    queue: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = ()
    prologue: tuple[str, ...] = ()


def jobqueue_kwargs(kind: str, job: JobOptions) -> tuple[str, dict[str, Any]]:
    """The dask-jobqueue class name and keyword arguments for ``--cluster KIND``."""
    if kind not in CLUSTERS:
        raise InputError(f"unknown cluster kind {kind!r}; use one of {', '.join(CLUSTERS)}")
    if job.jobs < 1 or job.cores < 1:
        raise InputError("--jobs and --job-cores must be at least 1")
    kw: dict[str, Any] = {
        "cores": int(job.cores),
        "processes": 1,  # one worker process per job: the model is loaded once per job
        "memory": job.memory,
        "walltime": job.walltime,
        "job_name": "harnet",
        # workers never download: the client resolved the model into the shared cache
        "job_script_prologue": ["export HF_HUB_OFFLINE=1", *job.prologue],
    }
    if job.queue:
        kw["queue"] = job.queue
    if job.account:
        kw["project" if kind == "sge" else "account"] = job.account
    if job.extra:
        kw["job_extra_directives"] = list(job.extra)
    return CLUSTERS[kind], kw


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None, cluster: str | None = None, job: JobOptions | None = None, quiet: bool = False
) -> Iterator[Any]:
    """A ``distributed.Client`` on an existing scheduler, or on jobqueue workers started now."""
    try:
        from distributed import Client
    except ImportError:
        raise HarnetError("--scheduler and --cluster need Dask: pip install 'harnet[dask]'") from None
    if scheduler and cluster:
        raise InputError("give either --scheduler (an existing cluster) or --cluster (start one), not both")
    if scheduler:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError) as e:
            raise HarnetError(
                f"cannot reach the Dask scheduler at {scheduler} ({_one_line(e)}); check the address and that it runs"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    if not cluster:
        raise InputError("give --scheduler tcp://HOST:PORT or --cluster slurm|pbs|sge")
    try:
        import dask_jobqueue
    except ImportError:
        raise HarnetError("--cluster needs dask-jobqueue: pip install 'harnet[dask]'") from None
    job = job or JobOptions()
    cls_name, kw = jobqueue_kwargs(cluster, job)
    cl = getattr(dask_jobqueue, cls_name)(**kw)
    try:
        cl.scale(jobs=job.jobs)
        if not quiet:
            print(f"harnet: submitted {job.jobs} {cluster} job(s); dashboard {cl.dashboard_link}", file=sys.stderr)
        client = Client(cl)
        try:
            yield client
        finally:
            client.close()
    finally:
        cl.close()


# ---- entry points ----------------------------------------------------------------------------

def run_batch(
    inputs: Sequence[str],
    *,
    outdir: str | os.PathLike | None,
    options: "PredictOptions",
    ctx_obj: dict | None = None,
    quiet: bool = False,
    workers: int | None = None,
    pattern: str | None = None,
    force: bool = False,
    scheduler: str | None = None,
    cluster: str | None = None,
    job: JobOptions | None = None,
) -> int:
    """``harnet predict`` with several inputs or ``--outdir``: run the batch and report.

    Returns 0 when every input was processed or already done; raises :class:`BatchFailed`
    (exit code 1) after a batch in which any input failed.
    """
    if outdir is None:
        raise InputError("several inputs need --outdir DIR")
    debug = bool((ctx_obj or {}).get("debug"))
    if (scheduler or cluster) and workers is not None:
        raise InputError("--workers is for the local mode; with a Dask cluster size it there (--jobs, --job-cores)")
    if (scheduler or cluster):
        with dask_client(scheduler, cluster, job, quiet) as client:
            rep = process_batch(inputs, outdir, options, pattern=pattern, force=force, client=client, progress=not quiet)
    else:
        rep = process_batch(inputs, outdir, options, workers=workers, pattern=pattern, force=force, progress=not quiet)
    if not quiet or rep.failures:
        how = f"{rep.workers} worker(s) x {rep.threads} thread(s)" if rep.mode == "local" else "Dask"
        msg = (
            f"harnet: {rep.total} input(s): {len(rep.processed)} processed, {len(rep.skipped)} already done, "
            f"{len(rep.failures)} failed ({rep.seconds:.1f} s, {how}); outputs in {rep.outdir}"
        )
        print(msg, file=sys.stderr)
    for f in rep.failures:
        print(f"  failed: {f.reason if f.input in f.reason else f'{f.input}: {f.reason}'}", file=sys.stderr)
        if debug and f.traceback:
            print(f.traceback, file=sys.stderr)
    if rep.failures:
        raise BatchFailed(
            f"{len(rep.failures)} of {rep.total} input(s) failed; the others are done. Reasons: "
            f"{rep.outdir / FAILURES_FILE}; fix or remove those inputs and run the same command again"
        )
    return rep.exit_code


def predict_many(
    paths: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    workers: int | None = None,
    client: Any = None,
    options: "PredictOptions | None" = None,
    pattern: str | None = None,
    force: bool = False,
    progress: bool = True,
    **kwargs: Any,
) -> "Cohort":
    """Classify many recordings into ``outdir`` and return the collated cohort tables.

    Parameters
    ----------
    paths:
        Files, folders (every file harnet reads, or ``pattern`` matches), globs or ``@list.txt``.
    outdir:
        One folder per recording (``summary.csv``, ``timeseries.parquet``, ``info.json``,
        ``run.json``) and ``failures.csv``. Recordings already done with the same model and
        options are skipped (``force=True`` redoes them).
    workers:
        Local worker processes (default 1: in this process); each gets ``cpus // workers``
        inference threads unless ``threads=`` is given. Workers are fresh processes
        (``spawn``) that do not re-run the calling script.
    client:
        A ``distributed.Client``: run on that Dask cluster instead (``workers`` must be None).
    options / kwargs:
        A :class:`harnet.pipeline.PredictOptions`, or its fields as keywords (``model=``,
        ``timezone=``, ``backend="onnx"``, ``min_wear_per_day=``...).

    Returns a :class:`harnet.collate.Cohort`: ``days`` (one row per participant-day) and
    ``participants`` (one row per recording, failed inputs included with ``Status == "failed"``).
    Failures do not raise; see ``participants.query("Status != 'ok'")`` or ``failures.csv``.
    """
    from .collate import collate
    from .pipeline import PredictOptions

    opts = options or PredictOptions()
    if kwargs:
        opts = dataclasses.replace(opts, **kwargs)
    if client is not None and workers is not None:
        raise InputError("give either workers= (local processes) or client= (Dask), not both")
    process_batch(paths, outdir, opts, workers=workers, pattern=pattern, force=force, client=client, progress=progress)
    return collate(outdir)


__all__ = [
    "BatchFailed",
    "BatchReport",
    "JobOptions",
    "RecordingTask",
    "clean_stale_temps",
    "dask_client",
    "expand_inputs",
    "is_done",
    "jobqueue_kwargs",
    "predict_many",
    "process_batch",
    "process_recording",
    "recording_names",
    "recording_stem",
    "run_batch",
    "thread_budget",
]
