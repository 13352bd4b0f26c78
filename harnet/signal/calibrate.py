"""Gravity calibration on a raw :class:`~harnet.io.recording.Recording`.

Calibration and non-wear detection (:mod:`harnet.signal.nonwear`) work on clock-aligned 10-s windows (from midnight of the first day) whose per-axis
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

The window statistics come from :mod:`harnet.signal.stats`; pass them in (``stats=``) to share
one pass over the samples with non-wear detection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .stats import WindowStats, window_stats

if TYPE_CHECKING:  # pragma: no cover
    from ..io.recording import Recording

_AXES = ("x", "y", "z")


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
    stats: WindowStats | None = None,
    min_windows: int = 50,
    sphere_crit: float = 0.3,
    max_iter: int = 1000,
    tol: float = 1e-10,
    accept_mg: float = 10.0,
    min_std_g: float | None = None,
) -> dict[str, Any]:
    """Gravity calibration (van Hees 2014); corrects ``rec.xyz`` in place when it helps.

    See the module docstring for the method and the acceptance rule. ``stats``: the window
    statistics of ``rec``, when already computed (:func:`harnet.signal.stats.window_stats`).
    Returns info fields:
    ``CalibOK`` (1 applied, 0 not), ``CalibErrorBefore(mg)``, ``CalibErrorAfter(mg)`` (mean
    distance of the stationary means from the unit sphere; equal to before when not applied,
    NaN without stationary windows), ``CalibNumStationary``, ``CalibNumIters``,
    ``CalibxIntercept``/``CalibyIntercept``/``CalibzIntercept`` (g) and ``CalibxSlope``/
    ``CalibySlope``/``CalibzSlope`` (``a' = intercept + slope * a``; 0 and 1 when not applied;
    actipy's names) and ``CalibNote`` (why it was
    skipped or rejected; empty when applied). ``min_std_g``: a stationary window must also have
    every axis' SD above this (actipy's ``stdtol_min``; leaves out flat-lined stretches).
    """
    if stats is None or stats.window_sec != window_sec:
        stats = window_stats(rec, window_sec)
    info, fit = fit_gravity(stats, rec.warn, stationary_std_g=stationary_std_g, window_sec=window_sec,
                            min_windows=min_windows, sphere_crit=sphere_crit, max_iter=max_iter, tol=tol,
                            accept_mg=accept_mg, min_std_g=min_std_g)
    if fit is not None:
        apply_gravity(rec.xyz, *fit)
    return info


def apply_gravity(xyz: np.ndarray, intercept: np.ndarray, slope: np.ndarray) -> None:
    """``xyz[:, k] = intercept[k] + slope[k] * xyz[:, k]`` in place, in float32 (a block or the
    whole recording: the same values either way)."""
    for k in range(3):
        col = xyz[:, k]  # a view: scale and shift in place, no copy of the recording
        col *= np.float32(slope[k])
        col += np.float32(intercept[k])


def fit_gravity(
    stats: WindowStats,
    warn: Any,
    *,
    stationary_std_g: float = 0.015,
    window_sec: float = 10,
    min_windows: int = 50,
    sphere_crit: float = 0.3,
    max_iter: int = 1000,
    tol: float = 1e-10,
    accept_mg: float = 10.0,
    min_std_g: float | None = None,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
    """:func:`calibrate_gravity` without touching samples: (info fields, (intercept, slope) to
    apply, or None when not applied). ``warn(message)`` receives the rejection warning."""
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
        return info, None
    lacking = [ax for k, ax in enumerate(_AXES) if not (means[:, k].min() < -sphere_crit and means[:, k].max() > sphere_crit)]
    if lacking:
        info["CalibNote"] = (
            f"skipped: stationary windows do not reach beyond +-{sphere_crit} g on axis {', '.join(lacking)} "
            "(the device was not still in enough orientations)"
        )
        return info, None
    intercept, slope, iters, _ = _fit_sphere(means, max_iter, tol)
    after = _sphere_error(intercept + slope * means) * 1000.0
    info["CalibNumIters"] = iters
    if not (np.isfinite(after) and after < accept_mg and after < before):
        info["CalibNote"] = (
            f"rejected: the fit leaves {after:.1f} mg from the unit sphere (before {before:.1f} mg, "
            f"accepted only below {accept_mg:g} mg and when better); data left uncalibrated"
        )
        warn(f"gravity calibration {info['CalibNote']}")
        return info, None
    info.update({"CalibOK": 1, "CalibErrorAfter(mg)": round(after, 3), "CalibNote": ""})
    for k, ax in enumerate(_AXES):
        info[f"Calib{ax}Intercept"] = float(intercept[k])
        info[f"Calib{ax}Slope"] = float(slope[k])
    return info, (intercept, slope)
