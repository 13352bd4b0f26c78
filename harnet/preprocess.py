"""Gravity calibration and non-wear detection on a raw :class:`~harnet.io.recording.Recording`.

Both rules work on clock-aligned 10-s windows (from midnight of the first day) whose per-axis
mean and standard deviation are computed in one vectorised pass over the raw samples, a few
million samples at a time (bins are found from the timestamps, so a drifting sample rate is
fine). A window is *stationary* when it holds at least half the typical number of samples per
window and the standard deviation of every axis is below ``stationary_std_g`` (15 mg).

Calibration (van Hees et al. 2014, J Appl Physiol 117:738): a still device measures gravity
only, so the means of stationary windows should lie on the unit sphere. An affine correction
per axis, ``a' = intercept + slope * a``, is fitted by iteratively re-weighted least squares:
project the corrected means onto the sphere, regress those targets on the raw means axis by
axis with weights ``1 / max(|residual|, 0.01 g)`` (an L1 fit, as in the paper), repeat until
the mean absolute distance from the sphere stops falling. It needs ``min_windows`` stationary
windows reaching beyond ``+-sphere_crit`` g on every axis; shorter recordings usually lack
them and are left alone (``CalibOK = 0``, a normal outcome). Acceptance rule: the correction
is applied in place to ``rec.xyz`` only when the error after is below ``accept_mg`` (10 mg)
and lower than before.

Non-wear: runs of consecutive stationary windows lasting longer than ``patience_min``
(90 min) are non-wear episodes. The raw data are not touched: the episodes are returned as
time intervals and applied on the 30 Hz grid by :func:`harnet.windows.iter_chunks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .windows import NS, _as_ns, midnight_ns

if TYPE_CHECKING:  # pragma: no cover
    from .io.recording import Recording

_AXES = ("x", "y", "z")


@dataclass
class WindowStats:
    """Per clock-aligned window: start (int64 ns), sample count, per-axis mean and std (g)."""

    start_ns: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    window_sec: float

    def stationary(self, stationary_std_g: float) -> np.ndarray:
        """bool per window: enough samples and every axis' std below the threshold."""
        filled = self.count[self.count > 0]
        if filled.size == 0:
            return np.zeros(len(self.count), dtype=bool)
        typical = float(np.median(filled))
        with np.errstate(invalid="ignore"):
            still = (self.std < stationary_std_g).all(axis=1)
        return still & (self.count >= 0.5 * typical) & (self.count >= 2)


def window_stats(rec: "Recording", window_sec: float = 10, *, block_samples: int = 4_000_000) -> WindowStats:
    """Mean and standard deviation per axis of every ``window_sec`` window from midnight.

    Windows run from the one holding the first sample to the one holding the last, empty
    ones included (count 0, NaN stats). Processed ``block_samples`` at a time.
    """
    t = _as_ns(rec.time)
    n = len(t)
    win_ns = int(round(window_sec * NS))
    if n == 0:
        z = np.empty(0)
        return WindowStats(np.empty(0, np.int64), np.empty(0, np.int64), z.reshape(0, 3), z.reshape(0, 3), window_sec)
    origin = midnight_ns(t[0])
    b0 = (int(t[0]) - origin) // win_ns
    b1 = (int(t[-1]) - origin) // win_ns
    nb = b1 - b0 + 1
    edges = origin + (b0 + np.arange(nb + 1, dtype=np.int64)) * win_ns
    idx = np.searchsorted(t, edges, side="left")
    idx[-1] = n
    count = np.diff(idx)
    mean = np.full((nb, 3), np.nan)
    std = np.full((nb, 3), np.nan)
    p = 0
    while p < nb:
        # bins [p, q) holding about block_samples samples (at least one bin)
        q = int(np.searchsorted(idx, idx[p] + block_samples, side="right")) - 1
        q = min(nb, max(q, p + 1))
        i0, i1 = int(idx[p]), int(idx[q])
        cnt = count[p:q]
        full = cnt > 0
        if full.any():
            offs = idx[p:q][full] - i0
            c = cnt[full].astype(np.float64)
            rows = np.flatnonzero(full) + p
            for k in range(3):
                col = rec.xyz[i0:i1, k].astype(np.float64)
                s1 = np.add.reduceat(col, offs)
                col *= col
                s2 = np.add.reduceat(col, offs)
                mu = s1 / c
                mean[rows, k] = mu
                std[rows, k] = np.sqrt(np.maximum(s2 / c - mu * mu, 0.0))
        p = q
    return WindowStats(edges[:-1], count, mean, std, window_sec)


# ------------------------------------------------------------------------------------------
# calibration


def _sphere_error(m: np.ndarray) -> float:
    return float(np.mean(np.abs(np.linalg.norm(m, axis=1) - 1.0)))


def _fit_sphere(means: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray, int, float]:
    """IRLS fit of per-axis intercept and slope so that intercept + slope * means lies on the sphere."""
    intercept = np.zeros(3)
    slope = np.ones(3)
    weights = np.ones(len(means))
    err = _sphere_error(means)
    it = 0
    for it in range(1, max_iter + 1):
        cur = intercept + slope * means
        norm = np.linalg.norm(cur, axis=1)
        target = cur / norm[:, None]
        for k in range(3):
            a = means[:, k]
            sw = weights.sum()
            am = (weights * a).sum() / sw
            tm = (weights * target[:, k]).sum() / sw
            var = (weights * (a - am) ** 2).sum()
            cov = (weights * (a - am) * (target[:, k] - tm)).sum()
            slope[k] = cov / var
            intercept[k] = tm - slope[k] * am
        new = intercept + slope * means
        resid = np.abs(np.linalg.norm(new, axis=1) - 1.0)
        weights = 1.0 / np.maximum(resid, 0.01)
        new_err = float(resid.mean())
        if abs(err - new_err) < tol:
            err = new_err
            break
        err = new_err
    return intercept, slope, it, err


def calibrate_gravity(
    rec: "Recording",
    *,
    stationary_std_g: float = 0.015,
    window_sec: float = 10,
    min_windows: int = 50,
    sphere_crit: float = 0.3,
    max_iter: int = 1000,
    tol: float = 1e-10,
    accept_mg: float = 10.0,
    min_std_g: float | None = None,
) -> dict[str, Any]:
    """Gravity calibration (van Hees 2014); corrects ``rec.xyz`` in place when it helps.

    See the module docstring for the method and the acceptance rule. Returns info fields:
    ``CalibOK`` (1 applied, 0 not), ``CalibErrorBefore(mg)``, ``CalibErrorAfter(mg)`` (mean
    distance of the stationary means from the unit sphere; equal to before when not applied,
    NaN without stationary windows), ``CalibNumStationary``, ``CalibNumIters``,
    ``CalibxIntercept``/``CalibyIntercept``/``CalibzIntercept`` (g) and ``CalibxSlope``/
    ``CalibySlope``/``CalibzSlope`` (``a' = intercept + slope * a``; 0 and 1 when not applied;
    actipy's names) and ``CalibNote`` (why it was
    skipped or rejected; empty when applied). ``min_std_g``: a stationary window must also have
    every axis' SD above this (actipy's ``stdtol_min``; leaves out flat-lined stretches).
    """
    stats = window_stats(rec, window_sec)
    still = stats.stationary(stationary_std_g)
    if min_std_g:
        with np.errstate(invalid="ignore"):
            still &= (stats.std > min_std_g).all(axis=1)
    means = stats.mean[still]
    info: dict[str, Any] = {
        "CalibOK": 0,
        "CalibErrorBefore(mg)": float("nan"),
        "CalibErrorAfter(mg)": float("nan"),
        "CalibNumStationary": int(len(means)),
        "CalibNumIters": 0,
    }
    for ax in _AXES:
        info[f"Calib{ax}Intercept"] = 0.0
    for ax in _AXES:
        info[f"Calib{ax}Slope"] = 1.0
    if len(means):
        before = _sphere_error(means) * 1000.0
        info["CalibErrorBefore(mg)"] = info["CalibErrorAfter(mg)"] = round(before, 3)
    if len(means) < min_windows:
        info["CalibNote"] = (
            f"skipped: {len(means)} stationary {window_sec:g}-s windows, {min_windows} needed "
            "(normal for recordings shorter than about a day)"
        )
        return info
    lacking = [ax for k, ax in enumerate(_AXES) if not (means[:, k].min() < -sphere_crit and means[:, k].max() > sphere_crit)]
    if lacking:
        info["CalibNote"] = (
            f"skipped: stationary windows do not reach beyond +-{sphere_crit} g on axis {', '.join(lacking)} "
            "(the device was not still in enough orientations)"
        )
        return info
    intercept, slope, iters, _ = _fit_sphere(means, max_iter, tol)
    after = _sphere_error(intercept + slope * means) * 1000.0
    info["CalibNumIters"] = iters
    if not (np.isfinite(after) and after < accept_mg and after < before):
        info["CalibNote"] = (
            f"rejected: the fit leaves {after:.1f} mg from the unit sphere (before {before:.1f} mg, "
            f"accepted only below {accept_mg:g} mg and when better); data left uncalibrated"
        )
        rec.warn(f"gravity calibration {info['CalibNote']}")
        return info
    for k in range(3):
        col = rec.xyz[:, k]  # a view: scale and shift in place, no copy of the recording
        col *= np.float32(slope[k])
        col += np.float32(intercept[k])
    info.update({"CalibOK": 1, "CalibErrorAfter(mg)": round(after, 3), "CalibNote": ""})
    for k, ax in enumerate(_AXES):
        info[f"Calib{ax}Intercept"] = float(intercept[k])
        info[f"Calib{ax}Slope"] = float(slope[k])
    return info


# ------------------------------------------------------------------------------------------
# non-wear


@dataclass
class NonwearResult:
    """Non-wear episodes as half-open intervals ``[start_ns, end_ns)`` (int64 ns, naive device
    clock), sorted and disjoint, plus info fields ``NonwearTime(days)`` and
    ``NumNonwearEpisodes``."""

    start_ns: np.ndarray
    end_ns: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.start_ns)

    def mask(self, time: np.ndarray) -> np.ndarray:
        """bool per timestamp (datetime64[ns] or int64 ns): inside a non-wear episode."""
        t = _as_ns(time)
        j = np.searchsorted(self.start_ns, t, side="right") - 1
        inside = j >= 0
        inside[inside] = t[inside] < self.end_ns[j[inside]]
        return inside


def detect_nonwear(
    rec: "Recording",
    *,
    patience_min: float = 90,
    stationary_std_g: float = 0.015,
    window_sec: float = 10,
) -> NonwearResult:
    """Non-wear episodes: runs of stationary windows lasting longer than ``patience_min``.

    A window without enough samples (a gap) breaks a run: gaps are reported as gaps, not as
    non-wear. ``rec`` is not modified.
    """
    stats = window_stats(rec, window_sec)
    still = stats.stationary(stationary_std_g)
    win_ns = int(round(window_sec * NS))
    d = np.diff(np.concatenate(([0], still.astype(np.int8), [0])))
    rs = np.flatnonzero(d == 1)
    re = np.flatnonzero(d == -1)
    long = (re - rs) * window_sec > patience_min * 60.0
    rs, re = rs[long], re[long]
    start = stats.start_ns[rs] if len(rs) else np.empty(0, np.int64)
    end = stats.start_ns[re - 1] + win_ns if len(re) else np.empty(0, np.int64)
    info = {
        "NonwearTime(days)": round(float((end - start).sum()) / (86_400 * NS), 6),
        "NumNonwearEpisodes": int(len(start)),
    }
    return NonwearResult(start.astype(np.int64), end.astype(np.int64), info)
