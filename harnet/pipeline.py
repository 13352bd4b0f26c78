"""``predict_file``: device file -> per-window labels -> daily summaries, in bounded memory.

Stages: read (``harnet.io``), calibrate and detect non-wear (``harnet.preprocess``), resample
and cut clock-aligned windows a day at a time (``harnet.windows``), classify the valid windows
(``harnet.backends``), smooth with the model's HMM (``harnet.hmm``), summarise
(``harnet.summary``). The CLI's ``harnet predict`` is a thin layer over this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .errors import HarnetError, InputError

log = logging.getLogger("harnet")

#: Columns of the per-window time series before the per-class probability columns (public API).
WINDOW_COLUMNS = ("time", "acc", "wear", "nonwear", "label", "label_raw")

#: Longest span (first to last sample) predict accepts: every window of the span is made, so a
#: stray timestamp decades away would otherwise take hours and all memory (docs/reliability.md).
MAX_SPAN_DAYS = 400


@dataclass
class PredictOptions:
    """Every option of ``harnet predict`` that changes results (recorded in info.json)."""

    model: str = "harnet30-c24-walmsley"
    backend: str = "auto"
    device: str | None = None
    threads: int | None = None
    batch_size: int | None = None
    hmm: bool = True
    timezone: str | None = None
    start: str | None = None
    end: str | None = None
    exclude_first_day: bool = False
    exclude_last_day: bool = False
    min_wear_per_day: float = 0.0
    calibrate: bool | None = None  # None: follow the model's config
    detect_nonwear: bool | None = None
    nonwear_patience_min: float = 90.0
    nonwear_std_mg: float = 15.0
    lowpass_hz: float | None | str = "model"
    max_gap_s: float = 1.0
    reader: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PredictResult:
    windows: Any  # pandas DataFrame, one row per window
    daily: Any  # pandas DataFrame, one row per day
    info: dict[str, Any]
    labels: tuple[str, ...]
    window_sec: int


class _Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.times[stage] = self.times.get(stage, 0.0) + seconds


def _device_to_local(time_ns: np.ndarray, tz: str | None):
    """Device-clock naive times -> pandas times (tz-aware when ``tz`` is given).

    A device's clock does not follow daylight saving: it keeps the offset it had when it was
    set up. We take the zone's offset at the first sample as the clock's offset, convert to UTC
    and then to local time, so a spring-forward day has 23 hours and no window is lost or
    duplicated at either DST change.
    """
    import pandas as pd

    t = pd.DatetimeIndex(time_ns.astype("datetime64[ns]"))
    if not tz:
        return t
    try:
        first = pd.Timestamp(t[0]).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    except Exception as e:  # pytz/zoneinfo errors for unknown names
        raise InputError(f"unknown time zone {tz!r} ({e}); use an IANA name such as Europe/London") from None
    offset = first.utcoffset()
    return (t - offset).tz_localize("UTC").tz_convert(tz)


def _parse_bound(s: str | None, tz: str | None):
    import pandas as pd

    if s is None:
        return None
    try:
        ts = pd.Timestamp(s)
    except ValueError:
        raise InputError(f"cannot parse time {s!r}; use ISO format like 2024-03-01 or 2024-03-01T12:00") from None
    if tz and ts.tzinfo is None:
        ts = ts.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return ts


def predict_recording(
    rec: Any,
    options: PredictOptions | None = None,
    *,
    backend: Any = None,
    model_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    timer: _Timer | None = None,
) -> PredictResult:
    """Classify an in-memory :class:`harnet.io.Recording` (see :func:`predict_file`)."""
    import pandas as pd

    from . import preprocess
    from .backends import get_backend
    from .hmm import HMM
    from .loading import resolve_model_dir
    from .modeldir import HMM_FILE, read_config, sha256_file
    from .summary import summarize
    from .windows import iter_chunks

    opts = options or PredictOptions()
    timer = timer or _Timer()
    mdir = Path(model_dir) if model_dir is not None else resolve_model_dir(opts.model)
    cfg = read_config(mdir)
    if cfg.get("kind") == "backbone":
        raise HarnetError(
            f"{opts.model} is a self-supervised backbone without a trained head; use a classifier "
            "(see `harnet models`) or fine-tune it with `harnet train`"
        )
    labels = tuple(cfg["labels"])
    window_sec = int(cfg["window_sec"])
    span_s = float((rec.time[-1] - rec.time[0]) / np.timedelta64(1, "s")) if len(rec) else 0.0
    if span_s < window_sec:
        # processed, not refused: real short test files must still give (empty) summaries
        rec.warn(
            f"the recording lasts {span_s:.1f} s, shorter than one {window_sec}-s window: no window "
            "can be classified; check that the file holds the whole recording"
        )
    if span_s > MAX_SPAN_DAYS * 86400:
        raise InputError(
            f"the recording spans {span_s / 86400:.0f} days ({rec.info.get('StartTime')} to {rec.info.get('EndTime')}), "
            f"more than {MAX_SPAN_DAYS}: a clock or timestamp error is likely; trim or split the file before predicting"
        )
    prep = dict(cfg.get("preprocessing") or {})
    if backend is None:
        backend = get_backend(mdir, backend=opts.backend, threads=opts.threads, device=opts.device, batch_size=opts.batch_size)
    hmm = None
    if opts.hmm and (mdir / HMM_FILE).is_file():
        hmm = HMM.load(mdir / HMM_FILE)
        if hmm.num_classes != len(labels):
            raise HarnetError(f"{mdir / HMM_FILE} has {hmm.num_classes} classes, the model {len(labels)}; refit or remove it")

    info: dict[str, Any] = {}
    t0 = _time.perf_counter()
    calibrate = prep.get("calibrate_gravity", True) if opts.calibrate is None else opts.calibrate
    if calibrate:
        info.update(preprocess.calibrate_gravity(rec, stationary_std_g=opts.nonwear_std_mg / 1000.0))
    else:
        info["CalibOK"] = 0
        info["CalibSkipped"] = True
    detect = prep.get("detect_nonwear", True) if opts.detect_nonwear is None else opts.detect_nonwear
    nonwear = None
    if detect:
        nonwear = preprocess.detect_nonwear(
            rec, patience_min=opts.nonwear_patience_min, stationary_std_g=opts.nonwear_std_mg / 1000.0
        )
        info.update(nonwear.info)
    timer.add("preprocess", _time.perf_counter() - t0)

    lowpass = prep.get("lowpass_hz") if opts.lowpass_hz == "model" else opts.lowpass_hz
    starts, acc, valid, nw, has_data, probs = [], [], [], [], [], []
    n_classes = len(labels)
    t_win = t_inf = 0.0
    t1 = _time.perf_counter()
    chunks = iter_chunks(
        rec,
        window_sec=window_sec,
        lowpass_hz=lowpass,
        nonwear=nonwear,
        max_gap_s=opts.max_gap_s,
        method=prep.get("resample", "linear"),
        antialias=bool(prep.get("antialias", False)),
    )
    done = 0
    while True:
        try:
            ch = next(chunks)
        except StopIteration:
            break
        t2 = _time.perf_counter()
        t_win += t2 - t1
        p = np.full((len(ch.starts), n_classes), np.nan, dtype=np.float32)
        if ch.valid.any():  # non-wear and incomplete windows are never sent to the network
            p[ch.valid] = backend.predict_proba(ch.X[ch.valid])
        t1 = _time.perf_counter()
        t_inf += t1 - t2
        starts.append(ch.starts)
        acc.append(ch.enmo_mg)
        valid.append(ch.valid)
        nw.append(ch.nonwear)
        has_data.append(ch.has_data)
        probs.append(p)
        done += len(ch.starts)
        if progress is not None:
            progress(done, 0)
    timer.add("windows", t_win)
    timer.add("inference", t_inf)
    if not starts:
        raise InputError("the recording is shorter than one window; nothing to classify")
    starts_a = np.concatenate(starts)
    valid_a = np.concatenate(valid)
    if not valid_a.any():
        rec.warn("no window was classified: every window is non-wear, a gap or incomplete, so there is no wear time")
    probs_a = np.concatenate(probs)
    acc_a = np.concatenate(acc).astype(np.float64)
    nonwear_a = np.concatenate(nw)
    has_data_a = np.concatenate(has_data)

    t3 = _time.perf_counter()
    raw = np.full(len(starts_a), -1, dtype=np.int64)
    raw[valid_a] = np.argmax(probs_a[valid_a], axis=1)
    final = hmm.smooth(raw, valid_a) if hmm is not None else raw
    timer.add("hmm", _time.perf_counter() - t3)

    t4 = _time.perf_counter()
    times = _device_to_local(starts_a, opts.timezone)
    cats = pd.CategoricalDtype(categories=list(labels))
    lab = pd.Categorical.from_codes(final, dtype=cats)
    lab_raw = pd.Categorical.from_codes(raw, dtype=cats)
    acc_a[~valid_a] = np.nan
    df = pd.DataFrame(
        {
            "time": times,
            "acc": acc_a,
            "wear": valid_a,
            "nonwear": nonwear_a,
            "label": lab,
            "label_raw": lab_raw,
            **{f"prob_{c}": probs_a[:, i] for i, c in enumerate(labels)},
        }
    )
    lo, hi = _parse_bound(opts.start, opts.timezone), _parse_bound(opts.end, opts.timezone)
    span = (df["time"].iloc[0], df["time"].iloc[-1]) if len(df) else None
    if lo is not None:
        df = df[df["time"] >= lo]
    if hi is not None:
        df = df[df["time"] < hi]
    if df.empty:
        held = f"the recording's windows run from {span[0]} to {span[1]}" if span else "the recording has no windows"
        asked = ", ".join(f"{k} {v}" for k, v in (("--start", opts.start), ("--end", opts.end)) if v is not None)
        raise InputError(f"no windows between --start and --end ({asked}): {held}; choose times inside that span")
    df = df.reset_index(drop=True)
    summ = summarize(
        df,
        labels,
        window_sec,
        min_wear_per_day_hours=opts.min_wear_per_day,
        exclude_first_day=opts.exclude_first_day,
        exclude_last_day=opts.exclude_last_day,
    )
    timer.add("summary", _time.perf_counter() - t4)
    from . import __version__

    prov = cfg.get("provenance", {})
    info = {
        "harnet_version": __version__,
        "model": {
            "name": opts.model,
            "path": str(mdir),
            "arch": cfg.get("arch"),
            "window_sec": window_sec,
            "labels": list(labels),
            "source": prov.get("source"),
            "checksum": prov.get("checksum"),
            "checksum_algo": prov.get("checksum_algo"),
            "weights_sha256": cfg.get("weights_sha256"),
            "licence": prov.get("licence"),
            "hmm": hmm is not None,
            "backend": getattr(backend, "name", type(backend).__name__),
            "preprocessing": prep,
        },
        "options": opts.to_dict(),
        "reader": {k: v for k, v in rec.info.items()},
        **info,
        "HasDataWindows": int(has_data_a.sum()),
        "ValidWindows": int(valid_a.sum()),
        **summ.overall,
        "StageSeconds": {k: round(v, 3) for k, v in timer.times.items()},
    }
    return PredictResult(windows=df, daily=summ.daily, info=info, labels=labels, window_sec=window_sec)


def predict_file(
    path: str | Path,
    model: str | None = None,
    *,
    options: PredictOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> PredictResult:
    """Read a device file and return per-window labels, daily summaries and provenance.

    Parameters
    ----------
    path:
        An Axivity ``.cwa``/``.cwa.gz``, ActiGraph ``.gt3x``, GENEActiv ``.bin``, or a
        ``.csv``/``.csv.gz``/``.parquet`` table (reader options go in ``reader={...}``).
    model:
        Registry name, model directory or ``hf://org/repo``; default: the registry's default
        activity classifier (``harnet30-c24-walmsley``: harnet30 fine-tuned on Capture-24,
        Walmsley labels; weights under the Oxford Academic Use Licence).
    options / kwargs:
        A :class:`PredictOptions`, or its fields as keyword arguments (``timezone=``,
        ``hmm=False``, ``backend="onnx"``, ...).

    Returns a :class:`PredictResult` with ``windows`` (one row per window: ``time``, ``acc``
    (mean ENMO, mg), ``wear``, ``nonwear``, ``label``, ``label_raw`` (before the HMM),
    ``prob_<class>``), ``daily`` (one row per day) and ``info`` (provenance, reader QC, summary).
    """
    from .io import read_device

    opts = options or PredictOptions()
    if model is not None or kwargs:
        opts = dataclasses.replace(opts, **({"model": model} if model is not None else {}), **kwargs)
    timer = _Timer()
    t0 = _time.perf_counter()
    rec = read_device(path, **opts.reader)
    timer.add("read", _time.perf_counter() - t0)
    try:
        res = predict_recording(rec, opts, progress=progress, timer=timer)
    except InputError as e:  # problems found after reading: say which file
        if str(path) in str(e):
            raise
        raise type(e)(f"{path}: {e}") from e
    res.info["input"] = {"path": str(path), "name": Path(path).name}
    res.info["StageSeconds"] = {k: round(v, 3) for k, v in timer.times.items()}
    return res


# ---- writing -----------------------------------------------------------------------------

def output_paths(out: str | Path | None = None, outdir: str | Path | None = None, name: str | None = None) -> dict[str, Path]:
    """Where predict writes: ``--out PATH.csv`` puts the rest beside it; ``--outdir`` a folder."""
    if out is not None:
        o = Path(out)
        stem = o.name[: -len(o.suffix)] if o.suffix else o.name
        return {
            "daily": o,
            "windows": o.with_name(f"{stem}-timeseries.parquet"),
            "info": o.with_name(f"{stem}-info.json"),
        }
    if outdir is None:
        raise InputError("give --out PATH.csv or --outdir DIR")
    d = Path(outdir) / (name or "recording")
    return {"daily": d / "summary.csv", "windows": d / "timeseries.parquet", "info": d / "info.json"}


def check_output_paths(
    paths: Mapping[str, Path], *, plot: str | Path | None = None, windows_path: str | Path | None = None
) -> None:
    """Refuse, before any work, output paths that cannot be written (a missing folder that cannot
    be made, a read-only file system, a file where a folder should be, a name too long): one
    :class:`~harnet.errors.WriteError` naming the path, the cause and the fix. Writes nothing."""
    from ._fileio import check_writable

    todo = dict(paths)
    if windows_path is not None:
        todo["windows"] = Path(windows_path)
    if plot is not None:
        todo["plot"] = Path(plot)
    for p in todo.values():
        if Path(p).is_dir():
            raise InputError(f"{p} is a folder; give a file path (or --outdir DIR for a folder of outputs)")
        check_writable(p, fix="give another --out")


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
    result: PredictResult,
    paths: Mapping[str, Path],
    *,
    plot: str | Path | None = None,
    windows_path: str | Path | None = None,
) -> dict[str, Path]:
    """Write daily CSV, per-window table (parquet or CSV by extension), info.json (and a plot).

    Every file is first written to a temporary name; the final names appear only when all
    files were written, so an interrupted or failed run leaves nothing that looks done.
    """
    import contextlib

    from ._fileio import atomic_path, faults_named

    paths = dict(paths)
    if windows_path is not None:
        paths["windows"] = Path(windows_path)
    if plot is not None:
        paths["plot"] = Path(plot)
    fix = "then run again (or give another --out/--outdir)"
    what = {"daily": "the daily summary", "windows": "the per-window series", "info": "info.json", "plot": "the plot"}
    with contextlib.ExitStack() as stack:
        tmps = {k: stack.enter_context(atomic_path(p, what=what.get(k, ""), fix=fix)) for k, p in paths.items()}
        # each step names its own file when the machine refuses the write (disk full, read-only...)
        with faults_named(paths["daily"], what=what["daily"], fix=fix):
            result.daily.to_csv(tmps["daily"], index=False)
        w = result.windows.copy()
        w["time"] = _iso_times(w["time"])
        with faults_named(paths["windows"], what=what["windows"], fix=fix):
            if paths["windows"].suffix == ".csv" or paths["windows"].name.endswith(".csv.gz"):
                w.to_csv(tmps["windows"], index=False, compression="gzip" if paths["windows"].name.endswith(".gz") else None)
            else:
                w.to_parquet(tmps["windows"], index=False)
        with faults_named(paths["info"], what=what["info"], fix=fix):
            tmps["info"].write_text(json.dumps(json_clean(result.info), indent=1, default=_json_default, allow_nan=False) + "\n")
        if plot is not None:
            from .plot import plot_days

            with faults_named(paths["plot"], what=what["plot"], fix=fix):
                plot_days(result.windows, result.labels, tmps["plot"])
    return paths
