"""One recording of a batch, in whichever process runs it: read, predict, write its folder.

A worker process keeps one :class:`~harnet.predictor.Predictor` per model and backend setting
(:func:`worker_predictor`), so the model is loaded once per process however many recordings it
runs (Dask runs several at a time in one process).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time as _time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._fileio import atomic_write_text
from ..errors import DISK_FULL, HarnetError, write_error
from ..outputs import RUN_FILE, output_paths, remove_outputs, write_outputs

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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
    plot: str | None = None  # file name of a plot written into the recording's folder

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


def one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if isinstance(e, HarnetError) else f"{type(e).__name__}: {msg}"


_PREDICTORS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _predictor(model_dir: str, backend: str, threads: int | None, device: Any, batch_size: int | None, hmm: bool) -> Any:
    from ..predictor import Predictor

    return Predictor(model_dir=model_dir, backend=backend, threads=threads, device=device, batch_size=batch_size, hmm=hmm)


def worker_predictor(task: RecordingTask) -> Any:
    """The :class:`~harnet.predictor.Predictor` for a task, made once per process and setting
    (Dask runs several tasks per process, in threads: the lock keeps them from loading it twice)."""
    o = task.options
    with _PREDICTORS_LOCK:
        return _predictor(task.model_dir, task.backend, task.threads, o.get("device"), o.get("batch_size"), bool(o.get("hmm", True)))


def process_recording(task: RecordingTask) -> dict[str, Any]:
    """Run one recording and write its outputs; never raises (a failure is returned).

    Returns ``{"name", "input", "status": "done"|"failed", "seconds", ...}`` with ``error``,
    ``reason`` and ``traceback`` for a failure.
    """
    t_start = _time.time()
    out: dict[str, Any] = {"name": task.name, "input": task.path}
    try:
        from ..pipeline import PredictOptions, StageTimer, predict_recording, read_recording

        opts = PredictOptions(**task.options)
        predictor = worker_predictor(task)
        timer = StageTimer()
        t0 = _time.perf_counter()
        rec = read_recording(task.path, opts)
        timer.add("read", _time.perf_counter() - t0)
        res = predict_recording(rec, opts, predictor=predictor, timer=timer)
        del rec
        size = os.path.getsize(task.path)
        res.info.pop("StageSeconds", None)  # volatile: goes to run.json
        res.info["input"] = {"path": task.path, "name": Path(task.path).name, "size": size}
        paths = output_paths(outdir=task.outdir, name=task.name)
        remove_outputs(task.folder)
        write_outputs(res, paths, plot=None if task.plot is None else task.folder / task.plot)
        run = {
            "started": _iso(t_start),
            "finished": _iso(_time.time()),
            "seconds": round(_time.time() - t_start, 3),
            "StageSeconds": {k: round(v, 3) for k, v in timer.times.items()},
            "host": _hostname(),
            "pid": os.getpid(),
            "threads": task.threads,
            "backend": getattr(predictor.backend, "name", task.backend),
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
        out.update(status="failed", error=type(err).__name__, reason=one_line(err), traceback=traceback.format_exc())
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


def init_worker(threads: int) -> None:
    # Runs in a fresh (spawned) worker before numpy is imported there: BLAS and OpenMP pools
    # then stay within the worker's share of the CPUs.
    for k in _THREAD_ENV:
        os.environ[k] = str(threads)


def failed_result(t: RecordingTask, e: BaseException) -> dict[str, Any]:
    return {
        "name": t.name, "input": t.path, "status": "failed", "error": type(e).__name__,
        "reason": one_line(e), "traceback": "".join(traceback.format_exception(e)), "seconds": 0.0,
    }


class OutputDiskFull(Exception):
    """Raised from a result callback to stop a batch whose output disk is full."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("reason", ""))
        self.result = result


def fills_outdir(r: dict[str, Any], out: Path) -> bool:
    """Whether a failed result is the output disk being full (then every further one fails too)."""
    if r.get("errno") not in DISK_FULL:
        return False
    p = r.get("fault_path")
    if p is None:
        return True
    try:
        Path(p).absolute().relative_to(out)
    except ValueError:
        return False
    return True
