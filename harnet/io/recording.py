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
