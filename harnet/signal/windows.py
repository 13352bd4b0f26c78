"""Resampling to the network's rate and clock-aligned windows, vectorised and chunked.

The time grid
-------------
Every output sample lies on one grid per recording: grid point ``k`` is at
``origin + k / fs_out`` seconds, where ``origin`` is midnight (device-local, naive clock) of the
day of the first raw sample. Windows start at whole multiples of ``window_sec`` from that
midnight, so for 30 Hz and windows of 5, 10 or 30 s every window start is an exact grid point
and an exact integer number of nanoseconds.

Resampling
----------
By timestamps, with an optional low-pass on each contiguous segment: :mod:`harnet.signal.resample`.

Chunks
------
:func:`iter_chunks` walks the recording six hours (``chunk_sec``) at a time, aligned at midnight,
and yields :class:`WindowChunk` objects. Each chunk reads its raw samples plus a margin on
both sides, so filtering and gap detection give the same windows whatever the chunk size.
Memory stays bounded by one chunk, never the whole week: about 170 MB of working memory for
six hours at 100 Hz (660 MB with ``chunk_sec=86400``), on top of the recording itself.

This module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..arch import SAMPLE_RATE
from ..errors import InputError
from ..timegrid import NS, as_ns, ceil_div, midnight_ns
from .resample import design_lowpass, effective_cutoff, effective_rate, filter_margin_s, resample_core

if TYPE_CHECKING:  # pragma: no cover
    from ..io.recording import Recording
    from .nonwear import NonwearResult


# ------------------------------------------------------------------------------------------
# windows


def make_windows(
    xyz30: np.ndarray,
    origin_ns: int,
    first_index: int,
    window_sec: int,
    *,
    fs: int = SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut grid samples into clock-aligned windows, without a Python loop per window.

    ``xyz30`` (m, 3) holds grid points ``first_index .. first_index + m - 1`` of the grid
    ``origin_ns + k / fs`` (``origin_ns`` is a midnight). Windows are the blocks of
    ``T = window_sec * fs`` grid points starting at multiples of ``T``: from the one holding
    the first sample to the one holding the last; points outside ``xyz30`` are NaN.

    Returns ``starts`` datetime64[ns] (N,), ``X`` float32 (N, 3, T) C-contiguous and
    ``complete`` bool (N,): True where no sample of the window is NaN.
    """
    T = int(round(window_sec * fs))
    if T <= 0 or abs(T - window_sec * fs) > 1e-9:
        raise ValueError(f"window_sec * fs must be a positive integer, got {window_sec} * {fs}")
    m = len(xyz30)
    if m == 0:
        return (np.empty(0, "datetime64[ns]"), np.empty((0, 3, T), np.float32), np.empty(0, bool))
    w0 = first_index // T
    w1 = (first_index + m - 1) // T
    N = w1 - w0 + 1
    lead = first_index - w0 * T
    if lead == 0 and m == N * T:
        flat = np.asarray(xyz30, dtype=np.float32)
    else:
        flat = np.full((N * T, 3), np.nan, dtype=np.float32)
        flat[lead : lead + m] = xyz30
    X = np.ascontiguousarray(flat.reshape(N, T, 3).transpose(0, 2, 1))
    complete = ~np.isnan(X).any(axis=(1, 2))
    win_ns = int(round(window_sec * NS))
    starts = (int(origin_ns) + (w0 + np.arange(N, dtype=np.int64)) * win_ns).view("datetime64[ns]")
    return starts, X, complete


@dataclass
class WindowChunk:
    """A run of consecutive clock-aligned windows, ready for the network.

    ``starts`` datetime64[ns] (N,); ``X`` float32 (N, 3, T) C-contiguous, g with gravity, NaN
    where no data; ``valid`` bool (N,): every sample present and none in non-wear (only these
    are classified); ``nonwear`` bool (N,): some sample lies in a non-wear episode;
    ``has_data`` bool (N,): at least one sample present; ``enmo_mg`` float32 (N,): mean ENMO
    ``max(|a| - 1, 0)`` in mg of the raw samples inside the window (device rate, 20 Hz
    low-pass by default, non-wear samples included), NaN where ``has_data`` is False;
    ``mad_mg`` float32 (N,): mean amplitude deviation ``mean(| |a| - mean|a| |)`` in mg of the
    same samples (Vaha-Ypya et al. 2015), NaN where ``has_data`` is False.
    Non-wear samples keep their values in ``X``: use ``nonwear`` to mask them.
    """

    starts: np.ndarray
    X: np.ndarray
    valid: np.ndarray
    nonwear: np.ndarray
    has_data: np.ndarray
    enmo_mg: np.ndarray
    mad_mg: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.starts)


def _nonwear_grid_mask(nonwear: "NonwearResult | None", g0: int, m: int, fs_out: int) -> np.ndarray:
    """bool (m,): grid point j (at g0 + j / fs_out) lies in a non-wear episode."""
    mask = np.zeros(m, dtype=bool)
    if nonwear is None or len(nonwear.start_ns) == 0 or m == 0:
        return mask
    s = np.asarray(nonwear.start_ns, dtype=np.int64)
    e = np.asarray(nonwear.end_ns, dtype=np.int64)
    g_last = g0 + (m - 1) * NS // fs_out
    sel = (s <= g_last) & (e > g0)
    if not sel.any():
        return mask
    s, e = s[sel], e[sel]
    # episodes are sorted and disjoint; grid indices [ceil(s), ceil(e)) are inside [s, e)
    js = np.clip(ceil_div((s - g0) * fs_out, NS), 0, m)
    je = np.clip(ceil_div((e - g0) * fs_out, NS), 0, m)
    delta = np.zeros(m + 1, dtype=np.int32)
    np.add.at(delta, js, 1)
    np.add.at(delta, je, -1)
    mask = np.cumsum(delta[:-1]) > 0
    return mask



def iter_chunks(
    rec: "Recording",
    *,
    window_sec: int,
    fs_out: int = SAMPLE_RATE,
    lowpass_hz: float | None = None,
    nonwear: "NonwearResult | None" = None,
    max_gap_s: float = 1.0,
    chunk_sec: int = 21_600,
    method: str = "linear",
    antialias: bool = False,
    fs_in: float | None = None,
    enmo_lowpass_hz: float | None = 20.0,
) -> Iterator[WindowChunk]:
    """Resample ``rec`` to ``fs_out`` and yield its windows a chunk (default 6 h) at a time.

    Windows run continuously from the one holding the first sample to the one holding the
    last, gaps included (flagged by ``has_data`` / ``valid``), so downstream sees every window
    of the recorded span. Chunks start at midnight plus multiples of ``chunk_sec`` (a whole
    number of windows) and never hold an empty list of windows. The result does not depend on
    ``chunk_sec`` (up to float rounding). ``fs_in`` (Hz) is measured once from the timestamps
    when not given. See the module docstring for resampling and filtering.

    ``enmo_mg`` is computed from the raw samples at the device's own rate (not from the 30 Hz
    grid, which would shave the peaks of vigorous movement by 5-10 %), after the field's
    20 Hz low-pass (``enmo_lowpass_hz``; None: unfiltered), as actipy and the UK Biobank tool
    do, so ``acc`` stays comparable with the peers' whatever the model's preprocessing.
    """
    t = as_ns(rec.time)
    if len(t) == 0:
        raise InputError("the recording holds no samples; check the device file (it may be empty or unreadable)")
    rate = effective_rate(t, max_gap_s) if fs_in is None else float(fs_in)
    return chunks_from_blocks(
        iter([(t, rec.xyz)]), first_ns=int(t[0]), last_ns=int(t[-1]), rate=rate, window_sec=window_sec, fs_out=fs_out,
        lowpass_hz=lowpass_hz, nonwear=nonwear, max_gap_s=max_gap_s, chunk_sec=chunk_sec, method=method,
        antialias=antialias, enmo_lowpass_hz=enmo_lowpass_hz,
    )


def chunks_from_blocks(
    blocks: Iterator[tuple[np.ndarray, np.ndarray]],
    *,
    first_ns: int,
    last_ns: int,
    rate: float,
    window_sec: int,
    fs_out: int = SAMPLE_RATE,
    lowpass_hz: float | None = None,
    nonwear: "NonwearResult | None" = None,
    max_gap_s: float = 1.0,
    chunk_sec: int = 21_600,
    method: str = "linear",
    antialias: bool = False,
    enmo_lowpass_hz: float | None = 20.0,
    finite: bool = False,
) -> Iterator[WindowChunk]:
    """:func:`iter_chunks` on samples that arrive as blocks ``(int64 ns times, (k, 3) g)`` in time
    order (strictly increasing across blocks), from ``first_ns`` to ``last_ns``, measured at
    ``rate`` Hz. Only the samples one chunk needs (plus its filter margins and one block ahead)
    are held; each chunk sees exactly the samples it would see in the whole recording, so the
    windows do not depend on the block size. ``finite``: every value is known to be finite (pass
    1 of a stream checked them), so no chunk looks for NaN or inf again."""
    fs_out = int(fs_out)
    T = int(round(window_sec * fs_out))
    if T <= 0 or abs(T - window_sec * fs_out) > 1e-9:
        raise ValueError(f"window_sec * fs_out must be a positive integer, got {window_sec} * {fs_out}")
    win_ns = int(round(window_sec * NS))
    chunk_ns = int(round(chunk_sec * NS))
    if chunk_ns <= 0 or chunk_ns % win_ns:
        raise ValueError(f"chunk_sec ({chunk_sec}) must be a positive multiple of window_sec ({window_sec})")
    cut = effective_cutoff(lowpass_hz, rate, fs_out, antialias)
    e_cut = effective_cutoff(enmo_lowpass_hz, rate, fs_out, False)
    sos = None if cut is None else design_lowpass(cut, rate)
    e_sos = sos if e_cut == cut else (None if e_cut is None else design_lowpass(e_cut, rate))
    lowest = min((c for c in (cut, e_cut) if c is not None), default=None)
    margin_ns = int(filter_margin_s(lowest, max_gap_s) * NS)
    gap_ns = float(max_gap_s) * NS

    origin = midnight_ns(first_ns)
    w_first = (int(first_ns) - origin) // win_ns
    w_last = (int(last_ns) - origin) // win_ns
    per_chunk = chunk_ns // win_ns
    buf = _SampleBuffer()  # the samples held: from one before the chunk's margin on
    done = False
    c_first = w_first // per_chunk
    c_last = w_last // per_chunk
    for c in range(c_first, c_last + 1):
        wa = max(w_first, c * per_chunk)
        wb = min(w_last + 1, (c + 1) * per_chunk)
        g0 = origin + wa * win_ns
        g1 = origin + wb * win_ns
        last = int(buf.t[buf.n - 1]) if buf.n else None
        while not done and (last is None or last <= g1 + margin_ns):  # up to one sample past the margin
            nxt = next(blocks, None)
            if nxt is None:
                done = True
            elif len(nxt[0]):
                buf.append(as_ns(nxt[0]), nxt[1])
                last = int(buf.t[buf.n - 1])
        t, xyz, n = buf.t[: buf.n], buf.x[: buf.n], buf.n
        a = int(np.searchsorted(t, g0 - margin_ns, side="left"))
        b = int(np.searchsorted(t, g1 + margin_ns, side="right"))
        nwin = wb - wa
        if a == b:
            # no sample within the margin (>= 2 * max_gap_s) of this chunk: it lies inside a
            # gap, so every window is empty and no ENMO is summed (what resampling would give,
            # without interpolating a whole chunk between the gap's two edge samples)
            starts = (origin + (wa + np.arange(nwin, dtype=np.int64)) * win_ns).view("datetime64[ns]")
            X = np.full((nwin, 3, T), np.nan, dtype=np.float32)
            complete = np.zeros(nwin, dtype=bool)
            esum = np.zeros((3, nwin))
        else:
            a = max(0, a - 1)
            b = min(n, b + 1)
            edges = g0 + np.arange(nwin + 1, dtype=np.int64) * win_ns
            xyz30, esum = resample_core(t[a:b], xyz[a:b], g0, nwin * T, fs_out, gap_ns, method, sos, (e_sos, edges),
                                        finite=finite)
            # g0 is grid point wa * T of the midnight grid: make_windows needs no padding
            starts, X, complete = make_windows(xyz30, origin, wa * T, window_sec, fs=fs_out)
            del xyz30
        nw_pts = _nonwear_grid_mask(nonwear, g0, nwin * T, fs_out)
        nw = nw_pts.reshape(-1, T).any(axis=1)
        has_data = ~np.isnan(X[:, 0, :]).all(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            enmo = np.where(has_data & (esum[1] > 0), esum[0] / esum[1] * 1000.0, np.nan).astype(np.float32)
            mad = np.where(has_data & (esum[1] > 0), esum[2] / esum[1] * 1000.0, np.nan).astype(np.float32)
        yield WindowChunk(
            starts=starts,
            X=X,
            valid=complete & ~nw,
            nonwear=nw,
            has_data=has_data,
            enmo_mg=enmo,
            mad_mg=mad,
        )
        # the next chunk starts at g1: keep from the sample before its margin
        del t, xyz
        drop = max(0, int(np.searchsorted(buf.t[: buf.n], g1 - margin_ns, side="left")) - 1)
        buf.drop(drop)


class _SampleBuffer:
    """The raw samples :func:`chunks_from_blocks` holds, in one buffer reused from chunk to chunk
    (blocks are copied in; the samples a chunk no longer needs are dropped by moving the rest to
    the front), instead of a new concatenation of every block per chunk."""

    def __init__(self) -> None:
        self.t = np.empty(0, np.int64)
        self.x = np.empty((0, 3), np.float32)
        self.n = 0

    def append(self, t: np.ndarray, x: np.ndarray) -> None:
        k = len(t)
        if self.n + k > len(self.t):
            cap = max(self.n + k, len(self.t) + len(self.t) // 2)
            nt = np.empty(cap, np.int64)
            nx = np.empty((cap, 3), np.float32)
            nt[: self.n] = self.t[: self.n]
            nx[: self.n] = self.x[: self.n]
            self.t, self.x = nt, nx
        self.t[self.n : self.n + k] = t
        self.x[self.n : self.n + k] = x
        self.n += k

    def drop(self, k: int) -> None:
        if k <= 0:
            return
        keep = self.n - k
        self.t[:keep] = self.t[k : self.n].copy()
        self.x[:keep] = self.x[k : self.n].copy()
        self.n = keep
