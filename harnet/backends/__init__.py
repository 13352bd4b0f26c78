"""Inference backends: one protocol, several engines.

Every backend has ``labels`` (tuple of class names), ``window_sec``, ``input_length`` (T),
``name`` and ``predict_proba(x)``: float32 windows ``(N, 3, T)`` in g at 30 Hz in, float32
softmax probabilities ``(N, C)`` out, batched internally (``batch_size``).

``get_backend(model_dir, backend=...)`` picks one:

- ``"torch"``: PyTorch (the reference; the one for GPUs, ``device="cuda"``);
- ``"onnx"``: ONNX Runtime fp32 on CPU, direct convolutions (``model.onnx``, exported on first
  use; matches PyTorch to ~1e-5);
- ``"onnx-winograd"``: ONNX Runtime fp32 with Winograd F(4, 5) convolutions
  (``model.winograd.onnx``, exported on first use and checked against the direct graph):
  the fastest fp32 path on CPU;
- ``"onnx-int8"``: ONNX Runtime on the int8 graph ``model.int8.onnx``, which only exists if it
  passed its agreement check against fp32 on real recordings (``harnet export --int8``);
- ``"auto"``: a GPU device -> torch; else, with onnxruntime installed, ``onnx-int8`` when the
  model directory holds a validated ``model.int8.onnx`` for its weights, otherwise
  ``onnx-winograd`` (``onnx`` for a bare ``.onnx`` file); without onnxruntime, torch.

Importing this package imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import HarnetError

BACKENDS = ("auto", "torch", "onnx", "onnx-winograd", "onnx-int8")


@runtime_checkable
class Backend(Protocol):
    labels: tuple[str, ...]
    window_sec: int
    input_length: int
    name: str
    batch_size: int

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def _onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(model_dir: str | Path, backend: str = "auto", device: Any = None) -> str:
    """The concrete backend name that ``get_backend`` would use (``auto`` resolved)."""
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
    if not _onnxruntime_available():
        return "torch"
    from .onnx_backend import find_int8

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

    ``backend``: one of :data:`BACKENDS` (see the module docstring for what ``auto`` picks).
    ``threads``: CPU threads (default: the CPUs this process may use); set per call, never
    globally. ``device``: a torch device for the torch backend. ``batch_size``: windows per
    inference call (default: the fastest measured for that backend).
    """
    name = resolve_backend(model_dir, backend, device)
    p = Path(model_dir)
    if name == "torch":
        if p.is_file():
            raise HarnetError(f"{p} is an ONNX file; the torch backend needs a model directory (use --backend onnx)")
        from .torch_backend import TorchBackend

        return TorchBackend(p, threads=threads, device=device, batch_size=batch_size)
    if not _onnxruntime_available():
        raise HarnetError("the ONNX backend needs onnxruntime: pip install onnxruntime (or use --backend torch)")
    from .onnx_backend import OnnxBackend

    if name == "onnx-winograd" and p.is_file():
        raise HarnetError(f"{p} is an exported graph; the Winograd graph is made from a model directory (use --backend onnx)")
    return OnnxBackend(
        p,
        precision="int8" if name == "onnx-int8" else "fp32",
        algorithm="winograd" if name == "onnx-winograd" else "direct",
        threads=threads,
        batch_size=batch_size,
    )


__all__ = ["BACKENDS", "Backend", "get_backend", "resolve_backend"]
