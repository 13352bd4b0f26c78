"""Compiled loops (numba) for the per-sample work of the read and windows stages, bit for bit
the numpy and scipy code they replace.

Each kernel does, sample by sample, exactly the floating-point operations of that code, in the
same order, so no output changes by a single bit (``tests/test_kernels.py`` compares them on
random and real data, and the goldens and stream tests compare whole outputs):

- :func:`filtfilt_odd`: ``scipy.signal.sosfiltfilt(sos, x, padtype="odd", padlen=p)`` on each
  column: the same odd extension, the same initial states (``sosfilt_zi``), the same direct form
  II transposed recursion as scipy's ``sosfilt`` (``y = b0 x + z0; z0 = b1 x - a1 y + z1;
  z1 = b2 x - a2 y``), forward then backward;
- :func:`reduceat_sum`: ``np.add.reduceat`` on float64: each segment's first element plus
  numpy's pairwise sum of the rest (8 partial sums up to 128 elements, halves above);
- :func:`interpolate_grid`: the linear or nearest interpolation of
  :func:`harnet.signal.resample.resample_core` onto the ``j / fs_out`` grid (its neighbour search
  a merge, which finds what ``np.searchsorted`` finds);
- :func:`enmo_mad_sums`: the per-window ENMO and MAD sums of the same function;
- :func:`window_moments`: the per-window sums behind :class:`harnet.signal.stream.StatsBuilder`.

numba compiles without ``fastmath`` (no reassociation, no fused multiply-add), so compiled code
rounds as numpy does. Compiled code is cached on disk (numba's cache: beside this file, or numba's
user cache directory when that is not writable). Importing this module imports numba (about
0.3 s); harnet imports it only where a kernel is used, never at ``import harnet``.
"""

from __future__ import annotations

from .device import all_finite, decode_packed, sample_times, step_counts
from .filters import filtfilt_odd
from .grid import interpolate_grid, segment_starts
from .sums import enmo_mad_sums, pairwise_col, pairwise_col2, pairwise_sum, reduceat_sum, window_moments

__all__ = [
    "all_finite", "decode_packed", "enmo_mad_sums", "filtfilt_odd", "interpolate_grid", "pairwise_col",
    "pairwise_col2", "pairwise_sum", "reduceat_sum", "sample_times", "segment_starts", "step_counts", "window_moments",
]

