"""The Predictor: a model directory, its config, backend and HMM loaded once; recordings in,
prepared windows -> probabilities -> smoothed labels out.

Also the choice of backend for a model (:func:`resolve_backend`, :func:`get_backend`): the one
place that knows which file each backend runs (``harnet.onnx`` finds or exports the graphs; the
backends receive a path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backends import BACKENDS, Backend, onnxruntime_available
from .errors import HarnetError, ModelError


def resolve_backend(model_dir: str | Path, backend: str = "auto", device: Any = None) -> str:
    """The concrete backend name that :func:`get_backend` would use (``auto`` resolved).

    ``auto``: a GPU device -> torch; else, with onnxruntime installed, ``onnx-int8`` when the
    model directory holds a validated ``model.int8.onnx`` for its weights, otherwise
    ``onnx-winograd`` (``onnx`` for a bare ``.onnx`` file); without onnxruntime, torch.
    """
    if backend not in BACKENDS:
        raise HarnetError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    on_gpu = device is not None and str(device) != "cpu"
    if on_gpu and backend not in ("auto", "torch"):
        raise HarnetError(f"backend {backend!r} runs on the CPU only; use --backend torch with --device {device}")
    if backend != "auto":
        return backend
    if on_gpu:
        return "torch"
    p = Path(model_dir)
    if p.is_file() and p.suffix == ".onnx":
        return "onnx"
    if not onnxruntime_available():
        return "torch"
    from .onnx.int8 import find_int8

    return "onnx-int8" if p.is_dir() and find_int8(p) is not None else "onnx-winograd"


def get_backend(
    model_dir: str | Path,
    *,
    backend: str = "auto",
    threads: int | None = None,
    device: Any = None,
    batch_size: int | None = None,
) -> Backend:
    """A ready backend for a model directory (or, for the ONNX backends, an exported ``.onnx``).

    ``backend``: one of :data:`harnet.backends.BACKENDS` (see :func:`resolve_backend` for what
    ``auto`` picks). ``threads``: CPU threads (default: the CPUs this process may use); set per
    call, never globally. ``device``: a torch device for the torch backend. ``batch_size``:
    windows per inference call (default: the fastest measured for that backend). The ONNX graph
    of a model directory is exported on first use (:func:`harnet.onnx.export.ensure_onnx`).
    """
    name = resolve_backend(model_dir, backend, device)
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
    if name == "onnx-int8":
        from .arch import INT8_FILE
        q = p / INT8_FILE
        if not q.is_file():
            raise ModelError(
                f"{p} has no {INT8_FILE}; create it with `harnet export {p} --int8 --calibrate FILES` "
                "or use the fp32 backend"
            )
        return OnnxBackend(q, model_dir=p, threads=threads, batch_size=batch_size)
    from .onnx.export import ensure_onnx

    graph = ensure_onnx(p, "winograd" if name == "onnx-winograd" else "direct")
    return OnnxBackend(graph, model_dir=p, threads=threads, batch_size=batch_size)
