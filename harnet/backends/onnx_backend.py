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
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputShapeError, ModelError

#: Batch size measured fastest on a 2-core AVX2 CPU (docs/performance.md); larger batches only
#: cost memory.
DEFAULT_BATCH_SIZE = 64
FP32_FILES = {"direct": "model.onnx", "winograd": "model.winograd.onnx"}  # = harnet.export.ONNX_FILES
INT8_FILE = "model.int8.onnx"


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


def _onnx_meta(path: Path) -> dict[str, str]:
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # damaged or truncated file
        raise ModelError(f"cannot read {path} as ONNX ({type(e).__name__}); delete it and export again") from None
    return {e.key: e.value for e in m.metadata_props}


def _writable_model_dir(d: Path) -> bool:
    if not os.access(d, os.W_OK):
        return False
    try:  # never write into a Hugging Face snapshot (its files are links into a shared blob store)
        from ..hub import hf_cache_dir

        d.resolve().relative_to(hf_cache_dir().resolve())
        return False
    except (ValueError, OSError):
        return True


def ensure_onnx(model_dir: str | Path, algorithm: str = "direct") -> Path:
    """The fp32 graph of a model directory, exported first when missing or stale.

    ``algorithm``: ``"direct"`` (``model.onnx``) or ``"winograd"`` (``model.winograd.onnx``).

    Stale: its embedded ``weights_sha256`` differs from config.json's. Looked for in the model
    directory, then under ``onnx/<weights sha256>/`` in each cache root (:mod:`harnet.cachedirs`).
    The export is written into the model directory when that is writable (and not a Hugging Face
    snapshot), else into the first writable cache root, under a lock (jobs starting together
    export once) and by atomic rename. Exporting needs no torch.
    """
    from .. import cachedirs
    from ..modeldir import read_config

    d = Path(model_dir)
    cfg = read_config(d)
    sha = str(cfg.get("weights_sha256", ""))
    if algorithm not in FP32_FILES:
        raise ModelError(f"unknown algorithm {algorithm!r}; use one of {', '.join(FP32_FILES)}")
    name = FP32_FILES[algorithm]
    candidates = [d / name]
    if sha:
        candidates += [r / "onnx" / sha / name for r in cachedirs.roots()]
    for c in candidates:
        found = _usable_graph(c, sha, d)
        if found is not None:
            return found
    from ..export import export_onnx

    what = f"the ONNX graph {name} of {d}"
    if _writable_model_dir(d) or not sha:
        target = d / name
    else:  # a read-only folder (a shared cache) or a Hugging Face snapshot
        model = cfg.get("provenance", {}).get("registry_name") or str(d)
        target = cachedirs.writable_root(what, model) / "onnx" / sha / name
    with cachedirs.building(target, what):  # jobs starting together export once
        found = _usable_graph(target, sha, d)
        if found is not None:
            return found
        # compare with PyTorch only when torch is already loaded: the ONNX path stays torch-free
        return export_onnx(d, target, algorithm=algorithm, verify=True, compare_torch=sys.modules.get("torch") is not None)


def _usable_graph(c: Path, sha: str, d: Path) -> Path | None:
    """``c`` when it is an exported graph of the weights with sha256 ``sha``; None when absent or stale."""
    if not c.is_file():
        return None
    meta = _onnx_meta(c)
    if "harnet_config" not in meta:
        raise ModelError(f"{c} has no harnet metadata; delete it or export it again with `harnet export`")
    if not sha or meta.get("weights_sha256") == sha:
        return c
    if c.parent == d and not _writable_model_dir(d):
        raise ModelError(f"{c} was exported from other weights than {d / 'model.safetensors'}; export it again")
    return None


def find_int8(model_dir: str | Path) -> Path | None:
    """A validated int8 graph of this model directory's weights, or None."""
    from ..modeldir import read_config

    d = Path(model_dir)
    p = d / INT8_FILE
    if not p.is_file():
        return None
    meta = _onnx_meta(p)
    sha = str(read_config(d).get("weights_sha256", ""))
    try:
        check = json.loads(meta.get("harnet_int8_check", "{}"))
    except ValueError:
        return None
    if sha and meta.get("weights_sha256") != sha:
        return None
    return p if check.get("passed") is True else None


class OnnxBackend:
    """``predict_proba(x) -> probs`` with ONNX Runtime on CPU.

    ``model``: a model directory (``model.onnx`` is used, exported on first use if missing) or
    an exported ``.onnx`` file (labels and window come from its embedded metadata).
    ``precision``: ``"fp32"`` or ``"int8"`` (needs ``model.int8.onnx``, written by
    ``harnet export --int8`` after its agreement check on real recordings). ``algorithm`` (fp32):
    ``"direct"`` (``model.onnx``) or ``"winograd"`` (``model.winograd.onnx``, faster; see
    :func:`harnet.export.export_onnx`).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        precision: str = "fp32",
        algorithm: str = "direct",
        threads: int | None = None,
        batch_size: int | None = None,
        optimization: str = "all",
        parallel: str = "auto",
    ) -> None:
        import onnxruntime as ort

        p = Path(model)
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
        if p.is_dir():
            if precision == "int8":
                q = p / INT8_FILE
                if not q.is_file():
                    raise ModelError(
                        f"{p} has no {INT8_FILE}; create it with `harnet export {p} --int8 --calibrate FILES` "
                        "or use the fp32 backend"
                    )
                onnx_path = q
            else:
                onnx_path = ensure_onnx(p, algorithm)
        elif p.is_file():
            onnx_path = p
        else:
            raise ModelError(f"{p}: no such model directory or .onnx file")
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
        if p.is_dir():
            from ..modeldir import read_config

            own = str(read_config(p).get("weights_sha256", ""))
            if own and meta.get("weights_sha256") != own:
                raise ModelError(f"{onnx_path} was exported from other weights than {p}; export it again")
            # the graph stands for the weights file: a changed or corrupted one is refused here too
            from ..modeldir import WEIGHTS, sha256_file

            if own and (p / WEIGHTS).is_file() and sha256_file(p / WEIGHTS) != own:
                raise ModelError(
                    f"{p / WEIGHTS} does not match the sha256 in config.json: the weights were changed or "
                    "corrupted; fetch the model again"
                )
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
        graph = meta.get("harnet_graph", "")
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
