"""Pretext transforms for multi-task self-supervised pre-training (Yuan, Chan et al. 2024).

Each transform is a pure function of a window batch ``x`` (``(N, C, T)`` float array, channels
first) and, where it is random, an explicit :class:`numpy.random.Generator`. None modifies its
input. :func:`apply_pretext` applies the tasks in the paper's order (arrow of time, permutation,
time warp), each to every window independently with probability ``p``, and returns the binary
labels that say which were applied.

Design choices the paper leaves open, fixed here so that every label is learnable:

- permutation draws a permutation of the segments that is never the identity (an identity
  "permutation" would carry label 1 on an unchanged window);
- time warp clips the speed curve at a small positive value so that warped time is strictly
  increasing (a cubic spline through N(1, 0.2^2) knots dips below zero about once in 10^6 draws).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Task names in the order the transforms are applied; the heads are named ``<task>_h``.
TASKS: tuple[str, ...] = ("aot", "permute", "time_w")

#: Default parameters (the paper's): 4 segments longer than 10 samples; 6 spline knots, sigma 0.2.
N_SEGMENTS = 4
MIN_SEGMENT = 10
N_KNOTS = 6
WARP_SIGMA = 0.2
_MIN_SPEED = 1e-3


def _as_batch(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"expected windows of shape (N, C, T), got {x.shape}")
    return x


def arrow_of_time(x: np.ndarray) -> np.ndarray:
    """Reverse every window in time (all channels). An involution: ``aot(aot(x)) == x``."""
    return np.ascontiguousarray(_as_batch(x)[..., ::-1])


def random_segments(
    n: int, length: int, rng: np.random.Generator, n_segments: int = N_SEGMENTS, min_len: int = MIN_SEGMENT
) -> np.ndarray:
    """Segment lengths ``(n, n_segments)`` summing to ``length``, each strictly longer than ``min_len``.

    The cut points are uniform over all admissible cuttings (stars and bars over the slack).
    """
    slack = length - n_segments * (min_len + 1)
    if slack < 0:
        raise ValueError(
            f"a window of {length} samples cannot hold {n_segments} segments longer than {min_len} samples"
        )
    cuts = np.sort(rng.integers(0, slack + 1, size=(n, n_segments - 1)), axis=1)
    edges = np.concatenate([np.zeros((n, 1), np.int64), cuts, np.full((n, 1), slack, np.int64)], axis=1)
    return np.diff(edges, axis=1) + (min_len + 1)


def random_nonidentity_permutations(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random permutations of ``range(k)`` (rows), none of them the identity (``k >= 2``)."""
    if k < 2:
        raise ValueError("a permutation that changes the order needs at least 2 segments")
    perms = np.argsort(rng.random((n, k)), axis=1)
    ident = np.arange(k)
    bad = (perms == ident).all(axis=1)
    while bad.any():  # probability 1/k! per row; a few rounds at most
        perms[bad] = np.argsort(rng.random((int(bad.sum()), k)), axis=1)
        bad = (perms == ident).all(axis=1)
    return perms


def permute_segments(x: np.ndarray, lengths: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Cut each window into segments of ``lengths`` (rows) and concatenate them in ``perms`` order.

    Deterministic given its arguments; the same cutting and order apply to all channels.
    """
    x = _as_batch(x)
    n, _, t = x.shape
    lengths = np.asarray(lengths, np.int64)
    perms = np.asarray(perms, np.int64)
    if lengths.shape != perms.shape or lengths.shape[0] != n or (lengths.sum(axis=1) != t).any():
        raise ValueError("lengths and perms must be (N, k) with each row of lengths summing to T")
    src_start = np.cumsum(lengths, axis=1) - lengths  # where each segment starts in the input
    out_len = np.take_along_axis(lengths, perms, axis=1)  # segment lengths in output order
    out_start = np.cumsum(out_len, axis=1) - out_len
    pos = np.arange(t)
    # which output segment each output position falls in
    j = (pos[None, None, :] >= out_start[:, :, None]).sum(axis=1) - 1  # (n, t)
    seg = np.take_along_axis(perms, j, axis=1)  # source segment index
    src = np.take_along_axis(src_start, seg, axis=1) + pos[None, :] - np.take_along_axis(out_start, j, axis=1)
    return np.take_along_axis(x, np.broadcast_to(src[:, None, :], x.shape), axis=2)


def permutation(
    x: np.ndarray, rng: np.random.Generator, n_segments: int = N_SEGMENTS, min_len: int = MIN_SEGMENT
) -> np.ndarray:
    """Cut each window at random points into ``n_segments`` segments (each > ``min_len`` samples)
    and reorder them by a random non-identity permutation (the same for all channels)."""
    x = _as_batch(x)
    n, _, t = x.shape
    lengths = random_segments(n, t, rng, n_segments, min_len)
    perms = random_nonidentity_permutations(n, n_segments, rng)
    return permute_segments(x, lengths, perms)


def speed_curves(
    n: int, length: int, rng: np.random.Generator, sigma: float = WARP_SIGMA, n_knots: int = N_KNOTS
) -> np.ndarray:
    """Smooth random speed curves ``(n, length)``: a cubic spline through ``n_knots`` evenly
    spaced knots with values ~ N(1, sigma^2), clipped to stay positive."""
    from scipy.interpolate import CubicSpline

    knots_t = np.linspace(0.0, length - 1, n_knots)
    knots_v = rng.normal(1.0, sigma, size=(n_knots, n)) if sigma > 0 else np.ones((n_knots, n))
    speed = CubicSpline(knots_t, knots_v, axis=0)(np.arange(length, dtype=np.float64)).T
    return np.maximum(speed, _MIN_SPEED)


def warp_with_speed(x: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Re-sample each channel of each window on its warped clock.

    ``speed`` is ``(N, C, T)`` (or broadcastable): the warped clock is its cumulative sum, rescaled
    to run from 0 to T-1, so length and both end samples are kept and constant speed is the
    identity. The signal is read at the warped times by linear interpolation.
    """
    x = _as_batch(x)
    n, c, t = x.shape
    speed = np.broadcast_to(np.asarray(speed, np.float64), x.shape)
    clock = np.cumsum(speed, axis=-1) - speed[..., :1]  # starts at 0
    clock = clock * ((t - 1) / clock[..., -1:])
    clock[..., -1] = t - 1  # exact end point despite rounding
    i0 = np.clip(np.floor(clock).astype(np.int64), 0, t - 2)
    w = clock - i0
    a = np.take_along_axis(x, i0, axis=-1)
    b = np.take_along_axis(x, i0 + 1, axis=-1)
    return (a + (b - a) * w).astype(x.dtype, copy=False)


def time_warp(
    x: np.ndarray, rng: np.random.Generator, sigma: float = WARP_SIGMA, n_knots: int = N_KNOTS
) -> np.ndarray:
    """Warp time per window and channel with a smooth random speed curve (see :func:`warp_with_speed`)."""
    x = _as_batch(x)
    n, c, t = x.shape
    speed = speed_curves(n * c, t, rng, sigma, n_knots).reshape(n, c, t)
    return warp_with_speed(x, speed)


def apply_pretext(
    x: np.ndarray,
    rng: np.random.Generator,
    tasks: Sequence[str] = TASKS,
    p: float = 0.5,
    *,
    n_segments: int = N_SEGMENTS,
    min_len: int = MIN_SEGMENT,
    sigma: float = WARP_SIGMA,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply each task to each window independently with probability ``p``.

    Returns ``(x_out, labels)``: ``x_out`` float32 ``(N, C, T)`` and ``labels`` int64
    ``(N, len(tasks))`` with 1 where that task's transform was applied. Transforms run in the
    order of :data:`TASKS` whatever the order of ``tasks``.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown pretext task(s) {unknown}; use some of {list(TASKS)}")
    x = np.array(_as_batch(x), dtype=np.float32, copy=True)
    labels = np.zeros((len(x), len(tasks)), np.int64)
    for task in TASKS:
        if task not in tasks:
            continue
        col = list(tasks).index(task)
        on = rng.random(len(x)) < p
        labels[:, col] = on
        if not on.any():
            continue
        sel = x[on]
        if task == "aot":
            sel = arrow_of_time(sel)
        elif task == "permute":
            sel = permutation(sel, rng, n_segments, min_len)
        else:
            sel = time_warp(sel, rng, sigma)
        x[on] = sel
    return x, labels
