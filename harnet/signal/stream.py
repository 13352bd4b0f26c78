"""Two passes over a streamed device file, in bounded memory (issue 15).

Pass 1 (:func:`read_streamed`, the "read" stage) decodes the file block by block and keeps only
what calibration, non-wear and info.json need: per-10-s window statistics
(:class:`StatsBuilder`, the same numbers :func:`harnet.signal.stats.window_stats` gives on the
whole recording: each window's sums are taken over all its samples at once, the samples of a
window cut by a block edge are carried to the next block), the counts behind the effective
sample rate (:class:`RateCounter`) and the reader's info (:meth:`harnet.io.stream.DeviceStream.scan`).
Pass 2 (:meth:`StreamedRecording.blocks`) decodes the file again, applies the gravity correction
to each block and feeds :func:`harnet.signal.windows.chunks_from_blocks`, which holds one chunk
(6 h) and its filter margins. The in-memory :class:`~harnet.io.recording.Recording` is the same
code with a single block, so both give byte-identical outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..errors import InputError
from ..timegrid import NS, midnight_ns
from .stats import WindowStats

if TYPE_CHECKING:  # pragma: no cover
    from ..io.stream import DeviceStream


class StatsBuilder:
    """Per-axis mean and standard deviation of clock-aligned windows, from blocks in time order."""

    def __init__(self, window_sec: float = 10) -> None:
        self.window_sec = window_sec
        self.win_ns = int(round(window_sec * NS))
        self.origin: int | None = None
        self.first_bin = self.last_bin = 0
        self._carry_t = np.empty(0, np.int64)
        self._carry_x = np.empty((0, 3), np.float32)
        self._bins: list[np.ndarray] = []
        self._count: list[np.ndarray] = []
        self._mean: list[np.ndarray] = []
        self._std: list[np.ndarray] = []

    def add(self, t: np.ndarray, xyz: np.ndarray) -> None:
        if not len(t):
            return
        if self.origin is None:
            self.origin = midnight_ns(int(t[0]))
            self.first_bin = (int(t[0]) - self.origin) // self.win_ns
        head = 0
        if len(self._carry_t):
            # the carried window goes on in this block: finish it with this block's samples up to
            # the window's end (a short copy, not the whole block)
            bound = self.origin + (int(self._carry_t[0] - self.origin) // self.win_ns + 1) * self.win_ns
            head = int(np.searchsorted(t, bound, side="left"))
            ct = np.concatenate((self._carry_t, t[:head]))
            cx = np.concatenate((self._carry_x, xyz[:head]))
            if head == len(t):  # the window goes on past this block too
                self._carry_t, self._carry_x = ct, cx
                self.last_bin = (int(ct[-1]) - self.origin) // self.win_ns
                return
            self._reduce(ct, cx)
        self.last_bin = (int(t[-1]) - self.origin) // self.win_ns
        # the last window may go on in the next block: carry its samples
        cut = max(head, int(np.searchsorted(t, self.origin + self.last_bin * self.win_ns, side="left")))
        self._carry_t, self._carry_x = t[cut:].copy(), xyz[cut:].copy()
        self._reduce(t[head:cut], xyz[head:cut])

    def _reduce(self, t: np.ndarray, xyz: np.ndarray) -> None:
        if not len(t):
            return
        from ..kernels import window_moments

        most = (int(t[-1]) - int(t[0])) // self.win_ns + 2
        bins = np.empty(most, np.int64)
        cnt = np.empty(most, np.intp)
        mean = np.empty((most, 3))
        std = np.empty((most, 3))
        # as window_stats: float64 sums over each window's samples at once (np.add.reduceat's,
        # bit for bit), mean = s1 / c, std = sqrt(max(s2 / c - mean^2, 0))
        k = window_moments(t, xyz, self.origin, self.win_ns, bins, cnt, mean, std)
        self._bins.append(bins[:k].copy())
        self._count.append(cnt[:k].copy())
        self._mean.append(mean[:k].copy())
        self._std.append(std[:k].copy())

    def finish(self) -> WindowStats:
        """The :class:`WindowStats` of every window from the first sample's to the last's."""
        self._reduce(self._carry_t, self._carry_x)
        self._carry_t = np.empty(0, np.int64)
        self._carry_x = np.empty((0, 3), np.float32)
        if self.origin is None:
            z = np.empty(0)
            return WindowStats(np.empty(0, np.int64), np.empty(0, np.int64), z.reshape(0, 3), z.reshape(0, 3), self.window_sec)
        nb = self.last_bin - self.first_bin + 1
        starts = self.origin + (self.first_bin + np.arange(nb, dtype=np.int64)) * self.win_ns
        count = np.zeros(nb, dtype=np.intp)
        mean = np.full((nb, 3), np.nan)
        std = np.full((nb, 3), np.nan)
        if self._bins:
            rows = np.concatenate(self._bins) - self.first_bin
            count[rows] = np.concatenate(self._count)
            mean[rows] = np.concatenate(self._mean)
            std[rows] = np.concatenate(self._std)
        return WindowStats(starts, count, mean, std, self.window_sec)


class RateCounter:
    """The sums behind :func:`harnet.signal.resample.effective_rate` (pass 1 counts them: ``DeviceStream.rate_sums``)."""

    def __init__(self, max_gap_s: float = 1.0) -> None:
        self.max_gap_s = float(max_gap_s)
        self.gap = int(max_gap_s * NS)
        self.count = self.total = 0

    def rate(self, n: int) -> float:
        if n < 2:
            raise InputError("the recording has fewer than 2 samples; a sample rate cannot be measured")
        if self.count == 0 or self.total == 0:
            raise InputError(f"no two consecutive samples lie within {self.max_gap_s} s; the recording has no usable data")
        return self.count * NS / self.total


class StreamedRecording:
    """A device file after pass 1: its reader info, window statistics and time range; its samples
    are decoded again, block by block, by :meth:`blocks` (with the gravity correction, once set)."""

    def __init__(self, stream: "DeviceStream", *, max_gap_s: float = 1.0, window_sec: float = 10) -> None:
        self.stream = stream
        stats = StatsBuilder(window_sec)
        rate = RateCounter(max_gap_s)
        stream.scan(stats.add, rate_gap_ns=rate.gap)
        rate.count, rate.total = stream.rate_sums
        self.info = stream.info
        self.stats = stats.finish()
        self._rate = rate
        self.n = stream.n
        self.first_ns = int(stream.first_ns)  # type: ignore[arg-type]
        self.last_ns = int(stream.last_ns)  # type: ignore[arg-type]
        self.calibration: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.n

    def warn(self, msg: str) -> None:
        self.info["Warnings"].append(msg)

    def rate(self, max_gap_s: float) -> float:
        """The effective sample rate (Hz) for gaps longer than ``max_gap_s`` (pass 1's)."""
        if float(max_gap_s) != self._rate.max_gap_s:
            raise ValueError(f"pass 1 measured the rate for max_gap_s={self._rate.max_gap_s}, not {max_gap_s}")
        return self._rate.rate(self.n)

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Pass 2: the samples again, a block at a time, gravity-corrected when calibrated."""
        from .calibrate import apply_gravity

        for t, xyz in self.stream.blocks():
            if self.calibration is not None:
                apply_gravity(xyz, *self.calibration)
            yield t, xyz


def time_range(rec: Any) -> tuple[int, int] | None:
    """(first, last) sample time in int ns of a Recording or StreamedRecording; None when empty."""
    if isinstance(rec, StreamedRecording):
        return rec.first_ns, rec.last_ns
    if not len(rec):
        return None
    t = rec.time.view(np.int64)
    return int(t[0]), int(t[-1])


def read_streamed(path: str | Path, *, max_gap_s: float = 1.0, progress: Callable[[str, int, int], None] | None = None,
                  block_blocks: int | None = None, **reader: Any) -> StreamedRecording | None:
    """Pass 1 over a device file that streams (:func:`harnet.io.stream.open_stream`), or None: the
    caller then reads it whole with :func:`harnet.io.read_device` (same outputs)."""
    from ..io.stream import NotStreamable, open_stream
    from .resample import import_filters_ahead

    stream = open_stream(path, progress=progress, block_blocks=block_blocks, **reader)
    if stream is None:
        return None
    import_filters_ahead()  # pass 2's filter design needs scipy.signal: load it while pass 1 runs
    try:
        return StreamedRecording(stream, max_gap_s=max_gap_s)
    except NotStreamable:
        return None

