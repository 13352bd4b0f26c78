"""The per-window table checked and turned into arrays, with its days and time selection: the
input of every measure (and of :mod:`harnet.plot`). See :mod:`harnet.measures.activity` for the
columns the table must have."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

#: The columns the per-window table must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("time", "acc", "wear", "nonwear", "label")

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS


# --------------------------------------------------------------------------------------------
# input checking and normalisation (shared with harnet.plot)


@dataclass
class WindowTable:
    utc: np.ndarray  # int64 ns since epoch (UTC when tz-aware, wall clock when naive), sorted
    wall_day: np.ndarray  # int64 local calendar day (days since 1970-01-01) of each start
    acc: np.ndarray  # float64 mg
    wear: np.ndarray  # bool
    nonwear: np.ndarray  # bool
    code: np.ndarray  # int64 label index, -1 when not classified
    tz: tzinfo | None
    window_ns: int


def input_error(msg: str) -> InputError:
    return InputError(msg)


def check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise input_error(f"labels must be a list of class names, got the string {labels!r}; pass e.g. [{labels!r}]")
    labs = [str(x) for x in labels]
    if not labs or len(set(labs)) != len(labs) or any(not x for x in labs):
        raise input_error(f"labels must be a non-empty list of distinct class names, got {labs!r}; pass the model's labels")
    return labs


def _bool_column(df: pd.DataFrame, col: str) -> np.ndarray:
    s = df[col]
    if s.isna().any():
        raise input_error(f"window table: column {col!r} has missing values; it must be True/False for every window")
    try:
        return s.to_numpy(dtype=bool)
    except (TypeError, ValueError) as e:
        raise input_error(f"window table: column {col!r} is not boolean ({s.dtype}); give True/False per window") from e


def prepare_windows(windows: pd.DataFrame, labels: list[str], window_sec: float) -> WindowTable:
    """Check the window table and return sorted plain arrays."""
    if not isinstance(windows, pd.DataFrame):
        raise input_error(f"expected the per-window table as a pandas DataFrame, got {type(windows).__name__}")
    if "time" not in windows.columns and windows.index.name == "time":
        windows = windows.reset_index()
    missing = [c for c in REQUIRED_COLUMNS if c not in windows.columns]
    if missing:
        raise input_error(f"window table lacks column(s) {missing}; it needs {list(REQUIRED_COLUMNS)} (the pipeline's per-window output)")
    if not (isinstance(window_sec, (int, float, np.integer, np.floating)) and math.isfinite(window_sec) and window_sec > 0):
        raise input_error(f"window_sec must be a positive number of seconds, got {window_sec!r}")
    window_ns = int(round(float(window_sec) * _NS))
    t = windows["time"]
    if not (pd.api.types.is_datetime64_any_dtype(t)):
        raise input_error(f"window table: column 'time' must be datetime64 (naive or tz-aware), got {t.dtype}; convert it with pd.to_datetime")
    idx = pd.DatetimeIndex(t).as_unit("ns")
    if idx.hasnans:
        raise input_error("window table: column 'time' has missing timestamps (NaT); every window needs its start time")
    tz = idx.tz
    utc = idx.asi8.copy()
    wall = idx.tz_localize(None).asi8 if tz is not None else utc
    wall_day = np.floor_divide(wall, _DAY_NS)

    wear = _bool_column(windows, "wear")
    nonwear = _bool_column(windows, "nonwear")
    try:
        acc = windows["acc"].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as e:
        raise input_error(f"window table: column 'acc' must be numeric (mean ENMO in mg), got {windows['acc'].dtype}") from e

    raw_codes, uniques = pd.factorize(windows["label"], use_na_sentinel=True)
    uniq = [str(u) for u in np.asarray(uniques, dtype=object)]
    unknown = sorted(set(uniq) - set(labels))
    if unknown:
        raise input_error(f"window table: label(s) {unknown} are not among the model's labels {labels}; pass the labels the table was made with")
    lut = np.array([labels.index(u) for u in uniq] + [-1], dtype=np.int64)  # -1 sentinel at the end
    code = lut[np.where(raw_codes < 0, len(uniq), raw_codes)]

    bad = wear & nonwear
    if bad.any():
        raise input_error(f"window table: window at {idx[np.argmax(bad)]} is flagged both worn and non-wear; a window is one or the other")
    bad = wear & (code < 0)
    if bad.any():
        raise input_error(f"window table: worn window at {idx[np.argmax(bad)]} has no label; every worn window needs its class")
    bad = ~wear & (code >= 0)
    if bad.any():
        raise input_error(f"window table: window at {idx[np.argmax(bad)]} has a label but is not flagged worn; set wear=True or clear the label")

    order = np.argsort(utc, kind="stable")
    utc, wall_day, acc, wear, nonwear, code = (a[order] for a in (utc, wall_day, acc, wear, nonwear, code))
    if len(utc) > 1:
        step = np.diff(utc)
        over = step < window_ns
        if over.any():
            i = int(np.argmax(over))
            when = pd.Timestamp(utc[i + 1], tz="UTC").tz_convert(tz) if tz is not None else pd.Timestamp(utc[i + 1])
            raise input_error(
                f"window table: windows overlap or repeat at {when} (starts {step[i] / _NS:g} s apart, window {window_sec} s); "
                "remove duplicated rows or pass the right window_sec"
            )
    return WindowTable(utc, wall_day, acc, wear, nonwear, code, tz, window_ns)


def to_utc_ns(value: Any, tz: tzinfo | None, what: str) -> int:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as e:
        raise input_error(f"{what}={value!r} is not a date or time; give e.g. '2024-03-04' or '2024-03-04 07:00'") from e
    if ts is pd.NaT:
        raise input_error(f"{what} is missing (NaT); give a date or time or leave it out")
    if tz is None:
        if ts.tzinfo is not None:
            raise input_error(f"{what}={value!r} has a time zone but the window times are naive device time; give {what} without a time zone")
        return int(ts.as_unit("ns").value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return int(ts.as_unit("ns").value)


def local_midnight_utc(day: int, tz: tzinfo | None) -> int:
    """UTC ns of the start of local calendar day ``day`` (days since 1970-01-01)."""
    ns = int(day) * _DAY_NS
    if tz is None:
        return ns
    ts = pd.Timestamp(ns, unit="ns").tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return int(ts.value)


def select_windows(w: WindowTable, start: Any, end: Any, exclude_first_day: bool, exclude_last_day: bool) -> WindowTable:
    keep = np.ones(len(w.utc), dtype=bool)
    if start is not None:
        keep &= w.utc >= to_utc_ns(start, w.tz, "start")
    if end is not None:
        keep &= w.utc < to_utc_ns(end, w.tz, "end")
    if keep.any() and exclude_first_day:
        keep &= w.wall_day != w.wall_day[keep].min()
    if keep.any() and exclude_last_day:
        keep &= w.wall_day != w.wall_day[keep].max()
    if not keep.any():
        raise input_error("no windows left after applying start/end and the first/last-day exclusions; widen the selection")
    if keep.all():
        return w
    return WindowTable(w.utc[keep], w.wall_day[keep], w.acc[keep], w.wear[keep], w.nonwear[keep], w.code[keep], w.tz, w.window_ns)
