"""Step-count data in stepcount's layout -> labelled windows for a walking detector.

The layout (that of OxWalk, on which stepcount's published walking detector was trained): raw
wrist recordings as tables (CSV, CSV.gz or parquet) with a time column, x, y, z in g and a step
column that marks each annotated step on the sample where it happens (1 there, 0 elsewhere; an
empty cell is a sample without annotation). One file per participant (``P01_wrist100.csv``...,
the participant is the ``P<digits>`` part of the name, else the name), in one folder, or a
single file.

Each recording is resampled and cut into 10-s windows exactly as :mod:`harnet.train.prepare`
does for activity labels; a window's step count is the sum of the step column over its raw
samples, and it is labelled ``walking`` when that count is at least ``steptol`` (stepcount's
definition: a window with fewer steps counts as 0 steps and not walking), else ``not-walking``.
A window is dropped (and counted) when a 30-Hz sample is missing (``incomplete``) or when most
of its raw samples carry no annotation (``unlabelled``). The counts are kept in the window
file (``steps``); the window set's meta records ``steptol``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..modeldir import DEFAULT_STEP_PARAMS, WALK_LABELS
from ..timegrid import NS
from .prepare import WindowOptions, WindowSet, as_ns, collect_windows, cut_windows, empty_windows

#: The column names of OxWalk's files.
OXWALK_COLUMNS = {"time_col": "timestamp", "steps_col": "annotation"}
_PID = re.compile(r"P\d+", re.IGNORECASE)


def step_counts(time_ns: np.ndarray, marks: np.ndarray, starts_ns: np.ndarray, window_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Annotated steps in each window ``[start, start + window)`` and the share of its raw samples
    without annotation (1.0 for a window without samples). ``marks``: steps per raw sample, NaN
    for no annotation."""
    a = np.searchsorted(time_ns, starts_ns, side="left")
    b = np.searchsorted(time_ns, starts_ns + window_ns, side="left")
    missing = np.isnan(marks)
    cum = np.zeros(len(marks) + 1, dtype=np.float64)
    np.cumsum(np.where(missing, 0.0, marks), out=cum[1:])
    steps = cum[b] - cum[a]
    np.cumsum(missing, out=cum[1:])
    total = (b - a).astype(np.float64)
    unl = np.where(total > 0, (cum[b] - cum[a]) / np.maximum(total, 1), 1.0)
    return np.rint(steps).astype(np.int64), unl


def step_windows_from_recording(
    time: np.ndarray, xyz: np.ndarray, marks: np.ndarray, options: WindowOptions, *, steptol: int, pid: str,
    recording: str, counts: dict[str, int] | None = None,
) -> WindowSet:
    """One recording cut into 10-s windows labelled walking / not-walking by their step counts."""
    t = as_ns(time)
    marks = np.asarray(marks, dtype=np.float64)
    if np.any(marks[~np.isnan(marks)] < 0):
        raise InputError(f"recording {recording!r}: the step column holds negative values; it must mark steps (1) per sample")
    cut = cut_windows(t, xyz, options, recording)
    if cut is None:
        return empty_windows(options)
    view, starts, complete = cut
    steps, unl = step_counts(t, marks, starts, options.window_sec * NS)
    unlabelled = complete & (unl > 0.5)
    keep = complete & ~unlabelled
    if counts is not None:
        counts["candidates"] = counts.get("candidates", 0) + len(view)
        counts["kept"] = counts.get("kept", 0) + int(keep.sum())
        counts["incomplete"] = counts.get("incomplete", 0) + int((~complete).sum())
        counts["unlabelled"] = counts.get("unlabelled", 0) + int(unlabelled.sum())
        counts.setdefault("mixed", 0)
    k = int(keep.sum())
    names = np.asarray(WALK_LABELS, dtype=str)
    return WindowSet(
        X=np.ascontiguousarray(view[keep]),
        y=names[(steps[keep] >= steptol).astype(np.int64)] if k else np.empty(0, str),
        pid=np.full(k, str(pid)),
        recording=np.full(k, str(recording)),
        time=starts[keep].view("datetime64[ns]"),
        steps=steps[keep],
    )


def _files(path: Path, pattern: str) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.glob(pattern) if p.is_file())
    if not files:
        raise InputError(f"{path} holds no {pattern} files; give a folder of per-participant step tables or one table")
    return files


def _participant(f: Path) -> str:
    m = _PID.search(f.name)
    return m.group().upper() if m else f.name.split(".")[0]


def prepare_steps(
    path: str | Path,
    options: WindowOptions = WindowOptions(),
    *,
    steptol: int = DEFAULT_STEP_PARAMS["steptol"],
    steps_col: str = OXWALK_COLUMNS["steps_col"],
    time_col: str = OXWALK_COLUMNS["time_col"],
    xyz_cols: Sequence[str] = ("x", "y", "z"),
    time_unit: str | None = None,
    units: str = "g",
    pattern: str = "P*.csv*",
    progress: Callable[[str], None] | None = None,
) -> WindowSet:
    """Step-count data (see the module docstring) -> a window set for a walking detector.

    ``steptol``: least annotated steps for a walking window (stepcount's 4 by default).
    ``options.window_sec`` must be 10: the walking detector and ``steptol`` are defined on
    stepcount's 10-s windows.
    """
    from .datasets import read_table, time_ns, to_g

    if options.window_sec != 10:
        raise InputError(f"step-count data is cut into 10-s windows (stepcount's walking detector); got --window-sec {options.window_sec}")
    if isinstance(steptol, bool) or int(steptol) != steptol or steptol < 1:
        raise InputError(f"steptol must be a whole number of steps >= 1, got {steptol!r}")
    path = Path(path)
    counts: dict[str, int] = {}
    parts = []
    seen: dict[str, Path] = {}
    for f in _files(path, pattern):
        if progress is not None:
            progress(f.name)
        pid = _participant(f)
        if pid in seen:
            raise InputError(f"{seen[pid].name} and {f.name} both name participant {pid}; give one file per participant")
        seen[pid] = f
        df = read_table(f, [time_col, *xyz_cols, steps_col])
        t = time_ns(df[time_col], time_unit=time_unit, name=str(f))
        xyz = to_g(df[list(xyz_cols)].to_numpy(dtype=np.float32), units)
        try:
            marks = df[steps_col].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise InputError(f"{f}: the step column {steps_col!r} is not numeric; it must mark steps (1) per sample") from None
        del df
        order = np.argsort(t, kind="stable")
        if np.any(order != np.arange(len(order))):
            t, xyz, marks = t[order], xyz[order], marks[order]
        parts.append(step_windows_from_recording(t, xyz, marks, options, steptol=int(steptol), pid=pid,
                                                 recording=pid, counts=counts))
    meta: dict[str, Any] = {
        "source": str(path), "layout": "steps", "labels": list(WALK_LABELS),
        "steps": {"steptol": int(steptol), "steps_col": steps_col},
    }
    return collect_windows(parts, options, counts, meta)
