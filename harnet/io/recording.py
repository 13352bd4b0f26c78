"""The in-memory recording every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Recording:
    """Raw tri-axial acceleration as the device stored it.

    ``time`` is ``datetime64[ns]`` on the device's own clock (naive: device-local time as the
    device was set up; CWA and GT3X have no time-zone field), strictly increasing after reading.
    ``xyz`` is float32 ``(n, 3)`` in g (gravity included). ``info`` holds reader QC in the field's
    naming: ``Device``, ``DeviceID``, ``ReadOK``, ``ReadErrors``, ``SampleRate`` (nominal, Hz),
    ``SampleRateEffective`` (measured, Hz), ``StartTime``, ``EndTime``, ``NumSamples`` and
    ``Warnings`` (a list of one-line strings) plus format-specific entries.
    """

    time: np.ndarray
    xyz: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time.dtype != np.dtype("datetime64[ns]"):
            self.time = self.time.astype("datetime64[ns]")
        if self.xyz.dtype != np.float32:
            self.xyz = self.xyz.astype(np.float32)
        if self.xyz.ndim != 2 or self.xyz.shape[1] != 3 or len(self.xyz) != len(self.time):
            raise ValueError(f"Recording needs time (n,) and xyz (n, 3); got {self.time.shape}, {self.xyz.shape}")
        self.info.setdefault("Warnings", [])

    def __len__(self) -> int:
        return len(self.time)

    @property
    def x(self) -> np.ndarray:
        return self.xyz[:, 0]

    @property
    def y(self) -> np.ndarray:
        return self.xyz[:, 1]

    @property
    def z(self) -> np.ndarray:
        return self.xyz[:, 2]

    def warn(self, msg: str) -> None:
        self.info["Warnings"].append(msg)


_CHUNK = 4_000_000  # samples per block when scanning a recording


def strictly_increasing(t: Any, xyz: Any) -> tuple[Any, Any, int, int]:
    """Make int64 times strictly increasing: stable sort if any step goes back, then keep the
    first of repeated times. Returns (t, xyz, number of backward steps, rows dropped); the
    arrays are returned as they are (no copy) when already strictly increasing."""
    n_back = n_dup = 0
    for a in range(0, len(t) - 1, _CHUNK):
        d = np.diff(t[a : a + _CHUNK + 1])
        n_back += int((d < 0).sum())
        n_dup += int((d == 0).sum())
    if n_back:
        order = np.argsort(t, kind="stable")
        t = t[order]
        xyz = xyz[order]
        del order
    if n_back or n_dup:
        keep = np.empty(len(t), bool)
        keep[0] = True
        np.greater(t[1:], t[:-1], out=keep[1:])
        n_dup = int(len(t) - keep.sum())
        if n_dup:
            t = t[keep]
            xyz = xyz[keep]
    return t, xyz, n_back, n_dup
