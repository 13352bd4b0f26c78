"""Inference backends: one protocol, several engines.

Every backend has ``labels`` (tuple of class names), ``window_sec``, ``input_length`` (T),
``name`` and ``predict_proba(x)``: float32 windows ``(N, 3, T)`` in g at 30 Hz in, float32
softmax probabilities ``(N, C)`` out, batched internally (``batch_size``).

Each backend is given the model file it runs (a model directory for torch, an ``.onnx`` file
for ONNX Runtime) and never exports or looks for files itself: :func:`harnet.predictor.get_backend`
picks one by name and :mod:`harnet.onnx.export` finds or makes the graph:

- ``"torch"``: PyTorch (the reference; the one for GPUs, ``device="cuda"``);
- ``"onnx"``: ONNX Runtime fp32 on CPU, direct convolutions (``model.onnx``, exported on first
  use; matches PyTorch to ~1e-5);
- ``"onnx-winograd"``: ONNX Runtime fp32 with Winograd F(4, 5) convolutions
  (``model.winograd.onnx``, exported on first use and checked against the direct graph):
  the fastest fp32 path on CPU;
- ``"onnx-int8"``: ONNX Runtime on the int8 graph ``model.int8.onnx`` (``harnet predict
  --precision int8``), which is only used if it passed its agreement check against fp32
  (made on first use by :func:`harnet.precision.ensure_int8`, or by ``harnet export --int8``);
- ``"auto"``: never a path that changes results: a GPU device -> torch; else, with
  onnxruntime installed, ``onnx-winograd`` (``onnx`` for a bare ``.onnx`` file); without
  onnxruntime, torch.

Importing this package imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib.util
from typing import Protocol, runtime_checkable

import numpy as np

BACKENDS = ("auto", "torch", "onnx", "onnx-winograd", "onnx-int8")
#: Arithmetic precisions of ``harnet predict --precision`` (fp32: exact, the default).
PRECISIONS = ("fp32", "int8")


@runtime_checkable
class Backend(Protocol):
    labels: tuple[str, ...]
    window_sec: int
    input_length: int
    name: str
    batch_size: int

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def onnxruntime_available() -> bool:
    """Whether onnxruntime is installed (found without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


__all__ = ["BACKENDS", "PRECISIONS", "Backend", "onnxruntime_available"]
