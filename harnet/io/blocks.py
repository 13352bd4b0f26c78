"""Blocks of samples, the unit the streaming readers yield, and their collection into one array.

A streaming reader (``GeneactivReader.blocks()``, ``Gt3xReader.blocks()``) yields :class:`Block`
objects of bounded size (one chunk of the file: a few MiB) in file order, and fills its
``info`` as it goes (complete once the iterator is exhausted). :func:`collect` writes them into
arrays allocated once from an upper bound of the sample count, so one whole read needs the
output arrays plus one block, never a list of every block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np


@dataclass
class Block:
    """Samples in file order: ``time`` int64 ns (device-local, naive), ``xyz`` float32 (n, 3) g."""

    time: np.ndarray
    xyz: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


def collect(blocks: Iterable[Block], capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``blocks`` into (int64 times, float32 (n, 3)) arrays.

    ``capacity`` is an upper bound of the sample count (the readers derive one from the file
    size); should it be exceeded the arrays grow by half (never expected). When much of the
    capacity stays unused the arrays are shrunk in place (``ndarray.resize``: no second copy).
    """
    cap = max(int(capacity), 0)
    t = np.empty(cap, np.int64)
    xyz = np.empty((cap, 3), np.float32)
    n = 0
    for b in blocks:
        k = len(b)
        if not k:
            continue
        if n + k > len(t):
            new = max(n + k, len(t) + len(t) // 2 + 1)
            t = np.resize(t, new)
            xyz = np.resize(xyz, (new, 3))
        t[n : n + k] = b.time
        xyz[n : n + k] = b.xyz
        n += k
    if n < len(t):
        t.resize(n, refcheck=False)  # no other view of these arrays exists
        xyz.resize((n, 3), refcheck=False)
    return t, xyz
