"""Pretext transforms: each property the paper's method relies on, on generated windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harnet.train import transforms as tf


def _windows(n: int = 8, t: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, t)).astype(np.float32)


def test_arrow_of_time_is_an_involution_and_reverses() -> None:
    x = _windows()
    y = tf.arrow_of_time(x)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y[:, :, 0], x[:, :, -1])
    np.testing.assert_array_equal(y[2, 1], x[2, 1, ::-1])
    np.testing.assert_array_equal(tf.arrow_of_time(y), x)
    assert not np.shares_memory(y, x)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t=st.integers(44, 400), min_len=st.integers(1, 10))
def test_permutation_keeps_samples_and_min_segment(seed: int, t: int, min_len: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5
    lengths = tf.random_segments(n, t, rng, 4, min_len)
    assert (lengths > min_len).all() and (lengths.sum(axis=1) == t).all()
    perms = tf.random_nonidentity_permutations(n, 4, rng)
    assert not (perms == np.arange(4)).all(axis=1).any()
    assert (np.sort(perms, axis=1) == np.arange(4)).all()
    # windows whose samples are their own positions show exactly where each sample went
    x = np.broadcast_to(np.arange(t, dtype=np.float64), (n, 3, t)).copy()
    x[:, 1] += 1000  # channels distinguishable, same cutting for all channels
    y = tf.permute_segments(x, lengths, perms)
    for i in range(n):
        np.testing.assert_array_equal(np.sort(y[i, 0]), np.arange(t))  # same multiset of samples
        np.testing.assert_array_equal(y[i, 1] - 1000, y[i, 0])
        # the output is the input's segments, in permuted order, each kept contiguous
        starts = np.concatenate([[0], np.cumsum(lengths[i])[:-1]])
        expect = np.concatenate([np.arange(starts[s], starts[s] + lengths[i, s]) for s in perms[i]])
        np.testing.assert_array_equal(y[i, 0], expect)
        assert not np.array_equal(y[i, 0], np.arange(t))  # never the identity


def test_permutation_random_draws_and_errors() -> None:
    x = _windows(50)
    y = tf.permutation(x, np.random.default_rng(1))
    np.testing.assert_array_equal(np.sort(y, axis=2), np.sort(x, axis=2))
    assert not np.array_equal(y, x)
    # too short to hold 4 segments of more than 10 samples
    with pytest.raises(ValueError, match="cannot hold"):
        tf.permutation(_windows(2, 43), np.random.default_rng(0))
    tf.permutation(_windows(2, 44), np.random.default_rng(0))  # 4 x 11 fits exactly


def test_segment_cuts_cover_all_cuttings() -> None:
    """With a slack of 2 every admissible cutting (stars and bars: 10) shows up."""
    rng = np.random.default_rng(3)
    lengths = tf.random_segments(4000, 4 * 11 + 2, rng)
    assert len({tuple(r) for r in lengths}) == 10


def test_time_warp_identity_at_sigma_zero() -> None:
    x = _windows()
    y = tf.time_warp(x, np.random.default_rng(0), sigma=0.0)
    np.testing.assert_allclose(y, x, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sigma=st.floats(0.01, 0.5))
def test_time_warp_keeps_length_and_end_points(seed: int, sigma: float) -> None:
    x = _windows(4, 300, seed % 1000)
    y = tf.time_warp(x, np.random.default_rng(seed), sigma=sigma)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_allclose(y[..., 0], x[..., 0], atol=1e-6)
    np.testing.assert_allclose(y[..., -1], x[..., -1], atol=1e-6)
    # linear interpolation never leaves each channel's range
    assert (y <= x.max(axis=2, keepdims=True) + 1e-6).all()
    assert (y >= x.min(axis=2, keepdims=True) - 1e-6).all()


def test_time_warp_resamples_a_ramp_on_a_monotone_clock_per_axis() -> None:
    t = 300
    ramp = np.broadcast_to(np.arange(t, dtype=np.float64), (6, 3, t)).copy()
    y = tf.time_warp(ramp, np.random.default_rng(5), sigma=0.2)
    # a ramp read at the warped clock is the clock itself: strictly increasing, not the identity
    assert (np.diff(y, axis=2) > 0).all()
    assert np.abs(y - ramp).max() > 1.0
    # each axis gets its own speed curve
    assert not np.allclose(y[:, 0], y[:, 1])


def test_speed_curves_are_smooth_with_the_given_spread() -> None:
    s = tf.speed_curves(2000, 300, np.random.default_rng(0), sigma=0.2)
    knots = s[:, np.linspace(0, 299, 6).astype(int)]
    assert abs(knots.mean() - 1.0) < 0.01
    assert 0.18 < knots.std() < 0.22
    assert np.abs(np.diff(s, axis=1)).max() < 0.1  # smooth, no jumps
    assert (s > 0).all()


def test_apply_pretext_labels_match_transforms() -> None:
    x = _windows(200)
    rng = np.random.default_rng(11)
    y, labels = tf.apply_pretext(x, rng, p=0.5)
    assert y.dtype == np.float32 and y.shape == x.shape and labels.shape == (200, 3)
    assert 0.35 < labels.mean() < 0.65  # independent p = 0.5 per task
    # the three tasks are drawn independently: all 8 combinations occur
    assert len({tuple(r) for r in labels}) == 8
    # re-create each window from the labels with the same random draws: replay the generator
    rng2 = np.random.default_rng(11)
    expect = x.copy()
    for col, task in enumerate(tf.TASKS):
        on = rng2.random(len(x)) < 0.5
        np.testing.assert_array_equal(on, labels[:, col].astype(bool))
        if task == "aot":
            expect[on] = tf.arrow_of_time(expect[on])
        elif task == "permute":
            expect[on] = tf.permutation(expect[on], rng2)
        else:
            expect[on] = tf.time_warp(expect[on], rng2)
    np.testing.assert_array_equal(y, expect)
    # windows with no task applied are unchanged; every labelled window is changed
    none = labels.sum(axis=1) == 0
    np.testing.assert_array_equal(y[none], x[none])
    assert all(not np.array_equal(y[i], x[i]) for i in np.flatnonzero(~none))
    # aot-only windows are exact reversals; permute-only keep their samples
    aot_only = (labels == [1, 0, 0]).all(axis=1)
    np.testing.assert_array_equal(y[aot_only], x[aot_only][..., ::-1])
    perm_only = (labels == [0, 1, 0]).all(axis=1)
    np.testing.assert_array_equal(np.sort(y[perm_only], 2), np.sort(x[perm_only], 2))
    # the input is never modified
    np.testing.assert_array_equal(x, _windows(200))


def test_apply_pretext_probabilities_and_task_subsets() -> None:
    x = _windows(400, 150)
    _, labels = tf.apply_pretext(x, np.random.default_rng(0), p=0.0)
    assert labels.sum() == 0
    y, labels = tf.apply_pretext(x, np.random.default_rng(0), tasks=("aot",), p=1.0)
    assert labels.shape == (400, 1) and labels.all()
    np.testing.assert_array_equal(y, x[..., ::-1])
    with pytest.raises(ValueError, match="unknown pretext"):
        tf.apply_pretext(x, np.random.default_rng(0), tasks=("scale",))
