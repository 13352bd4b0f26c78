"""Facts about the bundles the stepcount tool pickles, for the safe reader (.safepickle, .bundles).

The layout of a stepcount 3.20.0 bundle (joblib + lzma, read from one made with stepcount's own
code; nothing of stepcount is imported or run):

- top object ``stepcount.models.StepCounter`` with ``window_sec`` (10), ``sample_rate`` (30),
  ``window_len`` (300), ``steptol`` (a window with fewer steps counts as 0 steps and not walking),
  ``lowpass_hz`` (the low-pass of the step counter's signal, 5 Hz), ``find_peaks_params``
  (``{'distance': seconds, 'prominence': g}``, the peak detector's settings found when the
  counter was fitted) and settings (``pnr``, ``cv``, ``n_jobs``, ``verbose``, ``cv_scores``,
  ``cv_results``, ``wd_params``);
- ``wd``: a ``stepcount.models.WalkDetectorSSL`` (``device``, ``batch_size``, ``weights_path``,
  ``repo_tag``, ``ssl_repo_path``, ``model`` None, ``n_jobs``, ``verbose``) whose ``state_dict``
  is a harnet10 network with two outputs and whose ``hmms`` is a
  ``stepcount.hmm_utils.HMMSmoother`` (``startprob``, ``emissionprob``, ``transmat``, ``labels``
  [0, 1]);
- output 0 is "not walking", output 1 "walking".

stepcount reads a recording with actipy (gravity calibration, non-wear detection, no low-pass,
resampling to 30 Hz by nearest neighbour) before the walk detector sees it; the converted model
directory records that preprocessing. The step counter's own parameters go to config.json's
``"steps"`` key (:func:`harnet.modeldir.steps_config`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ModelError
from ..modeldir import WALK_LABELS

#: (module, class) of the stepcount objects read as inert stand-ins.
STEPCOUNT_STAND_INS: tuple[tuple[str, str], ...] = (
    ("stepcount.hmm_utils", "HMMSmoother"),
    ("stepcount.models", "StepCounter"),
    ("stepcount.models", "WalkDetectorSSL"),
)
#: Names of the walk detector's integer classes, in index order (0 not walking, 1 walking).
WALK_CLASS_NAMES: tuple[str, str] = WALK_LABELS
STEP_COUNTER_CLASS = "stepcount.models.StepCounter"

#: What stepcount's reader does before the walk detector (actipy: calibrate, non-wear, no
#: low-pass, nearest-neighbour resampling to 30 Hz).
PREPROCESSING: dict[str, Any] = {
    "calibrate_gravity": True,
    "detect_nonwear": True,
    "lowpass_hz": None,
    "resample": "nearest",
}


def _number(v: Any) -> float | None:
    """A finite real number (Python or numpy scalar), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def step_parameters(top: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The step counter's parameters of a read stepcount bundle (plain dicts, as ``read_bundle`` gives).

    Returns ``steptol``, ``lowpass_hz``, ``peak_distance_s`` and ``peak_prominence_g`` (the
    keys of :func:`harnet.modeldir.steps_config`). Raises :class:`~harnet.errors.ModelError`
    when the bundle holds no fitted step counter or a value is not a usable number.
    """
    if top.get("__class__") != STEP_COUNTER_CLASS:
        raise ModelError(
            f"{path} holds a {top.get('__class__', '?')}, not a {STEP_COUNTER_CLASS}; "
            "it is not a stepcount bundle"
        )
    fp = top.get("find_peaks_params")
    if fp is None:
        raise ModelError(f"{path}: the StepCounter was never fitted (find_peaks_params is None); it counts no steps")
    if not isinstance(fp, Mapping) or "distance" not in fp or "prominence" not in fp:
        raise ModelError(f"{path}: find_peaks_params {fp!r} is not a dict with 'distance' and 'prominence'")
    values = {
        "steptol": top.get("steptol"),
        "lowpass_hz": top.get("lowpass_hz"),
        "peak_distance_s": fp["distance"],
        "peak_prominence_g": fp["prominence"],
    }
    out: dict[str, Any] = {}
    for k, v in values.items():
        f = _number(v)
        if f is None:
            raise ModelError(f"{path}: the step counter's {k} is {v!r}, not a finite number")
        out[k] = f
    st = out["steptol"]
    if st != int(st):
        raise ModelError(f"{path}: the step counter's steptol is {st}, not a whole number of steps")
    out["steptol"] = int(st)
    for k in ("window_sec", "sample_rate"):
        v = _number(top.get(k))
        want = {"window_sec": 10, "sample_rate": 30}[k]
        if v is not None and v != want:
            raise ModelError(f"{path}: the StepCounter says {k}={top.get(k)!r}; harnet's walk detector takes {want}")
    return out
