"""Tiny generated window sets for the training tests (harnet5 windows: 5 s at 30 Hz)."""

from __future__ import annotations

import numpy as np

from harnet.train.prepare import WindowSet

CLASSES = ("still", "walk", "lie")


def synth_windows(n_participants: int = 6, per_class: int = 3, window_sec: int = 5, seed: int = 0) -> WindowSet:
    """Three separable classes: still (gravity on z), walk (z + a 2 Hz swing on x), lie (gravity on x).

    Each participant has ``per_class`` consecutive windows of each class, in that order, so
    windows of a class form a contiguous run (segments for the HMM).
    """
    rng = np.random.default_rng(seed)
    T = window_sec * 30
    t = np.arange(T) / 30.0
    X, y, pid, rec, time = [], [], [], [], []
    for p in range(n_participants):
        k = 0
        for c in CLASSES:
            for _ in range(per_class):
                w = rng.normal(0.0, 0.02, size=(3, T))
                if c == "still":
                    w[2] += 1.0
                elif c == "walk":
                    w[2] += 1.0
                    w[0] += 0.6 * np.sin(2 * np.pi * 2.0 * t + rng.uniform(0, 2 * np.pi))
                else:
                    w[0] += 1.0
                X.append(w)
                y.append(c)
                pid.append(f"P{p}")
                rec.append(f"P{p}")
                time.append(np.datetime64("2024-01-01T00:00:00", "ns") + np.timedelta64(k * window_sec, "s"))
                k += 1
    meta = {"window_sec": window_sec, "step_sec": window_sec, "labels": list(CLASSES),
            "preprocessing": {"calibrate_gravity": False, "detect_nonwear": True, "lowpass_hz": None,
                              "resample": "linear"}}
    return WindowSet(np.asarray(X, np.float32), np.array(y), np.array(pid), np.array(rec),
                     np.array(time, dtype="datetime64[ns]"), meta)
