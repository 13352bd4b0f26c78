"""The harnet model directory: the unit of exchange for trained and converted models.

A folder (or a Hugging Face repo with the same files) holding

- ``config.json``: architecture, window, sample rate, labels, the preprocessing the model
  expects, provenance (source, checksums, licence, harnet version) and the sha256 of the
  weights file;
- ``model.safetensors``: the state dict (plain tensors, no pickle);
- ``hmm.json`` (optional): HMM smoothing parameters, see :mod:`harnet.hmm`;
- ``model.onnx`` (optional): an ONNX export of the same network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ._fileio import atomic_path, atomic_write_text, file_digests
from .arch import WINDOW_SEC
from .errors import ModelError

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
HMM_FILE = "hmm.json"

#: What the published classifiers were trained with (the field's default pipeline).
DEFAULT_PREPROCESSING: dict[str, Any] = {
    "calibrate_gravity": True,
    "detect_nonwear": True,
    "lowpass_hz": 20.0,
    "resample": "linear",
}

#: config.json's ``"steps"`` key: the step counter a walking-detector model directory carries.
STEPS_KEY = "steps"
#: A walking detector's labels, in output order (stepcount's class 0 and 1).
WALK_LABELS: tuple[str, str] = ("not-walking", "walking")
#: The step counter of a walking detector trained by ``harnet train`` (docs/models.md says why):
#: stepcount's window threshold (4 steps per 10 s, its OxWalk training and published model), its
#: 5-Hz low-pass, and the peak parameters stepcount's own tests of its peak counter use (0.4 s,
#: 0.2 g; inside the bounds its fit searches). The same values as the step counter's defaults for
#: a model that carries none (``harnet.measures.steps.StepParams`` takes its defaults from here).
DEFAULT_STEP_PARAMS: dict[str, Any] = {
    "steptol": 4,
    "lowpass_hz": 5.0,
    "peak_distance_s": 0.4,
    "peak_prominence_g": 0.2,
}


def steps_config(
    *, steptol: int, lowpass_hz: float, peak_distance_s: float, peak_prominence_g: float, source: str,
    sample_rate: int = 30,
) -> dict[str, Any]:
    """The ``"steps"`` entry of a walking detector's config.json, checked.

    ``steptol``: a 10-s window with fewer steps counts as 0 steps (and not walking);
    ``lowpass_hz``: Butterworth low-pass of the step signal; ``peak_distance_s``: least time
    between two steps; ``peak_prominence_g``: least prominence of a step's peak; ``source``:
    where the values came from (``"stepcount bundle"``, ``"harnet train"``). Raises
    :class:`~harnet.errors.ModelError` for values the step counter cannot use.
    """
    if isinstance(steptol, bool) or int(steptol) != steptol or steptol < 0:
        raise ModelError(f"steps: steptol must be a whole number of steps >= 0, got {steptol!r}")
    vals = {"lowpass_hz": lowpass_hz, "peak_distance_s": peak_distance_s, "peak_prominence_g": peak_prominence_g}
    for k, v in vals.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < float(v) < float("inf")):
            raise ModelError(f"steps: {k} must be a positive number, got {v!r}")
    if float(lowpass_hz) >= sample_rate / 2:
        raise ModelError(f"steps: lowpass_hz {lowpass_hz} must be below the Nyquist frequency ({sample_rate / 2} Hz)")
    if not isinstance(source, str) or not source:
        raise ModelError("steps: source must name where the values came from")
    return {
        "steptol": int(steptol),
        "lowpass_hz": float(lowpass_hz),
        "peak_distance_s": float(peak_distance_s),
        "peak_prominence_g": float(peak_prominence_g),
        "source": source,
    }


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a whole file."""
    return file_digests(path, ("sha256",))["sha256"]


def read_config(model_dir: str | Path) -> dict[str, Any]:
    p = Path(model_dir) / CONFIG
    if not p.is_file():
        raise ModelError(f"{model_dir} is not a harnet model directory: {CONFIG} is missing")
    try:
        cfg = json.loads(p.read_text())
    except ValueError as e:
        raise ModelError(f"{p} is not valid JSON ({e}); restore it from the model's source") from None
    for key in ("arch", "window_sec", "labels"):
        if key not in cfg:
            raise ModelError(f"{p} lacks the field {key!r}; restore it from the model's source")
    # checked here, without torch, so that no backend runs windows of the wrong length
    want = WINDOW_SEC.get(cfg["arch"])
    if want is not None and cfg["window_sec"] != want:
        raise ModelError(
            f"{p} says arch={cfg['arch']} with window_sec={cfg['window_sec']}, but {cfg['arch']} takes "
            f"{want}-s windows; restore config.json from the model's source"
        )
    return cfg


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing a model expects (config.json ``preprocessing``), read in one place.

    A key missing from config.json takes the value every harnet path has always used for it:
    calibrate and detect non-wear, no low-pass, linear interpolation, no anti-alias cap.
    """

    calibrate_gravity: bool = True
    detect_nonwear: bool = True
    lowpass_hz: float | None = None
    resample: str = "linear"
    antialias: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Preprocessing":
        d = dict(d or {})
        return cls(
            calibrate_gravity=bool(d.get("calibrate_gravity", True)),
            detect_nonwear=bool(d.get("detect_nonwear", True)),
            lowpass_hz=d.get("lowpass_hz"),
            resample=str(d.get("resample", "linear")),
            antialias=bool(d.get("antialias", False)),
        )


@dataclass(frozen=True)
class ModelConfig:
    """A model directory's config.json, read once: typed fields plus the whole dict (``raw``)."""

    path: Path
    raw: Mapping[str, Any]
    kind: str
    arch: str
    window_sec: int
    labels: tuple[str, ...]
    weights_sha256: str
    preprocessing: Preprocessing

    @property
    def is_backbone(self) -> bool:
        return self.kind == "backbone"


def model_config(model_dir: str | Path) -> ModelConfig:
    """:func:`read_config` as a :class:`ModelConfig` (the same checks, one read of the file)."""
    cfg = read_config(model_dir)
    return ModelConfig(
        path=Path(model_dir),
        raw=cfg,
        kind=str(cfg.get("kind", "classifier")),
        arch=str(cfg["arch"]),
        window_sec=int(cfg["window_sec"]),
        labels=tuple(cfg["labels"]),
        weights_sha256=str(cfg.get("weights_sha256", "")),
        preprocessing=Preprocessing.from_dict(cfg.get("preprocessing")),
    )


def save_model_dir(
    model: Any,
    out_dir: str | Path,
    *,
    preprocessing: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    description: str = "",
    hmm: Any = None,
    extra: Mapping[str, Any] | None = None,
    backbone_only: bool = False,
) -> Path:
    """Write ``model`` (a :class:`harnet.model.Harnet`) as a model directory; atomic per file.

    ``backbone_only=True`` writes a backbone directory (``"kind": "backbone"``): only the
    ``feature_extractor.*`` tensors, no labels; loading it gives a fresh, untrained head.
    """
    from safetensors.torch import save_file

    from . import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = {
        k: v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
        if not backbone_only or k.startswith("feature_extractor.")
    }
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(sd, str(tmp), metadata={"format": "pt", "harnet_arch": model.config.arch})
    hmm = hmm if hmm is not None else getattr(model, "hmm", None)
    if backbone_only:
        hmm = None
    if hmm is not None:
        if tuple(hmm.labels) != tuple(model.config.labels):
            raise ModelError(f"hmm labels {hmm.labels} differ from the model's {model.config.labels}")
        hmm.save(out / HMM_FILE)
    elif (out / HMM_FILE).exists():
        (out / HMM_FILE).unlink()
    prov = dict(provenance or {})
    prov.setdefault("harnet_version", __version__)
    config = model.config.to_dict()
    if backbone_only:
        config.update(num_classes=0, labels=[])
    cfg = {
        "harnet_format": FORMAT_VERSION,
        "kind": "backbone" if backbone_only else "classifier",
        **config,
        "description": description,
        "preprocessing": dict(DEFAULT_PREPROCESSING if preprocessing is None else preprocessing),
        "provenance": prov,
        "weights_sha256": sha256_file(out / WEIGHTS),
        **dict(extra or {}),
    }
    atomic_write_text(out / CONFIG, json.dumps(cfg, indent=2) + "\n")
    return out


def load_model_dir(
    model_dir: str | Path, *, device: Any = None, verify: bool = True, num_classes: int | None = None
) -> Any:
    """Load a model directory into an eval-mode :class:`harnet.model.Harnet` (strict).

    A backbone directory (``"kind": "backbone"``) loads its feature extractor strictly and gets a
    fresh, untrained head of ``num_classes`` outputs (default 2). For a classifier directory,
    ``num_classes`` must be None or equal to its number of labels.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .hmm import HMM
    from .model import Harnet, HarnetConfig

    d = Path(model_dir)
    cfg = read_config(d)
    wpath = d / WEIGHTS
    if not wpath.is_file():
        raise ModelError(f"{d} lacks {WEIGHTS}; the model directory is incomplete")
    if verify and cfg.get("weights_sha256"):
        got = sha256_file(wpath)
        if got != cfg["weights_sha256"]:
            raise ModelError(
                f"{wpath} has sha256 {got[:12]}..., config.json says {cfg['weights_sha256'][:12]}...: "
                "the weights were changed or corrupted; fetch the model again"
            )
    backbone = cfg.get("kind") == "backbone"
    labels = () if backbone else tuple(cfg["labels"])
    n_cls = int(cfg.get("num_classes", len(labels)))
    if backbone:
        n_cls = 2 if num_classes is None else int(num_classes)
    elif num_classes is not None and int(num_classes) != n_cls:
        raise ModelError(
            f"{d} is a classifier with {n_cls} classes; num_classes={num_classes} does not fit. "
            "Use a backbone to train a new head"
        )
    config = HarnetConfig(
        arch=cfg["arch"],
        window_sec=int(cfg["window_sec"]),
        sample_rate=int(cfg.get("sample_rate", 30)),
        num_classes=n_cls,
        labels=labels,
    )
    model = Harnet(config)
    try:
        sd = load_file(str(wpath))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"cannot read {wpath}: {e}") from None
    if backbone:
        sd = {**{k: v for k, v in model.state_dict().items() if k.startswith("classifier.")}, **sd}
    load_strict(model, sd, source=str(wpath))
    hpath = d / HMM_FILE
    if hpath.is_file():
        model.hmm = HMM.load(hpath)
        if model.hmm.num_classes != config.num_classes:
            raise ModelError(
                f"{hpath} has {model.hmm.num_classes} classes but the model has {config.num_classes}; "
                "refit or remove hmm.json"
            )
    model.meta = cfg
    model.meta["path"] = str(d)
    if device is not None:
        model.to(device)
    return model.eval()


def load_strict(model: Any, sd: Mapping[str, Any], source: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if bad:
            k = bad[0]
            parts.append(f"{len(bad)} shape mismatches (e.g. {k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise ModelError(
            f"weights in {source} do not fit {model.config.arch} with {model.config.num_classes} classes: "
            + "; ".join(parts)
            + ". Check that config.json (arch, window_sec, labels) matches the weights"
        )
    model.load_state_dict(sd, strict=True)
