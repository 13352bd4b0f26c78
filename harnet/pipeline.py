"""``predict_file``: device file -> per-window labels -> daily summaries, in bounded memory.

Stages: read (``harnet.io``), calibrate and detect non-wear (``harnet.signal``), resample
and cut clock-aligned windows a day at a time (``harnet.signal.windows``), classify the valid windows
(``harnet.backends``), smooth with the model's HMM (``harnet.hmm``), summarise
(``harnet.measures``). The CLI's ``harnet predict`` is a thin layer over this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .arch import DEFAULT_MODEL
from .errors import InputError

log = logging.getLogger("harnet")

#: Columns of the per-window time series before the per-class probability columns (public API).
WINDOW_COLUMNS = ("time", "acc", "mad", "wear", "nonwear", "label", "label_raw")

#: The field's valid-day rule (GGIR's default ``includedaycrit = 16``: at least 16 h of wear).
DEFAULT_MIN_WEAR_PER_DAY = 16.0

#: Longest span (first to last sample) predict accepts: every window of the span is made, so a
#: stray timestamp decades away would otherwise take hours and all memory (docs/reliability.md).
MAX_SPAN_DAYS = 400


@dataclass
class PredictOptions:
    """Every option of ``harnet predict`` that changes results (recorded in info.json)."""

    model: str = DEFAULT_MODEL
    backend: str = "auto"
    precision: str = "fp32"  # "int8": the opt-in reduced-precision path (harnet.precision)
    device: str | None = None
    threads: int | None = None
    batch_size: int | None = None
    hmm: bool = True
    timezone: str | None = None
    start: str | None = None
    end: str | None = None
    exclude_first_day: bool = False
    exclude_last_day: bool = False
    min_wear_per_day: float = DEFAULT_MIN_WEAR_PER_DAY
    cutpoints: str | None = "hildebrand"  # name or "a,b[,c]" mg (harnet.measures.intensity; the CLI's default)
    single_sleep_block: bool = False
    require_sleep_above_s: float | None = None
    calibrate: bool | None = None  # None: follow the model's config
    detect_nonwear: bool | None = None
    nonwear_patience_min: float = 90.0
    nonwear_std_mg: float = 15.0
    calibration_stdtol_min: float | None = None  # g; still windows need every axis' SD above it
    lowpass_hz: float | None | str = "model"
    max_gap_s: float = 1.0
    reader: dict[str, Any] = field(default_factory=dict)
    steps: bool = False  # count steps with the registry's walking detector (harnet.steps)
    steps_model: str | None = None  # another walking detector (name or directory); implies steps
    step_times: bool = False  # also write the time of every step

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, off in _OPT_IN_OFF.items():  # opt-in outputs: info.json (and resume) unchanged while off
            if d[k] == off:
                del d[k]
        return d

    @property
    def counts_steps(self) -> bool:
        return bool(self.steps or self.steps_model)


#: Options of opt-in outputs, left out of info.json's ``options`` while they are off.
_OPT_IN_OFF: dict[str, Any] = {"steps": False, "steps_model": None, "step_times": False, "precision": "fp32"}


@dataclass
class PredictResult:
    windows: Any  # pandas DataFrame, one row per window
    daily: Any  # pandas DataFrame, one row per day
    info: dict[str, Any]
    labels: tuple[str, ...]
    window_sec: int
    minutes: Any = None  # minute table (harnet.measures.tables)
    hours: Any = None  # hour table
    sleep: Any = None  # one row per night, None for a model without a sleep class
    bouts: Any = None  # one row per bout
    steps: Any = None  # one row per window of the walking detector (with --steps)
    step_times: Any = None  # one row per step (with --step-times)


class StageTimer:
    """Seconds per stage (read, preprocess, windows, inference, hmm, summary), summed."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.times[stage] = self.times.get(stage, 0.0) + seconds


def _clock_offset_ns(rec: Any, window_sec: int, tz: str | None) -> int:
    """The device clock's UTC offset (ns): the zone's offset at the first window's start.

    A device's clock does not follow daylight saving: it keeps the offset it had when it was
    set up. We take the zone's offset at the first window as the clock's offset, convert to UTC
    and then to local time, so a spring-forward day has 23 hours and no window is lost or
    duplicated at either DST change. 0 without a time zone.
    """
    import pandas as pd

    from .signal.stream import time_range

    rng = time_range(rec)
    if not tz or rng is None:
        return 0
    from .timegrid import NS, midnight_ns

    t0 = rng[0]
    win = int(window_sec) * NS
    m = midnight_ns(t0)
    first = m + (t0 - m) // win * win
    try:
        ts = pd.Timestamp(first).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    except Exception as e:  # pytz/zoneinfo errors for unknown names
        raise InputError(f"unknown time zone {tz!r} ({e}); use an IANA name such as Europe/London") from None
    return int(ts.utcoffset() / pd.Timedelta(1, "ns"))


def _device_to_local(time_ns: np.ndarray, tz: str | None, offset_ns: int = 0):
    """Device-clock naive times -> pandas times (tz-aware when ``tz`` is given), with the clock's
    offset from :func:`_clock_offset_ns`."""
    import pandas as pd

    t = pd.DatetimeIndex(time_ns.astype("datetime64[ns]"))
    if not tz:
        return t
    return (t - pd.Timedelta(offset_ns, "ns")).tz_localize("UTC").tz_convert(tz)


def _bound_ns(ts: Any, offset_ns: int) -> int | None:
    """A --start/--end time as int ns on the device clock (aware times through the clock's offset)."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        return int(ts.as_unit("ns").value)
    return int(ts.tz_convert("UTC").tz_localize(None).as_unit("ns").value) + offset_ns


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
    predictor: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    timer: StageTimer | None = None,
    steps_predictor: Any = None,
) -> PredictResult:
    """Classify an in-memory :class:`harnet.io.Recording`, or a streamed file
    (:func:`read_recording`), see :func:`predict_file`.

    ``predictor``: a ready :class:`harnet.predictor.Predictor` (a batch worker's); otherwise one
    is made from ``options`` (``model_dir``/``backend``: an already resolved directory or a ready
    backend object). ``steps_predictor``: a ready Predictor of the walking detector (with
    ``options.steps``; otherwise one is made from ``options.steps_model``).
    """
    import pandas as pd

    from .measures.activity import summarize
    from .measures.intensity import band_codes, parse_cutpoints
    from .predictor import Predictor

    opts = options or PredictOptions()
    timer = timer or StageTimer()
    if predictor is None:
        predictor = Predictor(opts.model, model_dir=model_dir, backend=opts.backend, threads=opts.threads,
                              device=opts.device, batch_size=opts.batch_size, hmm=opts.hmm, backend_obj=backend,
                              precision=opts.precision)
    mdir = predictor.model_dir
    cfg = predictor.config.raw
    labels = predictor.labels
    window_sec = predictor.window_sec
    cut = parse_cutpoints(opts.cutpoints)  # a bad --cutpoints is refused before any work
    sleep_rules = bool(opts.single_sleep_block or opts.require_sleep_above_s)
    if sleep_rules:
        from .measures.study import find_class

        if find_class(labels, "sleep") is None or find_class(labels, "sedentary") is None:
            raise InputError(
                f"--single-sleep-block and --require-sleep-above need a model with sleep and sedentary classes; "
                f"{opts.model} has {list(labels)}"
            )
    from .signal.stream import time_range

    rng = time_range(rec)
    span_s = (rng[1] - rng[0]) / 1e9 if rng else 0.0
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
    lo, hi = _parse_bound(opts.start, opts.timezone), _parse_bound(opts.end, opts.timezone)
    offset = _clock_offset_ns(rec, window_sec, opts.timezone)
    stepper = None
    if opts.counts_steps or steps_predictor is not None:  # the walking detector is checked before any work
        from .steps import step_counter

        stepper = step_counter(opts, window_sec, steps_predictor)
    res = predictor.classify(
        rec, opts, start_ns=_bound_ns(lo, offset), end_ns=_bound_ns(hi, offset), progress=progress, timer=timer,
        on_chunk=stepper.on_chunk if stepper is not None else None,
    )
    valid_a = res.valid
    if not valid_a.any():
        rec.warn("no window was classified: every window is non-wear, a gap or incomplete, so there is no wear time")

    t4 = _time.perf_counter()
    times = _device_to_local(res.starts, opts.timezone, offset)
    final = _sleep_rules(res.label, labels, times, window_sec, opts) if sleep_rules else res.label
    cats = pd.CategoricalDtype(categories=list(labels))
    acc_a = res.acc
    acc_a[~valid_a] = np.nan
    mad_a = res.mad if res.mad is not None else np.full(len(acc_a), np.nan)
    mad_a[~valid_a] = np.nan
    df = pd.DataFrame(
        {
            "time": times,
            "acc": acc_a,
            "mad": mad_a,
            "wear": valid_a,
            "nonwear": res.nonwear,
            "label": pd.Categorical.from_codes(final, dtype=cats),
            "label_raw": pd.Categorical.from_codes(res.label_raw, dtype=cats),
            **{f"prob_{c}": res.probs[:, i] for i, c in enumerate(labels)},
        }
    )
    summ = summarize(
        df,
        labels,
        window_sec,
        min_wear_per_day_hours=opts.min_wear_per_day,
        exclude_first_day=opts.exclude_first_day,
        exclude_last_day=opts.exclude_last_day,
        bands=band_codes(df["acc" if cut.metric == "acc" else "mad"].to_numpy(), cut, valid_a),
        band_names=[f"Cut{b}" for b in cut.bands],
    )
    timer.add("summary", _time.perf_counter() - t4)
    t5 = _time.perf_counter()
    study = _study(df, summ, labels, window_sec, cut, opts)
    timer.add("measures", _time.perf_counter() - t5)
    steps_df = step_times = None
    if stepper is not None:
        from .steps import step_outputs

        so = step_outputs(stepper, study.daily, study.minutes, study.hours, study.bouts,
                          lambda t: _device_to_local(t, opts.timezone, offset))
        study.daily, study.minutes, study.hours, study.bouts = so.daily, so.minutes, so.hours, so.bouts
        steps_df, step_times, steps_overall = so.windows, so.step_times, so.overall
        for k, v in stepper.seconds.items():
            timer.add(k, v)
    from . import __version__

    prov = cfg.get("provenance", {})
    backend = predictor.backend
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
            "hmm": predictor.hmm is not None,
            "backend": getattr(backend, "name", type(backend).__name__),
            "preprocessing": dict(cfg.get("preprocessing") or {}),
        },
        "options": opts.to_dict(),
        "reader": {k: v for k, v in rec.info.items()},
        **res.info,
        "HasDataWindows": int(res.has_data.sum()),
        "ValidWindows": int(valid_a.sum()),
        **summ.overall,
        **study.overall,
        **(steps_overall if stepper is not None else {}),
        "Notes": study.notes,
        "StageSeconds": {k: round(v, 3) for k, v in timer.times.items()},
    }
    if getattr(backend, "precision", "fp32") == "int8":  # the graph's own agreement check (harnet.precision)
        info["model"]["int8"] = json.loads(getattr(backend, "meta", {}).get("harnet_int8_check", "{}"))
    return PredictResult(windows=df, daily=study.daily, info=info, labels=labels, window_sec=window_sec,
                         minutes=study.minutes, hours=study.hours, sleep=study.sleep, bouts=study.bouts,
                         steps=steps_df, step_times=step_times)


def _sleep_rules(final: np.ndarray, labels: tuple[str, ...], times: Any, window_sec: int, opts: PredictOptions) -> np.ndarray:
    """actinet's --single-sleep-block / --require-sleep-above on the smoothed labels."""
    from .measures.sleep import apply_sleep_rules
    from .measures.study import find_class

    idx = times
    utc = idx.asi8 if idx.tz is None else idx.tz_convert("UTC").tz_localize(None).asi8
    wall = idx.asi8 if idx.tz is None else idx.tz_localize(None).asi8
    return apply_sleep_rules(
        final, find_class(labels, "sleep"), find_class(labels, "sedentary"), utc, wall, window_sec * 1_000_000_000,
        require_sleep_above_s=opts.require_sleep_above_s, single_sleep_block=opts.single_sleep_block,
    )


@dataclass
class _Study:
    daily: Any
    minutes: Any
    hours: Any
    sleep: Any
    bouts: Any
    overall: dict[str, Any]
    notes: list[str]


def _study(df: Any, summ: Any, labels: tuple[str, ...], window_sec: int, cut: Any, opts: PredictOptions) -> _Study:
    """The study measures (harnet.measures.study) joined onto the daily table."""
    import pandas as pd

    from .measures.study import study_measures

    st = study_measures(df, summ, labels, window_sec, cut, min_wear_per_day_hours=opts.min_wear_per_day)
    daily = summ.daily
    extra = st.daily_extra
    daily = pd.concat([daily[["Date"]], extra[["Weekday"]], daily.drop(columns=["Date"]), extra.drop(columns=["Weekday"])], axis=1)
    # notes (e.g. no sleep table) go into info.json "Notes"; the CLI prints them once, unless -q
    return _Study(daily, st.minutes, st.hours, st.sleep, st.bouts, st.overall, st.notes)


def read_recording(path: str | Path, opts: PredictOptions, *, progress: Callable[[str, int, int], None] | None = None,
                   block_blocks: int | None = None) -> Any:
    """A device file ready for :func:`predict_recording`: streamed (pass 1 done, the samples read
    again block by block later: :mod:`harnet.signal.stream`) where its format allows, else read
    whole with :func:`harnet.io.read_device`. Both give the same outputs. ``block_blocks``: file
    blocks (512 bytes) per streamed block (default: the reader's own chunks; tests make it tiny)."""
    from .io import read_device
    from .signal.stream import read_streamed

    rec = read_streamed(path, max_gap_s=opts.max_gap_s, progress=progress, block_blocks=block_blocks, **opts.reader)
    return rec if rec is not None else read_device(path, progress=progress, **opts.reader)


def predict_file(
    path: str | Path,
    model: str | None = None,
    *,
    options: PredictOptions | None = None,
    progress: Callable[[str, int, int], None] | None = None,
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

    ``progress(stage, done, total)``: called with ``"read"`` (bytes of the file) and then
    ``"windows"`` (windows classified) so that a caller can show progress; nothing is printed.
    """
    opts = options or PredictOptions()
    if model is not None or kwargs:
        opts = dataclasses.replace(opts, **({"model": model} if model is not None else {}), **kwargs)
    timer = StageTimer()
    detector = None
    if opts.counts_steps:  # a missing or wrong walking detector is refused before the file is read
        from .steps import load_detector

        detector = load_detector(opts)
    t0 = _time.perf_counter()
    rec = read_recording(path, opts, progress=progress)
    timer.add("read", _time.perf_counter() - t0)
    try:
        res = predict_recording(rec, opts, progress=progress, timer=timer, steps_predictor=detector)
    except InputError as e:  # problems found after reading: say which file
        if str(path) in str(e):
            raise
        raise type(e)(f"{path}: {e}") from e
    res.info["input"] = {"path": str(path), "name": Path(path).name}
    res.info["StageSeconds"] = {k: round(v, 3) for k, v in timer.times.items()}
    return res
