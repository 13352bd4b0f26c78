"""Cohort tables from a batch output folder: one row per participant-day, one per participant.

``harnet predict ... --outdir DIR`` leaves ``DIR/<name>/summary.csv`` and ``info.json`` per
recording (and ``DIR/failures.csv``). :func:`collate` reads them into a :class:`Cohort`:

``days``
    One row per participant and local calendar day: ``Participant`` (the recording's folder
    name: its file name without the device suffix when unique), ``File`` (the input's file
    name), then the daily columns of :func:`harnet.measures.activity.daily_columns` (``Date``,
    ``DayLength(hours)`` ... ``<label>Adjusted(hours)``).
``participants``
    One row per recording: identity and status (:data:`PARTICIPANT_ID_COLUMNS`; ``Status`` is
    ``ok``, or ``failed`` for an input listed in ``failures.csv`` with its ``Reason``), reader
    and preprocessing QC (:data:`PARTICIPANT_QC_COLUMNS`), the recording summary
    (:data:`PARTICIPANT_SUMMARY_COLUMNS`), then per label ``<label>(hours/day)``,
    ``<label>Adjusted(hours/day)``, ``<label>(%)``, ``<label>Adjusted(%)`` and the
    ``Weekday/...`` and ``Weekend/...`` figures (see :func:`participant_columns`).

All recordings must come from the same model weights (their labels define the columns);
``allow_mixed_models=True`` lifts that for models with the same labels.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import InputError

log = logging.getLogger("harnet")

#: First columns of :attr:`Cohort.days` (the daily summary columns follow).
DAY_ID_COLUMNS: tuple[str, ...] = ("Participant", "File")

#: Identity and status of a recording.
PARTICIPANT_ID_COLUMNS: tuple[str, ...] = (
    "Participant",
    "File",
    "Path",
    "Status",
    "Reason",
    "Model",
    "ModelSHA256",
    "Backend",
    "HarnetVersion",
)

#: (column, key path in info.json) for the reader and preprocessing QC.
_QC: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Device", ("reader", "Device")),
    ("DeviceID", ("reader", "DeviceID")),
    ("StartTime", ("reader", "StartTime")),
    ("EndTime", ("reader", "EndTime")),
    ("SampleRate", ("reader", "SampleRate")),
    ("SampleRateEffective", ("reader", "SampleRateEffective")),
    ("ReadOK", ("reader", "ReadOK")),
    ("ReadErrors", ("reader", "ReadErrors")),
    ("NumGaps", ("reader", "NumGaps")),
    ("NumWarnings", ("reader", "Warnings")),
    ("CalibOK", ("CalibOK",)),
    ("CalibErrorBefore(mg)", ("CalibErrorBefore(mg)",)),
    ("CalibErrorAfter(mg)", ("CalibErrorAfter(mg)",)),
    ("NumNonwearEpisodes", ("NumNonwearEpisodes",)),
    ("HasDataWindows", ("HasDataWindows",)),
    ("ValidWindows", ("ValidWindows",)),
)
PARTICIPANT_QC_COLUMNS: tuple[str, ...] = tuple(c for c, _ in _QC)

#: The recording summary's scalar figures (label-independent part).
PARTICIPANT_SUMMARY_COLUMNS: tuple[str, ...] = (
    "WearTime(days)",
    "NonwearTime(days)",
    "RecordedTime(days)",
    "NumDays",
    "NumValidDays",
    "Covers24hOK",
    "GoodWear",
    "ENMO(mg)",
    "ENMOAdjusted(mg)",
    "NotImputable(hours)",
    "NumDSTCrossings",
    "Timezone",
    "MinWearPerDay(hours)",
)

_INT_COLUMNS = ("NumDays", "NumValidDays", "Covers24hOK", "GoodWear", "ReadOK", "ReadErrors", "NumGaps",
                "NumWarnings", "CalibOK", "NumNonwearEpisodes", "HasDataWindows", "ValidWindows",
                "NumDSTCrossings", "Weekday/NumDays", "Weekend/NumDays")
_STR_COLUMNS = ("Participant", "File", "Path", "Status", "Reason", "Model", "ModelSHA256", "Backend",
                "HarnetVersion", "Device", "DeviceID", "StartTime", "EndTime", "Timezone")


def participant_columns(labels: Sequence[str]) -> list[str]:
    """All columns of :attr:`Cohort.participants` for a model with these labels, in order."""
    cols = [*PARTICIPANT_ID_COLUMNS, *PARTICIPANT_QC_COLUMNS, *PARTICIPANT_SUMMARY_COLUMNS]
    for lab in labels:
        cols += [f"{lab}(hours/day)", f"{lab}Adjusted(hours/day)", f"{lab}(%)", f"{lab}Adjusted(%)"]
    for grp in ("Weekday", "Weekend"):
        cols += [f"{grp}/NumDays", f"{grp}/ENMO(mg)", f"{grp}/ENMOAdjusted(mg)"]
        for lab in labels:
            cols += [f"{grp}/{lab}(hours/day)", f"{grp}/{lab}Adjusted(hours/day)"]
    return cols


def day_columns(labels: Sequence[str]) -> list[str]:
    """All columns of :attr:`Cohort.days` for a model with these labels, in order."""
    from .measures.activity import daily_columns

    return [*DAY_ID_COLUMNS, *daily_columns(labels)]


@dataclass
class Cohort:
    """Collated batch outputs: ``days`` (participant-day rows), ``participants`` (one per recording)."""

    days: Any  # pandas DataFrame
    participants: Any  # pandas DataFrame
    labels: tuple[str, ...]

    @property
    def failed(self) -> Any:
        """The participants rows of inputs that failed."""
        return self.participants[self.participants["Status"] != "ok"]


def _get(d: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _read_info(p: Path) -> dict[str, Any]:
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: cannot read ({e}); run the batch again to redo this recording") from None
    if not isinstance(info, dict) or "model" not in info:
        raise InputError(f"{p}: not a harnet info.json; remove it or run the batch again")
    return info


def collate(outdir: str | os.PathLike, *, allow_mixed_models: bool = False) -> Cohort:
    """Read a batch output folder into a :class:`Cohort` (see the module docstring)."""
    import pandas as pd

    from .outputs import FAILURES_FILE, NEUTRAL_OPTIONS

    d = Path(outdir)
    if not d.is_dir():
        raise InputError(f"{d}: no such folder; give the --outdir of a `harnet predict` batch")
    folders = sorted(p.parent for p in d.glob("*/info.json") if not p.parent.name.startswith("."))
    fail_path = d / FAILURES_FILE
    failures = pd.read_csv(fail_path, dtype=str, keep_default_na=False) if fail_path.is_file() else None
    if not folders and (failures is None or failures.empty):
        raise InputError(f"{d}: holds no recording outputs (*/info.json); run `harnet predict ... --outdir {d}` first")

    infos: list[tuple[Path, dict[str, Any]]] = []
    for f in folders:
        if not (f / "summary.csv").is_file():
            raise InputError(f"{f}: info.json without summary.csv (an interrupted run?); run the batch again to finish it")
        infos.append((f, _read_info(f / "info.json")))

    labels: tuple[str, ...] | None = None
    sha: str | None = None
    for f, info in infos:
        labs = tuple(info["model"].get("labels") or ())
        s = info["model"].get("weights_sha256")
        if labels is None:
            labels, sha = labs, s
            continue
        if labs != labels:
            raise InputError(
                f"{f}: model labels {list(labs)} differ from {list(labels)} of other recordings; collate each model's outputs separately"
            )
        if s != sha and not allow_mixed_models:
            raise InputError(
                f"{f}: made with other model weights (sha256 {str(s)[:12]}...) than the others ({str(sha)[:12]}...); "
                "redo it with one model, or pass --allow-mixed-models"
            )
    opts0 = None
    for f, info in infos:
        o = {k: v for k, v in (info.get("options") or {}).items() if k not in NEUTRAL_OPTIONS}
        if opts0 is None:
            opts0 = o
        elif o != opts0:
            diff = sorted(k for k in set(o) | set(opts0) if o.get(k) != opts0.get(k))
            log.warning("%s: made with other options (%s) than %s", f, ", ".join(diff), infos[0][0])
    if labels is None:  # only failures
        labels = ()

    seen_inputs: dict[str, str] = {}
    day_tables = []
    rows: list[dict[str, Any]] = []
    dcols = day_columns(labels)
    for f, info in infos:
        inp = info.get("input") or {}
        name = f.name
        path = str(inp.get("path", ""))
        if path in seen_inputs:
            log.warning("%s and %s hold outputs of the same input %s; both are collated", seen_inputs[path], name, path)
        seen_inputs[path] = name
        daily = pd.read_csv(f / "summary.csv", dtype={"Date": str})
        missing = [c for c in dcols[len(DAY_ID_COLUMNS):] if c not in daily.columns]
        if missing:
            raise InputError(f"{f / 'summary.csv'}: missing columns {missing}; run the batch again with --force")
        daily.insert(0, "File", str(inp.get("name", "")))
        daily.insert(0, "Participant", name)
        day_tables.append(daily[dcols])
        row: dict[str, Any] = {
            "Participant": name,
            "File": inp.get("name"),
            "Path": path,
            "Status": "ok",
            "Reason": "",
            "Model": info["model"].get("name"),
            "ModelSHA256": info["model"].get("weights_sha256"),
            "Backend": info["model"].get("backend"),
            "HarnetVersion": info.get("harnet_version"),
        }
        for col, keys in _QC:
            v = _get(info, keys)
            row[col] = len(v) if col == "NumWarnings" and isinstance(v, list) else v
        for col in PARTICIPANT_SUMMARY_COLUMNS:
            row[col] = len(info.get("DSTCrossings") or []) if col == "NumDSTCrossings" else info.get(col)
        for col in participant_columns(labels)[len(PARTICIPANT_ID_COLUMNS) + len(_QC) + len(PARTICIPANT_SUMMARY_COLUMNS):]:
            row[col] = info.get(col)
        rows.append(row)

    if failures is not None:
        done_inputs = set(seen_inputs)
        for r in failures.itertuples(index=False):
            if r.input in done_inputs:  # failed once, processed since
                continue
            rows.append({"Participant": r.name, "File": Path(r.input).name, "Path": r.input, "Status": "failed",
                         "Reason": r.reason})

    days = pd.concat(day_tables, ignore_index=True) if day_tables else pd.DataFrame({c: [] for c in dcols})
    days = _types(days, dcols)
    participants = _types(pd.DataFrame(rows, columns=participant_columns(labels), dtype=object), participant_columns(labels))
    return Cohort(days=days, participants=participants, labels=labels)


def _types(df: Any, cols: list[str]) -> Any:
    """Stable column types, whatever the rows hold (a locked schema for parquet and CSV)."""
    import pandas as pd

    out = {}
    for c in cols:
        s = df[c]
        if c in _STR_COLUMNS or c == "Date":
            out[c] = s.map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)).astype("string")
        elif c == "DayValid":
            out[c] = s.astype("boolean")
        elif c in _INT_COLUMNS or c == "ValidWindows":
            out[c] = pd.to_numeric(s, errors="coerce").astype("Int64")
        else:
            out[c] = pd.to_numeric(s, errors="coerce").astype("float64")
    return pd.DataFrame(out, columns=cols)


def cohort_paths(out: str | os.PathLike, participants_out: str | os.PathLike | None = None) -> dict[str, Path]:
    """``--out cohort.csv`` -> the days table there, participants in ``cohort-participants.csv``."""
    o = Path(out)
    name = o.name
    for suf in (".csv.gz", ".csv", ".parquet"):
        if name.lower().endswith(suf):
            stem, ext = name[: -len(suf)], name[-len(suf):]
            break
    else:
        raise InputError(f"{o}: give a .csv, .csv.gz or .parquet file name for the cohort table")
    p = Path(participants_out) if participants_out is not None else o.with_name(f"{stem}-participants{ext}")
    return {"days": o, "participants": p}


def write_cohort(cohort: Cohort, out: str | os.PathLike, participants_out: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write both tables (CSV or parquet by suffix), each atomically. Returns the paths."""
    from ._fileio import atomic_path

    paths = cohort_paths(out, participants_out)
    for key, df in (("days", cohort.days), ("participants", cohort.participants)):
        p = paths[key]
        with atomic_path(p) as tmp:
            if p.name.lower().endswith(".parquet"):
                df.to_parquet(tmp, index=False)
            else:
                df.to_csv(tmp, index=False, compression="gzip" if p.name.lower().endswith(".gz") else None)
    return paths


__all__ = [
    "Cohort",
    "DAY_ID_COLUMNS",
    "PARTICIPANT_ID_COLUMNS",
    "PARTICIPANT_QC_COLUMNS",
    "PARTICIPANT_SUMMARY_COLUMNS",
    "cohort_paths",
    "collate",
    "day_columns",
    "participant_columns",
    "write_cohort",
]
