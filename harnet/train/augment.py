"""Training-time augmentation of accelerometer windows: random axis order and random 3-D rotation.

The paper's fine-tuning and pre-training both augment windows with a random permutation of the
three axes (one of 6) and a random rotation of the 3-D signal. Both are linear maps of the
(x, y, z) vector, so they are drawn as one 3x3 matrix per window (or per group of windows, e.g.
one per subject batch) and applied in a single batched matrix product.

Works on numpy arrays and torch tensors of shape ``(N, 3, T)``; the randomness always comes from
a :class:`numpy.random.Generator` passed in by the caller (no global state), so a seed fixes the
result on any device.
"""

from __future__ import annotations

import itertools
from typing import Any, TypeVar

import numpy as np

from ..errors import InputShapeError

#: The six orders of the three axes.
AXIS_ORDERS = np.array(list(itertools.permutations(range(3))), dtype=np.int64)

ArrayT = TypeVar("ArrayT")


def _check(x: Any) -> None:
    if x.ndim != 3 or x.shape[1] != 3:
        raise InputShapeError(f"augmentation needs windows of shape (N, 3, T), got {tuple(x.shape)}")


def axis_order_matrices(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random permutation matrices ``(n, 3, 3)``, each of the 6 axis orders equally likely.

    ``(P @ v)[i] = v[order[i]]``: row ``i`` picks the input axis that becomes output axis ``i``.
    """
    orders = AXIS_ORDERS[rng.integers(0, len(AXIS_ORDERS), size=n)]
    mats = np.zeros((n, 3, 3))
    mats[np.arange(n)[:, None], np.arange(3)[None, :], orders] = 1.0
    return mats


def rotation_matrices(n: int, rng: np.random.Generator, max_angle_deg: float = 180.0) -> np.ndarray:
    """``n`` random rotation matrices ``(n, 3, 3)``.

    Each rotates about an axis drawn uniformly on the unit sphere by an angle drawn uniformly in
    ``[-max_angle_deg, max_angle_deg]`` (Rodrigues' formula). ``max_angle_deg=0`` gives identities.
    """
    if not 0.0 <= max_angle_deg <= 180.0:
        raise ValueError(f"max_angle_deg must be within [0, 180], got {max_angle_deg}")
    axis = rng.standard_normal((n, 3))
    axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-12)
    theta = np.deg2rad(rng.uniform(-max_angle_deg, max_angle_deg, size=n))
    k = np.zeros((n, 3, 3))  # cross-product matrices of the axes
    k[:, 0, 1], k[:, 0, 2] = -axis[:, 2], axis[:, 1]
    k[:, 1, 0], k[:, 1, 2] = axis[:, 2], -axis[:, 0]
    k[:, 2, 0], k[:, 2, 1] = -axis[:, 1], axis[:, 0]
    s, c = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    return np.eye(3)[None] + s * k + (1.0 - c) * (k @ k)


def augmentation_matrices(
    n: int,
    rng: np.random.Generator,
    *,
    axis_order: bool = True,
    rotation: bool = True,
    max_angle_deg: float = 180.0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """The ``(n, 3, 3)`` matrices :func:`augment` applies: rotation after axis reordering.

    With ``groups`` (length ``n``), windows of the same group share one matrix (the paper draws
    the augmentation per subject batch in pre-training).
    """
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups must have shape ({n},), got {groups.shape}")
        _, inverse = np.unique(groups, return_inverse=True)
        per = augmentation_matrices(
            int(inverse.max()) + 1 if n else 0, rng,
            axis_order=axis_order, rotation=rotation, max_angle_deg=max_angle_deg,
        )
        return per[inverse]
    mats = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    if axis_order:
        mats = axis_order_matrices(n, rng)
    if rotation:
        mats = rotation_matrices(n, rng, max_angle_deg) @ mats
    return mats


def apply_matrices(x: ArrayT, mats: np.ndarray) -> ArrayT:
    """``out[i] = mats[i] @ x[i]`` for windows ``x`` ``(N, 3, T)`` (numpy or torch, dtype kept)."""
    _check(x)
    if isinstance(x, np.ndarray):
        return np.matmul(mats.astype(x.dtype, copy=False), x)
    import torch

    if isinstance(x, torch.Tensor):
        m = torch.as_tensor(mats, dtype=x.dtype, device=x.device)
        return torch.bmm(m, x)
    raise TypeError(f"augment takes a numpy array or a torch tensor, not {type(x).__name__}")


def augment(
    x: ArrayT,
    rng: np.random.Generator,
    *,
    axis_order: bool = True,
    rotation: bool = True,
    max_angle_deg: float = 180.0,
    groups: np.ndarray | None = None,
) -> ArrayT:
    """Randomly reorder the axes and rotate each window of ``x`` ``(N, 3, T)``; returns a new array.

    ``rng`` is the only source of randomness: the same generator state gives the same output.
    The vector magnitude of every sample is preserved (both maps are orthogonal).
    """
    _check(x)
    mats = augmentation_matrices(
        x.shape[0], rng, axis_order=axis_order, rotation=rotation,
        max_angle_deg=max_angle_deg, groups=groups,
    )
    return apply_matrices(x, mats)
