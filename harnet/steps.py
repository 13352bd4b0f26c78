"""Steps on the activity model's windows: the walking detector and the step counter as a second
consumer of :meth:`harnet.predictor.Predictor.classify` (its ``on_chunk`` hook), so the recording
is read and preprocessed once.

Each activity window (30 s for the default model) is cut into the detector's windows (10 s) on
the same 30-Hz grid: clock-aligned windows split exactly. A detector window is valid when every
sample is present and its activity window is not in non-wear (non-wear episodes last 90 min or
more, far longer than a window). Valid windows go to the detector's network; at the end its HMM
smooths the labels and the step function (:func:`harnet.measures.steps.count_steps`) counts steps
in the windows labelled walking. Definitions: docs/outputs.md, Steps.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .arch import SAMPLE_RATE
from .errors import InputError
from .measures.steps import StepParams, count_steps_magnitude, magnitude, range_gain

__all__ = ["DEFAULT_STEPS_MODEL", "StepCounter", "StepWindows", "walking_index"]

#: The registry's walking detector, used by ``--steps``.
DEFAULT_STEPS_MODEL = "stepcount-walk-20230208"

_NS = 1_000_000_000


def walking_index(labels: tuple[str, ...] | list[str], where: str) -> int:
    """Index of the walking class of a two-class walking detector, or a one-line InputError."""
    norm = [str(x).strip().lower() for x in labels]
    if len(norm) == 2:
        for name in ("walking", "walk"):
            if name in norm:
                return norm.index(name)
    raise InputError(f"{where} is not a walking detector: its labels are {list(labels)}, a steps model needs "
                     "two classes, 'not-walking' and 'walking'; give one with --steps-model")


@dataclass
class StepWindows:
    """The detector's windows of one recording (device clock): ``starts`` datetime64[ns] (M,),
    ``valid`` bool, ``detected`` bool (HMM-smoothed walking label), ``walking`` bool (detected
    and at least ``steptol`` steps), ``steps`` float64 (NaN where not valid, 0 where not walking),
    ``enmo_mg`` float64 (mean ENMO of the 30-Hz samples; NaN where not valid) and, when asked,
    ``step_ns`` int64: the time of every step."""

    starts: np.ndarray
    valid: np.ndarray
    detected: np.ndarray
    walking: np.ndarray
    steps: np.ndarray
    enmo_mg: np.ndarray
    window_sec: int
    step_ns: np.ndarray | None = None


class StepCounter:
    """Collects the detector's windows chunk by chunk (:meth:`on_chunk`), then :meth:`finish`.

    ``detector``: a :class:`harnet.predictor.Predictor` of the walking model (its backend, HMM,
    labels, window length); ``activity_window_sec``: the activity model's window. Refuses, before
    any work, a grid that cannot be split into the detector's windows.
    """

    def __init__(self, detector: Any, params: StepParams, activity_window_sec: int, *, step_times: bool = False,
                 name: str = "") -> None:
        self.detector = detector
        self.params = params
        self.name = name or str(detector.model_dir)
        self.walk = walking_index(detector.labels, self.name)
        dw, aw = int(detector.window_sec), int(activity_window_sec)
        if dw <= 0 or aw % dw:
            raise InputError(f"the steps model {self.name} has {dw}-s windows, which do not divide the activity "
                             f"model's {aw}-s windows; use an activity model whose window is a multiple of {dw} s")
        self.k = aw // dw
        self.window_sec = dw
        self.T = dw * SAMPLE_RATE
        self.step_times = step_times
        self.seconds = {"steps_inference": 0.0, "steps": 0.0}
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._cand: list[tuple[np.ndarray, np.ndarray]] = []  # (window index, magnitude) that may hold steps
        self._n = 0  # detector windows seen so far

    def on_chunk(self, ch: Any) -> None:
        """One :class:`~harnet.signal.windows.WindowChunk` of the activity model's windows."""
        t0 = _time.perf_counter()
        N, k, T = len(ch.starts), self.k, self.T
        if ch.X.shape[1:] != (3, k * T):
            raise InputError(f"the activity windows have {ch.X.shape[-1]} samples, the steps model needs {k} x {T}")
        X = np.ascontiguousarray(ch.X.reshape(N, 3, k, T).transpose(0, 2, 1, 3)).reshape(N * k, 3, T)
        starts = (ch.starts.view(np.int64)[:, None] + np.arange(k, dtype=np.int64) * (self.window_sec * _NS)).reshape(-1)
        v = magnitude(X)
        valid = np.isfinite(v).all(axis=1) & ~np.repeat(np.asarray(ch.nonwear, dtype=bool), k)  # NaN samples give NaN
        raw = np.full(N * k, -1, dtype=np.int64)
        t1 = _time.perf_counter()
        if valid.any():
            p = self.detector.backend.predict_proba(X[valid])
            raw[valid] = np.argmax(np.asarray(p), axis=1)
        t2 = _time.perf_counter()
        enmo = np.where(valid, np.maximum(v, 0.0).mean(axis=1, dtype=np.float64) * 1000.0, np.nan)
        # keep the magnitude of the windows that can hold a step: the HMM may label any of them walking
        rng = np.where(valid, v.max(axis=1) - v.min(axis=1), 0.0)
        cand = np.flatnonzero(valid & (rng * range_gain(self.params.lowpass_hz, SAMPLE_RATE) >= self.params.peak_prominence_g))
        self._parts.append((starts, valid, raw, enmo))
        self._cand.append((self._n + cand, v[cand]))
        self._n += N * k
        self.seconds["steps_inference"] += t2 - t1
        self.seconds["steps"] += (t1 - t0) + (_time.perf_counter() - t2)

    def finish(self) -> StepWindows:
        """HMM on the detector's labels, steps counted in walking windows (see :class:`StepWindows`)."""
        t0 = _time.perf_counter()
        if self._parts:
            starts, valid, raw, enmo = (np.concatenate(c) for c in zip(*self._parts))
            ci = np.concatenate([c[0] for c in self._cand])
            cv = np.concatenate([c[1] for c in self._cand])
        else:
            starts, valid, raw, enmo = np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0)
            ci, cv = np.zeros(0, np.int64), np.zeros((0, self.T), np.float32)
        hmm = self.detector.hmm
        final = hmm.smooth(raw, valid) if hmm is not None else raw
        detected = valid & (final == self.walk)
        sel = detected[ci]
        counted, peaks = count_steps_magnitude(cv[sel], self.params, fs=SAMPLE_RATE, return_peaks=self.step_times)
        steps = np.where(valid, 0.0, np.nan)
        steps[ci[sel]] = counted
        walking = detected & (np.nan_to_num(steps, nan=-1.0) >= self.params.steptol)  # stepcount: W = Y >= steptol
        step_ns = None
        if self.step_times:
            idx = ci[sel]
            parts = [starts[idx[j]] + (q * _NS) // SAMPLE_RATE for j, q in enumerate(peaks or []) if len(q)]
            step_ns = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        self.seconds["steps"] += _time.perf_counter() - t0
        return StepWindows(starts.view("datetime64[ns]"), valid, detected, walking, steps, enmo, self.window_sec, step_ns)

    def model_info(self) -> dict[str, Any]:
        """What info.json records of the steps model (``Steps/Model``)."""
        cfg = self.detector.config.raw
        prov = cfg.get("provenance", {}) or {}
        be = self.detector.backend
        return {"name": self.name, "path": str(Path(self.detector.model_dir)), "arch": cfg.get("arch"),
                "window_sec": self.window_sec, "labels": list(self.detector.labels),
                "weights_sha256": cfg.get("weights_sha256"), "checksum": prov.get("checksum"),
                "source": prov.get("source"), "licence": prov.get("licence"), "hmm": self.detector.hmm is not None,
                "backend": getattr(be, "name", type(be).__name__), "parameters": self.params.to_dict()}


def steps_model_name(options: Any) -> str:
    """The walking detector ``options`` asks for: ``steps_model``, else the registry's."""
    return getattr(options, "steps_model", None) or DEFAULT_STEPS_MODEL


def load_detector(options: Any) -> Any:
    """The walking detector of ``options`` (``steps_model``, or the registry's), as a
    :class:`harnet.predictor.Predictor`, checked (two classes, one of them walking; sound step
    parameters) so that a wrong model is refused before the recording is read."""
    from .predictor import Predictor

    name = steps_model_name(options)
    kw = dict(backend=options.backend, threads=options.threads, device=options.device,
              batch_size=options.batch_size, hmm=options.hmm)
    p = Path(name)
    detector = Predictor(name, model_dir=p, **kw) if p.is_dir() else Predictor(name, **kw)
    walking_index(detector.labels, name)
    StepParams.from_config(detector.config.raw, where=f"{name}: config.json")
    return detector


def step_counter(options: Any, activity_window_sec: int, detector: Any = None) -> StepCounter:
    """The :class:`StepCounter` of ``options`` (see :func:`load_detector`); ``detector``: a ready
    Predictor of the walking model."""
    name = steps_model_name(options)
    if detector is None:
        detector = load_detector(options)
    params = StepParams.from_config(detector.config.raw, where=f"{name}: config.json")
    return StepCounter(detector, params, activity_window_sec, step_times=bool(getattr(options, "step_times", False)),
                       name=name)


@dataclass
class StepOutputs:
    """The study tables with the step columns and rows added, the per-window steps table, the
    step times (or None) and the info.json figures."""

    daily: Any
    minutes: Any
    hours: Any
    bouts: Any
    windows: Any
    step_times: Any
    overall: dict[str, Any]


def step_outputs(counter: StepCounter, daily: Any, minutes: Any, hours: Any, bouts: Any, to_local: Any) -> StepOutputs:
    """Finish ``counter`` and join its measures onto the activity's daily, minute, hour and bouts
    tables; ``to_local(ns)``: device-clock ns -> the activity tables' local times."""
    import pandas as pd

    from .measures.stepsummary import step_measures

    sw = counter.finish()
    t1 = _time.perf_counter()
    win = pd.DataFrame({
        "time": to_local(sw.starts.view(np.int64)), "wear": sw.valid, "walk_detected": sw.detected,
        "walking": sw.walking, "steps": sw.steps,
    })
    st = step_measures(win.assign(nonwear=False, enmo=sw.enmo_mg), sw.window_sec, counter.params.steptol,
                       dates=list(daily["Date"]), valid_day=daily["DayValid"].to_numpy(dtype=bool),
                       minute_times=minutes["time"], hour_times=hours["time"], source=f"steps:{counter.name}")
    daily = pd.concat([daily.reset_index(drop=True), st.daily], axis=1)
    minutes = pd.concat([minutes.reset_index(drop=True), st.minutes], axis=1)
    hours = pd.concat([hours.reset_index(drop=True), st.hours], axis=1)
    b = bouts.assign(**{"Steps": np.nan, "Cadence(steps/min)": np.nan})
    if len(st.bouts):
        b = pd.concat([b, st.bouts], ignore_index=True) if len(b) else st.bouts
        b = b.sort_values(["start", "Kind", "MinLength(min)"], kind="stable").reset_index(drop=True)
    times = None
    if sw.step_ns is not None:
        times = pd.DataFrame({"time": to_local(sw.step_ns)})
    ov = {**st.overall, "StepsModel": counter.model_info()}
    counter.seconds["steps"] += _time.perf_counter() - t1
    return StepOutputs(daily, minutes, hours, b, win, times, ov)
