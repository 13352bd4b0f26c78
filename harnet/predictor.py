"""The Predictor: a model directory, its config, backend and HMM loaded once; recordings in,
prepared windows -> probabilities -> smoothed labels out (demucs' ``Separator``, for activity).

One function prepares windows the way the model expects them (:meth:`Predictor.prepare` and
:meth:`Predictor.chunks`: gravity calibration, non-wear, resampling with the model's options,
clock-aligned windows); ``harnet predict``, the batch workers, ``harnet export --int8`` and
self-supervised pre-training all use it. Also the choice of backend for a model
(:func:`resolve_backend`, :func:`get_backend`): the one place that knows which file each backend
runs (``harnet.onnx`` finds or exports the graphs; the backends receive a path).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .backends import BACKENDS, PRECISIONS, Backend, onnxruntime_available
from .errors import HarnetError, InputError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    from .io.recording import Recording
    from .modeldir import ModelConfig, Preprocessing
    from .signal.nonwear import NonwearResult
    from .signal.stream import StreamedRecording
    from .signal.windows import WindowChunk


def resolve_backend(model_dir: str | Path, backend: str = "auto", device: Any = None, *,
                    config: Mapping[str, Any] | None = None, precision: str = "fp32") -> str:
    """The concrete backend name that :func:`get_backend` would use (``auto`` resolved).

    ``auto`` never picks a path that changes results: a GPU device -> torch; else, with
    onnxruntime installed, ``onnx-winograd`` (``onnx`` for a bare ``.onnx`` file); without
    onnxruntime, torch. ``precision="int8"`` (``harnet predict --precision int8``) is the only
    way to the int8 graph besides naming ``onnx-int8``: it needs ``auto`` or ``onnx-int8``, the
    CPU, onnxruntime and a model directory, and says so in one line otherwise.
    """
    if backend not in BACKENDS:
        raise HarnetError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise HarnetError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    on_gpu = device is not None and str(device) != "cpu"
    if precision == "int8":
        return _int8_backend(Path(model_dir), backend, device if on_gpu else None)
    if on_gpu and backend not in ("auto", "torch"):
        raise HarnetError(f"backend {backend!r} runs on the CPU only; use --backend torch with --device {device}")
    if backend != "auto":
        return backend
    if on_gpu:
        return "torch"
    p = Path(model_dir)
    if p.is_file() and p.suffix == ".onnx":
        return "onnx"
    return "onnx-winograd" if onnxruntime_available() else "torch"


def check_precision(precision: str, backend: str = "auto", device: Any = None) -> None:
    """Refuse, before any work, a ``precision`` that cannot run with this backend and device."""
    if precision not in PRECISIONS:
        raise HarnetError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "int8":
        _int8_backend(Path(), backend, device if device is not None and str(device) != "cpu" else None)


def _int8_backend(p: Path, backend: str, gpu: Any) -> str:
    """``onnx-int8`` when ``--precision int8`` can run here; else a one-line refusal saying why."""
    if gpu is not None:
        raise HarnetError(f"--precision int8 runs on the CPU (ONNX Runtime); drop --device {gpu} or use --precision fp32")
    if backend not in ("auto", "onnx-int8"):
        raise HarnetError(
            f"--precision int8 runs ONNX Runtime's int8 graph; the {backend} backend is fp32 only: "
            "use --backend auto with --precision int8, or --precision fp32"
        )
    if p.is_file():
        raise HarnetError(f"{p} is an exported graph; --precision int8 quantises a model directory's weights")
    if not onnxruntime_available():
        raise HarnetError("--precision int8 needs onnxruntime: pip install onnxruntime (or use --precision fp32)")
    return "onnx-int8"


def get_backend(
    model_dir: str | Path,
    *,
    backend: str = "auto",
    threads: int | None = None,
    device: Any = None,
    batch_size: int | None = None,
    config: Mapping[str, Any] | None = None,
    precision: str = "fp32",
) -> Backend:
    """A ready backend for a model directory (or, for the ONNX backends, an exported ``.onnx``).

    ``backend``: one of :data:`harnet.backends.BACKENDS` (see :func:`resolve_backend` for what
    ``auto`` picks). ``threads``: CPU threads (default: the CPUs this process may use); set per
    call, never globally. ``device``: a torch device for the torch backend. ``batch_size``:
    windows per inference call (default: the fastest measured for that backend). The ONNX graph
    of a model directory is exported on first use (:func:`harnet.onnx.export.ensure_onnx`).
    ``config``: the directory's config.json, when already read (it is then not read again).
    ``precision``: ``"fp32"`` or ``"int8"``; the int8 graph is made on first use and cached
    (:func:`harnet.precision.ensure_int8`).
    """
    name = resolve_backend(model_dir, backend, device, config=config, precision=precision)
    p = Path(model_dir)
    if name == "torch":
        if p.is_file():
            raise HarnetError(f"{p} is an ONNX file; the torch backend needs a model directory (use --backend onnx)")
        from .backends.torch_backend import TorchBackend

        return TorchBackend(p, threads=threads, device=device, batch_size=batch_size)
    if not onnxruntime_available():
        raise HarnetError("the ONNX backend needs onnxruntime: pip install onnxruntime (or use --backend torch)")
    from .backends.onnx_backend import OnnxBackend

    if name == "onnx-winograd" and p.is_file():
        raise HarnetError(f"{p} is an exported graph; the Winograd graph is made from a model directory (use --backend onnx)")
    if p.is_file():
        return OnnxBackend(p, threads=threads, batch_size=batch_size)
    if not p.is_dir():
        raise ModelError(f"{p}: no such model directory or .onnx file")
    if config is None:
        from .modeldir import read_config

        config = read_config(p)
    sha = str(config.get("weights_sha256", ""))
    if name == "onnx-int8":
        from .modeldir import Preprocessing
        from .precision import ensure_int8

        prep = Preprocessing.from_dict(config.get("preprocessing"))
        w = int(config["window_sec"])
        q = ensure_int8(p, config=config, windows=lambda rec: prepared_windows(rec, w, prep))
        return OnnxBackend(q, model_dir=p, weights_sha256=sha, threads=threads, batch_size=batch_size)
    from .onnx.export import ensure_onnx, onnx_candidates

    algorithm = "winograd" if name == "onnx-winograd" else "direct"
    found = next((c for c in onnx_candidates(p, algorithm, config=config) if c.is_file()), None)
    if found is not None:  # the usual case: ONNX Runtime parses the file once, and checks it
        try:
            return OnnxBackend(found, model_dir=p, weights_sha256=sha, threads=threads, batch_size=batch_size)
        except ModelError:
            pass  # stale or damaged: ensure_onnx says why, or exports it again
    graph = ensure_onnx(p, algorithm, config=config)
    return OnnxBackend(graph, model_dir=p, weights_sha256=sha, threads=threads, batch_size=batch_size)


# ---- the Predictor ------------------------------------------------------------------------------


@dataclass
class Classified:
    """Every window of a recording (or of the part kept by ``start``/``end``), classified.

    ``starts`` datetime64[ns] (device clock); ``acc`` float64 mean ENMO (mg, NaN where not worn);
    ``valid`` (classified), ``nonwear``, ``has_data`` bool; ``probs`` float32 (N, C), NaN rows where
    not classified; ``label_raw`` int64 argmax (-1 where not classified); ``label`` the same after
    the HMM. ``info``: calibration and non-wear fields for info.json.
    """

    starts: np.ndarray
    acc: np.ndarray
    valid: np.ndarray
    nonwear: np.ndarray
    has_data: np.ndarray
    probs: np.ndarray
    label_raw: np.ndarray
    label: np.ndarray
    info: dict[str, Any]
    mad: np.ndarray | None = None  # float64 mean amplitude deviation (mg), like acc


class Predictor:
    """A model ready to classify recordings: directory, config, backend and HMM loaded once.

    ``model``: registry name, model directory or ``hf://org/repo[@rev]`` (``model_dir``: an
    already resolved directory). ``backend``/``threads``/``device``/``batch_size``: see
    :func:`get_backend` (or pass a ready ``backend_obj``), and ``precision``. ``hmm=False``: no smoothing. A batch
    worker holds one Predictor for all the recordings it runs.
    """

    def __init__(
        self,
        model: str = "",
        *,
        model_dir: str | Path | None = None,
        backend: str = "auto",
        threads: int | None = None,
        device: Any = None,
        batch_size: int | None = None,
        hmm: bool = True,
        backend_obj: Any = None,
        precision: str = "fp32",
    ) -> None:
        from .modeldir import HMM_FILE, model_config

        if model_dir is None:
            from .arch import DEFAULT_MODEL
            from .loading import resolve_model_dir

            model_dir = resolve_model_dir(model or DEFAULT_MODEL)
        self.name = model
        self.model_dir = Path(model_dir)
        self.config: ModelConfig = model_config(self.model_dir)
        if self.config.is_backbone:
            raise HarnetError(
                f"{model or self.model_dir} is a self-supervised backbone without a trained head; use a classifier "
                "(see `harnet models`) or fine-tune it with `harnet train`"
            )
        self.labels = self.config.labels
        self.window_sec = self.config.window_sec
        self.backend = backend_obj if backend_obj is not None else get_backend(
            self.model_dir, backend=backend, threads=threads, device=device, batch_size=batch_size,
            config=self.config.raw, precision=precision,
        )
        self.hmm = None
        if hmm and (self.model_dir / HMM_FILE).is_file():
            from .hmm import HMM

            self.hmm = HMM.load(self.model_dir / HMM_FILE)
            if self.hmm.num_classes != len(self.labels):
                raise HarnetError(
                    f"{self.model_dir / HMM_FILE} has {self.hmm.num_classes} classes, the model {len(self.labels)}; "
                    "refit or remove it"
                )

    @property
    def preprocessing(self) -> "Preprocessing":
        return self.config.preprocessing

    # -- windows as predict prepares them --------------------------------------------------------

    def prepare(self, rec: "Recording | StreamedRecording", options: Any = None) -> tuple[dict[str, Any], "NonwearResult | None"]:
        """Calibrate gravity (in place) and find non-wear, as the model and ``options`` (a
        :class:`harnet.pipeline.PredictOptions`) say; returns (info fields, non-wear or None)."""
        return prepare_recording(rec, self.preprocessing, options)

    def chunks(self, rec: "Recording", nonwear: "NonwearResult | None", options: Any = None) -> Iterator["WindowChunk"]:
        """The recording's clock-aligned windows, a chunk at a time, resampled with the model's options."""
        return window_chunks(rec, self.window_sec, self.preprocessing, nonwear, options)

    # -- classification -------------------------------------------------------------------------

    def classify(
        self,
        rec: "Recording",
        options: Any = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        timer: Any = None,
        on_chunk: Callable[["WindowChunk"], None] | None = None,
    ) -> Classified:
        """Prepared windows -> probabilities -> smoothed labels, in bounded memory.

        ``start_ns``/``end_ns`` (int ns on the device clock): only windows starting in
        ``[start_ns, end_ns)`` are kept, before inference. ``progress(stage, done, total)``: called
        with ``"windows"`` after each chunk. ``timer``: a ``StageTimer`` (stages
        ``preprocess``, ``windows``, ``inference``, ``hmm``). ``on_chunk(chunk)``: called with
        each kept :class:`~harnet.signal.windows.WindowChunk` after its inference, so that another
        consumer (a second model, step counting) works on the same windows without a second read
        or preprocessing pass.
        """
        from .signal.stream import time_range

        add = timer.add if timer is not None else (lambda stage, s: None)
        t0 = _time.perf_counter()
        info, nonwear = self.prepare(rec, options)
        add("preprocess", _time.perf_counter() - t0)
        n_classes = len(self.labels)
        starts, acc, mad, valid, nw, has_data, probs = [], [], [], [], [], [], []
        t_win = t_inf = 0.0
        done = 0
        rng = time_range(rec)
        span_s = (rng[1] - rng[0]) / 1e9 if rng else 0.0
        span: list[int] = []  # the first and last window start seen (for a range that holds none)
        t1 = _time.perf_counter()
        for ch in self.chunks(rec, nonwear, options):
            if len(ch.starts):
                span[:] = [span[0] if span else int(ch.starts[0]), int(ch.starts[-1])]
            keep = _in_bounds(ch.starts, start_ns, end_ns)
            t2 = _time.perf_counter()
            t_win += t2 - t1
            if keep is not None:
                if not keep.any():
                    t1 = _time.perf_counter()
                    continue
                ch = _take(ch, keep)
            p = np.full((len(ch.starts), n_classes), np.nan, dtype=np.float32)
            if ch.valid.any():  # non-wear and incomplete windows are never sent to the network
                p[ch.valid] = self.backend.predict_proba(ch.X[ch.valid])
            t1 = _time.perf_counter()
            t_inf += t1 - t2
            if on_chunk is not None:
                on_chunk(ch)
                t1 = _time.perf_counter()
            starts.append(ch.starts)
            acc.append(ch.enmo_mg)
            mad.append(ch.mad_mg if ch.mad_mg is not None else np.full(len(ch.starts), np.nan, dtype=np.float32))
            valid.append(ch.valid)
            nw.append(ch.nonwear)
            has_data.append(ch.has_data)
            probs.append(p)
            done += len(ch.starts)
            if progress is not None:  # total: the windows the span needs (a clock-aligned one more)
                progress("windows", done, max(done, int(span_s // self.window_sec) + 1))
        add("windows", t_win)
        add("inference", t_inf)
        if not starts:
            if start_ns is not None or end_ns is not None:
                raise InputError(_empty_range_message(span, options))
            raise InputError("the recording is shorter than one window; nothing to classify")
        valid_a = np.concatenate(valid)
        probs_a = np.concatenate(probs)
        t3 = _time.perf_counter()
        raw = np.full(len(valid_a), -1, dtype=np.int64)
        raw[valid_a] = np.argmax(probs_a[valid_a], axis=1)
        final = self.hmm.smooth(raw, valid_a) if self.hmm is not None else raw
        add("hmm", _time.perf_counter() - t3)
        return Classified(
            starts=np.concatenate(starts), acc=np.concatenate(acc).astype(np.float64), valid=valid_a,
            nonwear=np.concatenate(nw), has_data=np.concatenate(has_data), probs=probs_a, label_raw=raw,
            label=final, info=info, mad=np.concatenate(mad).astype(np.float64),
        )

    def valid_windows(self, rec: "Recording") -> np.ndarray:
        """float32 ``(N, 3, T)``: the complete, worn windows of ``rec`` as the network sees them."""
        _, nonwear = self.prepare(rec)
        return valid_windows(rec, self.window_sec, self.preprocessing, nonwear)


def _in_bounds(starts: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray | None:
    if lo is None and hi is None:
        return None
    s = starts.view(np.int64)
    keep = np.ones(len(s), dtype=bool)
    if lo is not None:
        keep &= s >= lo
    if hi is not None:
        keep &= s < hi
    return keep


def _take(ch: "WindowChunk", keep: np.ndarray) -> "WindowChunk":
    from .signal.windows import WindowChunk

    return WindowChunk(starts=ch.starts[keep], X=ch.X[keep], valid=ch.valid[keep], nonwear=ch.nonwear[keep],
                       has_data=ch.has_data[keep], enmo_mg=ch.enmo_mg[keep],
                       mad_mg=None if ch.mad_mg is None else ch.mad_mg[keep])


def prepare_recording(rec: "Recording", prep: "Preprocessing", options: Any = None) -> tuple[dict[str, Any], "NonwearResult | None"]:
    """Gravity calibration (in place) and non-wear detection on one pass of window statistics.

    ``options`` (a :class:`harnet.pipeline.PredictOptions`, or None for the model's defaults):
    ``calibrate``/``detect_nonwear`` (None: as the model was trained), ``nonwear_std_mg``,
    ``nonwear_patience_min``. When calibration is applied the statistics are corrected with it
    (the standard deviation of ``intercept + slope * a`` is ``|slope|`` times that of ``a``)
    instead of being computed again.
    """
    from .signal.calibrate import calibrate_gravity, fit_gravity
    from .signal.nonwear import detect_nonwear
    from .signal.stats import window_stats
    from .signal.stream import StreamedRecording

    std_g = (getattr(options, "nonwear_std_mg", 15.0) if options is not None else 15.0) / 1000.0
    patience = getattr(options, "nonwear_patience_min", 90.0) if options is not None else 90.0
    opt_cal = getattr(options, "calibrate", None) if options is not None else None
    opt_nw = getattr(options, "detect_nonwear", None) if options is not None else None
    calibrate = prep.calibrate_gravity if opt_cal is None else opt_cal
    detect = prep.detect_nonwear if opt_nw is None else opt_nw
    info: dict[str, Any] = {}
    streamed = isinstance(rec, StreamedRecording)
    stats = (rec.stats if streamed else window_stats(rec)) if (calibrate or detect) else None
    if calibrate:
        min_std_g = getattr(options, "calibration_stdtol_min", None) if options is not None else None
        if streamed:  # pass 1's statistics; the correction is applied to each block of pass 2
            cal, rec.calibration = fit_gravity(stats, rec.warn, stationary_std_g=std_g, min_std_g=min_std_g)
            info.update(cal)
        else:
            info.update(calibrate_gravity(rec, stationary_std_g=std_g, stats=stats, min_std_g=min_std_g))
        if info.get("CalibOK") == 1:
            stats = stats.calibrated([info[f"Calib{a}Slope"] for a in "xyz"])
    else:
        info["CalibOK"] = 0
        info["CalibSkipped"] = True
    nonwear = None
    if detect:
        nonwear = detect_nonwear(rec, patience_min=patience, stationary_std_g=std_g, stats=stats)
        info.update(nonwear.info)
    return info, nonwear


def window_chunks(rec: "Recording", window_sec: int, prep: "Preprocessing", nonwear: "NonwearResult | None",
                  options: Any = None, *, max_gap_s: float = 1.0) -> Iterator["WindowChunk"]:
    """:func:`harnet.signal.windows.iter_chunks` with the model's preprocessing: its low-pass,
    resampling method and anti-alias cap. ``options`` (a :class:`harnet.pipeline.PredictOptions`)
    may override the low-pass (``lowpass_hz``; ``"model"`` keeps the model's) and ``max_gap_s``."""
    from .signal.stream import StreamedRecording
    from .signal.windows import chunks_from_blocks, iter_chunks

    lowpass = prep.lowpass_hz
    if options is not None:
        if getattr(options, "lowpass_hz", "model") != "model":
            lowpass = options.lowpass_hz
        max_gap_s = getattr(options, "max_gap_s", max_gap_s)
    if isinstance(rec, StreamedRecording):  # pass 2 of a streamed file
        return chunks_from_blocks(rec.blocks(), first_ns=rec.first_ns, last_ns=rec.last_ns, rate=rec.rate(max_gap_s),
                                  window_sec=window_sec, lowpass_hz=lowpass, nonwear=nonwear, max_gap_s=max_gap_s,
                                  method=prep.resample, antialias=prep.antialias, finite=True)  # pass 1 checked them
    return iter_chunks(rec, window_sec=window_sec, lowpass_hz=lowpass, nonwear=nonwear, max_gap_s=max_gap_s,
                       method=prep.resample, antialias=prep.antialias)


def valid_windows(rec: "Recording", window_sec: int, prep: "Preprocessing", nonwear: "NonwearResult | None") -> np.ndarray:
    """float32 ``(N, 3, T)``: the complete, worn windows of a prepared recording."""
    from .arch import SAMPLE_RATE

    parts = [ch.X[ch.valid] for ch in window_chunks(rec, window_sec, prep, nonwear)]
    return np.concatenate(parts) if parts else np.empty((0, 3, window_sec * SAMPLE_RATE), np.float32)


def prepared_windows(rec: "Recording", window_sec: int, prep: "Preprocessing") -> tuple[np.ndarray, np.ndarray]:
    """(valid windows ``(N, 3, T)``, valid mask of every window) of a recording, prepared as predict does."""
    _, nonwear = prepare_recording(rec, prep)
    X, V = [], []
    for ch in window_chunks(rec, window_sec, prep, nonwear):
        X.append(ch.X[ch.valid])
        V.append(ch.valid)
    return np.concatenate(X), np.concatenate(V)


def windows_from_files(paths: Sequence[str | Path], *, window_sec: int, preprocessing: Any = None) -> list[np.ndarray]:
    """Valid windows ``(N_i, 3, T)`` of each device file, prepared as ``harnet predict`` does.

    Reads with :func:`harnet.io.read_device`, calibrates gravity and drops non-wear when the
    model's preprocessing (a :class:`harnet.modeldir.Preprocessing` or config.json's dict) asks
    for it, and resamples with its options into clock-aligned windows.
    """
    from .io import read_device
    from .modeldir import Preprocessing

    prep = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing.from_dict(preprocessing)
    out = []
    for p in paths:
        rec = read_device(p)
        _, nonwear = prepare_recording(rec, prep)
        X = valid_windows(rec, window_sec, prep, nonwear)
        if len(X) == 0:
            raise InputError(f"{p} holds no complete worn window of {window_sec} s; it cannot calibrate or check int8")
        out.append(X)
    return out


def export_int8_from_files(
    model: Any,
    calibrate: Sequence[str | Path],
    *,
    validate: Sequence[str | Path] | None = None,
    fp32_path: str | Path | None = None,
    path: str | Path | None = None,
    calibrate_method: str = "minmax",
    max_calibration_windows: int = 1024,
) -> dict[str, Any]:
    """``harnet export --int8``: :func:`harnet.onnx.int8.export_int8` on the windows of device files.

    ``calibrate``: device files whose windows set the activation ranges; ``validate``: other files
    (held-out recordings) on which int8 must agree with fp32 (default: the calibration files, a
    weaker check, recorded as such). The windows are prepared as ``harnet predict`` prepares them.
    """
    from .onnx.export import model_source
    from .onnx.int8 import export_int8

    cfg, _, _ = model_source(model)
    w = int(cfg["window_sec"])
    prep = cfg.get("preprocessing")
    cal = windows_from_files(calibrate, window_sec=w, preprocessing=prep)
    val = windows_from_files(validate, window_sec=w, preprocessing=prep) if validate else None
    return export_int8(model, cal, validation=val, fp32_path=fp32_path, path=path, calibrate_method=calibrate_method,
                       max_calibration_windows=max_calibration_windows)


def _empty_range_message(span: list[int], options: Any) -> str:
    """Why --start/--end kept nothing: the bounds asked for and the recording's own first and last window."""
    asked = ", ".join(f"{k} {v}" for k, v in (("--start", getattr(options, "start", None)), ("--end", getattr(options, "end", None)))
                      if v is not None)
    if span:
        first, last = (np.datetime_as_string(np.datetime64(v, "ns"), unit="s").replace("T", " ") for v in span)
        held = f"the recording's windows run from {first} to {last} (device clock)"
    else:
        held = "the recording has no windows"
    return f"no windows between --start and --end ({asked}): {held}; choose times inside that span"
