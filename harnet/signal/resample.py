"""Resampling raw samples to the network's rate, by timestamps, with an optional low-pass.

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

The output grid is described in :mod:`harnet.signal.windows`. This module does not import torch.
"""

from __future__ import annotations

import numpy as np

from ..arch import SAMPLE_RATE
from ..errors import InputError
from ..timegrid import NS, as_ns, ceil_div, grid_ns, midnight_ns

_FILTER_ORDER = 4


def effective_rate(time: np.ndarray, max_gap_s: float = 1.0, block: int = 4_000_000) -> float:
    """Measured sample rate (Hz): intervals not longer than ``max_gap_s`` over their total length.

    Works in blocks so a week at 100 Hz is never differenced all at once. Raises
    :class:`InputError` when the timestamps are not strictly increasing.
    """
    t = as_ns(time)
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



# filtering and resampling


def import_filters_ahead() -> None:
    """Start importing ``scipy.signal`` (about 1.4 s on a 2-core Zen 3, most of it ``scipy.stats``)
    on a daemon thread, so that it overlaps pass 1 of a streamed file instead of delaying pass 2:
    :func:`design_lowpass` then finds it imported, or waits for it under Python's import lock.
    A failed import is left for :func:`design_lowpass` to raise."""
    import sys
    import threading

    if "scipy.signal" in sys.modules:
        return

    def load() -> None:
        try:
            import scipy.signal  # noqa: F401
        except Exception:  # pragma: no cover - raised again, in the caller's thread, where it is used
            pass

    threading.Thread(target=load, name="harnet-import-ahead", daemon=True).start()


def design_lowpass(cutoff_hz: float, fs_in: float) -> np.ndarray:
    from scipy.signal import butter

    return butter(_FILTER_ORDER, cutoff_hz, btype="low", fs=fs_in, output="sos")


def _segment_bounds(t: np.ndarray, gap_ns: float) -> np.ndarray:
    """Start indices of contiguous segments (a step longer than ``gap_ns`` starts one) plus
    ``len(t)`` at the end."""
    from ..kernels import segment_starts

    out = np.empty(len(t) + 1, np.int64)
    k = segment_starts(t, float(gap_ns), out)
    return out[:k].copy()


def _filter_segments(x: np.ndarray, bounds: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Forward-backward filter each column of ``x`` (n, 3) on each segment separately, as
    ``scipy.signal.sosfiltfilt(sos, seg, padtype="odd", padlen=min(3 * (2 * len(sos) + 1), len(seg) - 1))``
    (bit for bit: :func:`harnet.kernels.filtfilt_odd`); float64 result."""
    from ..kernels import filtfilt_odd

    out = np.empty(x.shape)
    default_pad = 3 * (2 * len(sos) + 1)
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = int(b - a)
        if n < 2:  # a lone sample cannot be filtered; it stays as measured
            out[a:b] = x[a:b]
            continue
        filtfilt_odd(sos, x, min(default_pad, n - 1), out=out, rows=(int(a), int(b)))
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


def effective_cutoff(lowpass_hz: float | None, fs_in: float, fs_out: int, antialias: bool) -> float | None:
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
    t = as_ns(time)
    x = np.asarray(xyz)
    if x.ndim != 2 or x.shape[1] != 3 or len(x) != len(t):
        raise ValueError(f"resample needs time (n,) and xyz (n, 3); got {t.shape}, {x.shape}")
    if grid_start_ns is None:
        if len(t) == 0:
            raise ValueError("grid_start_ns is needed when there are no samples")
        org = midnight_ns(t[0])
        grid_start_ns = grid_ns(org, ceil_div((int(t[0]) - org) * fs_out, NS), fs_out)
    if grid_stop_ns is None:
        if len(t) == 0:
            raise ValueError("grid_stop_ns is needed when there are no samples")
        grid_stop_ns = int(t[-1]) + 1
    g0 = int(grid_start_ns)
    m = max(0, ceil_div((int(grid_stop_ns) - g0) * fs_out, NS))
    rate = None
    if (lowpass_hz is not None or antialias) and len(t) >= 2 and m > 0:
        rate = effective_rate(t, max_gap_s) if fs_in is None else float(fs_in)
    cut = None if rate is None else effective_cutoff(lowpass_hz, rate, fs_out, antialias)
    sos = None if cut is None else design_lowpass(cut, rate)
    out, _ = resample_core(t, x, g0, m, fs_out, float(max_gap_s) * NS, method, sos)
    return out


def resample_core(
    t: np.ndarray,
    x: np.ndarray,
    g0: int,
    m: int,
    fs_out: int,
    gap_ns: float,
    method: str,
    sos: np.ndarray | None,
    enmo: tuple[np.ndarray | None, np.ndarray] | None = None,
    finite: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resample (t int64 ns, x (n, 3)) onto g0 + j / fs_out, j < m; see :func:`resample`.

    ``enmo = (sos_enmo, edges_ns)``: also return the sum of ENMO (g), the sample count and the
    sum of absolute deviations of the vector magnitude from its window mean (g; MAD x count) of
    the raw samples between consecutive ``edges_ns``, after filtering with ``sos_enmo``
    (None: unfiltered; the same object as ``sos``: reuse that filtering). Shape (3, len-1).
    ``finite``: the caller knows every value of ``x`` is finite (no search for NaN rows).
    """
    from .. import kernels

    out = np.full((m, 3), np.nan, dtype=np.float32)
    if not finite and len(x) and not kernels.all_finite(x):  # NaN or inf from a reader: no data there (a gap), never filtered over
        finite = np.isfinite(x).all(axis=1)
        t, x = t[finite], x[finite]
        del finite
    if m == 0 or len(t) == 0:
        return out, (None if enmo is None else np.zeros((3, len(enmo[1]) - 1)))
    need_filter = sos is not None or (enmo is not None and enmo[0] is not None)
    # gaps split the filtering; on int64 ns, as on the float64 ns the neighbour search uses
    # (exact integers for spans up to 104 days, so the same comparisons)
    bounds = _segment_bounds(t, gap_ns) if need_filter else None
    cols = x if sos is None else _filter_segments(x, bounds, sos)
    kernels.interpolate_grid(t, int(g0), cols, m, fs_out, float(gap_ns), method == "nearest", out)
    if enmo is None:
        return out, None
    e_sos, edges = enmo
    cuts = np.searchsorted(t, np.asarray(edges, dtype=np.int64), side="left")
    if e_sos is sos:
        ecols = cols
    elif e_sos is None:
        ecols = x
    else:
        ecols = _filter_segments(x, bounds, e_sos)
    sums = np.zeros((3, len(cuts) - 1))
    kernels.enmo_mad_sums(ecols, cuts, sums)  # MAD: Vaha-Ypya et al. 2015
    return out, sums


# ------------------------------------------------------------------------------------------
# windows
