"""PyTorch backend: the reference path, and the one for GPUs.

Threads are set only for the duration of a call (``torch.set_num_threads`` inside a context that
restores the previous value), so using the backend leaves no global side effects.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import InputShapeError, ModelError

#: Batch size measured fastest on a 2-core AVX2 CPU (docs/performance.md).
DEFAULT_BATCH_SIZE = 64


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous value after."""
    import torch

    if not n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class TorchBackend:
    """``predict_proba(x) -> probs`` with the PyTorch network.

    ``model``: a model directory or an eval-mode :class:`harnet.model.Harnet`. ``device``: a
    torch device (default CPU). Eager mode under ``torch.inference_mode``; ``torch.jit``
    freezing was measured (docs/performance.md) and not kept.
    """

    def __init__(
        self,
        model: Any,
        *,
        threads: int | None = None,
        device: Any = None,
        batch_size: int | None = None,
    ) -> None:
        import torch

        if isinstance(model, (str, Path)):
            from ..modeldir import load_model_dir

            model = load_model_dir(model)
        if not hasattr(model, "config"):
            raise ModelError(f"{type(model).__name__} is not a harnet network or model directory")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model = model.to(self.device).eval()
        cfg = model.config
        self.labels: tuple[str, ...] = tuple(cfg.labels)
        self.window_sec = int(cfg.window_sec)
        self.sample_rate = int(cfg.sample_rate)
        self.input_length = int(cfg.input_length)
        self.threads = int(threads) if threads else None
        self.batch_size = int(batch_size) if batch_size else DEFAULT_BATCH_SIZE
        if self.batch_size < 1 or (self.threads is not None and self.threads < 1):
            raise ValueError("threads and batch_size must be positive")
        self.name = "torch"

    def __repr__(self) -> str:
        return f"TorchBackend(device={self.device}, threads={self.threads}, batch_size={self.batch_size}, name={self.name})"

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        """Logits float32 ``(N, C)`` for windows ``(N, 3, T)`` in g at 30 Hz."""
        import torch

        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != 3 or x.shape[2] != self.input_length:
            raise InputShapeError(
                f"the model expects windows of shape (N, 3, {self.input_length}) "
                f"({self.window_sec} s at {self.sample_rate} Hz), got {tuple(x.shape)}"
            )
        n = len(x)
        out = np.empty((n, len(self.labels) or self.model.config.num_classes), np.float32)
        with num_threads(self.threads), torch.inference_mode():
            for i in range(0, n, self.batch_size):
                xb = torch.from_numpy(x[i : i + self.batch_size]).to(self.device)
                out[i : i + len(xb)] = self.model(xb).float().cpu().numpy()
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities float32 ``(N, C)`` for windows ``(N, 3, T)`` in g at 30 Hz."""
        from .onnx_backend import softmax  # numpy only; no onnxruntime import

        return softmax(self.predict_logits(x))
