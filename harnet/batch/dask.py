"""Dask for a batch: run the recordings on an existing cluster or on dask-jobqueue workers."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..errors import HarnetError, InputError
from .worker import OutputDiskFull, RecordingTask, failed_result, one_line, process_recording


def run_dask(client: Any, tasks: list[RecordingTask], on_result: Callable[[dict], None]) -> None:
    from distributed import as_completed

    futures = client.map(process_recording, tasks, pure=False)
    by_future = dict(zip(futures, tasks))
    try:
        for fut in as_completed(futures):
            t = by_future[fut]
            try:
                r = fut.result()
            except Exception as e:  # KilledWorker, a lost connection: this recording only
                r = failed_result(t, e)
            on_result(r)
            fut.release()
    except OutputDiskFull:
        client.cancel(futures)
        raise


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
                f"cannot reach the Dask scheduler at {scheduler} ({one_line(e)}); check the address and that it runs"
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
