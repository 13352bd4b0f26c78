"""The paper's random-forest baseline: 22 hand-crafted features per window, and the forest.

Features of a window ``(3, T)`` in g at ``fs`` Hz, in this order (:data:`FEATURE_NAMES`):

- per axis x, y, z: mean, standard deviation, range (9);
- correlations between the axes: xy, xz, yz (3; 0 where an axis is constant);
- vector magnitude (VM) ``sqrt(x^2 + y^2 + z^2)``: mean, std, range, median absolute deviation,
  skewness, kurtosis (excess) (6), and the ENMO mean ``max(VM - 1, 0)`` (1);
- spectral entropy of the VM (normalised Welch power spectrum, 3-s segments, mean removed) (1);
- the two dominant frequencies of that spectrum: its two strongest local maxima (Hz, strongest
  first; 0 where there is no second peak) (2).

All computed on the whole ``(N, 3, T)`` array at once (no per-window Python loop).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURE_NAMES: tuple[str, ...] = (
    "x_mean", "y_mean", "z_mean",
    "x_std", "y_std", "z_std",
    "x_range", "y_range", "z_range",
    "corr_xy", "corr_xz", "corr_yz",
    "vm_mean", "vm_std", "vm_range", "vm_mad", "vm_skew", "vm_kurt",
    "enmo_mean",
    "vm_spectral_entropy", "vm_dominant_freq_1", "vm_dominant_freq_2",
)


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 1e-12)


def extract_features(x: np.ndarray, fs: float = 30.0, segment_sec: float = 3.0) -> np.ndarray:
    """The 22 features of each window of ``x`` ``(N, 3, T)``; returns float32 ``(N, 22)``."""
    from scipy import signal

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != 3:
        from ..errors import InputShapeError

        raise InputShapeError(f"features need windows of shape (N, 3, T), got {x.shape}")
    n, _, t = x.shape
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    if n == 0:
        return out.astype(np.float32)
    out[:, 0:3] = x.mean(axis=2)
    out[:, 3:6] = x.std(axis=2)
    out[:, 6:9] = x.max(axis=2) - x.min(axis=2)
    out[:, 9] = _corr(x[:, 0], x[:, 1])
    out[:, 10] = _corr(x[:, 0], x[:, 2])
    out[:, 11] = _corr(x[:, 1], x[:, 2])
    vm = np.sqrt((x * x).sum(axis=1))
    out[:, 12] = vm.mean(axis=1)
    sd = vm.std(axis=1)
    out[:, 13] = sd
    out[:, 14] = vm.max(axis=1) - vm.min(axis=1)
    out[:, 15] = np.median(np.abs(vm - np.median(vm, axis=1, keepdims=True)), axis=1)
    # skewness and excess kurtosis (biased moments, as scipy's defaults); a (nearly) constant
    # signal has neither: report 0
    flat = sd < 1e-8
    z = (vm - out[:, 12:13]) / np.where(flat, 1.0, sd)[:, None]
    out[:, 16] = np.where(flat, 0.0, (z**3).mean(axis=1))
    out[:, 17] = np.where(flat, 0.0, (z**4).mean(axis=1) - 3.0)
    del z
    out[:, 18] = np.maximum(vm - 1.0, 0.0).mean(axis=1)
    nperseg = min(t, max(int(round(segment_sec * fs)), 2))
    freqs, psd = signal.welch(vm, fs=fs, nperseg=nperseg, detrend="constant", axis=1)
    total = psd.sum(axis=1, keepdims=True)
    p = np.divide(psd, total, out=np.zeros_like(psd), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    out[:, 19] = (ent / np.log2(len(freqs)) if len(freqs) > 1 else 0.0) + 0.0
    # dominant frequencies are the two strongest local maxima of the spectrum (so the second is
    # not just a leakage neighbour of the first)
    padded = np.pad(psd, ((0, 0), (1, 1)), constant_values=-np.inf)
    peak = (psd >= padded[:, :-2]) & (psd >= padded[:, 2:])
    order = np.argsort(-np.where(peak, psd, -1.0), axis=1, kind="stable")
    out[:, 20] = freqs[order[:, 0]]
    second = order[:, 1] if len(freqs) > 1 else order[:, 0]
    out[:, 21] = np.where(peak[np.arange(n), second], freqs[second], 0.0)
    out[(total[:, 0] <= 0), 20:22] = 0.0  # no spectrum (a constant window): no dominant frequency
    return out.astype(np.float32)


def make_forest(seed: int = 0, n_estimators: int = 200, n_jobs: int | None = 1) -> Any:
    """The baseline forest: balanced class weights (the analogue of the nets' weighted loss)."""
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError:  # pragma: no cover - depends on the environment
        from ..errors import HarnetError

        raise HarnetError(
            "the random-forest baseline needs scikit-learn; install it with `pip install harnet[train]`"
        ) from None
    return RandomForestClassifier(
        n_estimators=n_estimators,
        class_weight="balanced",
        min_samples_leaf=1,
        random_state=seed,
        n_jobs=n_jobs,
    )
