"""Local worker processes for a batch: the thread budget and a pool that survives a dying worker."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Callable, Iterator

from ..errors import InputError
from .worker import OutputDiskFull, RecordingTask, failed_result, init_worker, process_recording

log = logging.getLogger("harnet")


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


def available_cpus() -> int:
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


def run_local(tasks: list[RecordingTask], workers: int, threads: int, on_result: Callable[[dict], None]) -> None:
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
                pool = ProcessPoolExecutor(min(workers, len(queue)), mp_context=ctx, initializer=init_worker, initargs=(threads,))
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
                except OutputDiskFull:
                    raise  # stop the batch (the pool is shut down below)
                except Exception as e:  # e.g. a result that cannot be sent back
                    on_result(failed_result(t, e))
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
