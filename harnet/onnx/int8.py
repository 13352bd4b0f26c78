"""int8 quantisation of an exported fp32 graph, guarded by an agreement check on real recordings;
and the lookup of a model directory's validated int8 graph (:func:`find_int8`)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .._fileio import atomic_path
from ..arch import INT8_FILE
from ..errors import HarnetError, InputError, ModelError
from .export import ensure_onnx, model_source, onnx_metadata, read_metadata, set_metadata
from .graph import INPUT_NAME, OUTPUT_NAME

#: Acceptance rule for a reduced-precision graph, checked on real recordings.
MIN_LABEL_AGREEMENT = 0.995
MAX_TOTALS_REL_DIFF = 0.01


# ----------------------------------------------------------------------------------------------
# int8 quantisation, guarded by an agreement check on real recordings


def agreement(ref_probs: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> dict[str, float]:
    """Compare a reduced-precision path with fp32 on a set of recordings.

    Each argument is a list with one ``(N_i, C)`` probability array per recording (or per day).
    Returns ``label_agreement`` (share of windows whose argmax agrees), ``totals_rel_diff`` (the
    worst class of ``|n - n_fp32| / n_fp32``, where ``n`` is the number of windows given that
    class over all recordings, i.e. the class totals of the pooled time; the denominator is
    floored at 1 % of the windows so that a class seen twice cannot fail on one flip),
    ``max_prob_diff`` and ``windows``.
    """
    agree = n = 0
    maxdiff = 0.0
    ca = cb = None
    for a, b in zip(ref_probs, probs, strict=True):
        a = np.asarray(a)
        b = np.asarray(b)
        if len(a) == 0:
            continue
        la, lb = a.argmax(1), b.argmax(1)
        agree += int((la == lb).sum())
        n += len(a)
        c = a.shape[1]
        ca = np.bincount(la, minlength=c) + (0 if ca is None else ca)
        cb = np.bincount(lb, minlength=c) + (0 if cb is None else cb)
        maxdiff = max(maxdiff, float(np.abs(a - b).max()))
    worst = 0.0 if ca is None else float((np.abs(ca - cb) / np.maximum(ca, 0.01 * n)).max())
    return {
        "label_agreement": agree / n if n else float("nan"),
        "totals_rel_diff": worst,
        "max_prob_diff": maxdiff,
        "windows": float(n),
    }


def passes(report: Mapping[str, float]) -> bool:
    """The acceptance rule for a reduced-precision path (see :data:`MIN_LABEL_AGREEMENT`)."""
    return (
        report.get("windows", 0) > 0
        and report["label_agreement"] >= MIN_LABEL_AGREEMENT
        and report["totals_rel_diff"] <= MAX_TOTALS_REL_DIFF
    )


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calibration: np.ndarray,
    *,
    validation: Sequence[np.ndarray] | None = None,
    calibrate_method: str = "minmax",
    batch_size: int = 64,
    exclude: Iterable[str] = (),
    reduce_range: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Quantise an exported fp32 graph to int8 (static, QDQ) and check it on real windows.

    ``calibration``: float32 ``(N, 3, T)`` windows of real recordings (a few hundred are
    enough) that set the activation ranges. ``validation``: a list of ``(N_i, 3, T)`` arrays,
    one per recording, on which int8 is compared with fp32 (:func:`agreement`); default: the
    calibration windows (a weaker check; say so in reports). Weights are per-channel int8,
    activations uint8 (the u8s8 kernels of x86 CPUs). If the check fails (:func:`passes`) the
    file is not written and :class:`HarnetError` says by how much, unless ``force=True``.
    Returns the report, also embedded in the file's metadata (``harnet_int8_check``).
    ``exclude``: node names left in fp32. Needs no torch.
    """
    import onnxruntime as ort

    fp32_onnx = Path(fp32_onnx)
    calib = _check_calibration(fp32_onnx, calibration)
    n_used = len(calib) // min(int(batch_size), len(calib)) * min(int(batch_size), len(calib))
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        qdq_quantize(fp32_onnx, tmp, calib, calibrate_method=calibrate_method, batch_size=batch_size,
                     exclude=exclude, reduce_range=reduce_range)
        val = list(validation) if validation is not None else [calib]
        ref = run_graph(fp32_onnx, val)
        got = run_graph(tmp, val)
        report: dict[str, Any] = agreement(ref, got)
        report.update(
            passed=passes(report),
            calibration_windows=int(n_used),
            validation_recordings=len(val),
            validated_on="calibration windows" if validation is None else "held-out recordings",
            calibrate_method=calibrate_method,
            onnxruntime=ort.__version__,
        )
        if not report["passed"] and not force:
            raise HarnetError(
                f"int8 model disagrees with fp32 too much: labels agree on {report['label_agreement']:.2%} "
                f"of {int(report['windows'])} windows (need {MIN_LABEL_AGREEMENT:.1%}), class totals differ by "
                f"up to {report['totals_rel_diff']:.2%} (limit {MAX_TOTALS_REL_DIFF:.0%}); keep fp32, or try "
                "another calibration method or more calibration recordings"
            )
        stamp_int8(tmp, fp32_onnx, report)
    return report


def stamp_int8(q_path: str | Path, fp32_onnx: str | Path, report: Mapping[str, Any]) -> None:
    """Give an int8 graph the fp32 graph's harnet metadata and its own check ``report``
    (``harnet_int8_check``: the backend loads it only when ``passed`` is true)."""
    import onnx

    q = onnx.load(str(q_path))
    meta = {e.key: e.value for e in onnx.load(str(fp32_onnx), load_external_data=False).metadata_props}
    meta["harnet_graph"] = "harnet-int8-qdq"
    meta.pop("harnet_check", None)
    meta["harnet_int8_check"] = json.dumps(dict(report), sort_keys=True)
    set_metadata(q, meta)
    onnx.save(q, str(q_path))


def _check_calibration(fp32_onnx: Path, calibration: np.ndarray) -> np.ndarray:
    meta_cfg = read_metadata(fp32_onnx)
    T = int(meta_cfg["window_sec"]) * int(meta_cfg.get("sample_rate", 30))
    calib = np.asarray(calibration, dtype=np.float32)
    if calib.ndim != 3 or calib.shape[1:] != (3, T) or len(calib) == 0:
        raise InputError(f"calibration windows must be a non-empty (N, 3, {T}) array, got {calib.shape}")
    if not np.all(np.isfinite(calib)):
        raise InputError("calibration windows hold NaN or inf; pass only complete, valid windows")
    return calib


def qdq_quantize(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calibration: np.ndarray,
    *,
    calibrate_method: str = "minmax",
    batch_size: int = 64,
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
    reduce_range: bool = False,
    ranges_cache: str | Path | None = None,
) -> None:
    """Write the static int8 (QDQ) graph of ``fp32_onnx`` to ``out_path``, unchecked.

    Per-channel symmetric int8 weights, asymmetric uint8 activations (the u8s8 kernels of x86
    CPUs). ``exclude``: node names left in fp32; ``only``: quantise just these nodes.
    ``ranges_cache``: a JSON file for the calibrated activation ranges (computed on the first
    call, reused after: a search over exclusions calibrates once).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if calibrate_method not in methods:
        raise ValueError(f"calibrate_method must be one of {', '.join(methods)}")
    calib = _check_calibration(Path(fp32_onnx), calibration)
    # equal-sized batches: the histogram calibrators stack them
    bs = min(int(batch_size), len(calib))
    n_used = len(calib) // bs * bs

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self._i >= n_used:
                return None
            b = calib[self._i : self._i + bs]
            self._i += bs
            return {INPUT_NAME: b}

    import logging

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantiser logs advice on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(fp32_onnx),
                str(out_path),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[calibrate_method],
                nodes_to_exclude=list(exclude) or None,
                nodes_to_quantize=list(only) if only is not None else None,
                reduce_range=reduce_range,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                calibration_cache_path=None if ranges_cache is None else str(ranges_cache),
            )
    finally:
        logging.getLogger().setLevel(quiet)


def run_graph(onnx_path: str | Path, batches: Sequence[np.ndarray], batch_size: int = 128) -> list[np.ndarray]:
    """Softmax probabilities of an ONNX graph for each ``(N_i, 3, T)`` array (one session, all threads)."""
    import onnxruntime as ort

    from ..backends.onnx_backend import softmax

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    out = []
    for X in batches:
        X = np.asarray(X, dtype=np.float32)
        parts = [sess.run([OUTPUT_NAME], {INPUT_NAME: X[i : i + batch_size]})[0] for i in range(0, len(X), batch_size)]
        out.append(softmax(np.concatenate(parts)) if parts else np.empty((0, 0), np.float32))
    return out


def export_int8(
    model: Any,
    calibration: Sequence[np.ndarray],
    *,
    validation: Sequence[np.ndarray] | None = None,
    fp32_path: str | Path | None = None,
    path: str | Path | None = None,
    calibrate_method: str = "minmax",
    max_calibration_windows: int = 1024,
) -> dict[str, Any]:
    """Write the int8 graph (``model.int8.onnx``) of a model directory, if it passes its check.

    ``calibration``: one ``(N_i, 3, T)`` array of windows per recording (prepared as predict
    prepares them: :func:`harnet.predictor.windows_from_files`), which set the activation ranges
    (at most ``max_calibration_windows``, spread evenly). ``validation``: windows of other
    recordings on which int8 must agree with fp32 (:func:`passes`); default: the calibration
    windows (a weaker check, recorded as such in the file). ``fp32_path``: the fp32 graph to
    quantise (default: the model directory's, exported when needed); ``path``: where to write
    (default: beside it, ``<stem>.int8.onnx``). Raises :class:`HarnetError` and writes nothing
    when the check fails. Returns the check's report.
    """
    cfg, _, mdir = model_source(model)
    if mdir is None:
        raise ModelError("int8 export needs a model directory (save the network with harnet.save_model_dir first)")
    fp32 = Path(fp32_path) if fp32_path is not None else ensure_onnx(mdir)
    calib = np.concatenate(list(calibration))
    if len(calib) > max_calibration_windows:  # an even spread over the recordings
        idx = np.linspace(0, len(calib) - 1, max_calibration_windows).round().astype(int)
        calib = calib[idx]
    target = Path(path) if path is not None else fp32.parent / (fp32.stem + ".int8.onnx")
    return quantize_int8(fp32, target, calib, validation=validation, calibrate_method=calibrate_method)


def find_int8(model_dir: str | Path, *, config: Mapping[str, Any] | None = None) -> Path | None:
    """A validated int8 graph of this model directory's weights, or None (``config``: its
    config.json, when already read)."""
    from ..modeldir import read_config

    d = Path(model_dir)
    p = d / INT8_FILE
    if not p.is_file():
        return None
    meta = onnx_metadata(p)
    sha = str((read_config(d) if config is None else config).get("weights_sha256", ""))
    try:
        check = json.loads(meta.get("harnet_int8_check", "{}"))
    except ValueError:
        return None
    if sha and meta.get("weights_sha256") != sha:
        return None
    return p if check.get("passed") is True else None
