"""A device file read as a stream of bounded blocks, twice, instead of held whole.

:func:`open_stream` returns a :class:`DeviceStream` for the formats that stream (Axivity
``.cwa`` / ``.cwa.gz`` with harnet's reader, when its blocks are in time order: the usual case),
or None: the caller then reads the file whole with :func:`harnet.io.read_device` (tables,
``.gt3x``/``.agdc``, GENEActiv ``.bin``, ``reader="actipy"`` and CWA files whose sessions
interleave or restart in the same file). A stream's blocks are exactly the samples
:func:`~harnet.io.read_device` returns, in order: :meth:`DeviceStream.scan` (pass 1) checks
them (times strictly increasing, values finite) and fills the same reader info as
:func:`harnet.io.finalize` (:mod:`harnet.io.checks`); :meth:`DeviceStream.blocks` (pass 2) reads
them again. Should pass 1 find something only a whole-file read repairs (times going back,
repeated times, NaN rows) it raises :class:`NotStreamable` and the caller reads the file whole,
so the outputs never depend on the path taken.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

#: reader keywords a streamed CWA file accepts (the others go to read_device, which checks them)
CWA_KEYWORDS = ("use_fraction", "chunk_blocks")


class NotStreamable(Exception):
    """The file needs a repair that only a whole-file read makes (sorting, repeated times, NaN rows)."""


class DeviceStream:
    """Samples of a device file as ``(int64 ns times, float32 (k, 3) g)`` blocks, read on demand.

    ``source()``: a fresh iterator over the file's blocks (each array new: callers may change it
    in place); ``n``: the sample count the reader promises; ``info``: the reader's info, complete
    (as :func:`harnet.io.read_device` leaves it) after :meth:`scan`.
    """

    def __init__(self, path: Path, info: dict[str, Any], n: int, source: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]):
        self.path = path
        self.info = info
        self.n = int(n)
        self.source = source
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def scan(self, on_block: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None) -> None:
        """Pass 1: check every block, fill ``info`` as :func:`harnet.io.finalize` does, and call
        ``on_block(t, xyz, d)`` with each block and its time steps ``d`` (``d[0]``: from the
        previous block's last sample; absent for the first block, so ``len(d)`` is ``len(t) - 1``
        there). Raises :class:`NotStreamable` when a whole-file repair is needed."""
        from harnet.io.checks import RATE_STEPS, check_units, fill_span_info, magnitudes, median_step, time_steps

        info = self.info
        step = median_step(self.n)
        subs: list[np.ndarray] = []
        heads: list[np.ndarray] = []
        head_n = 0
        need_head = info.get("SampleRate") is None
        tot = [0, 0, 0, 0, 0]
        pos = 0
        prev: int | None = None
        first = last = 0
        for t, xyz in self.source():
            k = len(t)
            if not k:
                continue
            d = np.diff(t) if prev is None else np.diff(t, prepend=np.int64(prev))
            for j, v in enumerate(time_steps(d)):
                tot[j] += v
            if tot[0] or tot[1]:
                raise NotStreamable("times go back or repeat")
            if not np.isfinite(xyz).all():
                raise NotStreamable("non-finite values")
            if prev is None:
                first = int(t[0])
            prev = last = int(t[-1])
            subs.append(magnitudes(xyz[(-pos) % step :: step]))
            if need_head and head_n < RATE_STEPS:
                heads.append(d[: RATE_STEPS - head_n].copy())
                head_n += len(heads[-1])
            if on_block is not None:
                on_block(t, xyz, d)
            pos += k
        if pos != self.n:
            raise NotStreamable(f"the reader promised {self.n} samples and gave {pos}")
        if pos == 0:
            raise NotStreamable("no samples")  # read_device says why
        info["NumTimesBackwards"] = 0
        info["NumDuplicateTimes"] = 0
        info["NumNonFinite"] = 0
        check_units(info, self.path, None, float(np.median(np.concatenate(subs))), (last - first) / 1e9)
        fill_span_info(info, (tot[0], tot[1], tot[2], tot[3], tot[4]), pos, first, last,
                       lambda: np.concatenate(heads) if heads else np.empty(0, np.int64))
        self.first_ns, self.last_ns = first, last

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Pass 2: the same blocks again (new arrays)."""
        return self.source()


def open_stream(path: str | os.PathLike, *, sample_rate: float | None = None, reader: str = "auto",
                progress: Any = None, **kw: Any) -> DeviceStream | None:
    """A :class:`DeviceStream` for ``path`` when its format streams (see the module docstring),
    else None. Options as :func:`harnet.io.read_device`'s; any it does not stream with give None
    (read_device then checks them)."""
    from harnet.io import kind_of

    path = Path(path)
    if reader not in ("auto", "harnet") or kind_of(path) != "cwa" or not path.is_file():
        return None
    if any(k not in CWA_KEYWORDS for k in kw):
        return None
    if sample_rate is not None and not sample_rate > 0:
        return None  # read_device refuses it
    from harnet.io.cwa import decoded_chunks, plan_cwa

    size = path.stat().st_size
    report = None if progress is None else (lambda k: lambda pos: progress("read", k * size + pos, 2 * size))
    plan = plan_cwa(path, use_fraction=kw.get("use_fraction", True), report=None if report is None else report(0),
                    **({"chunk_blocks": kw["chunk_blocks"]} if "chunk_blocks" in kw else {}))
    if not plan.in_file_order or plan.n_total == 0:
        return None
    info = plan.info
    info["NumSamples"] = plan.n_total  # where read_cwa puts it (info.json keeps the key order)
    if sample_rate is not None:
        if info.get("SampleRate") not in (None, float(sample_rate)):
            info["SampleRateFile"] = info["SampleRate"]
        info["SampleRate"] = float(sample_rate)
    passes = [0]

    def source() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        passes[0] += 1
        rep = report(1) if report is not None and passes[0] == 1 else None
        pos = 0
        for parts in decoded_chunks(plan, rep):
            if len(parts) == 1 and isinstance(parts[0][0], int):
                dest, xyz, t = parts[0]
                if dest != pos:
                    raise NotStreamable("blocks out of order")
                pos += len(t)
                yield t, xyz
                continue
            k = sum(len(p[2]) for p in parts)
            tt = np.empty(k, np.int64)
            xx = np.empty((k, 3), np.float32)
            filled = np.zeros(k, bool)
            for dest, xyz, t in parts:
                idx = (np.arange(len(t)) + dest) if isinstance(dest, int) else np.asarray(dest)
                idx = idx - pos
                if len(idx) and (idx.min() < 0 or idx.max() >= k):
                    raise NotStreamable("blocks out of order")
                tt[idx] = t
                xx[idx] = xyz
                filled[idx] = True
            if not filled.all():
                raise NotStreamable("blocks out of order")
            pos += k
            yield tt, xx

    return DeviceStream(path, info, plan.n_total, source)
