"""ONNX Runtime backend: the fast CPU path. Imports no torch when the ``.onnx`` file exists.

The session is configured explicitly (no reliance on ONNX Runtime's defaults, which differ
between versions): ``inter_op_num_threads`` = 1, sequential execution, all graph optimisations
(including the NCHWc layout the exported graph is shaped for), CPU provider.

Threads (default: the CPUs this process may run on) are used in one of two ways:

- ``parallel="requests"`` (the default with more than one thread): one session with a single
  intra-op thread, run concurrently on ``threads`` parts of each batch from a small pool of
  Python threads (``InferenceSession.run`` is thread-safe and releases the GIL). Each core then
  runs whole windows with no thread-pool synchronisation inside the many small operators
  (Winograd transforms, ReLU, residual adds): 15-25 % more windows/s than ``intra`` on 2 cores
  (docs/performance.md).
- ``parallel="intra"``: one session whose intra-op pool has ``threads`` threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputShapeError, ModelError

#: Batch size measured fastest on a 2-core AVX2 CPU (docs/performance.md); larger batches only
#: cost memory.
DEFAULT_BATCH_SIZE = 64


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def default_threads() -> int:
    """The number of CPUs this process may use (respects taskset / cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxBackend:
    """``predict_proba(x) -> probs`` with ONNX Runtime on CPU.

    ``model``: an exported ``.onnx`` file (labels and window come from its embedded metadata;
    :func:`harnet.onnx.export.ensure_onnx` finds or makes a model directory's). ``model_dir``: the
    model directory it was exported from, if any: the graph must then carry that directory's
    weights sha256 (``weights_sha256``: config.json's, when already read), and the weights file
    must still match it. An int8 graph (``model.int8.onnx``,
    written by ``harnet export --int8``) must have passed its agreement check on real recordings.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        model_dir: str | Path | None = None,
        weights_sha256: str | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        optimization: str = "all",
        parallel: str = "auto",
    ) -> None:
        import onnxruntime as ort

        onnx_path = Path(model)
        if onnx_path.is_dir() or not onnx_path.is_file():
            raise ModelError(
                f"{onnx_path}: no such .onnx file; the ONNX backend runs an exported graph "
                "(harnet.predictor.get_backend finds or exports a model directory's)"
            )
        self.threads = int(threads) if threads else default_threads()
        self.batch_size = int(batch_size) if batch_size else DEFAULT_BATCH_SIZE
        if self.threads < 1 or self.batch_size < 1:
            raise ValueError("threads and batch_size must be positive")
        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        if optimization not in levels:
            raise ValueError(f"optimization must be one of {', '.join(levels)}")
        if parallel not in ("auto", "intra", "requests"):
            raise ValueError(f"parallel must be 'auto', 'intra' or 'requests', got {parallel!r}")
        if parallel == "auto":
            parallel = "requests" if self.threads > 1 else "intra"
        self.parallel = parallel
        self._pool: Any = None  # created on first use (no threads at construction)
        self._pool_pid = 0
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1 if parallel == "requests" else self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = levels[optimization]
        so.log_severity_level = 3  # no warnings on stderr for every session
        try:
            self._session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for damaged files
            raise ModelError(f"cannot load {onnx_path} ({type(e).__name__}: {e}); delete it and export again") from None
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        if "harnet_config" not in meta:
            raise ModelError(f"{onnx_path} has no harnet metadata (labels, window); export it with `harnet export`")
        cfg = json.loads(meta["harnet_config"])
        if model_dir is not None:
            from ..modeldir import WEIGHTS, read_config, sha256_file

            d = Path(model_dir)
            own = str(read_config(d).get("weights_sha256", "")) if weights_sha256 is None else weights_sha256
            if own and meta.get("weights_sha256") != own:
                raise ModelError(f"{onnx_path} was exported from other weights than {d}; export it again")
            # the graph stands for the weights file: a changed or corrupted one is refused here too
            if own and (d / WEIGHTS).is_file() and sha256_file(d / WEIGHTS) != own:
                raise ModelError(
                    f"{d / WEIGHTS} does not match the sha256 in config.json: the weights were changed or "
                    "corrupted; fetch the model again"
                )
        graph = meta.get("harnet_graph", "")
        precision = "int8" if "int8" in graph else "fp32"
        if precision == "int8":
            check = json.loads(meta.get("harnet_int8_check", "{}"))
            if check.get("passed") is not True:
                raise ModelError(f"{onnx_path} did not pass its int8 agreement check; use the fp32 backend")
        self.meta = meta
        self.path = onnx_path
        self.config = cfg
        self.labels: tuple[str, ...] = tuple(cfg.get("labels", ()))
        self.window_sec = int(cfg["window_sec"])
        self.sample_rate = int(cfg.get("sample_rate", 30))
        self.input_length = self.window_sec * self.sample_rate
        self.name = "onnx-int8" if precision == "int8" else ("onnx-winograd" if "winograd" in graph else "onnx")
        self.precision = precision
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    def __repr__(self) -> str:
        return (f"OnnxBackend({self.path}, precision={self.precision}, threads={self.threads}, "
                f"parallel={self.parallel}, batch_size={self.batch_size})")

    def close(self) -> None:
        """Stop the worker threads of ``parallel="requests"`` (they also stop with the process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:  # pragma: no cover - best effort at garbage collection
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
        except Exception:
            pass

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {self._input: x})[0]

    def _check(self, x: Any) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != 3 or x.shape[2] != self.input_length:
            raise InputShapeError(
                f"the model expects windows of shape (N, 3, {self.input_length}) "
                f"({self.window_sec} s at {self.sample_rate} Hz), got {tuple(x.shape)}"
            )
        return x

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        """Logits float32 ``(N, C)`` for windows ``(N, 3, T)`` in g at 30 Hz."""
        x = self._check(x)
        n = len(x)
        if n == 0:
            return np.empty((0, len(self.labels)), np.float32)
        if self.parallel == "requests" and n > 1:
            # batch_size windows in flight in all: each run takes batch_size / threads of them,
            # and the pool hands the parts out as cores free up
            part = max(1, -(-min(self.batch_size, n) // self.threads))  # a short input still uses every thread
            mapper = self._executor().map
        else:
            part, mapper = self.batch_size, map
        ys = mapper(lambda i: self._run(x[i : i + part]), range(0, n, part))
        return np.concatenate(list(ys)).astype(np.float32, copy=False)

    def _executor(self) -> Any:
        """This process's worker threads for ``parallel="requests"`` (a forked child makes its own)."""
        if self._pool is None or self._pool_pid != os.getpid():
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="harnet-onnx")
            self._pool_pid = os.getpid()
        return self._pool

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities float32 ``(N, C)`` for windows ``(N, 3, T)`` in g at 30 Hz."""
        return softmax(self.predict_logits(x))
