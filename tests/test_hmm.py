"""HMM smoothing (harnet.hmm): Viterbi against a brute-force decoder, segment-wise smoothing, fitting.

The brute force scores every one of the C**n state paths with the same log-space model the
decoder uses (log(p + 1e-12)), so the two must agree on the best score exactly (up to float
summation order) and on the path itself whenever the best path is unique.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harnet.errors import ModelError
from harnet.hmm import HMM

TINY = 1e-12
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _stochastic(draw, shape: tuple[int, ...], sparse: bool) -> np.ndarray:
    """Rows that sum to 1; with ``sparse`` some entries are exactly 0 (impossible moves)."""
    n = int(np.prod(shape))
    v = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)), dtype=np.float64).reshape(shape)
    if sparse:
        mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))).reshape(shape)
        v = np.where(mask, 0.0, v)
    v = v + (v.sum(axis=-1, keepdims=True) == 0)  # no all-zero row
    return v / v.sum(axis=-1, keepdims=True)


@st.composite
def models(draw, max_c: int = 4) -> HMM:
    c = draw(st.integers(1, max_c))
    sparse = draw(st.booleans())
    return HMM(
        prior=_stochastic(draw, (c,), sparse),
        emission=_stochastic(draw, (c, c), sparse),
        transition=_stochastic(draw, (c, c), sparse),
        labels=tuple(f"s{i}" for i in range(c)),
    )


def path_score(h: HMM, obs: np.ndarray, path: np.ndarray) -> float:
    le, lt = np.log(h.emission + TINY), np.log(h.transition + TINY)
    s = np.log(h.prior[path[0]] + TINY) + le[path, obs].sum()
    return float(s + lt[path[:-1], path[1:]].sum())


def brute_force(h: HMM, obs: np.ndarray) -> tuple[float, list[tuple[int, ...]]]:
    """Best score and every path reaching it (within 1e-9)."""
    scores = {p: path_score(h, obs, np.array(p)) for p in itertools.product(range(h.num_classes), repeat=len(obs))}
    best = max(scores.values())
    return best, [p for p, s in scores.items() if s >= best - 1e-9]


@SETTINGS
@given(data=st.data())
def test_viterbi_equals_brute_force(data):
    h = data.draw(models())
    n = data.draw(st.integers(1, 7 if h.num_classes <= 3 else 5))
    obs = np.array(data.draw(st.lists(st.integers(0, h.num_classes - 1), min_size=n, max_size=n)))
    path = h.viterbi(obs)
    assert path.shape == (n,) and path.dtype == np.int64
    assert ((path >= 0) & (path < h.num_classes)).all()
    best, argmax = brute_force(h, obs)
    assert path_score(h, obs, path) == pytest.approx(best, rel=1e-12, abs=1e-9)
    if len(argmax) == 1:
        assert tuple(path) == argmax[0]


@SETTINGS
@given(data=st.data())
def test_smooth_decodes_each_valid_run_on_its_own(data):
    h = data.draw(models(max_c=3))
    n = data.draw(st.integers(0, 40))
    labels = np.array(data.draw(st.lists(st.integers(-1, h.num_classes - 1), min_size=n, max_size=n)), dtype=np.int64)
    valid = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    out = h.smooth(labels, valid)
    ok = valid & (labels >= 0)
    assert out.shape == labels.shape
    assert (out[~ok] == -1).all() and ((out[ok] >= 0) & (out[ok] < h.num_classes)).all()
    # each maximal run of valid windows equals Viterbi on that run alone
    i = 0
    while i < n:
        if not ok[i]:
            i += 1
            continue
        j = i
        while j < n and ok[j]:
            j += 1
        np.testing.assert_array_equal(out[i:j], h.viterbi(labels[i:j]))
        i = j


@SETTINGS
@given(data=st.data())
def test_a_gap_isolates_the_runs_either_side(data):
    """Changing the labels after a gap never changes the decoded labels before it."""
    h = data.draw(models(max_c=3))
    a = np.array(data.draw(st.lists(st.integers(0, h.num_classes - 1), min_size=1, max_size=15)))
    b1 = np.array(data.draw(st.lists(st.integers(0, h.num_classes - 1), min_size=1, max_size=15)))
    b2 = np.array(data.draw(st.lists(st.integers(0, h.num_classes - 1), min_size=len(b1), max_size=len(b1))))
    assume(not np.array_equal(b1, b2))
    x1 = np.concatenate([a, [-1], b1])
    x2 = np.concatenate([a, [-1], b2])
    np.testing.assert_array_equal(h.smooth(x1)[: len(a)], h.smooth(x2)[: len(a)])


def test_sticky_transitions_remove_a_lone_flip():
    """The behaviour smoothing is for: one odd window inside a long run is relabelled."""
    h = HMM(
        prior=np.full(2, 0.5),
        emission=np.array([[0.8, 0.2], [0.2, 0.8]]),
        transition=np.array([[0.99, 0.01], [0.01, 0.99]]),
        labels=("rest", "walk"),
    )
    obs = np.array([0] * 10 + [1] + [0] * 10 + [1] * 10)
    out = h.viterbi(obs)
    np.testing.assert_array_equal(out, [0] * 21 + [1] * 10)


@SETTINGS
@given(data=st.data())
def test_fit_gives_stochastic_matrices_and_counts_only_within_groups(data):
    c = data.draw(st.integers(1, 4))
    n = data.draw(st.integers(2, 60))
    y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    groups = np.array(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    probs = rng.dirichlet(np.ones(c), size=n)
    h = HMM.fit(probs, y, [str(i) for i in range(c)], groups=groups)
    for m in (h.emission, h.transition):
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(h.prior.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(h.prior, np.bincount(y, minlength=c) / n)
    # transitions: counts of consecutive pairs inside a group, row-normalised
    counts = np.zeros((c, c))
    for k in range(n - 1):
        if groups[k] == groups[k + 1]:
            counts[y[k], y[k + 1]] += 1
    for i in range(c):
        if counts[i].sum():
            np.testing.assert_allclose(h.transition[i], counts[i] / counts[i].sum(), atol=1e-12)
        else:
            np.testing.assert_array_equal(h.transition[i], np.eye(c)[i])
    # emission row i: the mean predicted distribution of windows whose true class is i
    for i in np.unique(y):
        np.testing.assert_allclose(h.emission[i], probs[y == i].mean(axis=0), atol=1e-12)


def test_save_load_round_trip_and_bad_files(tmp_path):
    h = HMM(prior=np.array([0.2, 0.8]), emission=np.eye(2), transition=np.full((2, 2), 0.5), labels=("a", "b"))
    h.save(tmp_path / "hmm.json")
    g = HMM.load(tmp_path / "hmm.json")
    assert g.labels == h.labels
    for k in ("prior", "emission", "transition"):
        np.testing.assert_array_equal(getattr(g, k), getattr(h, k))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        HMM.load(tmp_path / "bad.json")
    d = h.to_dict()
    del d["transition"]
    (tmp_path / "missing.json").write_text(json.dumps(d))
    with pytest.raises(ModelError, match="transition"):
        HMM.load(tmp_path / "missing.json")
    with pytest.raises(ModelError, match="shape"):
        HMM(prior=np.ones(3) / 3, emission=np.eye(2), transition=np.eye(2), labels=("a", "b"))
    with pytest.raises(ModelError, match="negative or non-finite"):
        HMM(prior=np.array([np.nan, 1.0]), emission=np.eye(2), transition=np.eye(2), labels=("a", "b"))
