"""The allow-listed unpickler: read the pickled classifier bundles of the asleep, actinet and
stepcount tools without running any of their code.

The unpickler never imports the upstream packages and never calls anything outside a short list
of harmless constructors: upstream classes become inert stand-ins, torch storages embedded in the
pickle are read with ``weights_only=True``, and the numpy arrays that joblib writes inline after
its array-wrapper records are read as raw bytes. Anything else stops the reading with
:class:`~harnet.errors.UnsafePickleError`; nothing of the file is executed. This is the only
module of harnet that unpickles anything (tests/test_reliability_safety.py checks that).
"""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import lzma
import pickle
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import InputError, ModelError, UnsafePickleError
from .actinet import ACTINET_STAND_INS
from .stepcount import STEPCOUNT_STAND_INS

_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."  # pickle of torch's magic number
_ZIP_MAGIC = b"PK\x03\x04"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
#: The end of every refusal message.
REFUSAL_HINT = "pickles can run code; harnet only converts the published bundles it knows"


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


#: (module, class) of the upstream objects the converter represents by inert stand-ins: the
#: classes the asleep, stepcount and actinet tools pickle (stepcount's and
#: actinet's: :mod:`harnet.convert.stepcount`, :mod:`harnet.convert.actinet`).
STAND_IN_CLASSES: tuple[tuple[str, str], ...] = (
    ("models", "SleepWindowSSL"),
    ("asleep.models", "SleepWindowSSL"),
    *STEPCOUNT_STAND_INS,
    *ACTINET_STAND_INS,
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
        raise UnsafePickleError(f"embedded torch storage is {type(b).__name__}, not bytes; {REFUSAL_HINT}")
    try:
        s = torch.load(io.BytesIO(bytes(b)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafePickleError(
            f"an embedded torch storage asked for something weights_only loading refuses ({first_line(e)}); "
            f"{REFUSAL_HINT}"
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
        raise UnsafePickleError(f"tensor rebuilt from a {type(storage).__name__}, not a storage; {REFUSAL_HINT}")
    if not isinstance(offset, int) or offset < 0:
        raise ModelError(f"bad tensor storage offset {offset!r} in the pickle")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in size + stride):
        raise ModelError(f"bad tensor size/stride {size}/{stride} in the pickle")
    hooks = rest[1] if len(rest) > 1 else None
    if hooks:  # backward hooks would be callables; published bundles have none
        raise UnsafePickleError(f"a tensor in the pickle carries backward hooks; {REFUSAL_HINT}")
    n = storage.flat.numel()
    last = offset + sum((s - 1) * st for s, st in zip(size, stride)) if all(size) else offset - 1
    if last >= n or (all(size) and n == 0):
        raise ModelError(f"tensor of size {size} at offset {offset} runs past its storage of {n} elements")
    return storage.flat.as_strided(size, stride, offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, *_: Any) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter``: the plain tensor is enough."""
    import torch

    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"parameter rebuilt from a {type(data).__name__}; {REFUSAL_HINT}")
    if backward_hooks:
        raise UnsafePickleError(f"a parameter in the pickle carries backward hooks; {REFUSAL_HINT}")
    return data


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Stand-in for numpy's ``_reconstruct``: only plain ndarrays (their state follows via BUILD)."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"array subclass {subtype!r} in the pickle; {REFUSAL_HINT}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for numpy's ``scalar``: numeric scalars from their raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"numpy scalar of dtype {dtype!r} in the pickle; {REFUSAL_HINT}")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _codecs_encode(text: Any, encoding: str = "utf-8", *_: Any) -> bytes:
    """Stand-in for ``_codecs.encode`` (how protocol-2 pickles store bytes): latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode({encoding!r}) in the pickle; {REFUSAL_HINT}")
    return text.encode("latin-1")


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    """Stand-in for ``copyreg._reconstructor`` (protocol < 2 objects): stand-in classes only."""
    if not (isinstance(cls, type) and issubclass(cls, _StandIn)) or base is not object or state is not None:
        raise UnsafePickleError(f"copyreg._reconstructor({cls!r}, {base!r}) in the pickle; {REFUSAL_HINT}")
    return cls.__new__(cls)


def _torch_device(*args: Any) -> str:
    """Stand-in for ``torch.device``: only its name is kept."""
    if not all(isinstance(a, (str, int)) for a in args):
        raise UnsafePickleError(f"torch.device{args!r} in the pickle; {REFUSAL_HINT}")
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
            raise UnsafePickleError(f"refusing to load {module}.{name} from {self._source}: {REFUSAL_HINT}")
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"refusing a persistent reference ({str(pid)[:40]!r}) in {self._source}: {REFUSAL_HINT}"
        )

    def _refuse_ext(self) -> None:
        raise UnsafePickleError(f"refusing an extension-registry reference in {self._source}: {REFUSAL_HINT}")

    def _load_build(self) -> None:
        inst = self.stack[-2]
        if not isinstance(inst, _BUILDABLE):
            raise UnsafePickleError(
                f"refusing to set the state of a {type(inst).__module__}.{type(inst).__name__} "
                f"in {self._source}: {REFUSAL_HINT}"
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
        raise UnsafePickleError(f"joblib array of class {sub!r} in {src}: {REFUSAL_HINT}")
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


def first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


# ---------------------------------------------------------------------------------------------
# Reading sources
# ---------------------------------------------------------------------------------------------
def sniff(path: Path) -> bytes:
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


def is_torch_file(head: bytes) -> bool:
    return head.startswith(_ZIP_MAGIC) or head.startswith(_TORCH_LEGACY_MAGIC)


def _unpickle(path: Path) -> Any:
    head = sniff(path)
    if is_torch_file(head):
        raise ModelError(f"{path} is a PyTorch checkpoint, not a pickled bundle; convert() reads it as one")
    try:
        with _open_decompressed(path, head) as f:
            return _SafeUnpickler(f, str(path)).load()
    except (UnsafePickleError, ModelError, InputError):
        raise
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise InputError(f"cannot read {path}: {first_line(e)}; is it a complete, uncorrupted download?") from None
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError,
            MemoryError, OverflowError) as e:
        raise ModelError(f"{path} is not a bundle harnet can read ({type(e).__name__}: {first_line(e)})") from None


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
