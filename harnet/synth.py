"""Synthetic wrist recordings with a known, scripted pattern: for the demo, tests and benchmarks.

Not a model of human movement, but signals shaped like a wrist-worn accelerometer's (values in
g, gravity included, ~3 mg of sensor noise), so that a model trained on real data labels them
as scripted and non-wear, wear, window alignment and day arithmetic can be checked:

- ``offwrist``: lying flat on a table; sensor noise only (non-wear after 90 min).
- ``rest``: asleep in bed. Long still stretches (4-35 min, never 90) at varied lying
  orientations, joined by posture changes of a few seconds, with rare small twitches.
- ``sit``: seated, forearm on a desk or lap. The hand is held still for 2-10 s at a time, then
  turned a little (tens of mg), with a bigger gesture (reaching, lifting a cup) every few minutes
  and the forearm's posture shifting now and then.
- ``walk``: steps at 1.8-2 Hz with harmonics and arm swing at half the step rate (0.3-0.5 g
  dynamic), the arm hanging; bouts of 4-12 minutes with pauses of a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .io.recording import Recording

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
#: What the default model should call each scripted activity (the demo test checks it).
EXPECTED_LABELS: dict[str, tuple[str, ...]] = {
    "offwrist": ("non-wear",),
    "rest": ("sleep",),
    "sit": ("sedentary",),
    "walk": ("light", "moderate-vigorous"),
}
#: Sensor noise in g as seen at 30 Hz (the models' rate); white noise at ``fs`` is scaled by
#: sqrt(fs / 30) so that the same noise is left after the usual low-pass and resampling.
_NOISE_G = 0.003


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _smooth_noise(n: int, fs: float, knot_hz: float, rng: np.random.Generator, dims: int = 3) -> np.ndarray:
    """Band-limited noise (unit SD): random values ``knot_hz`` times a second, cubic-ish interpolated."""
    if n == 0:
        return np.zeros((0, dims))
    step = fs / knot_hz
    k = int(np.ceil(n / step)) + 3
    knots = rng.normal(0.0, 1.0, (k, dims))
    # a 3-tap smoothing of the knots, then linear interpolation: no corners a model could see as shocks
    knots = (knots[:-2] + 2 * knots[1:-1] + knots[2:]) / np.sqrt(6.0)
    x = np.arange(n) / step
    out = np.empty((n, dims))
    for d in range(dims):
        out[:, d] = np.interp(x, np.arange(len(knots)), knots[:, d])
    return out


def _pieces(n: int, fs: float, lo_s: float, hi_s: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Split ``n`` samples into consecutive pieces of ``lo_s``-``hi_s`` seconds."""
    out, i = [], 0
    while i < n:
        j = min(n, i + int(rng.uniform(lo_s, hi_s) * fs))
        out.append((i, j))
        i = j
    return out


def _blend(a: np.ndarray, b: np.ndarray, m: int) -> np.ndarray:
    """``m`` unit vectors going smoothly from ``a`` to ``b``."""
    w = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, m))[:, None]
    return _unit((1 - w) * a + w * b)


def _lying(rng: np.random.Generator) -> np.ndarray:
    """A gravity direction of a wrist in bed: any roll, forearm roughly horizontal."""
    roll = rng.uniform(-np.pi, np.pi)
    pitch = rng.uniform(-0.5, 0.5)
    return np.array([np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)])


def _seated(rng: np.random.Generator) -> np.ndarray:
    """A gravity direction of a forearm resting on a desk or lap (palm down to side)."""
    return _unit(np.array([rng.uniform(-0.5, 0.3), rng.uniform(-0.5, 0.5), rng.uniform(0.6, 1.0)]))


def _postures(n: int, fs: float, lo_s: float, hi_s: float, move_s: tuple[float, float], pick, rng) -> tuple[np.ndarray, np.ndarray]:
    """Gravity directions (n, 3) held for ``lo_s``-``hi_s`` s, changed in ``move_s`` s; and a mask of the changes."""
    g = np.empty((n, 3))
    moving = np.zeros(n, dtype=bool)
    cur = pick(rng)
    for i, j in _pieces(n, fs, lo_s, hi_s, rng):
        nxt = pick(rng)
        m = min(j - i, int(rng.uniform(*move_s) * fs))
        g[i:j] = nxt
        if m > 1:
            g[i:i + m] = _blend(cur, nxt, m)
            moving[i:i + m] = True
        cur = nxt
    return g, moving


def _bursts(out: np.ndarray, fs: float, every_s: tuple[float, float], dur_s: tuple[float, float],
            amp_g: tuple[float, float], knot_hz: float, rng: np.random.Generator) -> None:
    """Add short movements of ``amp_g`` now and then (in place), with smooth on/off ramps."""
    n = len(out)
    i = int(rng.uniform(*every_s) * fs * rng.random())
    while i < n:
        m = min(n - i, max(2, int(rng.uniform(*dur_s) * fs)))
        ramp = np.sin(np.linspace(0.0, np.pi, m))[:, None]
        out[i:i + m] += rng.uniform(*amp_g) * ramp * _smooth_noise(m, fs, knot_hz, rng)
        i += m + int(rng.uniform(*every_s) * fs)


def _rest(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    g, moving = _postures(n, fs, 4 * 60, 35 * 60, (2.0, 8.0), _lying, rng)
    out = g
    k = int(moving.sum())
    if k:  # the turn itself: an arm and body moving for a few seconds
        out[moving] += 0.12 * _smooth_noise(k, fs, 3.0, rng)
    _bursts(out, fs, (60.0, 420.0), (0.3, 1.5), (0.01, 0.04), 4.0, rng)  # twitches
    return out


def _sit(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    # the hand held still for a few seconds at a time, then moved a little (a mouse, a page, a
    # cup): small rotations around a seated forearm posture that itself shifts now and then
    base = _seated(rng)
    g = np.empty((n, 3))
    moving = np.zeros(n, dtype=bool)
    cur = base
    for i, j in _pieces(n, fs, 2.0, 10.0, rng):
        if rng.random() < 0.02:
            base = _seated(rng)
        nxt = _unit(base + rng.normal(0.0, 0.25, 3))
        m = min(j - i, int(rng.uniform(0.7, 2.5) * fs))
        g[i:j] = nxt
        if m > 1:
            g[i:i + m] = _blend(cur, nxt, m)
            moving[i:i + m] = True
        cur = nxt
    out = g
    k = int(moving.sum())
    if k:
        out[moving] += 0.03 * _smooth_noise(k, fs, 3.0, rng)
    out += 0.003 * _smooth_noise(n, fs, 5.0, rng)  # tremor
    _bursts(out, fs, (60.0, 180.0), (1.0, 4.0), (0.1, 0.3), 2.0, rng)  # a bigger gesture now and then
    return out


def _walk(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, 3))
    for i, j in _pieces(n, fs, 4 * 60, 12 * 60, rng):
        m = j - i
        pause = min(m // 3, int(rng.uniform(3.0, 10.0) * fs))  # a door, a kerb: a few seconds standing
        w = m - pause
        f = rng.uniform(1.8, 2.0) + 0.04 * _smooth_noise(w, fs, 0.05, rng, dims=1)[:, 0]
        ph = 2 * np.pi * np.cumsum(f) / fs + rng.uniform(0, 2 * np.pi)
        # the arm hanging: an AX3 on the wrist then reads gravity mostly on +x (as real walks show)
        hang = _unit(np.array([0.85, rng.uniform(-0.3, 0.6), rng.uniform(0.1, 0.4)]))
        swing = rng.uniform(0.25, 0.45) * np.sin(ph / 2)  # radians, arm pendulum at half the step rate
        grav = np.stack([hang[0] * np.cos(swing) - hang[2] * np.sin(swing),
                         np.full(w, hang[1]),
                         hang[0] * np.sin(swing) + hang[2] * np.cos(swing)], axis=1)
        a1, a2, a3 = rng.uniform(0.4, 0.5), rng.uniform(0.15, 0.2), rng.uniform(0.07, 0.1)
        impact = a1 * np.sin(ph) + a2 * np.sin(2 * ph + 0.7) + a3 * np.sin(3 * ph + 1.9)
        along = _unit(np.array([0.9, rng.uniform(-0.2, 0.3), rng.uniform(-0.1, 0.2)]))
        fwd = 0.5 * a1 * np.sin(ph + 1.2)
        out[i:i + w] = grav + impact[:, None] * along + fwd[:, None] * np.array([0.0, 0.3, 0.95])
        out[i:i + w] += 0.03 * _smooth_noise(w, fs, 8.0, rng)
        if pause:
            st = out[i + w:j]
            st[:] = _unit(hang + np.array([0.0, 0.0, 0.3]))
            st += 0.08 * _smooth_noise(pause, fs, 2.0, rng)  # shifting feet, looking round
    return out


def _segment(kind: str, n: int, fs: float, t0: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "offwrist":  # lying flat on a table: gravity on z, sensor noise only
        out = np.empty((n, 3))
        out[:] = (0.0, 0.0, -1.0)
    elif kind == "rest":
        out = _rest(n, fs, rng)
    elif kind == "sit":
        out = _sit(n, fs, rng)
    elif kind == "walk":
        out = _walk(n, fs, rng)
    else:
        raise ValueError(f"unknown activity {kind!r}; use one of {ACTIVITIES}")
    out += rng.normal(0.0, _NOISE_G * np.sqrt(max(fs, 30.0) / 30.0), size=(n, 3))
    return out.astype(np.float32)


def scripted_xyz(pattern: Sequence[tuple[str, float]], fs: float = 100.0, seed: int = 0) -> np.ndarray:
    """float32 ``(n, 3)`` in g following ``pattern`` ((activity, hours), ...) at ``fs`` Hz."""
    rng = np.random.default_rng(seed)
    parts, t0 = [], 0.0
    for kind, hours in pattern:
        n = int(round(hours * 3600 * fs))
        parts.append(_segment(kind, n, fs, t0, rng))
        t0 += n / fs
    return np.concatenate(parts) if parts else np.empty((0, 3), np.float32)


def day_pattern(seed: int, hours: float = 24.0) -> list[tuple[str, float]]:
    """A varied day by seed: a night's rest (a quarter to 3/8 of ``hours``), then sitting (most),
    walking and the device off the wrist in random order and lengths, ``hours`` in all."""
    rng = np.random.default_rng(seed)
    night = hours * rng.uniform(0.25, 0.375)
    pat, t = [("rest", night)], night
    spans = {"sit": (0.0125, 0.125), "walk": (0.004, 0.04), "offwrist": (0.008, 0.1)}  # of ``hours``
    while t < hours:
        kind = str(rng.choice(["sit", "walk", "offwrist"], p=[0.6, 0.3, 0.1]))
        h = min(hours - t, hours * rng.uniform(*spans[kind]))
        pat.append((kind, h))
        t += h
    return pat


def scripted_recording(pattern: Sequence[tuple[str, float]], *, fs: float = 100.0, seed: int = 0,
                       start: str = "2024-03-01 22:00:00") -> "Recording":
    """A scripted recording in memory (:class:`harnet.io.Recording`), as a reader would return it."""
    from .io.recording import Recording

    xyz = scripted_xyz(pattern, fs=fs, seed=seed)
    t = np.datetime64(start, "ns") + (np.arange(len(xyz)) * (1e9 / fs)).astype("timedelta64[ns]")
    return Recording(t, xyz, {"Device": "harnet.synth", "SampleRate": fs})


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
