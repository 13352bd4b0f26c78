"""Step counting on 10-second windows (stepcount's method; our own code): a pure function.

In a window taken as walking, the vector magnitude ``|a|`` (g) less 1 g, clipped to [-2, 2] g, is
low-pass filtered (4th-order Butterworth at ``lowpass_hz``, zero-phase: forward and backward,
applied to each window on its own) and its peaks are found with
``scipy.signal.find_peaks(V, distance=peak_distance_s * fs, prominence=peak_prominence_g)``: one
peak is one step. A window with fewer than ``steptol`` steps counts 0 steps and is not walking.
A window with any missing (NaN) sample is not counted at all (NaN steps): gaps never give steps.

Method and defaults: Small et al., "Self-supervised machine learning to characterise step counts
from wrist-worn accelerometers in the UK Biobank" (2024) and its tool stepcount; see
docs/outputs.md "Steps" for where each default comes from.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from ..modeldir import DEFAULT_STEP_PARAMS as MODELDIR_STEP_DEFAULTS

__all__ = ["DEFAULT_STEP_PARAMS", "StepParams", "count_steps", "count_steps_magnitude", "magnitude", "range_gain", "step_magnitude"]


#: One set of default values, shared with ``harnet train``'s walking detectors (harnet.modeldir).
STEP_DEFAULTS = MODELDIR_STEP_DEFAULTS  # steptol, lowpass_hz, peak_distance_s, peak_prominence_g


@dataclass(frozen=True)
class StepParams:
    """The step-counting parameters of a walking-detector model (config.json ``steps``)."""

    steptol: int = STEP_DEFAULTS["steptol"]
    lowpass_hz: float = STEP_DEFAULTS["lowpass_hz"]
    peak_distance_s: float = STEP_DEFAULTS["peak_distance_s"]
    peak_prominence_g: float = STEP_DEFAULTS["peak_prominence_g"]
    source: str = "harnet defaults from stepcount's published method (docs/outputs.md, Steps)"

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], where: str = "config.json") -> "StepParams":
        """The ``steps`` key of a model's config.json; the defaults where the model carries none."""
        d = raw.get("steps")
        if d is None:
            return DEFAULT_STEP_PARAMS
        if not isinstance(d, Mapping):
            raise InputError(f"{where}: 'steps' must be an object with steptol, lowpass_hz, peak_distance_s, "
                             f"peak_prominence_g; got {type(d).__name__}")
        base = DEFAULT_STEP_PARAMS
        try:
            p = cls(
                steptol=int(d.get("steptol", base.steptol)),
                lowpass_hz=float(d.get("lowpass_hz", base.lowpass_hz)),
                peak_distance_s=float(d.get("peak_distance_s", base.peak_distance_s)),
                peak_prominence_g=float(d.get("peak_prominence_g", base.peak_prominence_g)),
                source=str(d.get("source", "config.json of the model")),
            )
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: 'steps' has a value that is not a number ({e}); fix the model's config.json") from None
        p.check(where)
        return p

    def check(self, where: str = "step parameters", fs: float = 30.0) -> None:
        bad = []
        if self.steptol < 0:
            bad.append(f"steptol {self.steptol} (must be >= 0)")
        if not (math.isfinite(self.lowpass_hz) and 0 < self.lowpass_hz < fs / 2):
            bad.append(f"lowpass_hz {self.lowpass_hz} (must be above 0 and below {fs / 2:g}, half the sample rate)")
        if not (math.isfinite(self.peak_distance_s) and self.peak_distance_s > 0):
            bad.append(f"peak_distance_s {self.peak_distance_s} (must be > 0)")
        if not (math.isfinite(self.peak_prominence_g) and self.peak_prominence_g > 0):
            bad.append(f"peak_prominence_g {self.peak_prominence_g} (must be > 0)")
        if bad:
            raise InputError(f"{where}: bad step parameters: {'; '.join(bad)}")

    def to_dict(self) -> dict[str, Any]:
        return {"steptol": self.steptol, "lowpass_hz": self.lowpass_hz, "peak_distance_s": self.peak_distance_s,
                "peak_prominence_g": self.peak_prominence_g, "source": self.source}


#: Defaults for a walking detector whose config.json carries no ``steps`` (docs/outputs.md, Steps):
#: steptol 4 and a 5 Hz low-pass (stepcount's README and trained models); peak distance 0.4 s and
#: prominence 0.2 g (stepcount's own tests of its peak counter, inside the bounds its fit searches:
#: 0.2-2 s and 0.15-1 g; 0.4 s allows up to 150 steps/min). Chosen before the 610-steps recording
#: was looked at.
DEFAULT_STEP_PARAMS = StepParams()


def magnitude(X: np.ndarray) -> np.ndarray:
    """``clip(|a| - 1, -2, 2)`` (N, T) float32 of windows ``X`` (N, 3, T) in g (NaN stays NaN)."""
    X = np.asarray(X, dtype=np.float32)  # the windows' own precision (2.5x faster than float64 here)
    if X.ndim != 3 or X.shape[1] != 3:
        raise ValueError(f"X must be (N, 3, T) windows in g, got shape {X.shape}")
    v = np.sqrt(np.einsum("nct,nct->nt", X, X)) - np.float32(1.0)
    return np.clip(v, np.float32(-2.0), np.float32(2.0))


def _sos(lowpass_hz: float, fs: float) -> np.ndarray:
    from scipy.signal import butter

    return butter(4, lowpass_hz / (fs / 2.0), btype="low", output="sos")


@functools.lru_cache(maxsize=16)
def range_gain(lowpass_hz: float, fs: float) -> float:
    """A bound on (range of the filtered window) / (range of the window) for the zero-phase
    filter: ``3 ||h||_1 ** 2`` (odd-extension padding at most triples the range; each of the two
    passes multiplies the largest deviation by at most the impulse response's L1 norm). A window
    whose range times this is under the prominence cannot hold a step."""
    from scipy.signal import sosfilt

    imp = np.zeros(int(fs * 60))
    imp[0] = 1.0
    return float(3.0 * np.abs(sosfilt(_sos(lowpass_hz, fs), imp)).sum() ** 2)


def step_magnitude(X: np.ndarray, lowpass_hz: float, fs: float) -> np.ndarray:
    """``V`` (N, T) float64: ``clip(|a| - 1, -2, 2)`` low-passed zero-phase within each window.

    ``X`` (N, 3, T) in g; windows with a NaN sample give NaN rows (not filtered)."""
    return _lowpass(magnitude(X), lowpass_hz, fs)


def _lowpass(v: np.ndarray, lowpass_hz: float, fs: float) -> np.ndarray:
    from scipy.signal import sosfiltfilt

    ok = np.isfinite(v).all(axis=1)
    out = np.full(v.shape, np.nan)
    if ok.any():
        out[ok] = sosfiltfilt(_sos(lowpass_hz, fs), v[ok].astype(np.float64), axis=-1)
    return out


def count_steps(
    X: np.ndarray,
    params: StepParams = DEFAULT_STEP_PARAMS,
    *,
    fs: float = 30.0,
    walking: np.ndarray | None = None,
    return_peaks: bool = False,
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Steps in each window (see module doc).

    ``X`` (N, 3, T) float, g; ``walking`` bool (N,): the windows to count in (None: all).
    Returns ``steps`` float64 (N,): NaN where a sample is missing, 0 where not walking or under
    ``steptol``, else the number of peaks; and, with ``return_peaks``, per window the int sample
    indices of its steps (empty where the count is 0 or NaN).
    """
    return count_steps_magnitude(magnitude(X), params, fs=fs, walking=walking, return_peaks=return_peaks)


def count_steps_magnitude(
    v: np.ndarray,
    params: StepParams = DEFAULT_STEP_PARAMS,
    *,
    fs: float = 30.0,
    walking: np.ndarray | None = None,
    return_peaks: bool = False,
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """:func:`count_steps` on :func:`magnitude` rows ``v`` (N, T)."""
    v = np.asarray(v)
    n = len(v)
    walk = np.ones(n, dtype=bool) if walking is None else np.asarray(walking, dtype=bool)
    if walk.shape != (n,):
        raise ValueError(f"walking must be a bool array of {n} windows, got shape {walk.shape}")
    steps = np.zeros(n, dtype=np.float64)
    complete = np.isfinite(v).all(axis=1) if n else np.zeros(0, dtype=bool)
    steps[~complete] = np.nan
    peaks: list[np.ndarray] | None = [np.zeros(0, dtype=np.int64) for _ in range(n)] if return_peaks else None
    todo = np.flatnonzero(walk & complete)
    if len(todo):  # a peak's prominence is at most the filtered window's range: still windows hold none
        r = v[todo].max(axis=1) - v[todo].min(axis=1)
        todo = todo[r * range_gain(params.lowpass_hz, fs) >= params.peak_prominence_g]
    if not len(todo):
        return steps, peaks
    from scipy.signal import find_peaks

    V = _lowpass(v[todo], params.lowpass_hz, fs)
    movable = (V.max(axis=1) - V.min(axis=1)) >= params.peak_prominence_g
    dist = max(params.peak_distance_s * fs, 1.0)
    for j in np.flatnonzero(movable):
        p, _ = find_peaks(V[j], distance=dist, prominence=params.peak_prominence_g)
        if len(p) >= params.steptol and len(p):
            steps[todo[j]] = len(p)
            if peaks is not None:
                peaks[todo[j]] = p.astype(np.int64)
    return steps, peaks
