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

import bz2
import collections
import gzip
import hashlib
import io
import lzma
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

import numpy as np

from .errors import ChecksumError, InputError, ModelError, UnsafePickleError

__all__ = ["convert", "read_bundle", "LICENCE", "STAND_IN_CLASSES"]

#: Licence of every published weight file harnet knows how to convert (not harnet's own licence).
LICENCE = "Oxford Academic Use Licence (non-commercial research only)"

#: The published asleep classifier predicts integer classes; their names, in index order
#: (reference.md section 2: index 0 light, 1 moderate-vigorous, 2 sedentary, 3 sleep).
ASLEEP_CLASS_NAMES: tuple[str, ...] = ("light", "moderate-vigorous", "sedentary", "sleep")

_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."  # pickle of torch's magic number
_ZIP_MAGIC = b"PK\x03\x04"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_PRETEXT_HEAD = re.compile(r"^[A-Za-z0-9_]+_h\.")  # aot_h., scale_h., permute_h., time_w_h.
_REFUSAL_HINT = "pickles can run code; harnet only converts the published bundles it knows"


# ---------------------------------------------------------------------------------------------
# Stand-ins for the upstream classes: they hold whatever state the pickle gives them and do
# nothing else (no methods are ever called on them besides storing that state).
# ---------------------------------------------------------------------------------------------
class _StandIn:
    """Inert holder for an upstream object's pickled state."""

    upstream: str = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["__args__"] = args
        if kwargs:
            self.__dict__["__kwargs__"] = kwargs

    def __setstate__(self, state: Any) -> None:
        slots = None
        if isinstance(state, tuple) and len(state) == 2 and (state[1] is None or isinstance(state[1], dict)):
            state, slots = state
        if isinstance(state, dict):
            for k, v in state.items():
                self.__dict__[str(k)] = v
        elif state is not None:
            self.__dict__["__state__"] = state
        if slots:
            for k, v in slots.items():
                self.__dict__[str(k)] = v

    def __repr__(self) -> str:
        return f"<stand-in for {self.upstream}>"


def _stand_in(module: str, name: str) -> type:
    return type(name, (_StandIn,), {"upstream": f"{module}.{name}", "__module__": __name__})


#: (module, class) of the upstream objects the converter represents by inert stand-ins. Only
#: ``models.SleepWindowSSL`` and ``stepcount.hmm_utils.HMMSmoother`` were seen in a real file
#: (the asleep bundle); the others are the class names the actinet and stepcount tools pickle.
STAND_IN_CLASSES: tuple[tuple[str, str], ...] = (
    ("models", "SleepWindowSSL"),
    ("asleep.models", "SleepWindowSSL"),
    ("stepcount.hmm_utils", "HMMSmoother"),
    ("stepcount.models", "StepCounter"),
    ("stepcount.models", "WalkDetectorSSL"),
    ("actinet.models", "ActivityClassifier"),
    ("actinet.hmm_utils", "HMMSmoother"),
)
_STAND_INS: dict[tuple[str, str], type] = {key: _stand_in(*key) for key in STAND_IN_CLASSES}


class _ArrayWrapper(_StandIn):
    """joblib's record that precedes an array written inline as raw bytes (see ``_read_inline``)."""

    upstream = "joblib.numpy_pickle.NumpyArrayWrapper"


# ---------------------------------------------------------------------------------------------
# Safe replacements for the few callables a published bundle needs.
# ---------------------------------------------------------------------------------------------
class _Storage:
    """A storage read from embedded bytes, held as a flat 1-D tensor."""

    __slots__ = ("flat",)

    def __init__(self, flat: Any) -> None:
        self.flat = flat


def _load_storage_from_bytes(b: Any) -> _Storage:
    """Stand-in for ``torch.storage._load_from_bytes``: ``torch.load`` with ``weights_only=True``."""
    import torch

    if not isinstance(b, (bytes, bytearray)):
        raise UnsafePickleError(f"embedded torch storage is {type(b).__name__}, not bytes; {_REFUSAL_HINT}")
    try:
        s = torch.load(io.BytesIO(bytes(b)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafePickleError(
            f"an embedded torch storage asked for something weights_only loading refuses ({_first_line(e)}); "
            f"{_REFUSAL_HINT}"
        ) from None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        if isinstance(s, torch.TypedStorage):
            flat = torch.empty(0, dtype=s.dtype).set_(s.untyped())
        elif isinstance(s, torch.UntypedStorage):
            flat = torch.empty(0, dtype=torch.uint8).set_(s)
        else:
            raise ModelError(f"embedded torch bytes hold a {type(s).__name__}, expected a storage")
    return _Storage(flat)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``, with the bounds checked first."""
    if not isinstance(storage, _Storage):
        raise UnsafePickleError(f"tensor rebuilt from a {type(storage).__name__}, not a storage; {_REFUSAL_HINT}")
    if not isinstance(offset, int) or offset < 0:
        raise ModelError(f"bad tensor storage offset {offset!r} in the pickle")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in size + stride):
        raise ModelError(f"bad tensor size/stride {size}/{stride} in the pickle")
    hooks = rest[1] if len(rest) > 1 else None
    if hooks:  # backward hooks would be callables; published bundles have none
        raise UnsafePickleError(f"a tensor in the pickle carries backward hooks; {_REFUSAL_HINT}")
    n = storage.flat.numel()
    last = offset + sum((s - 1) * st for s, st in zip(size, stride)) if all(size) else offset - 1
    if last >= n or (all(size) and n == 0):
        raise ModelError(f"tensor of size {size} at offset {offset} runs past its storage of {n} elements")
    return storage.flat.as_strided(size, stride, offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, *_: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter``: the plain tensor is enough."""
    import torch

    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"parameter rebuilt from a {type(data).__name__}; {_REFUSAL_HINT}")
    if backward_hooks:
        raise UnsafePickleError(f"a parameter in the pickle carries backward hooks; {_REFUSAL_HINT}")
    return data


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Stand-in for numpy's ``_reconstruct``: only plain ndarrays (their state follows via BUILD)."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"array subclass {subtype!r} in the pickle; {_REFUSAL_HINT}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for numpy's ``scalar``: numeric scalars from their raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"numpy scalar of dtype {dtype!r} in the pickle; {_REFUSAL_HINT}")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _codecs_encode(text: Any, encoding: str = "utf-8", *_: Any) -> bytes:
    """Stand-in for ``_codecs.encode`` (how protocol-2 pickles store bytes): latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode({encoding!r}) in the pickle; {_REFUSAL_HINT}")
    return text.encode("latin-1")


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    """Stand-in for ``copyreg._reconstructor`` (protocol < 2 objects): stand-in classes only."""
    if not (isinstance(cls, type) and issubclass(cls, _StandIn)) or base is not object or state is not None:
        raise UnsafePickleError(f"copyreg._reconstructor({cls!r}, {base!r}) in the pickle; {_REFUSAL_HINT}")
    return cls.__new__(cls)


def _torch_device(*args: Any) -> str:
    """Stand-in for ``torch.device``: only its name is kept."""
    if not all(isinstance(a, (str, int)) for a in args):
        raise UnsafePickleError(f"torch.device{args!r} in the pickle; {_REFUSAL_HINT}")
    return ":".join(str(a) for a in args)


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "list"): list,
        ("builtins", "dict"): dict,
        ("builtins", "tuple"): tuple,
        ("builtins", "bytearray"): bytearray,
        ("builtins", "complex"): complex,
        ("builtins", "object"): object,
        ("_codecs", "encode"): _codecs_encode,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy.core.multiarray", "scalar"): _np_scalar,
        ("numpy._core.multiarray", "scalar"): _np_scalar,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("torch", "device"): _torch_device,
        ("joblib.numpy_pickle", "NumpyArrayWrapper"): _ArrayWrapper,
    }
    table.update(_STAND_INS)
    return table


_ALLOWED = _allowed()
#: Types whose instances may receive state through the BUILD opcode.
_BUILDABLE = (_StandIn, np.ndarray, np.dtype, collections.OrderedDict)


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler, so BUILD can be intercepted
    """Unpickler that resolves globals only through :data:`_ALLOWED`.

    The pure-Python implementation is used because joblib streams need a hook right after an
    array-wrapper record is built (the array's bytes follow it in the stream), and because every
    opcode that could reach a callable goes through :meth:`find_class` or the overridden handlers.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO, source: str) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise UnsafePickleError(f"refusing to load {module}.{name} from {self._source}: {_REFUSAL_HINT}")
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"refusing a persistent reference ({str(pid)[:40]!r}) in {self._source}: {_REFUSAL_HINT}"
        )

    def _refuse_ext(self) -> None:
        raise UnsafePickleError(f"refusing an extension-registry reference in {self._source}: {_REFUSAL_HINT}")

    def _load_build(self) -> None:
        inst = self.stack[-2]
        if not isinstance(inst, _BUILDABLE):
            raise UnsafePickleError(
                f"refusing to set the state of a {type(inst).__module__}.{type(inst).__name__} "
                f"in {self._source}: {_REFUSAL_HINT}"
            )
        pickle._Unpickler.load_build(self)
        if isinstance(inst, _ArrayWrapper):
            self.stack[-1] = _read_inline(self, inst)

    dispatch[pickle.BUILD[0]] = _load_build
    for _op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_op[0]] = _refuse_ext
    del _op


class _Reader:
    """What a nested unpickler reads from: the outer unpickler's own (frame-aware) reads."""

    def __init__(self, outer: _SafeUnpickler) -> None:
        self.read = outer.read
        self.readline = outer.readline


def _read_inline(u: _SafeUnpickler, w: _ArrayWrapper) -> np.ndarray:
    """Read the array that joblib writes right after a wrapper record.

    Format, as files written by joblib show it: the wrapper's state gives ``shape``, ``order``
    (``C``/``F``), ``dtype``, ``allow_mmap`` and, in newer files, ``numpy_array_alignment_bytes``;
    when that key is present and ``allow_mmap`` is true, one byte follows giving a padding length,
    then that many padding bytes (so the data start on an aligned offset for memory mapping). Then come the raw bytes of the array in
    ``order``, or, for arrays of Python objects, a nested pickle of the array.
    """
    d = w.__dict__
    src = u._source
    sub, shape, order, dtype = d.get("subclass"), d.get("shape"), d.get("order", "C"), d.get("dtype")
    if sub is not np.ndarray:
        raise UnsafePickleError(f"joblib array of class {sub!r} in {src}: {_REFUSAL_HINT}")
    if not isinstance(dtype, np.dtype) or order not in ("C", "F"):
        raise ModelError(f"{src}: joblib array record with dtype {dtype!r}, order {order!r} is not understood")
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ModelError(f"{src}: joblib array record with shape {shape!r} is not understood") from None
    if any(s < 0 for s in shape):
        raise ModelError(f"{src}: joblib array record with negative shape {shape}")
    if d.get("allow_mmap") and d.get("numpy_array_alignment_bytes") is not None:
        pad = u.read(1)
        if len(pad) != 1 or len(u.read(pad[0])) != pad[0]:
            raise InputError(f"{src} ends inside an array's alignment padding; the file is truncated")
    if dtype.hasobject:
        arr = _SafeUnpickler(_Reader(u), src).load()  # type: ignore[arg-type]
        if not isinstance(arr, np.ndarray):
            raise ModelError(f"{src}: joblib object array holds a {type(arr).__name__}")
        return arr
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    raw = u.read(nbytes)
    if len(raw) != nbytes:
        raise InputError(f"{src} ends inside an array ({len(raw)} of {nbytes} bytes); the file is truncated")
    flat = np.frombuffer(raw, dtype=dtype, count=count).copy()
    if order == "F":
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


# ---------------------------------------------------------------------------------------------
# Reading sources
# ---------------------------------------------------------------------------------------------
def _sniff(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(16)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}; check the path") from None


def _open_decompressed(path: Path, head: bytes) -> BinaryIO:
    """The file, decompressed if it is xz/lzma, gzip or bz2 (told by its first bytes)."""
    if head.startswith(_XZ_MAGIC) or head[:1] == b"]":  # xz, or lzma 'alone' (joblib's .lzma)
        return lzma.open(path, "rb")  # type: ignore[return-value]
    if head.startswith(_GZIP_MAGIC):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if head.startswith(_BZ2_MAGIC):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _is_torch_file(head: bytes) -> bool:
    return head.startswith(_ZIP_MAGIC) or head.startswith(_TORCH_LEGACY_MAGIC)


def _unpickle(path: Path) -> Any:
    head = _sniff(path)
    if _is_torch_file(head):
        raise ModelError(f"{path} is a PyTorch checkpoint, not a pickled bundle; convert() reads it as one")
    try:
        with _open_decompressed(path, head) as f:
            return _SafeUnpickler(f, str(path)).load()
    except (UnsafePickleError, ModelError, InputError):
        raise
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise InputError(f"cannot read {path}: {_first_line(e)}; is it a complete, uncorrupted download?") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError,
            MemoryError, OverflowError) as e:
        raise ModelError(f"{path} is not a bundle harnet can read ({type(e).__name__}: {_first_line(e)})") from None


def _plain(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """Stand-ins to dicts (``__class__`` names the upstream class), containers walked."""
    memo = {} if memo is None else memo
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _StandIn):
        out: dict[str, Any] = {"__class__": obj.upstream}
        memo[key] = out
        for k, v in obj.__dict__.items():
            if k == "__args__" and not v:
                continue
            out[k] = _plain(v, memo)
        return out
    if isinstance(obj, dict):
        res: dict[Any, Any] = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        memo[key] = res
        for k, v in obj.items():
            res[k] = _plain(v, memo)
        return res
    if isinstance(obj, list):
        lst: list[Any] = []
        memo[key] = lst
        lst.extend(_plain(v, memo) for v in obj)
        return lst
    if isinstance(obj, tuple):
        return tuple(_plain(v, memo) for v in obj)
    return obj


def read_bundle(path: str | Path) -> dict[str, Any]:
    """Read a pickled classifier bundle without running any of its code.

    Returns plain Python: upstream objects become dicts whose ``"__class__"`` names the upstream
    class, tensors are ``torch.Tensor``, arrays ``numpy.ndarray``. A top-level value that is not
    an object or dict is returned as ``{"__value__": value}``. Raises
    :class:`~harnet.errors.UnsafePickleError` for anything outside the allow-list.
    """
    p = Path(path)
    try:
        obj = _plain(_unpickle(p))
    except RecursionError:
        raise ModelError(f"{p} is nested too deeply to be a published bundle") from None
    return obj if isinstance(obj, dict) else {"__value__": obj}


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------
def _digests(path: Path, algos: set[str]) -> dict[str, str]:
    """Hex digests of the file for each of ``algos`` (``sha256``, ``md5``, ``gitsha1``...)."""
    hs: dict[str, Any] = {}
    for a in algos:
        if a == "gitsha1":  # git's blob id: sha1 over a "blob <size>\0" header and the bytes
            h = hashlib.sha1()
            h.update(b"blob %d\0" % path.stat().st_size)
            hs[a] = h
        else:
            hs[a] = hashlib.new(a)
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            for h in hs.values():
                h.update(b)
    return {a: h.hexdigest() for a, h in hs.items()}


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
            f"({_first_line(e)}); {_REFUSAL_HINT}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise InputError(f"cannot read {path} as a PyTorch checkpoint: {_first_line(e)}") from None
    if isinstance(obj, Mapping) and not _is_tensor_map(obj):
        for key in ("state_dict", "model_state_dict", "model"):
            if _is_tensor_map(obj.get(key)):
                obj = obj[key]
                break
    if not _is_tensor_map(obj):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    return dict(obj)


def _provenance(path: Path, entry: Any, fmt: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    from . import __version__

    algo = getattr(entry, "checksum_algo", None) if entry is not None else None
    want = str(getattr(entry, "checksum", "") or "").lower() if entry is not None else ""
    digests = _digests(path, {"sha256"} | ({algo} if algo and want else set()))
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
    from .model import _WINDOW_SEC

    w = getattr(entry, "window_sec", None) if entry is not None else None
    if w is not None and int(w) != _WINDOW_SEC[arch]:
        raise ModelError(
            f"{path} holds a {arch} network ({_WINDOW_SEC[arch]}-s windows) but the registry entry "
            f"{getattr(entry, 'name', '?')} says {w}-s windows; is it the right file?"
        )


def _convert_checkpoint(path: Path, out: Path, entry: Any) -> Path:
    from .model import arch_from_state_dict, build
    from .modeldir import DEFAULT_PREPROCESSING, _load_strict, save_model_dir

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
    _load_strict(model, {**fe, **head}, source=str(path))
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


def _walk(obj: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """Every dict and list reachable from ``obj`` (tensors and arrays are leaves)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    if isinstance(obj, dict):
        seen.add(id(obj))
        yield obj
        for v in obj.values():
            yield from _walk(v, seen)
    elif isinstance(obj, (list, tuple)):
        seen.add(id(obj))
        for v in obj:
            yield from _walk(v, seen)


def _find_network(top: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the dict that holds the harnet state dict, the state dict with ``module.`` stripped)."""
    found: dict[int, tuple[dict[str, Any], Mapping[str, Any]]] = {}
    for d in _walk(top):
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
    for d in _walk(top):
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
    from .modeldir import DEFAULT_PREPROCESSING

    if fmt == "actinet-bundle":
        # actinet feeds unfiltered windows, each linearly resized to 30 Hz x window length
        # (reference.md section 3): no low-pass; harnet's linear resampling on timestamps gives the
        # same 30-Hz samples except at window edges.
        return {**DEFAULT_PREPROCESSING, "lowpass_hz": None, "resample": "linear"}
    # asleep's classifier was trained on calibrated data, non-wear removed, low-passed at 15-20 Hz
    # and resampled to 30 Hz (reference.md section 3): the field's default pipeline, lowpass 20 Hz.
    # stepcount's walking detector: reference.md documents nothing specific; the field default.
    return {**DEFAULT_PREPROCESSING, "lowpass_hz": 20.0, "resample": "linear"}


def _scalar_settings(d: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(k, str) and not k.startswith("__") and isinstance(v, (str, int, float, bool)):
            out[k] = v
    return out


def _convert_bundle(path: Path, out: Path, entry: Any) -> Path:
    import torch

    from .hmm import HMM
    from .model import _WINDOW_SEC, arch_from_state_dict, build
    from .modeldir import _load_strict, save_model_dir

    top = read_bundle(path)
    cls = str(top.get("__class__", type(top.get("__value__", top)).__name__))
    fmt = _bundle_format(cls, entry, path)
    holder, sd = _find_network(top, path)
    arch = arch_from_state_dict(sd)
    _check_entry_window(entry, arch, path)
    w = top.get("window_sec", holder.get("window_sec"))
    if isinstance(w, (int, float)) and int(w) != _WINDOW_SEC[arch]:
        raise ModelError(f"{path} says window_sec={w} but holds a {arch} network ({_WINDOW_SEC[arch]} s)")
    head = sd.get("classifier.linear2.weight")
    if head is None:
        raise ModelError(f"{path} has no classifier.linear2.weight; it is not a classifier bundle")
    n_out = int(head.shape[0])

    entry_names = tuple(getattr(entry, "labels", ()) or ()) if entry is not None else ()
    known = entry_names or (ASLEEP_CLASS_NAMES if fmt == "asleep-bundle" else ())
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
    _load_strict(model, {k: v.detach().to(torch.float32) if v.is_floating_point() else v for k, v in sd.items()},
                 source=str(path))
    settings = _scalar_settings(top)
    prov = _provenance(path, entry, f"{fmt} (pickle read with harnet's allow-listed unpickler)",
                       {"upstream_class": cls, "upstream_settings": settings})
    desc = getattr(entry, "description", "") or f"{arch} classifier converted from {path.name} ({cls})"
    return save_model_dir(
        model,
        out,
        preprocessing=_preprocessing(fmt),
        provenance=prov,
        description=desc,
        hmm=hmm,
        extra={"conversion": {"tensors_loaded": len(sd), "elements_loaded": int(sum(v.numel() for v in sd.values()))}},
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
    head = _sniff(path)
    created = not out.exists()
    try:
        if _is_torch_file(head):
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

