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
By timestamps, never by sample count (devices run 1-3 % off their nominal rate): each grid point
is interpolated (linearly, or nearest neighbour) between the two raw samples around it. A grid
point is NaN when it lies outside the data or when those two samples are more than
``max_gap_s`` apart: gaps are gaps, no data is invented. When ``lowpass_hz`` is set and below
half the input rate, the raw signal is first low-passed (Butterworth, order 4, forward-backward
so without phase shift) on each contiguous segment separately (segments split at gaps longer
than ``max_gap_s``; filtering across a gap would smear one side into the other). actinet-style
models use no filter (``lowpass_hz=None``); the asleep classifier was trained with 15-20 Hz.
``antialias=True`` additionally caps the cut-off at half the output rate (15 Hz for 30 Hz), so a
downsampling that would otherwise alias (no filter, or a 20 Hz filter) does not.

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

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .io.recording import Recording
    from .preprocess import NonwearResult

#: The rate every harnet network expects (Hz); equal to :data:`harnet.model.SAMPLE_RATE`
#: (redefined here so that this module does not import torch).
SAMPLE_RATE = 30

NS = 1_000_000_000
DAY_NS = 86_400 * NS
_FILTER_ORDER = 4


# ------------------------------------------------------------------------------------------
# time helpers


def _as_ns(time: np.ndarray) -> np.ndarray:
    """int64 nanoseconds view (no copy) of a datetime64[ns] or int64 array."""
    a = np.asarray(time)
    if a.dtype == np.dtype("datetime64[ns]"):
        return a.view(np.int64)
    if a.dtype.kind == "M":
        return a.astype("datetime64[ns]").view(np.int64)
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    raise TypeError(f"time must be datetime64 or int64 nanoseconds, got {a.dtype}")


def midnight_ns(t_ns: int) -> int:
    """Midnight (naive clock) of the day holding ``t_ns`` (int nanoseconds since the epoch)."""
    return int(t_ns) // DAY_NS * DAY_NS


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _grid_ns(origin_ns: int, k: int, fs_out: int) -> int:
    """Time of grid point ``k`` (rounded to the nearest ns; exact when k*1e9 % fs_out == 0)."""
    return origin_ns + (2 * k * NS + fs_out) // (2 * fs_out)


def effective_rate(time: np.ndarray, max_gap_s: float = 1.0, block: int = 4_000_000) -> float:
    """Measured sample rate (Hz): intervals not longer than ``max_gap_s`` over their total length.

    Works in blocks so a week at 100 Hz is never differenced all at once. Raises
    :class:`InputError` when the timestamps are not strictly increasing.
    """
    t = _as_ns(time)
    n = len(t)
    if n < 2:
        raise InputError("the recording has fewer than 2 samples; a sample rate cannot be measured")
    gap = int(max_gap_s * NS)
    count = 0
    total = 0
    for a in range(0, n - 1, block):
        d = np.diff(t[a : min(n, a + block + 1)])
        if d.size and d.min() <= 0:
            i = a + int(np.argmin(d))
            raise InputError(
                f"timestamps are not strictly increasing at sample {i} "
                f"({np.datetime64(int(t[i]), 'ns')} then {np.datetime64(int(t[i + 1]), 'ns')}); "
                "the reader must sort and de-duplicate them"
            )
        ok = d <= gap
        count += int(ok.sum())
        total += int(d[ok].sum())
    if count == 0 or total == 0:
        raise InputError(f"no two consecutive samples lie within {max_gap_s} s; the recording has no usable data")
    return count * NS / total


# ------------------------------------------------------------------------------------------
# filtering and resampling


def _design_lowpass(cutoff_hz: float, fs_in: float) -> np.ndarray:
    from scipy.signal import butter

    return butter(_FILTER_ORDER, cutoff_hz, btype="low", fs=fs_in, output="sos")


def _segment_bounds(t: np.ndarray, gap_ns: float) -> np.ndarray:
    """Start indices of contiguous segments plus ``len(t)`` at the end."""
    br = np.flatnonzero(np.diff(t) > gap_ns) + 1
    return np.concatenate(([0], br, [len(t)]))


def _filter_segments(col: np.ndarray, bounds: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Forward-backward filter ``col`` (one axis) on each segment separately; float64 result."""
    from scipy.signal import sosfiltfilt

    out = col.astype(np.float64)
    default_pad = 3 * (2 * len(sos) + 1)
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = int(b - a)
        if n < 2:  # a lone sample cannot be filtered; it stays as measured
            continue
        out[a:b] = sosfiltfilt(sos, out[a:b], padtype="odd", padlen=min(default_pad, n - 1))
    return out


def filter_margin_s(lowpass_hz: float | None, max_gap_s: float = 1.0) -> float:
    """Raw data read beyond each chunk edge so results do not depend on chunking.

    The order-4 Butterworth's impulse response decays by 1e-12 within about 12 / cut-off
    seconds; 20 / cut-off leaves room to spare.
    """
    m = max(2.0, 2.0 * max_gap_s)
    if lowpass_hz:
        m += 20.0 / float(lowpass_hz)
    return m


def _effective_cutoff(lowpass_hz: float | None, fs_in: float, fs_out: int, antialias: bool) -> float | None:
    cut = None if lowpass_hz is None else float(lowpass_hz)
    if cut is not None and cut <= 0:
        raise ValueError(f"lowpass_hz must be positive or None, got {lowpass_hz}")
    if antialias and fs_in > fs_out:
        cut = fs_out / 2.0 if cut is None else min(cut, fs_out / 2.0)
    if cut is None or cut >= fs_in / 2.0:
        return None  # nothing above the input's Nyquist frequency to remove
    return cut


def resample(
    time: np.ndarray,
    xyz: np.ndarray,
    *,
    fs_out: int = SAMPLE_RATE,
    lowpass_hz: float | None = None,
    max_gap_s: float = 1.0,
    grid_start_ns: int | None = None,
    grid_stop_ns: int | None = None,
    method: str = "linear",
    fs_in: float | None = None,
    antialias: bool = False,
) -> np.ndarray:
    """Resample raw samples onto the regular grid ``grid_start_ns + j / fs_out`` s.

    ``time``: datetime64[ns] or int64 ns, strictly increasing; ``xyz``: (n, 3). The grid
    covers ``[grid_start_ns, grid_stop_ns)``. Defaults: start at the first point at or after
    the first sample of the midnight-aligned grid (see the module docstring), stop just after
    the last sample. A grid point is NaN outside the data or when its two neighbouring raw
    samples are more than ``max_gap_s`` apart (a grid point that coincides with a raw sample
    takes that sample; a sample holding NaN counts as missing). ``method``: ``"linear"`` or
    ``"nearest"``. ``lowpass_hz`` (with
    ``antialias``, see the module docstring) filters first; ``fs_in`` (Hz) is measured from
    the timestamps when not given. Returns float32 ``(m, 3)``.
    """
    if method not in ("linear", "nearest"):
        raise ValueError(f"method must be 'linear' or 'nearest', got {method!r}")
    fs_out = int(fs_out)
    t = _as_ns(time)
    x = np.asarray(xyz)
    if x.ndim != 2 or x.shape[1] != 3 or len(x) != len(t):
        raise ValueError(f"resample needs time (n,) and xyz (n, 3); got {t.shape}, {x.shape}")
    if grid_start_ns is None:
        if len(t) == 0:
            raise ValueError("grid_start_ns is needed when there are no samples")
        org = midnight_ns(t[0])
        grid_start_ns = _grid_ns(org, _ceil_div((int(t[0]) - org) * fs_out, NS), fs_out)
    if grid_stop_ns is None:
        if len(t) == 0:
            raise ValueError("grid_stop_ns is needed when there are no samples")
        grid_stop_ns = int(t[-1]) + 1
    g0 = int(grid_start_ns)
    m = max(0, _ceil_div((int(grid_stop_ns) - g0) * fs_out, NS))
    rate = None
    if (lowpass_hz is not None or antialias) and len(t) >= 2 and m > 0:
        rate = effective_rate(t, max_gap_s) if fs_in is None else float(fs_in)
    cut = None if rate is None else _effective_cutoff(lowpass_hz, rate, fs_out, antialias)
    sos = None if cut is None else _design_lowpass(cut, rate)
    out, _ = _resample_core(t, x, g0, m, fs_out, float(max_gap_s) * NS, method, sos)
    return out


def _resample_core(
    t: np.ndarray,
    x: np.ndarray,
    g0: int,
    m: int,
    fs_out: int,
    gap_ns: float,
    method: str,
    sos: np.ndarray | None,
    enmo: tuple[np.ndarray | None, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resample (t int64 ns, x (n, 3)) onto g0 + j / fs_out, j < m; see :func:`resample`.

    ``enmo = (sos_enmo, edges_ns)``: also return the sum of ENMO (g), the sample count and the
    sum of absolute deviations of the vector magnitude from its window mean (g; MAD x count) of
    the raw samples between consecutive ``edges_ns``, after filtering with ``sos_enmo``
    (None: unfiltered; the same object as ``sos``: reuse that filtering). Shape (3, len-1).
    """
    out = np.full((m, 3), np.nan, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():  # NaN or inf from a reader: no data there (a gap), never filtered over
        t, x = t[finite], x[finite]
    del finite
    if m == 0 or len(t) == 0:
        return out, (None if enmo is None else np.zeros((3, len(enmo[1]) - 1)))
    # float64 ns relative to the grid start: exact integers for spans up to 104 days
    tr = (t - g0).astype(np.float64)
    grid = np.arange(m, dtype=np.float64) * NS / fs_out
    n = len(tr)
    if n == 1:
        i = np.zeros(m, dtype=np.int64)
        w = np.zeros(m)
        bad = grid != tr[0]
        x = np.concatenate([x, x])  # a lone sample: both neighbours are itself
    else:
        # neighbours: tr[i] <= g < tr[i + 1], clipped so that both exist
        i = np.searchsorted(tr, grid, side="right") - 1
        np.clip(i, 0, n - 2, out=i)
        left = tr[i]
        right = tr[i + 1]
        on_left = grid == left
        on_right = grid == right
        ok = (grid >= left) & (grid <= right) & ((right - left) <= gap_ns)
        ok |= on_left | on_right  # a point exactly on a sample takes it, even next to a gap
        w = (grid - left) / (right - left)
        w[on_left] = 0.0
        w[on_right] = 1.0
        if method == "nearest":
            w = (w > 0.5).astype(np.float64)
        bad = ~ok
        del left, right, on_left, on_right, ok
    del grid
    need_filter = sos is not None or (enmo is not None and enmo[0] is not None)
    bounds = _segment_bounds(tr, gap_ns) if need_filter else None
    if enmo is not None:
        e_sos, edges = enmo
        cuts = np.searchsorted(t, np.asarray(edges, dtype=np.int64), side="left")
        a, b = int(cuts[0]), int(cuts[-1])
        norm2 = np.zeros(b - a)
    for k in range(3):
        raw = x[:, k]
        col = raw if sos is None else _filter_segments(raw, bounds, sos)
        lo = col[i].astype(np.float64)
        v = lo + w * (col[i + 1] - lo)
        v[bad] = np.nan
        out[:, k] = v
        if enmo is not None and b > a:
            if e_sos is sos:
                ce = col[a:b]
            elif e_sos is None:
                ce = raw[a:b]
            else:
                ce = _filter_segments(raw, bounds, e_sos)[a:b]
            norm2 += np.square(ce, dtype=np.float64)
    if enmo is None:
        return out, None
    sums = np.zeros((3, len(cuts) - 1))
    if b > a:
        vm = np.sqrt(norm2, out=norm2)  # vector magnitude (g), in place: no extra copy
        e = np.maximum(vm - 1.0, 0.0)
        cnt = np.diff(cuts)
        full = cnt > 0
        if full.any():
            at = (cuts[:-1] - a)[full]
            sums[0, full] = np.add.reduceat(e, at)
            # MAD (Vaha-Ypya et al. 2015): mean |vm - mean(vm)| over the window's samples
            mean_vm = np.zeros(len(cnt))
            mean_vm[full] = np.add.reduceat(vm, at) / cnt[full]
            e = np.abs(vm - np.repeat(mean_vm, cnt), out=e)
            sums[2, full] = np.add.reduceat(e, at)
        sums[1] = cnt
    return out, sums


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
    js = np.clip(_ceil_div_arr((s - g0) * fs_out, NS), 0, m)
    je = np.clip(_ceil_div_arr((e - g0) * fs_out, NS), 0, m)
    delta = np.zeros(m + 1, dtype=np.int32)
    np.add.at(delta, js, 1)
    np.add.at(delta, je, -1)
    mask = np.cumsum(delta[:-1]) > 0
    return mask


def _ceil_div_arr(a: np.ndarray, b: int) -> np.ndarray:
    return -((-a) // b)


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
    fs_out = int(fs_out)
    T = int(round(window_sec * fs_out))
    if T <= 0 or abs(T - window_sec * fs_out) > 1e-9:
        raise ValueError(f"window_sec * fs_out must be a positive integer, got {window_sec} * {fs_out}")
    win_ns = int(round(window_sec * NS))
    chunk_ns = int(round(chunk_sec * NS))
    if chunk_ns <= 0 or chunk_ns % win_ns:
        raise ValueError(f"chunk_sec ({chunk_sec}) must be a positive multiple of window_sec ({window_sec})")
    t = _as_ns(rec.time)
    n = len(t)
    if n == 0:
        raise InputError("the recording holds no samples; check the device file (it may be empty or unreadable)")
    rate = effective_rate(t, max_gap_s) if fs_in is None else float(fs_in)
    cut = _effective_cutoff(lowpass_hz, rate, fs_out, antialias)
    e_cut = _effective_cutoff(enmo_lowpass_hz, rate, fs_out, False)
    sos = None if cut is None else _design_lowpass(cut, rate)
    e_sos = sos if e_cut == cut else (None if e_cut is None else _design_lowpass(e_cut, rate))
    lowest = min((c for c in (cut, e_cut) if c is not None), default=None)
    margin_ns = int(filter_margin_s(lowest, max_gap_s) * NS)
    gap_ns = float(max_gap_s) * NS

    origin = midnight_ns(t[0])
    w_first = (int(t[0]) - origin) // win_ns
    w_last = (int(t[-1]) - origin) // win_ns
    per_chunk = chunk_ns // win_ns
    c_first = w_first // per_chunk
    c_last = w_last // per_chunk
    for c in range(c_first, c_last + 1):
        wa = max(w_first, c * per_chunk)
        wb = min(w_last + 1, (c + 1) * per_chunk)
        g0 = origin + wa * win_ns
        g1 = origin + wb * win_ns
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
            xyz30, esum = _resample_core(t[a:b], rec.xyz[a:b], g0, nwin * T, fs_out, gap_ns, method, sos, (e_sos, edges))
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
