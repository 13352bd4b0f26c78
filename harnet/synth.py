"""Synthetic wrist recordings with a known, scripted pattern: for the demo, tests and benchmarks.

Not a model of human movement: just signals whose properties are known (a still device off the
wrist, rest with rare small movements, sitting with low-level movement, walking-like 2 Hz
oscillation), so that non-wear, wear, window alignment and day arithmetic can be checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

#: The demo/test day: 26 hours from 22:00, (activity, hours).
DEMO_PATTERN: tuple[tuple[str, float], ...] = (
    ("offwrist", 2.0),
    ("rest", 8.0),
    ("sit", 4.0),
    ("walk", 1.0),
    ("sit", 4.0),
    ("walk", 1.0),
    ("sit", 6.0),
)
ACTIVITIES = ("offwrist", "rest", "sit", "walk")


def _segment(kind: str, n: int, fs: float, t0: float, rng: np.random.Generator) -> np.ndarray:
    t = t0 + np.arange(n, dtype=np.float64) / fs
    out = np.empty((n, 3), dtype=np.float32)
    if kind == "offwrist":  # lying flat on a table: gravity on z, sensor noise only (< 15 mg SD)
        out[:] = (0.0, 0.0, -1.0)
        out += rng.normal(0, 0.003, size=(n, 3)).astype(np.float32)
    elif kind == "rest":  # still on the wrist, a brief movement every 10 min (never 90 min still)
        g = np.array([0.3, -0.2, 0.93], dtype=np.float32)
        out[:] = g / np.linalg.norm(g)
        out += rng.normal(0, 0.004, size=(n, 3)).astype(np.float32)
        phase = np.mod(t, 600.0)
        move = phase < 5.0
        out[move, 0] += (0.3 * np.sin(2 * np.pi * 1.0 * t[move])).astype(np.float32)
    elif kind == "sit":  # slow posture changes and light hand movement
        ang = 0.6 * np.sin(2 * np.pi * t / 900.0)
        out[:, 0] = np.sin(ang)
        out[:, 1] = 0.1
        out[:, 2] = np.cos(ang)
        out += (0.03 * np.sin(2 * np.pi * 0.7 * t))[:, None].astype(np.float32)
        out += rng.normal(0, 0.02, size=(n, 3)).astype(np.float32)
    elif kind == "walk":  # arm swing at 1 Hz, steps at 2 Hz
        out[:, 0] = -0.2 + 0.5 * np.sin(2 * np.pi * 1.0 * t)
        out[:, 1] = 0.35 * np.sin(2 * np.pi * 2.0 * t + 0.5)
        out[:, 2] = 0.9 + 0.3 * np.sin(2 * np.pi * 2.0 * t)
        out += rng.normal(0, 0.05, size=(n, 3)).astype(np.float32)
    else:
        raise ValueError(f"unknown activity {kind!r}; use one of {ACTIVITIES}")
    return out


def scripted_xyz(pattern: Sequence[tuple[str, float]], fs: float = 100.0, seed: int = 0) -> np.ndarray:
    """float32 ``(n, 3)`` in g following ``pattern`` ((activity, hours), ...) at ``fs`` Hz."""
    rng = np.random.default_rng(seed)
    parts, t0 = [], 0.0
    for kind, hours in pattern:
        n = int(round(hours * 3600 * fs))
        parts.append(_segment(kind, n, fs, t0, rng))
        t0 += n / fs
    return np.concatenate(parts) if parts else np.empty((0, 3), np.float32)


def write_scripted_cwa(
    path: str | Path,
    start: str = "2024-01-01 22:00:00",
    pattern: Sequence[tuple[str, float]] = DEMO_PATTERN,
    *,
    fs: float = 100.0,
    seed: int = 0,
    days: int = 1,
) -> Path:
    """Write a scripted recording as an Axivity ``.cwa``; ``days`` repeats ``pattern``."""
    from .io.cwa_writer import write_cwa

    xyz = scripted_xyz(list(pattern) * days, fs=fs, seed=seed)
    return write_cwa(path, np.datetime64(start), xyz, fs=fs)
