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
import logging
import os
import sys
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from .._fileio import atomic_open, check_writable, faults_named
from ..errors import HarnetError, InputError, WriteError
from ..outputs import (
    DONE_FILES,
    FAILURE_COLUMNS,
    FAILURES_FILE,
    LOCK_FILE,
    NEUTRAL_OPTIONS,
    RUN_FILE,
    clean_stale_temps,
    is_done,
    remove_outputs,
    result_identity,
)
from .dask import CLUSTERS, SCHEDULER_TIMEOUT, JobOptions, dask_client, jobqueue_kwargs, run_dask
from .inputs import expand_inputs, path_hash, recording_names, recording_stem
from .local import available_cpus, run_local, thread_budget
from .worker import Failure, OutputDiskFull, RecordingTask, fills_outdir, process_recording

if TYPE_CHECKING:  # pragma: no cover
    from ..collate import Cohort
    from ..pipeline import PredictOptions

log = logging.getLogger("harnet")

#: When set, each finished recording appends ``<name>\\t<pid>`` to this file (tests, debugging).
EVENT_LOG_ENV = "HARNET_TEST_EVENT_LOG"


class BatchFailed(HarnetError):
    """Some inputs of a batch failed (the rest were processed); exit code 1."""


@contextlib.contextmanager
def batch_lock(outdir: Path) -> Iterator[None]:
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


def write_failures(outdir: Path, failures: list[Failure]) -> Path:
    import csv

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
    plot: str | None = None,
) -> BatchReport:
    """Run :func:`harnet.predict_file` over many recordings into ``outdir`` (see the module doc).

    ``client``: a ``distributed.Client`` to run on a Dask cluster instead of local processes.
    ``plot``: a file name (``days.png``): each recording's plot is written into its folder.
    Returns a :class:`BatchReport`; failed inputs are also listed in ``outdir/failures.csv``.
    """
    from ..loading import resolve_model_dir
    from ..modeldir import read_config
    from ..pipeline import PredictOptions
    from ..predictor import resolve_backend

    t_start = _time.perf_counter()
    opts = options or PredictOptions()
    if outdir is None:
        raise InputError("several inputs need an output folder: give --outdir DIR")
    out = Path(outdir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; --outdir needs a folder")
    paths = expand_inputs(inputs, pattern, exclude=out)
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
    backend = resolve_backend(mdir, opts.backend, opts.device, precision=opts.precision)
    if backend.startswith("onnx"):
        from ..onnx.export import ensure_onnx

        if backend != "onnx-int8":  # export once here, not in every worker at the same time
            ensure_onnx(mdir, "winograd" if backend == "onnx-winograd" else "direct")
    identity = result_identity(opts.to_dict(), cfg, backend)

    if client is not None:
        n_workers, threads, mode = 0, (opts.threads or 1), "dask"
    else:
        n_workers, threads = thread_budget(workers or 1, opts.threads, available_cpus())
        mode = "local"
    report = BatchReport(outdir=out, total=len(paths), workers=n_workers, threads=threads, mode=mode)
    event_log = os.environ.get(EVENT_LOG_ENV) or None
    task_opts = opts.to_dict()

    with batch_lock(out):
        stale = clean_stale_temps(out)
        if stale:
            log.info("removed %d temporary files left by an interrupted run in %s", len(stale), out)
        names = recording_names(paths, out)
        tasks: list[RecordingTask] = []
        for p, name in zip(paths, names):
            if not force and p.is_file() and is_done(out / name, identity, p):
                report.skipped.append(name)
                continue
            tasks.append(RecordingTask(str(p), name, str(out), task_opts, str(mdir), backend, threads, event_log, plot))

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
                    remove_outputs(out / r["name"])
                log.info("failed: %s: %s", r["input"], r.get("reason"))
                if fills_outdir(r, out):
                    raise OutputDiskFull(r)
            if bar is not None:
                bar.update(1)
                if report.failures:
                    bar.set_postfix(failed=len(report.failures))

        full: OutputDiskFull | None = None
        try:
            if client is not None:
                run_dask(client, tasks, on_result)
            else:
                run_local(tasks, n_workers, threads, on_result)
        except OutputDiskFull as e:
            full = e
        finally:
            if bar is not None:
                bar.close()
        if full is not None:
            _stop_on_full_disk(out, full.result, report, len(tasks))
        write_failures(out, report.failures)
    report.seconds = _time.perf_counter() - t_start
    return report


def _stop_on_full_disk(out: Path, r: dict[str, Any], report: BatchReport, n_tasks: int) -> None:
    """The batch's output disk is full: list the failures if that can still be written, then one line."""
    with contextlib.suppress(WriteError, OSError):
        write_failures(out, report.failures)
    left = n_tasks - len(report.processed) - len(report.failures)
    raise WriteError(
        f"batch stopped: {r.get('reason')}. Every further recording would fail the same way: "
        f"{left} left undone, {len(report.processed)} done now, {len(report.skipped)} done before; "
        "free space (or use another --outdir) and run the same command again: finished recordings "
        "are skipped",
        path=r.get("fault_path"), errno=r.get("errno"),
    )


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
    from ..collate import collate
    from ..pipeline import PredictOptions

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
    "CLUSTERS",
    "DONE_FILES",
    "FAILURES_FILE",
    "FAILURE_COLUMNS",
    "JobOptions",
    "LOCK_FILE",
    "NEUTRAL_OPTIONS",
    "RUN_FILE",
    "RecordingTask",
    "SCHEDULER_TIMEOUT",
    "clean_stale_temps",
    "dask_client",
    "expand_inputs",
    "is_done",
    "jobqueue_kwargs",
    "path_hash",
    "predict_many",
    "process_batch",
    "process_recording",
    "recording_names",
    "recording_stem",
    "result_identity",
    "thread_budget",
]
