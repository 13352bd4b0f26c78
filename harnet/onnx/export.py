"""Export of a model directory (or an in-memory network) to ONNX, with checks and metadata; and
the one place that finds or makes the ``.onnx`` files of a model directory (:func:`ensure_onnx`).

The graph itself is built by :mod:`harnet.onnx.graph` (see there why it is written directly and
not traced); int8 lives in :mod:`harnet.onnx.int8`. The backends receive a file path from here and
never export anything themselves.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from .._fileio import atomic_path
from ..arch import ONNX_FILES
from ..errors import ModelError
from .graph import INPUT_NAME, OPSET, OUTPUT_NAME, build_graph, to_numpy

# ----------------------------------------------------------------------------------------------
# export of a model (directory, registry name, hf://, or an in-memory Harnet)


def model_source(model: Any) -> tuple[dict[str, Any], dict[str, Any], Path | None]:
    """(config dict, state dict of arrays, model directory or None) for any accepted model form."""
    if hasattr(model, "state_dict") and hasattr(model, "config"):  # a harnet.model.Harnet
        cfg = dict(getattr(model, "meta", None) or {})
        cfg.update(model.config.to_dict())
        cfg.pop("path", None)
        return cfg, {k: to_numpy(v) for k, v in model.state_dict().items()}, None
    d = _resolve_dir(model)
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from ..modeldir import WEIGHTS, read_config, sha256_file

    cfg = read_config(d)
    if cfg.get("kind") == "backbone":
        raise ModelError(f"{d} is a backbone without a trained head; export a classifier (fine-tune it first)")
    w = d / WEIGHTS
    if not w.is_file():
        raise ModelError(f"{d} lacks {WEIGHTS}; the model directory is incomplete")
    if cfg.get("weights_sha256") and sha256_file(w) != cfg["weights_sha256"]:
        raise ModelError(f"{w} does not match the sha256 in config.json: the weights were changed; fetch the model again")
    try:
        sd = load_file(str(w))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"cannot read {w}: {e}") from None
    return cfg, sd, d


def _check_weights_fit(cfg: Mapping[str, Any], sd: Mapping[str, Any], mdir: Path | None) -> None:
    """The downsample kernels tell the window the weights were made for (reference section 1):
    refuse a config.json that names another architecture (the graph would run, but be wrong)."""
    try:
        k1 = np.shape(sd["feature_extractor.layer1.5.kernel"])[-1]
        c5 = np.shape(sd["feature_extractor.layer5.3.kernel"])[0]
    except KeyError:
        return  # not harnet-shaped: build_graph names the missing tensor
    got = "harnet5" if c5 == 512 else ("harnet10" if k1 == 4 else "harnet30")
    if got != cfg.get("arch"):
        where = f"{mdir / 'model.safetensors'}" if mdir is not None else "the network's weights"
        raise ModelError(
            f"{where} holds {got} weights, but config.json says arch={cfg.get('arch')}, "
            f"window_sec={cfg.get('window_sec')}; restore config.json from the model's source"
        )


def _resolve_dir(model: Any) -> Path:
    p = Path(str(model)).expanduser()
    if p.is_dir():
        return p
    if isinstance(model, (str, Path)) and not str(model).endswith(".onnx"):
        from ..loading import resolve_model_dir  # registry name or hf://: may download

        return Path(resolve_model_dir(str(model)))
    raise ModelError(f"{model} is not a model directory, registry name or hf:// reference")


def metadata_for(cfg: Mapping[str, Any], *, graph: str) -> dict[str, str]:
    """The ONNX metadata harnet writes: the whole config.json plus a few flat keys."""
    cfg = {k: v for k, v in cfg.items() if k != "path"}
    return {
        "harnet_config": json.dumps(cfg, sort_keys=True),
        "harnet_version": __version__,
        "harnet_graph": graph,
        "arch": str(cfg.get("arch", "")),
        "labels": json.dumps(list(cfg.get("labels", []))),
        "window_sec": str(cfg.get("window_sec", "")),
        "sample_rate": str(cfg.get("sample_rate", 30)),
        "weights_sha256": str(cfg.get("weights_sha256", "")),
    }


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """The harnet config embedded in an exported ONNX file (without loading the weights)."""
    import onnx

    p = Path(onnx_path)
    try:
        m = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # onnx raises several types for a damaged file
        raise ModelError(f"cannot read {p} as ONNX ({type(e).__name__}: {e}); export it again") from None
    meta = {e.key: e.value for e in m.metadata_props}
    if "harnet_config" not in meta:
        raise ModelError(f"{p} has no harnet metadata; export it with `harnet export`")
    out = json.loads(meta["harnet_config"])
    out["_onnx_metadata"] = meta
    return out


def set_metadata(model: Any, meta: Mapping[str, str]) -> None:
    del model.metadata_props[:]
    for k, v in meta.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v


#: Largest logit difference accepted at export: exact-order rounding for the direct graph;
#: Winograd rounds differently (its transforms grow rounding by ~10x), still far below any label change.
TOLERANCE = {"direct": 1e-4, "winograd": 1e-3}


def export_onnx(
    model: Any,
    path: str | Path | None = None,
    *,
    opset: int = OPSET,
    algorithm: str = "direct",
    fold: bool = True,
    verify: bool = True,
    compare_torch: bool | None = None,
    tolerance: float | None = None,
) -> Path:
    """Export a harnet network to ONNX and return the file written.

    ``model``: a :class:`harnet.model.Harnet`, a model directory, a registry name or
    ``hf://org/repo[@rev]``. ``path``: the ``.onnx`` file to write; default: inside the model
    directory, ``model.onnx`` (``model.winograd.onnx`` for ``algorithm="winograd"``), or, when that
    folder is read-only or a Hugging Face snapshot, harnet's cache under the weights' sha256 (where
    the ONNX backend finds it); required for an in-memory network. The graph: input ``x`` float32 ``(batch, 3, T)``, output ``logits``
    ``(batch, classes)``, dynamic batch axis, opset ``opset`` (>= 17), checked with
    ``onnx.checker``; the model's config.json (labels, window, sample rate, preprocessing,
    provenance) is embedded as metadata ``harnet_config``.

    ``algorithm``: ``"direct"`` convolutions (the reference graph) or ``"winograd"`` (F(4, 5):
    fewer multiplications, same fp32 arithmetic, slightly different rounding; see
    docs/performance.md). ``verify=True`` runs the graph in ONNX Runtime on gravity-like windows:
    the logits must be finite; a Winograd graph must match the direct graph; with
    ``compare_torch`` (default: when torch is importable) the graph must match the PyTorch
    network. The largest absolute logit difference allowed is ``tolerance`` (default
    :data:`TOLERANCE`) for logits up to 10 in magnitude, and in proportion for larger ones
    (float32 rounding grows with the values); else :class:`ModelError` and nothing is
    written. The differences found are recorded in the metadata (``harnet_check``). Exporting
    itself needs no torch.
    """
    if opset < 17:
        raise ModelError(f"opset {opset} is too old; harnet exports opset 17 or newer")
    if algorithm not in ONNX_FILES:
        raise ModelError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ONNX_FILES)}")
    cfg, sd, mdir = model_source(model)
    _check_weights_fit(cfg, sd, mdir)
    if path is None:
        if mdir is None:
            raise ModelError("give a path for the .onnx file (an in-memory network has no model directory)")
        path = mdir / ONNX_FILES[algorithm]
        if not writable_model_dir(mdir) and cfg.get("weights_sha256"):
            # a read-only folder or a Hugging Face snapshot: the first writable cache root, keyed by the weights
            from .. import cachedirs

            name = cfg.get("provenance", {}).get("registry_name") or str(mdir)
            root = cachedirs.writable_root(f"the ONNX graph of {mdir}", name)
            path = root / "onnx" / str(cfg["weights_sha256"]) / ONNX_FILES[algorithm]
    path = Path(path)
    labels = list(cfg.get("labels", []))
    num_classes = int(cfg.get("num_classes", len(labels)))
    proto = build_graph(sd, cfg["arch"], num_classes, fold=fold, opset=opset, algorithm=algorithm)
    meta = metadata_for(cfg, graph=f"harnet-fp32-{algorithm}" + ("" if fold else "-unfolded"))
    if verify:
        tol = TOLERANCE[algorithm] if tolerance is None else float(tolerance)
        check = _verify(proto, sd, cfg, num_classes, tol, compare_torch, algorithm)
        meta["harnet_check"] = json.dumps(check, sort_keys=True)
    set_metadata(proto, meta)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return path


def _check_windows(T: int, n: int = 4) -> np.ndarray:
    """Gravity-like windows: a unit vector per window plus movement, the range the network sees."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal((n, 3, 1))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return (g + rng.standard_normal((n, 3, T)) * 0.3).astype(np.float32)


def _ort_logits(proto: Any, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # quick to build
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _verify(
    proto: Any,
    sd: Mapping[str, np.ndarray],
    cfg: Mapping[str, Any],
    num_classes: int,
    tol: float,
    compare_torch: bool | None,
    algorithm: str,
) -> dict[str, Any]:
    T = int(cfg["window_sec"]) * int(cfg.get("sample_rate", 30))
    x = _check_windows(T)
    got = _ort_logits(proto, x)
    if not np.all(np.isfinite(got)):
        raise ModelError("the exported graph gives non-finite logits; the weights may be damaged")
    check: dict[str, Any] = {"windows": int(len(x)), "tolerance": tol}
    refs: list[tuple[str, np.ndarray]] = []
    if algorithm != "direct":
        refs.append(("direct_graph", _ort_logits(build_graph(sd, cfg["arch"], num_classes), x)))
    if compare_torch is not False:
        try:
            import torch
        except ImportError:  # torch-free install: the graph was checked, the comparison needs torch
            if compare_torch:
                raise ModelError("comparing the export with PyTorch needs torch; install it or pass compare_torch=False") from None
        else:
            from ..model import Harnet, HarnetConfig

            labels = tuple(cfg.get("labels", []))
            net = Harnet(HarnetConfig(arch=cfg["arch"], window_sec=int(cfg["window_sec"]),
                                      num_classes=num_classes, labels=labels))
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=True)
            with torch.inference_mode():
                refs.append(("torch", net.eval()(torch.from_numpy(x)).numpy()))
    for name, ref in refs:
        err = float(np.abs(got - ref).max())
        check[f"max_abs_logit_diff_vs_{name}"] = err
        # rounding differences scale with the logits (random-weight networks reach |logit| ~ 40);
        # a real exporter bug is off by O(0.1) relative, far above this
        allowed = tol * max(1.0, float(np.abs(ref).max()) / 10.0)
        if err > allowed:
            raise ModelError(
                f"the exported {algorithm} graph differs from the {name.replace('_', ' ')} by {err:.2e} "
                f"(> {allowed:.2g}); this is a bug in harnet's exporter: please report it"
            )
    return check


# ----------------------------------------------------------------------------------------------
# the .onnx files of a model directory


def onnx_metadata(path: Path) -> dict[str, str]:
    """The metadata of an ``.onnx`` file (without loading its weights)."""
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # damaged or truncated file
        raise ModelError(f"cannot read {path} as ONNX ({type(e).__name__}); delete it and export again") from None
    return {e.key: e.value for e in m.metadata_props}


def writable_model_dir(d: Path) -> bool:
    """Whether harnet may write exported graphs into model directory ``d``."""
    if not os.access(d, os.W_OK):
        return False
    try:  # never write into a Hugging Face snapshot (its files are links into a shared blob store)
        from ..hub import hf_cache_dir

        d.resolve().relative_to(hf_cache_dir().resolve())
        return False
    except (ValueError, OSError):
        return True


def onnx_candidates(model_dir: str | Path, algorithm: str = "direct", *, config: Mapping[str, Any] | None = None) -> list[Path]:
    """Where the fp32 graph of a model directory may be, in the order they are tried: the model
    directory, then each cache root (:mod:`harnet.cachedirs`: a shared, perhaps read-only, cache
    first) under the weights' sha256. ``config``: its config.json, when already read."""
    from ..modeldir import read_config

    d = Path(model_dir)
    cfg = read_config(d) if config is None else config
    sha = str(cfg.get("weights_sha256", ""))
    if algorithm not in ONNX_FILES:
        raise ModelError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ONNX_FILES)}")
    name = ONNX_FILES[algorithm]
    candidates = [d / name]
    if sha:
        from .. import cachedirs

        candidates += [r / "onnx" / sha / name for r in cachedirs.roots()]
    return candidates


def ensure_onnx(model_dir: str | Path, algorithm: str = "direct", *, config: Mapping[str, Any] | None = None) -> Path:
    """The fp32 graph of a model directory, exported first when missing or stale.

    ``algorithm``: ``"direct"`` (``model.onnx``) or ``"winograd"`` (``model.winograd.onnx``).
    ``config``: the directory's config.json, when already read.

    Stale: its embedded ``weights_sha256`` differs from config.json's. The export is written into
    the model directory when that is writable (and not a Hugging Face snapshot), else into the
    first writable cache root (:mod:`harnet.cachedirs`) under the weights' sha256, under a lock
    (jobs starting together export once) and by atomic rename. Exporting needs no torch.
    """
    from .. import cachedirs
    from ..modeldir import read_config

    d = Path(model_dir)
    cfg = read_config(d) if config is None else config
    sha = str(cfg.get("weights_sha256", ""))
    for c in onnx_candidates(d, algorithm, config=cfg):
        found = _usable_graph(c, sha, d)
        if found is not None:
            return found
    name = ONNX_FILES[algorithm]
    what = f"the ONNX graph {name} of {d}"
    if writable_model_dir(d) or not sha:
        target = d / name
    else:  # a read-only folder (a shared cache) or a Hugging Face snapshot
        model = cfg.get("provenance", {}).get("registry_name") or str(d)
        target = cachedirs.writable_root(what, model) / "onnx" / sha / name
    with cachedirs.building(target, what):
        found = _usable_graph(target, sha, d)  # another process exported it while this one waited
        if found is not None:
            return found
        # compare with PyTorch only when torch is already loaded: the ONNX path stays torch-free
        return export_onnx(d, target, algorithm=algorithm, verify=True, compare_torch=sys.modules.get("torch") is not None)


def _usable_graph(c: Path, sha: str, d: Path) -> Path | None:
    """``c`` when it is an exported graph of the weights with sha256 ``sha``; None when absent or stale."""
    if not c.is_file():
        return None
    meta = onnx_metadata(c)
    if "harnet_config" not in meta:
        raise ModelError(f"{c} has no harnet metadata; delete it or export it again with `harnet export`")
    if not sha or meta.get("weights_sha256") == sha:
        return c
    if c.parent == d and not writable_model_dir(d):
        raise ModelError(f"{c} was exported from other weights than {d / 'model.safetensors'}; export it again")
    return None
