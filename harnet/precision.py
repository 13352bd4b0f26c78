"""``harnet predict --precision int8``: the int8 graph of a model directory, made on first use.

The graph is built once per weights and cached (the model directory when writable, else a cache
root of :mod:`harnet.cachedirs` under the weights' sha256, ``model.int8.onnx``), with
accuracy-aware static quantisation on generated recordings (:mod:`harnet.synth`, so no user data
is needed and the result is reproducible):

1. **calibration**: the windows of :attr:`Int8Recipe.calibration_seeds` days set the activation
   ranges (per-channel int8 weights, uint8 activations; :func:`harnet.onnx.int8.qdq_quantize`);
2. **per-layer sensitivity**: each convolution and linear layer is quantised alone and its label
   flips counted on another day (:attr:`Int8Recipe.sensitivity_seed`);
3. **mixed precision**: the most sensitive layers stay in fp32, a few more at a time, until the
   labels after the model's HMM agree with fp32 on >= 99.5 % of that day's windows and every
   class total is within 1 % (:data:`harnet.onnx.int8.MIN_LABEL_AGREEMENT`,
   :data:`~harnet.onnx.int8.MAX_TOTALS_REL_DIFF`);
4. **the gate**: the same rule on :attr:`Int8Recipe.validation_seeds` days, used for nothing
   above. A graph that fails is not written and :class:`~harnet.errors.HarnetError` says by how
   much (use fp32). A graph written by ``harnet export --int8`` (calibrated and checked on the
   user's own recordings) is used instead when present and passed.

The report (agreement before and after the HMM, class totals, layers kept in fp32, seeds) is in
the graph's metadata (``harnet_int8_check``) and in info.json (``model.int8``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import HarnetError

#: prepared windows of a recording: (valid windows (N, 3, T), valid mask of every window)
Windows = Callable[[Any], "tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True)
class Int8Recipe:
    """How the int8 graph is made (recorded in its metadata)."""

    calibration_seeds: tuple[int, ...] = (101, 102)
    sensitivity_seed: int = 103
    validation_seeds: tuple[int, ...] = (104, 105)
    hours: float = 24.0  # length of each generated day
    sample_rate: float = 100.0
    calibration_windows: int = 512
    sensitivity_windows: int = 512  # per-layer flips are counted on this many windows of the day
    calibrate_method: str = "minmax"
    step: int = 4  # layers moved to fp32 at a time
    probe_layers: bool = True  # False: no per-layer probes; layers go to fp32 input-first (tests)


DEFAULT_RECIPE = Int8Recipe()


def ensure_int8(model_dir: str | Path, *, config: Mapping[str, Any], windows: Windows,
                recipe: Int8Recipe | None = None, hmm: Any = None) -> Path:
    """The validated int8 graph of ``model_dir``'s weights: found, or made and cached.

    ``windows(recording)``: the recording's windows prepared as predict prepares them.
    ``hmm``: the model's :class:`harnet.hmm.HMM` (default: its ``hmm.json``, if any); the
    agreement rule is checked on labels after it. Raises :class:`HarnetError` when no int8
    graph of this model keeps the fp32 labels (nothing is written then). ``recipe``: default
    :data:`DEFAULT_RECIPE`.
    """
    from . import cachedirs
    from .arch import INT8_FILE
    from .modeldir import HMM_FILE
    from .onnx.export import ensure_onnx, writable_model_dir

    d = Path(model_dir)
    sha = str(config.get("weights_sha256", ""))
    for c in _candidates(d, sha):
        found = _valid_cached(c, sha)
        if found is not None:
            return found
    what = f"the int8 graph {INT8_FILE} of {d}"
    if writable_model_dir(d) or not sha:
        target = d / INT8_FILE
    else:
        name = config.get("provenance", {}).get("registry_name") or str(d)
        target = cachedirs.writable_root(what, name) / "onnx" / sha / INT8_FILE
    fp32 = ensure_onnx(d, "direct", config=config)
    if hmm is None and (d / HMM_FILE).is_file():
        from .hmm import HMM

        hmm = HMM.load(d / HMM_FILE)
    with cachedirs.building(target, what):
        found = _valid_cached(target, sha)
        if found is not None:
            return found
        print(f"harnet: making {what} (once per model; calibrated and checked on generated days)", file=sys.stderr)
        build_int8(fp32, target, windows=windows, recipe=recipe or DEFAULT_RECIPE, hmm=hmm)
    return target


def _candidates(d: Path, sha: str) -> list[Path]:
    from . import cachedirs
    from .arch import INT8_FILE

    return [d / INT8_FILE] + ([r / "onnx" / sha / INT8_FILE for r in cachedirs.roots()] if sha else [])


def _valid_cached(p: Path, sha: str) -> Path | None:
    from .onnx.export import onnx_metadata

    if not p.is_file():
        return None
    meta = onnx_metadata(p)
    try:
        check = json.loads(meta.get("harnet_int8_check", "{}"))
    except ValueError:
        return None
    return p if (not sha or meta.get("weights_sha256") == sha) and check.get("passed") is True else None


def generated_windows(seeds: Sequence[int], windows: Windows, recipe: Int8Recipe) -> list[tuple[np.ndarray, np.ndarray]]:
    """(valid windows, valid mask) of one generated day per seed (:func:`harnet.synth.day_pattern`)."""
    from .synth import day_pattern, scripted_recording

    out = []
    for s in seeds:
        rec = scripted_recording(day_pattern(s, recipe.hours), fs=recipe.sample_rate, seed=s)
        out.append(windows(rec))
    return out


def smoothed_labels(probs: np.ndarray, valid: np.ndarray, hmm: Any) -> np.ndarray:
    """Labels of the valid windows after the HMM (argmax when ``hmm`` is None)."""
    raw = np.full(len(valid), -1, dtype=np.int64)
    raw[valid] = probs.argmax(1)
    return (hmm.smooth(raw, valid) if hmm is not None else raw)[valid]


def label_agreement(ref: Sequence[np.ndarray], got: Sequence[np.ndarray], n_classes: int) -> dict[str, float]:
    """``label_agreement`` and ``totals_rel_diff`` (the worst class of ``|n - n_fp32| / n_fp32``
    over the pooled windows, the denominator floored at 1 % of them) of label arrays, as
    :func:`harnet.onnx.int8.agreement` defines them for probabilities."""
    a = np.concatenate(list(ref)) if len(ref) else np.empty(0, np.int64)
    b = np.concatenate(list(got)) if len(got) else np.empty(0, np.int64)
    n = len(a)
    if n == 0:
        return {"label_agreement": float("nan"), "totals_rel_diff": float("nan"), "windows": 0.0}
    ca, cb = np.bincount(a, minlength=n_classes), np.bincount(b, minlength=n_classes)
    return {"label_agreement": float((a == b).mean()),
            "totals_rel_diff": float((np.abs(ca - cb) / np.maximum(ca, 0.01 * n)).max()), "windows": float(n)}


def compare_after_hmm(fp32: str | Path, q: str | Path, days: Sequence[tuple[np.ndarray, np.ndarray]],
                      hmm: Any, ref: Sequence[np.ndarray] | None = None) -> dict[str, float]:
    """fp32 against ``q`` on (windows, valid) days: labels after the HMM (and raw, ``raw_*``).
    ``ref``: fp32's probabilities of the days, when already computed."""
    from .onnx.int8 import agreement, run_graph

    X = [x for x, _ in days]
    ref = run_graph(fp32, X) if ref is None else ref
    got = run_graph(q, X)
    c = next((p.shape[1] for p in ref if p.ndim == 2 and p.shape[1]), 1)
    rep = label_agreement([smoothed_labels(p, v, hmm) for p, (_, v) in zip(ref, days)],
                          [smoothed_labels(p, v, hmm) for p, (_, v) in zip(got, days)], c)
    raw = agreement(ref, got)
    rep.update(raw_label_agreement=raw["label_agreement"], raw_totals_rel_diff=raw["totals_rel_diff"],
               max_prob_diff=raw["max_prob_diff"])
    return rep


def _passes(rep: Mapping[str, float]) -> bool:
    from .onnx.int8 import passes

    return passes(rep)


def layer_groups(nodes: Sequence[Any]) -> dict[str, list[str]]:
    """Each convolution / linear layer (by node name) with the nodes that feed it since the
    previous one (padding, ReLU, residual add, reshapes): a layer kept in fp32 then also gets
    its input in fp32, and quantising a layer alone quantises only what it reads."""
    groups: dict[str, list[str]] = {}
    pending: list[str] = []
    for n in nodes:  # ONNX graphs are topologically sorted
        pending.append(n.name)
        if n.op_type in ("Conv", "Gemm", "MatMul"):
            groups[n.name], pending = pending, []
    if pending and groups:
        groups[list(groups)[-1]] += pending
    return groups


def layer_sensitivity(fp32: str | Path, calibration: np.ndarray, windows: np.ndarray, groups: Mapping[str, list[str]],
                      *, calibrate_method: str = "minmax", ranges_cache: str | Path | None = None) -> dict[str, float]:
    """Share of ``windows`` whose label changes when only that layer (its group) is int8."""
    from .onnx.int8 import qdq_quantize, run_graph

    ref = run_graph(fp32, [windows])[0].argmax(1)
    out = {}
    with tempfile.TemporaryDirectory(prefix="harnet-int8-") as tmpd:
        trial = Path(tmpd) / "layer.onnx"
        for name, members in groups.items():
            qdq_quantize(fp32, trial, calibration, calibrate_method=calibrate_method, only=members, ranges_cache=ranges_cache)
            out[name] = float((run_graph(trial, [windows])[0].argmax(1) != ref).mean())
    return out


def build_int8(fp32: str | Path, target: str | Path, *, windows: Windows, recipe: Int8Recipe = DEFAULT_RECIPE,
               hmm: Any = None) -> dict[str, Any]:
    """Steps 1-4 of this module's recipe: write ``target`` and return its report, or raise."""
    import onnx

    from ._fileio import atomic_path
    from .onnx.int8 import MAX_TOTALS_REL_DIFF, MIN_LABEL_AGREEMENT, qdq_quantize, run_graph, stamp_int8

    fp32 = Path(fp32)
    cal = np.concatenate([x for x, _ in generated_windows(recipe.calibration_seeds, windows, recipe)])
    if len(cal) == 0:
        raise HarnetError("the generated calibration days hold no valid window for this model")
    cal = cal[np.linspace(0, len(cal) - 1, min(len(cal), recipe.calibration_windows)).round().astype(int)]
    (sens_day,) = generated_windows([recipe.sensitivity_seed], windows, recipe)
    groups = layer_groups(onnx.load(str(fp32), load_external_data=False).graph.node)
    layers = list(groups)
    with tempfile.TemporaryDirectory(prefix="harnet-int8-") as tmpd:
        tmp = Path(tmpd)
        ranges = tmp / "ranges.json"
        trial = tmp / "trial.onnx"
        # 2. per-layer sensitivity: flips on a spread of the sensitivity day's windows
        xs = sens_day[0]
        xs = xs[np.linspace(0, len(xs) - 1, min(len(xs), recipe.sensitivity_windows)).round().astype(int)]
        flips = {n: 0.0 for n in layers}
        if recipe.probe_layers:
            flips = layer_sensitivity(fp32, cal, xs, groups, calibrate_method=recipe.calibrate_method, ranges_cache=ranges)
        order = sorted(layers, key=lambda n: (-flips[n], layers.index(n)))
        # 3. the fewest sensitive layers in fp32 that keep the sensitivity day's labels
        kept: list[str] | None = None
        best: tuple[int, dict[str, float]] | None = None
        sens_ref = run_graph(fp32, [sens_day[0]])
        for k in range(0, len(layers), max(1, recipe.step)):
            qdq_quantize(fp32, trial, cal, calibrate_method=recipe.calibrate_method,
                         exclude=[m for n in order[:k] for m in groups[n]], ranges_cache=ranges)
            got = compare_after_hmm(fp32, trial, [sens_day], hmm, ref=sens_ref)
            if best is None or got["label_agreement"] > best[1]["label_agreement"]:
                best = (k, got)
            if _passes(got):
                kept = order[:k]
                break
        if kept is None:
            k_best, b = best if best is not None else (0, {"label_agreement": float("nan"), "totals_rel_diff": float("nan")})
            raise HarnetError(
                f"no int8 graph of this model keeps its fp32 labels: the best ({k_best} of {len(layers)} layers in fp32) "
                f"keeps {b['label_agreement']:.2%} after the HMM with class totals within {b['totals_rel_diff']:.2%} "
                f"(need {MIN_LABEL_AGREEMENT:.1%} and {MAX_TOTALS_REL_DIFF:.0%}); use --precision fp32"
            )
        # 4. the gate, on days used for nothing above
        val = generated_windows(recipe.validation_seeds, windows, recipe)
        rep: dict[str, Any] = compare_after_hmm(fp32, trial, val, hmm)
        rep.update(
            passed=_passes(rep), validated_on="generated days (harnet.synth), labels after the HMM",
            kept_fp32=kept, layers=len(layers), layer_flips={n: round(flips[n], 4) for n in order[: max(len(kept), 8)]},
            calibration_windows=int(len(cal)), recipe=asdict(recipe), hmm=hmm is not None,
        )
        if not rep["passed"]:
            raise HarnetError(
                f"the int8 graph disagrees with fp32 on held-out generated days: labels after the HMM agree on "
                f"{rep['label_agreement']:.2%} of {int(rep['windows'])} windows (need {MIN_LABEL_AGREEMENT:.1%}), "
                f"class totals differ by up to {rep['totals_rel_diff']:.2%} (limit {MAX_TOTALS_REL_DIFF:.0%}); "
                "use --precision fp32"
            )
        with atomic_path(Path(target)) as out:
            stamp_int8(trial, fp32, rep)
            Path(out).write_bytes(trial.read_bytes())
    return rep


def int8_report(path: str | Path) -> dict[str, Any]:
    """The check report embedded in an int8 graph (``harnet_int8_check``)."""
    from .onnx.export import onnx_metadata

    try:
        return dict(json.loads(onnx_metadata(Path(path)).get("harnet_int8_check", "{}")))
    except ValueError:
        return {}
