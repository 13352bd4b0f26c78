"""The output-folder contract: where predict writes, what the files are called, when a recording
counts as done, and how everything is written (atomically: nothing half-written looks done).

Used by :mod:`harnet.pipeline` (one recording), :mod:`harnet.batch` (a folder per recording,
resume) and :mod:`harnet.collate` (reading a batch's folder back).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ._fileio import TMP_MARK, atomic_path, check_writable, faults_named
from .errors import InputError

#: Per-recording output files that together mean "done" (names inside ``DIR/<name>/``).
DONE_FILES = ("summary.csv", "timeseries.parquet", "info.json")
#: Volatile per-run details beside info.json: timings, host, process, threads.
RUN_FILE = "run.json"
FAILURES_FILE = "failures.csv"
FAILURE_COLUMNS = ("input", "name", "error", "reason")
LOCK_FILE = ".harnet-batch.lock"
#: Options that change speed, not results (and the model's name: its checksum is compared).
NEUTRAL_OPTIONS = ("model", "backend", "threads", "batch_size", "device")


#: The study tables (docs/outputs.md) inside ``DIR/<name>/``; removed with the rest when redone.
STUDY_FILES = ("minutes.parquet", "minutes.csv", "hours.parquet", "hours.csv", "sleep.csv", "bouts.csv",
               "steps.parquet", "steptimes.parquet")


def output_paths(
    out: str | Path | None = None, outdir: str | Path | None = None, name: str | None = None, table_format: str = "parquet"
) -> dict[str, Path]:
    """Where predict writes: ``--out PATH.csv`` puts the rest beside it; ``--outdir`` a folder.

    ``table_format`` (``parquet`` or ``csv``) is the format of the minute and hour tables."""
    if table_format not in ("parquet", "csv"):
        raise InputError(f"table format {table_format!r}: use parquet or csv")
    if out is not None:
        o = Path(out)
        stem = o.name[: -len(o.suffix)] if o.suffix else o.name
        return {
            "daily": o,
            "windows": o.with_name(f"{stem}-timeseries.parquet"),
            "info": o.with_name(f"{stem}-info.json"),
            "minutes": o.with_name(f"{stem}-minutes.{table_format}"),
            "hours": o.with_name(f"{stem}-hours.{table_format}"),
            "sleep": o.with_name(f"{stem}-sleep.csv"),
            "bouts": o.with_name(f"{stem}-bouts.csv"),
            "steps": o.with_name(f"{stem}-steps.parquet"),
            "step_times": o.with_name(f"{stem}-steptimes.parquet"),
        }
    if outdir is None:
        raise InputError("give --out PATH.csv or --outdir DIR")
    d = Path(outdir) / (name or "recording")
    return {"daily": d / "summary.csv", "windows": d / "timeseries.parquet", "info": d / "info.json",
            "minutes": d / f"minutes.{table_format}", "hours": d / f"hours.{table_format}",
            "sleep": d / "sleep.csv", "bouts": d / "bouts.csv", "steps": d / "steps.parquet",
            "step_times": d / "steptimes.parquet"}


def _is_csv(p: Path) -> bool:
    return p.suffix == ".csv" or p.name.endswith(".csv.gz")


def round_for_csv(df: Any) -> Any:
    """A copy with numbers rounded to what each measure resolves: ``(hours)`` 4 decimals
    (0.36 s), ``(mg)``, ``(min)`` and ``(%)`` 2, unit-less measures (IG, R², RA) 4. info.json
    and parquet keep full precision."""
    import pandas as pd

    out = df.copy()
    for c in out.columns:
        if not pd.api.types.is_float_dtype(out[c].dtype):
            continue
        if c.endswith("(hours)") or c.endswith("(hours/day)"):
            out[c] = out[c].round(4)
        elif c.endswith(("(mg)", "(min)", "(%)")):
            out[c] = out[c].round(2)
        else:
            out[c] = out[c].round(4)
    return out


def _write_table(df: Any, tmp: Path, final: Path, time_cols: tuple[str, ...] = ("time",), rounded: bool = False) -> None:
    """Parquet keeps times as timestamps (tz-aware when a time zone was given); CSV gets ISO text."""
    if _is_csv(final):
        w = round_for_csv(df) if rounded else df.copy()
        for c in time_cols:
            if c in w.columns and len(w) and hasattr(w[c], "dt"):
                w[c] = _iso_times(w[c])
        w.to_csv(tmp, index=False, compression="gzip" if final.name.endswith(".gz") else None)
    else:
        df.to_parquet(tmp, index=False)


def json_clean(o: Any) -> Any:
    """Make ``o`` strict-JSON-safe: NaN/inf become null, numpy scalars and arrays plain Python."""
    if isinstance(o, dict):
        return {str(k): json_clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return json_clean(o.tolist())
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    return o


def _iso_times(t: Any) -> Any:
    """``Timestamp.isoformat()`` of every time in a Series, vectorised (a Python call per window
    took minutes for a recording spanning months). Falls back to isoformat for sub-second times
    or offsets that are not whole minutes."""
    import pandas as pd

    idx = pd.DatetimeIndex(t).as_unit("ns")
    wall = (idx.tz_localize(None) if idx.tz is not None else idx).asi8
    off = (wall - idx.asi8) // 1_000_000_000 if idx.tz is not None else None
    if (wall % 1_000_000_000).any() or (off is not None and (off % 60).any()):
        return t.map(lambda x: x.isoformat())
    text = np.datetime_as_string(wall.view("datetime64[ns]").astype("datetime64[s]"), unit="s").astype(object)
    if off is not None:
        u, inv = np.unique(off, return_inverse=True)
        sfx = np.array([f"{'+' if o >= 0 else '-'}{abs(int(o)) // 3600:02d}:{abs(int(o)) % 3600 // 60:02d}" for o in u], dtype=object)
        text = text + sfx[inv.reshape(-1)]
    return pd.Series(text, index=t.index, name=t.name)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_outputs(
    result: Any,
    paths: Mapping[str, Path],
    *,
    plot: str | Path | None = None,
    windows_path: str | Path | None = None,
) -> dict[str, Path]:
    """Write daily CSV, per-window table (parquet or CSV by extension), info.json (and a plot).

    Every file is first written to a temporary name; the final names appear only when all
    files were written, so an interrupted or failed run leaves nothing that looks done.
    """
    paths = dict(paths)
    if windows_path is not None:
        paths["windows"] = Path(windows_path)
    if plot is not None:
        paths["plot"] = Path(plot)
    tables = {k: getattr(result, k, None) for k in ("minutes", "hours", "sleep", "bouts", "steps", "step_times")}
    for k, t in tables.items():
        if t is None:  # no sleep class: no sleep table (said once in info.json "Notes"); steps only with --steps
            paths.pop(k, None)
    fix = "then run again (or give another --out/--outdir)"
    what = {"daily": "the daily summary", "windows": "the per-window series", "info": "info.json", "plot": "the plot",
            "minutes": "the minute table", "hours": "the hour table", "sleep": "the sleep table", "bouts": "the bouts table",
            "steps": "the steps table", "step_times": "the step times"}
    with contextlib.ExitStack() as stack:
        tmps = {k: stack.enter_context(atomic_path(p, what=what.get(k, ""), fix=fix)) for k, p in paths.items()}
        # each step names its own file when the machine refuses the write (disk full, read-only...)
        with faults_named(paths["daily"], what=what["daily"], fix=fix):
            round_for_csv(result.daily).to_csv(tmps["daily"], index=False)
        with faults_named(paths["windows"], what=what["windows"], fix=fix):
            _write_table(result.windows, tmps["windows"], paths["windows"])
        for k, t in tables.items():
            if k in paths and t is not None:
                with faults_named(paths[k], what=what[k], fix=fix):
                    _write_table(t, tmps[k], paths[k], ("time", "start", "end"), rounded=True)
        with faults_named(paths["info"], what=what["info"], fix=fix):
            tmps["info"].write_text(json.dumps(json_clean(result.info), indent=1, default=_json_default, allow_nan=False) + "\n")
        if plot is not None:
            from .plot import plot_days

            with faults_named(paths["plot"], what=what["plot"], fix=fix):
                plot_days(result.windows, result.labels, tmps["plot"], title=plot_title(result), sleep_periods=_sleep_periods(result))
    return paths


def plot_title(result: Any) -> str:
    """File name, device ID and dates, for the plot."""
    info = result.info
    name = (info.get("input") or {}).get("name") or "recording"
    dev = (info.get("reader") or {}).get("DeviceID")
    dates = list(result.daily["Date"]) if len(result.daily) else []
    span = f"{dates[0]} to {dates[-1]}" if dates else ""
    return " | ".join(x for x in (str(name), f"device {dev}" if dev not in (None, "") else "", span) if x)


def _sleep_periods(result: Any) -> list[tuple[str, str]]:
    s = getattr(result, "sleep", None)
    if s is None or not len(s):
        return []
    ok = s["Onset"].notna() & s["Wake"].notna()
    return list(zip(s.loc[ok, "Onset"], s.loc[ok, "Wake"]))


def check_output_paths(
    paths: Mapping[str, Path], *, plot: str | Path | None = None, windows_path: str | Path | None = None
) -> None:
    """Refuse, before any work, output paths that cannot be written (a missing folder that cannot
    be made, a read-only file system, a file where a folder should be, a name too long): one
    :class:`~harnet.errors.WriteError` naming the path, the cause and the fix. Writes nothing."""
    todo = dict(paths)
    if windows_path is not None:
        todo["windows"] = Path(windows_path)
    if plot is not None:
        todo["plot"] = Path(plot)
    for p in todo.values():
        if Path(p).is_dir():
            raise InputError(f"{p} is a folder; give a file path (or --outdir DIR for a folder of outputs)")
        check_writable(p, fix="give another --out")


# ---- done checks, stale files --------------------------------------------------------------------


def _norm(o: Any) -> Any:
    return json.loads(json.dumps(json_clean(o), default=str))


def result_identity(options: dict[str, Any], model_config: dict[str, Any], backend: str) -> dict[str, Any]:
    """What info.json must record for an existing output to count as done."""
    return _norm(
        {
            "weights_sha256": model_config.get("weights_sha256"),
            "checksum": (model_config.get("provenance") or {}).get("checksum"),
            "backend": backend,
            "options": {k: v for k, v in options.items() if k not in NEUTRAL_OPTIONS},
        }
    )


def is_done(folder: str | os.PathLike, identity: dict[str, Any], input_path: str | os.PathLike) -> bool:
    """Whether ``folder`` holds complete outputs of ``input_path`` made with ``identity``."""
    folder = Path(folder)
    if not all((folder / n).is_file() for n in DONE_FILES):
        return False
    try:
        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
        model = info["model"]
        got = _norm(
            {
                "weights_sha256": model.get("weights_sha256"),
                "checksum": model.get("checksum"),
                "backend": model.get("backend"),
                "options": {k: v for k, v in info["options"].items() if k not in NEUTRAL_OPTIONS},
            }
        )
        inp = info["input"]
        same_input = inp.get("name") == Path(input_path).name and inp.get("size") == os.path.getsize(input_path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return same_input and got == identity


def clean_stale_temps(outdir: str | os.PathLike) -> list[Path]:
    """Remove temporary files a killed run left in ``outdir`` and its recording folders."""
    d = Path(outdir)
    removed: list[Path] = []
    if not d.is_dir():
        return removed
    for p in [*d.glob(f"*{TMP_MARK}*"), *d.glob(f"*/*{TMP_MARK}*")]:
        if p.is_file() or p.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def remove_outputs(folder: Path) -> None:
    """Remove a recording folder's outputs (info.json first: without it the folder never looks done)."""
    # info.json first: without it the folder never looks done, whatever else is left
    for n in ("info.json", *DONE_FILES, *STUDY_FILES, RUN_FILE):
        with contextlib.suppress(FileNotFoundError):
            (folder / n).unlink()
