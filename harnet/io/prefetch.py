"""Read ahead: a block iterator run on a worker thread, one item ahead of its consumer.

The decoding of a device file (file reads and compiled decoders, which release the GIL) then
overlaps the consumer's work on the previous block (pass 1's statistics, pass 2's filtering and
resampling: compiled too), so the two passes use both cores of a 2-core machine. One item is
held ahead (a decoded block: about 20 MB at 100 Hz), the order is kept, an exception in the
producer is raised in the consumer, and closing the consumer (``break``, an error) stops the
worker. The thread starts when iteration starts, never at import.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

_END = object()


def prefetch(make: Callable[[], Iterator[T]], depth: int = 1) -> Iterator[T]:
    """Iterate over ``make()`` with the iterator itself running on a worker thread, ``depth``
    items ahead. ``make`` is called on the worker."""
    q: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in make():
                if not put((True, item)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put((False, e))
            return
        put((True, _END))

    th = threading.Thread(target=work, name="harnet-read-ahead", daemon=True)
    th.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item  # type: ignore[misc]
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while th.is_alive():  # let a blocked producer see the stop
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            th.join(timeout=0.05)
