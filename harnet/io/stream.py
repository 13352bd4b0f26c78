"""A device file read as a stream of bounded blocks, twice, instead of held whole.

:func:`open_stream` returns a :class:`DeviceStream` for the formats that stream (Axivity
``.cwa`` / ``.cwa.gz`` with harnet's reader, when its blocks are in time order: the usual case;
ActiGraph ``.gt3x``/``.agdc`` and GENEActiv ``.bin`` through their block readers), or None: the
caller then reads the file whole with :func:`harnet.io.read_device` (CSV/parquet tables,
ActiLife CSV, ``reader="actipy"`` and CWA files whose sessions interleave or restart in the same
file). A stream's blocks are exactly the samples
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

from harnet.io.prefetch import prefetch

#: 512-byte file blocks per decoded block of a streamed CWA file (about 245,000 samples, 5 MB decoded)
STREAM_CHUNK_BLOCKS = 2048

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

    def __init__(self, path: Path, info: Callable[[], dict[str, Any]], n: int | None,
                 source: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]):
        self.path = path
        self._info = info
        self.info: dict[str, Any] = {}
        self.n = None if n is None else int(n)
        self.source = source
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self._median_at: int | None = None  # where the unit check's warning goes, when pass 2 computes it

    def scan(self, on_block: Callable[[np.ndarray, np.ndarray], None] | None = None, rate_gap_ns: int = 1_000_000_000) -> None:
        """Pass 1: check every block, fill ``info`` as :func:`harnet.io.finalize` does, and call
        ``on_block(t, xyz)`` with each block. ``rate_sums``: afterwards, the time steps not longer
        than ``rate_gap_ns`` and their summed length (for the effective rate). Raises
        :class:`NotStreamable` when a whole-file repair is needed. When the sample
        count is known only at the end (``n`` None), the unit check's median (every
        ``n // 1e6``-th sample) is taken in pass 2 and its field filled in place then."""
        from harnet.io.checks import GAP_NS, RATE_STEPS, check_units, fill_span_info, magnitudes, median_step
        from harnet.kernels import all_finite, step_counts

        step = median_step(self.n) if self.n is not None else None
        subs: list[np.ndarray] = []
        heads: list[np.ndarray] = []
        head_n = 0
        counts = np.zeros(7, np.int64)  # back, repeated, short, other, short ns, rate steps, rate ns
        pos = 0
        prev: int | None = None
        first = last = 0
        for t, xyz in self.source():
            k = len(t)
            if not k:
                continue
            if head_n < RATE_STEPS:  # the first time steps, for the nominal-rate estimate
                d = np.diff(t) if prev is None else np.diff(t, prepend=np.int64(prev))
                heads.append(d[: RATE_STEPS - head_n].copy())
                head_n += len(heads[-1])
            step_counts(t, np.int64(0 if prev is None else prev), prev is not None, GAP_NS, int(rate_gap_ns), counts)
            if counts[0] or counts[1]:
                raise NotStreamable("times go back or repeat")
            if not all_finite(xyz):
                raise NotStreamable("non-finite values")
            if prev is None:
                first = int(t[0])
            prev = last = int(t[-1])
            if step is not None:
                subs.append(magnitudes(xyz[(-pos) % step :: step]))
            if on_block is not None:
                on_block(t, xyz)
            pos += k
        tot = [int(v) for v in counts[:5]]
        self.rate_sums = (int(counts[5]), int(counts[6]))
        if self.n is not None and pos != self.n:
            raise NotStreamable(f"the reader promised {self.n} samples and gave {pos}")
        if pos == 0:
            raise NotStreamable("no samples")  # read_device says why
        self.n = pos
        info = self.info = self._info()
        info.setdefault("Warnings", [])
        info["NumTimesBackwards"] = 0
        info["NumDuplicateTimes"] = 0
        info["NumNonFinite"] = 0
        if step is not None:
            check_units(info, self.path, None, float(np.median(np.concatenate(subs))), (last - first) / 1e9)
        else:
            info["MedianMagnitude(g)"] = None  # its place in info; pass 2 fills it
            self._median_at = len(info["Warnings"])
        fill_span_info(info, (tot[0], tot[1], tot[2], tot[3], tot[4]), pos, first, last,
                       lambda: np.concatenate(heads) if heads else np.empty(0, np.int64))
        self.first_ns, self.last_ns = first, last

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Pass 2: the same blocks again (new arrays)."""
        if self._median_at is None:
            yield from self.source()
            return
        from harnet.io.checks import check_units, magnitudes, median_step

        step = median_step(int(self.n))  # type: ignore[arg-type]
        subs: list[np.ndarray] = []
        pos = 0
        for t, xyz in self.source():
            subs.append(magnitudes(xyz[(-pos) % step :: step]))  # before any change by the caller
            pos += len(t)
            yield t, xyz
        warnings = self.info["Warnings"]
        later = warnings[self._median_at :]
        del warnings[self._median_at :]
        check_units(self.info, self.path, None, float(np.median(np.concatenate(subs))),
                    (int(self.last_ns) - int(self.first_ns)) / 1e9)  # type: ignore[arg-type]
        warnings.extend(later)
        self._median_at = None


def open_stream(path: str | os.PathLike, *, sample_rate: float | None = None, reader: str = "auto",
                progress: Any = None, block_blocks: int | None = None, **kw: Any) -> DeviceStream | None:
    """A :class:`DeviceStream` for ``path`` when its format streams (see the module docstring),
    else None. Options as :func:`harnet.io.read_device`'s; any it does not stream with give None
    (read_device then checks them). ``block_blocks``: 512-byte blocks of the file per block (the
    readers' own chunk size by default)."""
    from harnet.io import kind_of

    path = Path(path)
    kind = kind_of(path)
    if reader not in ("auto", "harnet") or kind not in ("cwa", "gt3x", "geneactiv") or not path.is_file():
        return None
    if any(k not in (CWA_KEYWORDS if kind == "cwa" else ()) for k in kw):
        return None
    if sample_rate is not None and not sample_rate > 0:
        return None  # read_device refuses it

    def rate_override(info: dict[str, Any]) -> dict[str, Any]:
        if sample_rate is not None:
            if info.get("SampleRate") not in (None, float(sample_rate)):
                info["SampleRateFile"] = info["SampleRate"]
            info["SampleRate"] = float(sample_rate)
        return info

    if kind != "cwa":
        return _block_reader_stream(path, kind, rate_override, block_blocks)
    from harnet.io.cwa import decoded_chunks, plan_cwa

    size = path.stat().st_size
    report = None if progress is None else (lambda k: lambda pos: progress("read", k * size + pos, 2 * size))
    # a quarter of the whole-file reader's chunk: the read-ahead holds a block or two in flight
    kw["chunk_blocks"] = int(block_blocks) if block_blocks is not None else kw.get("chunk_blocks", STREAM_CHUNK_BLOCKS)
    plan = plan_cwa(path, use_fraction=kw.get("use_fraction", True), report=None if report is None else report(0),
                    **({"chunk_blocks": kw["chunk_blocks"]} if "chunk_blocks" in kw else {}))
    if not plan.in_file_order or plan.n_total == 0:
        return None
    info = plan.info
    info["NumSamples"] = plan.n_total  # where read_cwa puts it (info.json keeps the key order)
    rate_override(info)
    passes = [0]

    def source() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        passes[0] += 1
        rep = report(1) if report is not None and passes[0] == 1 else None
        return prefetch(lambda: decoded(rep))  # decoding overlaps the consumer's work

    def decoded(rep: Callable[[int], None] | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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

    return DeviceStream(path, lambda: info, plan.n_total, source)


def _block_reader_stream(path: Path, kind: str, rate_override: Callable[[dict], dict], block_blocks: int | None) -> DeviceStream:
    """A ``.gt3x``/``.agdc`` or GENEActiv ``.bin`` file through its block reader (a fresh reader
    each pass; its info is the one :func:`harnet.io.read_device` starts from)."""
    from harnet.io import block_reader

    opts = {} if block_blocks is None else {"chunk_bytes": int(block_blocks) * 512}
    last: list[Any] = []

    def source() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        r = block_reader(path, **opts)
        last[:] = [r]
        return prefetch(lambda: ((np.asarray(b.time, dtype=np.int64), b.xyz) for b in r.blocks()))

    def info() -> dict[str, Any]:
        return rate_override(dict(last[0].info))

    return DeviceStream(path, info, None, source)
