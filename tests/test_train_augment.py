"""Augmentation: random axis order and 3-D rotation, reproducible from a passed generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harnet.errors import InputShapeError
from harnet.train.augment import (
    AXIS_ORDERS,
    augment,
    augmentation_matrices,
    axis_order_matrices,
    rotation_matrices,
)


def _windows(n: int = 8, t: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, t)).astype(np.float32)


def test_axis_order_is_a_permutation_of_rows_and_covers_all_six():
    x = _windows(400)
    out = augment(x, np.random.default_rng(1), rotation=False)
    seen = set()
    for a, b in zip(x, out):
        # each output axis is exactly one input axis, all three used once
        order = tuple(int(np.flatnonzero((a == b[i]).all(axis=1))[0]) for i in range(3))
        assert sorted(order) == [0, 1, 2]
        seen.add(order)
    assert seen == {tuple(o) for o in AXIS_ORDERS}


def test_rotations_are_proper_and_preserve_magnitude():
    r = rotation_matrices(200, np.random.default_rng(2))
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    x = _windows()
    out = augment(x, np.random.default_rng(3))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)
    assert not np.allclose(out, x)


def test_max_angle_bounds_the_rotation():
    r = rotation_matrices(500, np.random.default_rng(4), max_angle_deg=20.0)
    angles = np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 20.0 + 1e-9 and angles.max() > 15.0
    np.testing.assert_allclose(rotation_matrices(3, np.random.default_rng(4), 0.0), np.broadcast_to(np.eye(3), (3, 3, 3)))
    with pytest.raises(ValueError):
        rotation_matrices(1, np.random.default_rng(0), 270.0)


def test_seeded_generator_gives_identical_output_numpy_and_torch():
    x = _windows()
    a = augment(x, np.random.default_rng(7))
    b = augment(x, np.random.default_rng(7))
    c = augment(x, np.random.default_rng(8))
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    t = augment(torch.from_numpy(x), np.random.default_rng(7))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), a, rtol=1e-5, atol=1e-6)


def test_groups_share_one_matrix():
    groups = np.array([5, 5, 9, 9, 9, 2])
    m = augmentation_matrices(6, np.random.default_rng(0), groups=groups)
    np.testing.assert_array_equal(m[0], m[1])
    np.testing.assert_array_equal(m[2], m[4])
    assert not np.allclose(m[0], m[2]) and not np.allclose(m[2], m[5])


def test_no_augmentation_is_identity_and_bad_shape_is_refused():
    x = _windows()
    np.testing.assert_array_equal(augment(x, np.random.default_rng(0), axis_order=False, rotation=False), x)
    assert axis_order_matrices(0, np.random.default_rng(0)).shape == (0, 3, 3)
    with pytest.raises(InputShapeError):
        augment(np.zeros((2, 4, 10), np.float32), np.random.default_rng(0))
