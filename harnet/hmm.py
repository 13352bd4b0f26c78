"""Hidden Markov model smoothing of per-window labels, as plain arrays.

Parameters follow the field's convention (reference: fitted on out-of-fold predictions):
``prior`` (C,), ``emission`` (C, C) where row i is the mean predicted distribution over windows
whose true class is i, and ``transition`` (C, C) from true-label bigrams. Decoding is log-space
Viterbi over the argmax labels (the observation of a window is its argmax class), vectorised over
classes; each contiguous run of valid windows is decoded on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ModelError

_TINY = 1e-12


@dataclass(frozen=True)
class HMM:
    prior: np.ndarray
    emission: np.ndarray
    transition: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        c = len(self.labels)
        for name, arr, shape in (
            ("prior", self.prior, (c,)),
            ("emission", self.emission, (c, c)),
            ("transition", self.transition, (c, c)),
        ):
            a = np.asarray(arr, dtype=np.float64)
            if a.shape != shape:
                raise ModelError(f"hmm {name} has shape {a.shape}, expected {shape} for {c} labels")
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ModelError(f"hmm {name} has negative or non-finite entries")
            object.__setattr__(self, name, a)
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    # ---- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "prior": self.prior.tolist(),
            "emission": self.emission.tolist(),
            "transition": self.transition.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "HMM":
        try:
            return cls(
                prior=np.asarray(d["prior"], dtype=np.float64),
                emission=np.asarray(d["emission"], dtype=np.float64),
                transition=np.asarray(d["transition"], dtype=np.float64),
                labels=tuple(d["labels"]),
            )
        except KeyError as e:
            raise ModelError(f"hmm.json lacks the field {e.args[0]!r}") from None

    def save(self, path: str | Path) -> None:
        from ._fileio import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "HMM":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read {path}: {e}") from None
        return cls.from_dict(d)

    # ---- fitting -----------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        probs: np.ndarray,
        y_true: np.ndarray,
        labels: Sequence[str],
        groups: np.ndarray | None = None,
        uniform_prior: bool = False,
    ) -> "HMM":
        """Fit from out-of-fold probabilities ``(N, C)`` and true class indices ``(N,)``.

        Transitions count consecutive windows of the same group (participant); pass windows in
        time order. ``groups`` defaults to one group. Windows are assumed one window apart
        within a group; split groups at gaps before calling.
        """
        probs = np.asarray(probs, dtype=np.float64)
        y = np.asarray(y_true, dtype=np.int64)
        c = len(labels)
        if probs.ndim != 2 or probs.shape[1] != c or len(y) != len(probs):
            raise ModelError(f"fit needs probs (N, {c}) and y (N,), got {probs.shape} and {y.shape}")
        counts = np.bincount(y, minlength=c).astype(np.float64)
        prior = np.full(c, 1.0 / c) if uniform_prior else counts / max(counts.sum(), 1.0)
        emission = np.zeros((c, c))
        np.add.at(emission, y, probs)
        emission /= np.maximum(counts[:, None], 1.0)
        empty = counts == 0
        emission[empty] = np.eye(c)[empty]
        g = np.zeros(len(y)) if groups is None else np.asarray(groups)
        same = g[1:] == g[:-1]
        trans = np.zeros((c, c))
        np.add.at(trans, (y[:-1][same], y[1:][same]), 1.0)
        rows = trans.sum(axis=1)
        trans[rows == 0] = np.eye(c)[rows == 0]
        trans /= trans.sum(axis=1, keepdims=True)
        return cls(prior=prior, emission=emission, transition=trans, labels=tuple(labels))

    # ---- decoding ----------------------------------------------------------------------
    def viterbi(self, obs: np.ndarray) -> np.ndarray:
        """Most likely state path for a sequence of observed class indices ``(n,)``."""
        obs = np.asarray(obs, dtype=np.int64)
        n = len(obs)
        if n == 0:
            return obs.copy()
        log_e = np.log(self.emission + _TINY)
        log_t = np.log(self.transition + _TINY)
        score = np.log(self.prior + _TINY) + log_e[:, obs[0]]
        c = self.num_classes
        back = np.empty((n, c), dtype=np.int32)
        for t in range(1, n):  # loop over time only; classes are vectorised
            cand = score[:, None] + log_t
            back[t] = np.argmax(cand, axis=0)
            score = cand[back[t], np.arange(c)] + log_e[:, obs[t]]
        path = np.empty(n, dtype=np.int64)
        path[-1] = int(np.argmax(score))
        for t in range(n - 1, 0, -1):
            path[t - 1] = back[t, path[t]]
        return path

    def smooth(self, labels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Decode each contiguous run of valid windows separately; invalid entries stay -1."""
        labels = np.asarray(labels, dtype=np.int64)
        valid = labels >= 0 if valid is None else np.asarray(valid, dtype=bool) & (labels >= 0)
        out = np.full(len(labels), -1, dtype=np.int64)
        if not valid.any():
            return out
        edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for a, b in zip(starts, stops):
            out[a:b] = self.viterbi(labels[a:b])
        return out
