"""Turn published checkpoints and classifier bundles into harnet model directories, safely.

Two kinds of source are understood:

- **SSL checkpoints** (``.mdl``/``.pt``/``.pth``, PyTorch zip or legacy format): a state dict saved
  from a DistributedDataParallel model. Keys lose their leading ``module.``; the four pretext heads
  (``aot_h``, ``scale_h``, ``permute_h``, ``time_w_h``) and any ``classifier.*`` are dropped; the 131
  feature-extractor tensors are loaded strictly and saved as a *backbone* model directory. The file
  is read with ``torch.load(..., weights_only=True)``.
- **Classifier bundles** (``.joblib.lzma``, ``.joblib``, ``.lzma``, ``.xz``, ``.gz``, ``.bz2``,
  ``.pkl``): pickled Python objects of the asleep, actinet and stepcount tools. They are read with
  an allow-listed unpickler that never imports the upstream packages and never calls anything
  outside a short list of harmless constructors: upstream classes become inert stand-ins, torch
  storages embedded in the pickle are read with ``weights_only=True``, and the numpy arrays that
  joblib writes inline after its array-wrapper records are read as raw bytes. Anything else stops
  the conversion with :class:`~harnet.errors.UnsafePickleError`; nothing of the file is executed.

The result is a harnet model directory (``config.json``, ``model.safetensors`` and, when the
bundle has one, ``hmm.json``); see :mod:`harnet.modeldir`.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .._fileio import file_digests
from ..errors import ChecksumError, InputError, ModelError, UnsafePickleError
from .actinet import hmm_settings, walk_dicts
from .safepickle import REFUSAL_HINT, first_line, is_torch_file, read_bundle, sniff
from .stepcount import PREPROCESSING as STEPCOUNT_PREPROCESSING
from .stepcount import WALK_CLASS_NAMES, step_parameters

#: Licence of every published weight file harnet knows how to convert (not harnet's own licence).
LICENCE = "Oxford Academic Use Licence (non-commercial research only)"

#: The published asleep classifier predicts integer classes; their names, in index order
#: (reference.md section 2: index 0 light, 1 moderate-vigorous, 2 sedentary, 3 sleep).
ASLEEP_CLASS_NAMES: tuple[str, ...] = ("light", "moderate-vigorous", "sedentary", "sleep")

_PRETEXT_HEAD = re.compile(r"^[A-Za-z0-9_]+_h\.")  # aot_h., scale_h., permute_h., time_w_h.

# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------
def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ModelError(f"{out} exists and is not empty; choose another --out or pass --force to overwrite")


def _strip_module(sd: Mapping[str, Any]) -> dict[str, Any]:
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def _is_tensor_map(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafePickleError(
            f"refusing to load {path}: it asks for something weights_only loading refuses "
            f"({first_line(e)}); {REFUSAL_HINT}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise InputError(f"cannot read {path} as a PyTorch checkpoint: {first_line(e)}") from None
    if isinstance(obj, Mapping) and not _is_tensor_map(obj):
        for key in ("state_dict", "model_state_dict", "model"):
            if _is_tensor_map(obj.get(key)):
                obj = obj[key]
                break
    if not _is_tensor_map(obj):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    return dict(obj)


def _provenance(path: Path, entry: Any, fmt: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    from .. import __version__

    algo = getattr(entry, "checksum_algo", None) if entry is not None else None
    want = str(getattr(entry, "checksum", "") or "").lower() if entry is not None else ""
    digests = file_digests(path, {"sha256"} | ({algo} if algo and want else set()))
    if algo and want and digests[algo] != want:
        raise ChecksumError(
            f"{path} has {algo} {digests[algo]}, but the published {getattr(entry, 'name', '?')} has {want}: "
            "it is not the published file; download it again"
        )
    urls = tuple(getattr(entry, "urls", ()) or ()) if entry is not None else ()
    prov: dict[str, Any] = {
        "source": urls[0] if urls else str(path),
        "source_file": str(path),
        "source_format": fmt,
        "sha256": digests["sha256"],
        "size": path.stat().st_size,
        "registry_name": getattr(entry, "name", None) if entry is not None else None,
        "checksum_algo": algo if want else "sha256",
        "checksum": want or digests["sha256"],
        "licence": (getattr(entry, "licence", None) if entry is not None else None) or LICENCE,
        "converted_by": "harnet.convert (allow-listed reader; no pickled code run)",
        "harnet_version": __version__,
    }
    prov.update(extra)
    return prov


def _check_entry_window(entry: Any, arch: str, path: Path) -> None:
    from ..arch import WINDOW_SEC

    w = getattr(entry, "window_sec", None) if entry is not None else None
    if w is not None and int(w) != WINDOW_SEC[arch]:
        raise ModelError(
            f"{path} holds a {arch} network ({WINDOW_SEC[arch]}-s windows) but the registry entry "
            f"{getattr(entry, 'name', '?')} says {w}-s windows; is it the right file?"
        )


def _convert_checkpoint(path: Path, out: Path, entry: Any) -> Path:
    from ..model import arch_from_state_dict, build
    from ..modeldir import DEFAULT_PREPROCESSING, load_strict, save_model_dir

    sd = _strip_module(_load_checkpoint(path))
    dropped = sorted({k.split(".", 1)[0] for k in sd if _PRETEXT_HEAD.match(k) or k.startswith("classifier.")})
    fe = {k: v for k, v in sd.items() if k.startswith("feature_extractor.")}
    other = [k for k in sd if k not in fe and k.split(".", 1)[0] not in dropped]
    if other:
        raise ModelError(
            f"{path} has {len(other)} keys that are neither the feature extractor nor pretext heads "
            f"(e.g. {other[0]}); it is not a harnet/ssl-wearables checkpoint"
        )
    arch = arch_from_state_dict(fe)
    _check_entry_window(entry, arch, path)
    model = build(arch)
    head = {k: v for k, v in model.state_dict().items() if k.startswith("classifier.")}
    load_strict(model, {**fe, **head}, source=str(path))
    elements = int(sum(v.numel() for v in fe.values()))
    prov = _provenance(path, entry, "ssl-wearables checkpoint (torch.load weights_only=True)", {})
    # The backbones were pre-trained on UK Biobank data prepared with the field's default pipeline
    # (calibrated, non-wear removed, 30 Hz); the same defaults are the sensible input for them.
    return save_model_dir(
        model,
        out,
        backbone_only=True,
        preprocessing=dict(DEFAULT_PREPROCESSING),
        provenance=prov,
        description=getattr(entry, "description", "") or f"{arch} self-supervised backbone converted from {path.name}",
        extra={"conversion": {"tensors_loaded": len(fe), "elements_loaded": elements, "dropped": dropped}},
    )


def _find_network(top: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the dict that holds the harnet state dict, the state dict with ``module.`` stripped)."""
    found: dict[int, tuple[dict[str, Any], Mapping[str, Any]]] = {}
    for d in walk_dicts(top):
        for v in d.values():
            if _is_tensor_map(v) and any(k.split("module.", 1)[-1].startswith("feature_extractor.") for k in v):
                found.setdefault(id(v), (d, v))
    if not found:
        raise ModelError(f"{path} holds no harnet network (no state dict with feature_extractor.* tensors)")
    if len(found) > 1:
        raise ModelError(f"{path} holds {len(found)} harnet networks; harnet converts bundles with one")
    holder, sd = next(iter(found.values()))
    return holder, _strip_module(sd)


_HMM_KEYS = (("startprob", "emissionprob", "transmat"), ("prior", "emission", "transition"))


def _find_hmm(top: dict[str, Any], path: Path) -> dict[str, Any] | None:
    found = []
    for d in walk_dicts(top):
        for keys in _HMM_KEYS:
            if all(k in d for k in keys):
                found.append({"prior": d[keys[0]], "emission": d[keys[1]], "transition": d[keys[2]],
                              "labels": d.get("labels")})
    if len(found) > 1:
        raise ModelError(f"{path} holds {len(found)} sets of HMM parameters; harnet converts bundles with one")
    return found[0] if found else None


def _as_label_list(v: Any) -> list[Any] | None:
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [x.item() if isinstance(x, np.generic) else x for x in v]
    return None


def _name_labels(codes: list[Any], names: tuple[str, ...] | None, what: str, path: Path) -> list[str]:
    if all(isinstance(c, str) for c in codes):
        return list(codes)
    if all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
        if names is None:
            raise ModelError(
                f"{path}: the {what} labels are integer codes {codes} and harnet has no names for them; "
                "pass the registry name (--name) of the published bundle"
            )
        if any(c < 0 or c >= len(names) for c in codes):
            raise ModelError(f"{path}: {what} label codes {codes} do not fit the {len(names)} known names")
        return [names[c] for c in codes]
    raise ModelError(f"{path}: {what} labels {codes!r} are neither names nor integer codes")


def _bundle_format(cls: str, entry: Any, path: Path) -> str:
    fmt = getattr(entry, "format", None) if entry is not None else None
    if fmt in ("asleep-bundle", "actinet-bundle", "stepcount-bundle"):
        return fmt
    if cls.endswith("SleepWindowSSL"):
        return "asleep-bundle"
    if cls.startswith("actinet."):
        return "actinet-bundle"
    if cls.startswith("stepcount."):
        return "stepcount-bundle"
    raise ModelError(f"{path} holds a {cls}, which is not a bundle harnet knows (asleep, actinet, stepcount)")


def _preprocessing(fmt: str) -> dict[str, Any]:
    from ..modeldir import DEFAULT_PREPROCESSING

    if fmt == "stepcount-bundle":
        # stepcount reads recordings with actipy: calibrated, non-wear removed, no low-pass,
        # nearest-neighbour resampling to 30 Hz (see .stepcount).
        return dict(STEPCOUNT_PREPROCESSING)
    if fmt == "actinet-bundle":
        # actinet feeds unfiltered windows, each linearly resized to 30 Hz x window length
        # (reference.md section 3): no low-pass; harnet's linear resampling on timestamps gives the
        # same 30-Hz samples except at window edges.
        return {**DEFAULT_PREPROCESSING, "lowpass_hz": None, "resample": "linear"}
    # asleep's classifier was trained on calibrated data, non-wear removed, low-passed at 15-20 Hz
    # and resampled to 30 Hz (reference.md section 3): the field's default pipeline, lowpass 20 Hz.
    return {**DEFAULT_PREPROCESSING, "lowpass_hz": 20.0, "resample": "linear"}


def _scalar_settings(d: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(k, str) and not k.startswith("__") and isinstance(v, (str, int, float, bool)):
            out[k] = v
    return out


def _convert_bundle(path: Path, out: Path, entry: Any) -> Path:
    import torch

    from ..hmm import HMM
    from ..arch import WINDOW_SEC
    from ..model import arch_from_state_dict, build
    from ..modeldir import STEPS_KEY, load_strict, save_model_dir, steps_config

    top = read_bundle(path)
    cls = str(top.get("__class__", type(top.get("__value__", top)).__name__))
    fmt = _bundle_format(cls, entry, path)
    extra: dict[str, Any] = {}
    if fmt == "stepcount-bundle":  # checked first: an unfitted step counter is no walking detector
        extra[STEPS_KEY] = steps_config(**step_parameters(top, path), source="stepcount bundle")
    holder, sd = _find_network(top, path)
    arch = arch_from_state_dict(sd)
    _check_entry_window(entry, arch, path)
    w = top.get("window_sec", holder.get("window_sec"))
    if isinstance(w, (int, float)) and int(w) != WINDOW_SEC[arch]:
        raise ModelError(f"{path} says window_sec={w} but holds a {arch} network ({WINDOW_SEC[arch]} s)")
    head = sd.get("classifier.linear2.weight")
    if head is None:
        raise ModelError(f"{path} has no classifier.linear2.weight; it is not a classifier bundle")
    n_out = int(head.shape[0])

    entry_names = tuple(getattr(entry, "labels", ()) or ()) if entry is not None else ()
    known = entry_names or {"asleep-bundle": ASLEEP_CLASS_NAMES, "stepcount-bundle": WALK_CLASS_NAMES}.get(fmt, ())
    names = known or None
    hmm_raw = _find_hmm(top, path)
    codes = _as_label_list(holder.get("labels")) or _as_label_list(top.get("labels"))
    if codes is None and hmm_raw is not None:
        codes = _as_label_list(hmm_raw["labels"])
    if codes is None:
        if names is None:
            raise ModelError(f"{path} stores no class labels; pass the registry name (--name) of the bundle")
        codes = list(range(len(names)))
    labels = _name_labels(codes, names, "output", path)
    if len(labels) != n_out or len(set(labels)) != n_out:
        raise ModelError(f"{path}: {n_out} network outputs but labels {labels}")
    if entry_names and all(isinstance(c, str) for c in codes) and tuple(labels) != entry_names:
        raise ModelError(
            f"{path} has labels {labels} but the registry entry {getattr(entry, 'name', '?')} says "
            f"{list(entry_names)}; the file and the registry disagree"
        )

    hmm = None
    if hmm_raw is not None:
        hl = _as_label_list(hmm_raw["labels"]) or codes
        hnames = _name_labels(hl, names, "HMM", path)
        if sorted(hnames) != sorted(labels):
            raise ModelError(f"{path}: HMM labels {hnames} differ from the network's {labels}")
        perm = [hnames.index(x) for x in labels]  # reorder the HMM to the network's output order
        arrs = {}
        for k in ("prior", "emission", "transition"):
            a = np.asarray(hmm_raw[k], dtype=np.float64)
            arrs[k] = a[perm] if a.ndim == 1 else a[np.ix_(perm, perm)] if a.ndim == 2 else a
        hmm = HMM(prior=arrs["prior"], emission=arrs["emission"], transition=arrs["transition"], labels=tuple(labels))

    model = build(arch, labels=labels)
    load_strict(model, {k: v.detach().to(torch.float32) if v.is_floating_point() else v for k, v in sd.items()},
                 source=str(path))
    settings = _scalar_settings(top)
    extra_prov: dict[str, Any] = {"upstream_class": cls, "upstream_settings": settings}
    if fmt == "actinet-bundle" and (flags := hmm_settings(top)):
        extra_prov["upstream_hmm"] = flags
    if fmt == "stepcount-bundle":
        extra_prov["upstream_walk_detector"] = _scalar_settings(holder)
    prov = _provenance(path, entry, f"{fmt} (pickle read with harnet's allow-listed unpickler)", extra_prov)
    desc = getattr(entry, "description", "") or f"{arch} classifier converted from {path.name} ({cls})"
    return save_model_dir(
        model,
        out,
        preprocessing=_preprocessing(fmt),
        provenance=prov,
        description=desc,
        hmm=hmm,
        extra={"conversion": {"tensors_loaded": len(sd), "elements_loaded": int(sum(v.numel() for v in sd.values()))},
               **extra},
    )


def convert(source: str | Path, out_dir: str | Path, *, entry: Any = None, overwrite: bool = False) -> Path:
    """Convert a published checkpoint or classifier bundle into a harnet model directory.

    Parameters
    ----------
    source:
        An ssl-wearables checkpoint (``.mdl``; PyTorch zip or legacy format) or a pickled bundle
        of the asleep, actinet or stepcount tools (``.joblib.lzma`` and the like). The kind is
        told from the file's first bytes, not its name.
    out_dir:
        Folder to write ``config.json``, ``model.safetensors`` and, when the bundle has an HMM,
        ``hmm.json``. It must be absent or empty unless ``overwrite``.
    entry:
        Optional registry entry (attributes ``name``, ``labels``, ``window_sec``, ``licence``,
        ``checksum_algo``, ``checksum``, ``urls``, ``format``): the file is checked against its
        published checksum, and its labels name integer class codes. Without it, files are
        assumed to be the published weights (their licence is recorded as :data:`LICENCE`).
    overwrite:
        Replace the files of an existing model directory.

    Returns the model directory. Nothing in the source is executed: see the module docstring.
    Raises :class:`~harnet.errors.UnsafePickleError` for a pickle that asks for anything
    outside the allow-list, :class:`~harnet.errors.ChecksumError` when ``entry`` is given and
    the file is not the published one, and other :class:`~harnet.errors.HarnetError` for files
    that are not understood.
    """
    path = Path(source).expanduser()
    out = Path(out_dir).expanduser()
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; give the downloaded weights file")
    _check_out_dir(out, overwrite)
    head = sniff(path)
    created = not out.exists()
    try:
        if is_torch_file(head):
            result = _convert_checkpoint(path, out, entry)
        else:
            result = _convert_bundle(path, out, entry)
    except BaseException:
        if created:  # a failed conversion (a full disk...) leaves no half-written model directory
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise
    stale = result / "model.onnx"  # an export of the previous weights would no longer match
    if overwrite and stale.exists():
        stale.unlink()
    return result

