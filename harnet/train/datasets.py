"""Labelled data sets in their published layouts -> :class:`~harnet.train.prepare.WindowSet`: a
generic table (:func:`prepare_table`), the HAPT parquet (:func:`prepare_hapt`) and the Capture-24
folder (:func:`prepare_capture24`). Windowing and labelling: :mod:`harnet.train.prepare`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..timegrid import NS
from .prepare import WindowOptions, WindowSet, collect_windows, label_codes, windows_from_recording

G = 9.80665  # m/s^2 per g

#: HAPT activity codes (labels 7-12 are postural transitions, -1 unlabelled).
HAPT_LABELS: dict[int, str] = {
    1: "walking",
    2: "walking_upstairs",
    3: "walking_downstairs",
    4: "sitting",
    5: "standing",
    6: "lying",
}


# ------------------------------------------------------------------------------------------
# layouts


def to_g(xyz: np.ndarray, units: str) -> np.ndarray:
    """x, y, z in ``units`` (g, mg, m/s2) as g."""
    if units == "g":
        return xyz
    if units == "mg":
        return xyz / np.float32(1000.0)
    if units in ("m/s2", "m/s^2", "ms2"):
        return xyz / np.float32(G)
    raise ValueError(f"units must be g, mg or m/s2, got {units!r}")


def time_ns(col: Any, *, time_unit: str | None, name: str) -> np.ndarray:
    """A time column (datetime, strings, or numbers in ``time_unit``) as int64 ns."""
    import pandas as pd

    s = pd.Series(col, copy=False)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_localize(None)
        return s.to_numpy(dtype="datetime64[ns]").view(np.int64)
    if pd.api.types.is_numeric_dtype(s.dtype):
        unit = {"s": NS, "ms": 1_000_000, "us": 1_000, "ns": 1}.get(time_unit or "s")
        if unit is None:
            raise ValueError(f"time_unit must be s, ms, us or ns, got {time_unit!r}")
        return np.round(s.to_numpy(dtype=np.float64) * unit).astype(np.int64)
    try:
        parsed = pd.to_datetime(s, format="mixed" if s.dtype == object else None)
    except (ValueError, TypeError) as e:
        raise InputError(f"{name}: cannot parse the time column ({e}); give ISO times or numbers with --time-unit") from None
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)


def read_table(path: Path, columns: Sequence[str]) -> Any:
    """Those ``columns`` of a CSV (.gz) or parquet file, as a DataFrame; a clear error otherwise."""
    import pandas as pd

    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            return pd.read_parquet(path, columns=list(columns))
        return pd.read_csv(path, usecols=list(columns), low_memory=False)
    except (KeyError, ValueError) as e:
        raise InputError(f"{path}: {e}; name the right columns (see `harnet prepare --help`)") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from None


def prepare_table(
    path: str | Path,
    options: WindowOptions = WindowOptions(),
    *,
    label_col: str = "label",
    pid_col: str | None = "participant",
    time_col: str | None = "time",
    xyz_cols: Sequence[str] = ("x", "y", "z"),
    recording_col: str | None = None,
    sample_rate: float | None = None,
    time_unit: str | None = None,
    units: str = "g",
    label_map: Mapping[Any, str | None] | None = None,
    class_names: Sequence[str] | None = None,
    pid: str | None = None,
) -> WindowSet:
    """A generic table (CSV or parquet): time or sample index, x, y, z, label, participant.

    ``time_col`` holds datetimes (or numbers in ``time_unit``); with ``time_col=None`` rows are
    samples ``0, 1, ...`` at ``sample_rate`` Hz (per participant and recording, in file
    order). ``units`` of x, y, z: ``g``, ``mg`` or ``m/s2``. ``label_map`` maps raw label values
    to class names (a value mapped to None, or not in the map, is treated as unlabelled);
    without it every label value is its own class. ``pid`` names the participant when the
    table has no participant column.
    """
    import pandas as pd

    path = Path(path)
    if time_col is None and not sample_rate:
        raise ValueError("without a time column, give the sample rate (sample_rate=...)")
    cols = [c for c in (time_col, *xyz_cols, label_col, pid_col, recording_col) if c]
    df = read_table(path, cols)
    if pid_col is None:
        df["_pid"] = pid if pid is not None else path.name.split(".")[0]
        pid_col = "_pid"
    raw_labels = df[label_col]
    if label_map is not None:
        lm = {str(k): v for k, v in label_map.items()}
        mapped = raw_labels.astype("string").map(lambda v: lm.get(v) if v is not pd.NA else None)
    else:
        mapped = raw_labels.where(raw_labels.notna()).astype("string")
    if class_names is None:
        if label_map is not None:
            class_names = list(dict.fromkeys(v for v in label_map.values() if v is not None))
        else:
            class_names = sorted(set(mapped.dropna().unique().tolist()))
    class_names = [str(c) for c in class_names]
    codes = label_codes(mapped.to_numpy(dtype=object), class_names)
    del mapped, raw_labels
    keys = [pid_col] + ([recording_col] if recording_col else [])
    counts: dict[str, int] = {}
    parts = []
    for key, idx in df.groupby(keys, sort=True, observed=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        sub = df.iloc[idx]
        if time_col is None:
            t = np.round(np.arange(len(sub), dtype=np.float64) * (NS / float(sample_rate))).astype(np.int64)
        else:
            t = time_ns(sub[time_col], time_unit=time_unit, name=str(path))
        xyz = to_g(sub[list(xyz_cols)].to_numpy(dtype=np.float32), units)
        c = codes[idx]
        order = np.argsort(t, kind="stable")
        if np.any(order != np.arange(len(order))):
            t, xyz, c = t[order], xyz[order], c[order]
        pid_v = str(key[0])
        rec_v = "/".join(str(k) for k in key)
        parts.append(windows_from_recording(t, xyz, c, class_names, options, pid=pid_v, recording=rec_v, counts=counts))
    return collect_windows(parts, options, counts, {"source": str(path), "layout": "table", "labels": class_names})


def prepare_hapt(path: str | Path, options: WindowOptions = WindowOptions()) -> WindowSet:
    """The HAPT parquet (UCI smartphone HAPT, 50 Hz, waist, labels per sample).

    Time is ``sequence / 50`` s per (user, recording); the six basic activities (codes 1-6)
    are the classes; postural transitions (7-12) and unlabelled samples (-1) are not.
    """
    ws = prepare_table(
        path,
        options,
        label_col="label",
        pid_col="user",
        recording_col="recording",
        time_col=None,
        sample_rate=50.0,
        xyz_cols=("acc_x", "acc_y", "acc_z"),
        units="g",
        label_map={str(k): v for k, v in HAPT_LABELS.items()},
        class_names=list(HAPT_LABELS.values()),
    )
    ws.meta.update(layout="hapt", source=str(path))
    return ws


def read_annotation_dictionary(path: str | Path, label_column: str) -> dict[str, str | None]:
    """Capture-24's annotation dictionary: ``annotation`` -> the chosen label column."""
    import pandas as pd

    path = Path(path)
    try:
        d = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the annotation dictionary {path}: {e}") from None
    if "annotation" not in d.columns or label_column not in d.columns:
        cols = [c for c in d.columns if c != "annotation"]
        raise InputError(
            f"{path} needs the columns 'annotation' and {label_column!r}; label columns there: {cols}"
        )
    out: dict[str, str | None] = {}
    for a, lab in zip(d["annotation"].astype(str), d[label_column]):
        out[a] = None if pd.isna(lab) else str(lab)
    return out


def prepare_capture24(
    folder: str | Path,
    dictionary: str | Path,
    label_column: str,
    options: WindowOptions = WindowOptions(),
    *,
    pattern: str = "P*.csv*",
    progress: Callable[[str], None] | None = None,
) -> WindowSet:
    """The Capture-24 layout: one ``P*.csv.gz`` per participant (time, x, y, z, annotation).

    Annotations are mapped to labels through ``dictionary`` (a CSV with ``annotation`` and
    ``label_column``); annotations missing from it, or mapped to nothing, are unlabelled.
    Participants are read one at a time (a day at 100 Hz is about 10 million rows).
    """
    folder = Path(folder)
    files = sorted(p for p in folder.glob(pattern) if re.fullmatch(r"P\d+\.csv(\.gz)?", p.name))
    if not files:
        raise InputError(f"{folder} holds no P*.csv.gz files; is it the Capture-24 folder?")
    amap = read_annotation_dictionary(dictionary, label_column)
    class_names = sorted(set(v for v in amap.values() if v is not None))
    counts: dict[str, int] = {}
    parts = []
    for f in files:
        if progress is not None:
            progress(f.name)
        parts.append(_capture24_file(f, amap, class_names, options, counts))
    return collect_windows(
        parts, options, counts,
        {"source": str(folder), "layout": "capture24", "labels": class_names,
         "dictionary": str(dictionary), "label_column": label_column},
    )


def _capture24_file(
    f: Path, amap: Mapping[str, str | None], class_names: Sequence[str], options: WindowOptions,
    counts: dict[str, int],
) -> WindowSet:
    import pandas as pd

    try:
        df = pd.read_csv(
            f, usecols=["time", "x", "y", "z", "annotation"],
            dtype={"x": np.float32, "y": np.float32, "z": np.float32, "annotation": "category"},
        )
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"cannot read {f} as a Capture-24 file (time,x,y,z,annotation): {e}") from None
    t = time_ns(df["time"], time_unit=None, name=str(f))
    ann = df["annotation"]
    lut = np.array(
        [class_names.index(amap[a]) if amap.get(a) is not None else -1 for a in ann.cat.categories.astype(str)]
        + [-1],
        dtype=np.int64,
    )
    codes = lut[np.asarray(ann.cat.codes, dtype=np.int64)]  # code -1 (NaN) picks the trailing -1
    xyz = df[["x", "y", "z"]].to_numpy(dtype=np.float32)
    del df, ann
    pid = f.name.split(".")[0]
    return windows_from_recording(t, xyz, codes, class_names, options, pid=pid, recording=pid, counts=counts)


def detect_layout(p: str | Path) -> str:
    """Which layout a labelled data set has: ``"steps"`` (a folder of ``P*.csv`` with OxWalk's
    ``timestamp``/``annotation`` columns: step counts, :mod:`harnet.train.steps_data`),
    ``"capture24"`` (a folder of ``P*.csv.gz`` with ``time``/``annotation``), ``"hapt"`` (the
    HAPT parquet's columns) or ``"table"`` (anything else)."""
    import pandas as pd

    p = Path(p)
    if p.is_dir():
        first = next(iter(sorted(p.glob("P*.csv*"))), None)
        if first is not None:
            try:
                cols = set(pd.read_csv(first, nrows=0).columns)
            except (OSError, ValueError):  # unreadable: the Capture-24 reader names the problem
                cols = set()
            return "steps" if {"timestamp", "annotation"} <= cols else "capture24"
        raise InputError(f"{p} is a folder without P*.csv.gz files; give --layout")
    if p.name.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        names = set(pq.read_schema(p).names)
        if {"user", "acc_x", "acc_y", "acc_z", "label"} <= names:
            return "hapt"
    return "table"
