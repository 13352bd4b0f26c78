"""ONNX export of harnet networks, and int8 quantisation of the exported graph.

The graph is written directly with ``onnx.helper`` from the weights (a NumPy state dict), not by
tracing PyTorch: so exporting needs no torch (the ONNX backend can export a model directory on
first use in a torch-free install), the opset is pinned, and the graph has the layout that runs
fastest in ONNX Runtime on CPU. What differs from a plain trace, and why (measured in
``docs/performance.md``):

- the 1-D convolutions run as 2-D convolutions on ``(N, C, 1, T)``: ONNX Runtime's blocked
  NCHWc kernels apply only to 2-D convolutions (about 25 % faster on an AVX2 CPU);
- circular padding is a ``Concat`` of two 2-sample slices around the tensor (what PyTorch's
  circular mode means);
- batch norms are folded: a BN after a convolution into that convolution; a pre-activation BN
  ``relu(s * x + b)`` with ``s > 0`` into ``s * relu(x + b / s)``, where the shift ``b / s`` rides
  on the residual stream (as biases of the convolutions that write it) and the scale ``s`` folds
  into the weights of the convolution (or the anti-aliasing filter) that reads it. A channel with
  ``s <= 0`` keeps an explicit BatchNormalization. The network computes the same function; logits
  match PyTorch to about 1e-5.

The result has one input ``x`` float32 ``(batch, 3, T)`` and one output ``logits`` float32
``(batch, num_classes)``; the batch axis is dynamic, T is fixed. The model's config.json
(labels, window, sample rate, preprocessing, provenance) is embedded as metadata
(``harnet_config``), so a ``.onnx`` file is self-describing.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import __version__
from ._fileio import atomic_path
from .errors import HarnetError, InputError, ModelError

#: ONNX opset the graph is written for (>= 17 for the whole ecosystem we target).
OPSET = 17
INPUT_NAME = "x"
OUTPUT_NAME = "logits"
INT8_FILE = "model.int8.onnx"
#: Acceptance rule for a reduced-precision graph, checked on real recordings.
MIN_LABEL_AGREEMENT = 0.995
MAX_TOTALS_REL_DIFF = 0.01

# per stage: (channels, residual blocks, downsample factor, downsample order); mirrors harnet.model
# (kept here so that exporting needs no torch import)
_STAGES: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "harnet5": ((64, 2, 2, 2), (128, 2, 2, 2), (256, 2, 3, 1), (256, 2, 3, 1), (512, 0, 3, 1)),
    "harnet10": ((64, 2, 2, 2), (128, 2, 2, 2), (256, 2, 5, 1), (512, 2, 5, 1), (1024, 0, 3, 1)),
    "harnet30": ((64, 2, 3, 1), (128, 2, 3, 1), (256, 2, 5, 1), (512, 2, 5, 1), (1024, 0, 4, 0)),
}
_BN_EPS = 1e-5
# a pre-activation BN is folded only when every channel's scale is at least this fraction of the
# largest: tiny scales would make the shift b/s huge and cost fp32 (and int8) precision
_MIN_FOLD_SCALE = 1e-3


# ----------------------------------------------------------------------------------------------
# graph construction


class _Graph:
    """A small helper around onnx.helper: unique names, initialisers, nodes."""

    def __init__(self) -> None:
        import onnx
        from onnx import numpy_helper

        self._onnx = onnx
        self._nh = numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, arr: np.ndarray) -> str:
        n = self.name(base)
        self.inits.append(self._nh.from_array(np.ascontiguousarray(arr), n))
        return n

    def node(self, op: str, inputs: Sequence[str], base: str, **attrs: Any) -> str:
        out = self.name(base)
        self.nodes.append(self._onnx.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out


def _bn_affine(sd: Mapping[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """A BN in eval mode as ``s * x + b`` (float64)."""
    g = sd[prefix + ".weight"].astype(np.float64)
    beta = sd[prefix + ".bias"].astype(np.float64)
    mean = sd[prefix + ".running_mean"].astype(np.float64)
    var = sd[prefix + ".running_var"].astype(np.float64)
    s = g / np.sqrt(var + _BN_EPS)
    return s, beta - mean * s


def _foldable(s: np.ndarray) -> bool:
    return bool(np.all(s > 0) and s.min() >= _MIN_FOLD_SCALE * s.max())


def _winograd_matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Cook-Toom matrices ``A^T (m, a)``, ``G (a, 5)``, ``B^T (a, a)`` of F(m, 5), a = m + 4.

    Interpolation points 0, +-1, +-2, +-1/2, (+-1/4, +-4 for m > 4) and infinity; built in exact
    rational arithmetic, so ``A^T [(G g) * (B^T d)]`` is the 5-tap correlation of ``d`` with ``g``.
    """
    from fractions import Fraction as F

    r = 5
    a = m + r - 1
    pool = [F(0), F(1), F(-1), F(2), F(-2), F(1, 2), F(-1, 2), F(4), F(-4), F(1, 4), F(-1, 4)]
    pts = pool[: a - 1]
    AT = [[p**i for p in pts] + [F(int(i == m - 1))] for i in range(m)]
    G = []
    for j, p in enumerate(pts):
        den = F(1)
        for k, q in enumerate(pts):
            if k != j:
                den *= p - q
        G.append([p**i / den for i in range(r)])
    G.append([F(int(i == r - 1)) for i in range(r)])

    def poly_mul(u: list, v: list) -> list:
        out = [F(0)] * (len(u) + len(v) - 1)
        for i, x in enumerate(u):
            for j, y in enumerate(v):
                out[i + j] += x * y
        return out

    BT = []
    for j in range(a - 1):  # coefficients of prod_{k != j} (x - p_k)
        c = [F(1)]
        for k, q in enumerate(pts):
            if k != j:
                c = poly_mul(c, [-q, F(1)])
        BT.append(c + [F(0)] * (a - len(c)))
    c = [F(1)]
    for q in pts:
        c = poly_mul(c, [-q, F(1)])
    BT.append(c[:a])
    as_f = lambda M: np.array([[float(x) for x in row] for row in M], dtype=np.float64)  # noqa: E731
    return as_f(AT), as_f(G), as_f(BT)


class _Emitter:
    """What both layouts share: batch norm and the fixed anti-alias downsample over the time
    axis (axis 3) with a (1, K) depthwise kernel."""

    g: _Graph

    def affine(self, x: str, sd: Mapping[str, np.ndarray], prefix: str) -> str:
        ins = [x] + [self.g.const(prefix + "." + p, sd[prefix + "." + p].astype(np.float32))
                     for p in ("weight", "bias", "running_mean", "running_var")]
        return self.g.node("BatchNormalization", ins, prefix, epsilon=_BN_EPS)

    def downsample(self, x: str, kernel: np.ndarray, factor: int, pad: int, base: str) -> str:
        c, _, K = kernel.shape
        return self.g.node("Conv", [x, self.g.const(base + ".w", kernel[:, :, None, :].astype(np.float32))], base,
                           kernel_shape=[1, K], strides=[1, factor], pads=[0, pad, 0, pad], group=c)


class _DirectEmitter(_Emitter):
    """Layout (N, C, 1, T): 2-D convolutions ONNX Runtime runs with its NCHWc kernels."""

    def __init__(self, g: _Graph) -> None:
        self.g = g
        self.ax = g.const("time_axis", np.array([3], np.int64))
        self.k = {v: g.const(f"k{v}", np.array([v], np.int64)) for v in (-2, 0, 2)}
        self.end = g.const("kend", np.array([np.iinfo(np.int64).max], np.int64))

    def begin(self, x: str) -> str:
        return self.g.node("Unsqueeze", [x, self.g.const("axes", np.array([2], np.int64))], "x4d")

    def conv(self, x: str, w: np.ndarray, b: np.ndarray | None, base: str, T: int) -> str:
        g = self.g
        tail = g.node("Slice", [x, self.k[-2], self.end, self.ax], base + ".tail")
        head = g.node("Slice", [x, self.k[0], self.k[2], self.ax], base + ".head")
        xp = g.node("Concat", [tail, x, head], base + ".cpad", axis=3)  # circular padding by 2
        ins = [xp, g.const(base + ".w", w[:, :, None, :].astype(np.float32))]
        if b is not None and np.any(b != 0):
            ins.append(g.const(base + ".b", b.astype(np.float32)))
        return g.node("Conv", ins, base, kernel_shape=[1, 5], pads=[0, 0, 0, 0])

    def finish(self, x: str) -> str:
        return self.g.node("Flatten", [x], "features", axis=1)


class _WinogradEmitter(_Emitter):
    """Layout (1, C, N, T): the windows of a batch side by side on the "height" axis, so that a
    2-D convolution with a (1, k) kernel is a 1-D convolution of every window, and the channels
    of all windows form one matrix for Winograd's GEMMs.

    Convolutions with at least ``min_channels`` input channels use Winograd F(m, 5) (m = 4): the
    input is extended circularly to ``4 + m * ceil(T / m)`` samples; a depthwise convolution
    (kernel a = m + 4, stride m, weights ``B^T``) transforms every tile; a batched MatMul with the
    pre-transformed weights ``G w`` ``(a, Cout, Cin)`` does the work (2.5x fewer multiplications
    than the direct 5-tap convolution); ``A^T`` gives the m outputs of each tile, which a transpose
    puts back in time order. Narrower convolutions (the first stage) run directly.
    """

    def __init__(self, g: _Graph, m: int = 4, min_channels: int = 128) -> None:
        self.g = g
        self.m = m
        self.min_channels = min_channels
        self.AT, self.G, self.BT = _winograd_matrices(m)
        self.a = m + 4
        self.at = g.const("wino.AT", self.AT.astype(np.float32))
        self._i64: dict[tuple[int, ...], str] = {}

    def i64(self, *v: int) -> str:
        if v not in self._i64:
            self._i64[v] = self.g.const("c", np.array(v, np.int64))
        return self._i64[v]

    def begin(self, x: str) -> str:
        t = self.g.node("Transpose", [x], "x_cnt", perm=[1, 0, 2])  # (3, N, T)
        return self.g.node("Unsqueeze", [t, self.i64(0)], "x4d")  # (1, 3, N, T)

    def _extend(self, x: str, T: int, after: int, base: str) -> str:
        g = self.g
        tail = g.node("Slice", [x, self.i64(T - 2), self.i64(T), self.i64(3)], base + ".tail")
        head = g.node("Slice", [x, self.i64(0), self.i64(after), self.i64(3)], base + ".head")
        return g.node("Concat", [tail, x, head], base + ".ext", axis=3)

    def conv(self, x: str, w: np.ndarray, b: np.ndarray | None, base: str, T: int) -> str:
        g, m, a = self.g, self.m, self.a
        cout, cin, _ = w.shape
        has_b = b is not None and np.any(b != 0)
        if cin < self.min_channels:
            ins = [self._extend(x, T, 2, base), g.const(base + ".w", w[:, :, None, :].astype(np.float32))]
            if has_b:
                ins.append(g.const(base + ".b", b.astype(np.float32)))  # type: ignore[union-attr]
            return g.node("Conv", ins, base, kernel_shape=[1, 5])
        tiles = -(-T // m)
        t_out = tiles * m
        after = t_out - T + 2  # samples appended after x: its periodic extension
        if after > T:
            raise ModelError(f"Winograd F({m}, 5) needs at least {after} samples, the layer has {T}")
        ext = self._extend(x, T, after, base)  # (1, Cin, N, t_out + 4)
        bt = np.tile(self.BT.astype(np.float32)[:, None, None, :], (cin, 1, 1, 1))  # (Cin * a, 1, 1, a)
        v = g.node("Conv", [ext, g.const(base + ".BT", bt)], base + ".V", kernel_shape=[1, a], strides=[1, m], group=cin)
        v = g.node("Reshape", [v, self.i64(cin, a, -1)], base + ".V3")  # (Cin, a, N * tiles)
        v = g.node("Transpose", [v], base + ".Vt", perm=[1, 0, 2])  # (a, Cin, N * tiles)
        u = np.einsum("xk,oik->xoi", self.G, w).astype(np.float32)  # (a, Cout, Cin), in float64 first
        y = g.node("MatMul", [g.const(base + ".U", u), v], base + ".Y")  # (a, Cout, N * tiles)
        y = g.node("Reshape", [y, self.i64(a, -1)], base + ".Y2d")
        o = g.node("MatMul", [self.at, y], base + ".O")  # (m, Cout * N * tiles)
        o = g.node("Reshape", [o, self.i64(m, cout, -1, tiles)], base + ".O4")
        if has_b:
            o = g.node("Add", [o, g.const(base + ".b", b.astype(np.float32).reshape(1, cout, 1, 1))], base + ".bias")  # type: ignore[union-attr]
        o = g.node("Transpose", [o], base + ".Ot", perm=[1, 2, 3, 0])  # (Cout, N, tiles, m)
        o = g.node("Reshape", [o, self.i64(1, cout, -1, t_out)], base + ".out")
        if t_out != T:
            o = g.node("Slice", [o, self.i64(0), self.i64(T), self.i64(3)], base + ".crop")
        return o

    def finish(self, x: str) -> str:
        c = self.g.node("Squeeze", [x, self.i64(0, 3)], "features_cn")  # (1, F, N, 1) -> (F, N)
        return self.g.node("Transpose", [c], "features", perm=[1, 0])


GRAPHS = ("direct", "winograd")


def build_graph(
    state_dict: Mapping[str, Any],
    arch: str,
    num_classes: int,
    *,
    fold: bool = True,
    opset: int = OPSET,
    algorithm: str = "direct",
) -> Any:
    """Build the ONNX ModelProto of a harnet network from its state dict (arrays or tensors).

    ``fold=False`` keeps every pre-activation batch norm as a BatchNormalization node (only the
    batch norms right after a convolution are folded); for comparisons. ``algorithm``:
    ``"direct"`` (5-tap convolutions; the exported default) or ``"winograd"`` (F(4, 5)
    Winograd convolutions: fewer multiplications, different rounding; see docs/performance.md).
    """
    import onnx
    from onnx import TensorProto, helper

    if arch not in _STAGES:
        raise ModelError(f"unknown architecture {arch!r}; use one of {', '.join(_STAGES)}")
    if algorithm not in GRAPHS:
        raise ValueError(f"algorithm must be one of {', '.join(GRAPHS)}")
    sd = {k: _to_numpy(v) for k, v in state_dict.items()}
    T = {"harnet5": 150, "harnet10": 300, "harnet30": 900}[arch]
    g = _Graph()
    f32 = np.float32
    em: Any = _DirectEmitter(g) if algorithm == "direct" else _WinogradEmitter(g)

    x = em.begin(INPUT_NAME)
    t_len = T
    for li, (cout, nblocks, factor, order) in enumerate(_STAGES[arch], 1):
        p = f"feature_extractor.layer{li}"
        final_bn = f"{p}.{nblocks + 1}"
        # pre-activation points: bn1 of each block, then the stage's final BN
        points = [f"{p}.{k}.bn1" for k in range(1, nblocks + 1)] + [final_bn]
        aff = [_bn_affine(sd, q) for q in points]
        fold_at = [fold and _foldable(s) for s, _ in aff]
        shift = [b / s if f else np.zeros_like(s) for (s, b), f in zip(aff, fold_at)]

        w0 = sd[f"{p}.0.weight"].astype(np.float64)
        z = em.conv(x, w0, shift[0], f"{p}.0", t_len)
        for k in range(1, nblocks + 1):
            q = f"{p}.{k}"
            s_in, _ = aff[k - 1]
            if fold_at[k - 1]:
                a = g.node("Relu", [z], q + ".relu1")
            else:
                a = g.node("Relu", [em.affine(z, sd, q + ".bn1")], q + ".relu1")
            w1 = sd[q + ".conv1.weight"].astype(np.float64)
            if fold_at[k - 1]:
                w1 = w1 * s_in[None, :, None]
            s2, b2 = _bn_affine(sd, q + ".bn2")
            h = em.conv(a, w1 * s2[:, None, None], b2, q + ".conv1", t_len)
            h = g.node("Relu", [h], q + ".relu2")
            o = em.conv(h, sd[q + ".conv2.weight"].astype(np.float64), shift[k] - shift[k - 1], q + ".conv2", t_len)
            z = g.node("Add", [o, z], q + ".add")
        kernel = sd[f"{p}.{nblocks + 3}.kernel"].astype(np.float64)  # (C, 1, K)
        if fold_at[-1]:
            r = g.node("Relu", [z], p + ".relu")
            kernel = kernel * aff[-1][0][:, None, None]
        else:
            r = g.node("Relu", [em.affine(z, sd, final_bn)], p + ".relu")
        pad = order * (factor - 1) // 2
        x = em.downsample(r, kernel, factor, pad, p + ".down")
        t_len = (t_len + 2 * pad - kernel.shape[-1]) // factor + 1
    if t_len != 1:
        raise ModelError(f"{arch}: the time axis ends at {t_len}, not 1")  # pragma: no cover
    feat = em.finish(x)
    h = g.node(
        "Gemm",
        [feat, g.const("linear1.w", sd["classifier.linear1.weight"].astype(f32)),
         g.const("linear1.b", sd["classifier.linear1.bias"].astype(f32))],
        "linear1",
        transB=1,
    )
    h = g.node("Relu", [h], "relu_head")
    w2 = sd["classifier.linear2.weight"].astype(f32)
    if w2.shape[0] != num_classes:
        raise ModelError(f"classifier.linear2 has {w2.shape[0]} outputs but the config says {num_classes}")
    g.node("Gemm", [h, g.const("linear2.w", w2), g.const("linear2.b", sd["classifier.linear2.bias"].astype(f32))],
           "linear2", transB=1)
    g.nodes[-1].output[0] = OUTPUT_NAME  # name the graph output
    graph = helper.make_graph(
        g.nodes,
        f"harnet_{arch}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, T])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", num_classes])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="harnet", producer_version=__version__
    )
    model.ir_version = min(model.ir_version, 9)  # readable by onnxruntime >= 1.17
    onnx.checker.check_model(model, full_check=True)
    return model


def _to_numpy(v: Any) -> np.ndarray:
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "detach"):  # a torch tensor; no torch import needed to convert it
        return v.detach().cpu().float().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
    return np.asarray(v)


# ----------------------------------------------------------------------------------------------
# export of a model (directory, registry name, hf://, or an in-memory Harnet)


def _model_source(model: Any) -> tuple[dict[str, Any], dict[str, Any], Path | None]:
    """(config dict, state dict of arrays, model directory or None) for any accepted model form."""
    if hasattr(model, "state_dict") and hasattr(model, "config"):  # a harnet.model.Harnet
        cfg = dict(getattr(model, "meta", None) or {})
        cfg.update(model.config.to_dict())
        cfg.pop("path", None)
        return cfg, {k: _to_numpy(v) for k, v in model.state_dict().items()}, None
    d = _resolve_dir(model)
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from .modeldir import WEIGHTS, read_config, sha256_file

    cfg = read_config(d)
    if cfg.get("kind") == "backbone":
        raise ModelError(f"{d} is a backbone without a trained head; export a classifier (fine-tune it first)")
    w = d / WEIGHTS
    if not w.is_file():
        raise ModelError(f"{d} lacks {WEIGHTS}; the model directory is incomplete")
    if cfg.get("weights_sha256") and sha256_file(w) != cfg["weights_sha256"]:
        raise ModelError(f"{w} does not match the sha256 in config.json: the weights were changed; fetch the model again")
    try:
        sd = load_file(str(w))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"cannot read {w}: {e}") from None
    return cfg, sd, d


def _check_weights_fit(cfg: Mapping[str, Any], sd: Mapping[str, Any], mdir: Path | None) -> None:
    """The downsample kernels tell the window the weights were made for (reference section 1):
    refuse a config.json that names another architecture (the graph would run, but be wrong)."""
    try:
        k1 = np.shape(sd["feature_extractor.layer1.5.kernel"])[-1]
        c5 = np.shape(sd["feature_extractor.layer5.3.kernel"])[0]
    except KeyError:
        return  # not harnet-shaped: build_graph names the missing tensor
    got = "harnet5" if c5 == 512 else ("harnet10" if k1 == 4 else "harnet30")
    if got != cfg.get("arch"):
        where = f"{mdir / 'model.safetensors'}" if mdir is not None else "the network's weights"
        raise ModelError(
            f"{where} holds {got} weights, but config.json says arch={cfg.get('arch')}, "
            f"window_sec={cfg.get('window_sec')}; restore config.json from the model's source"
        )


def _resolve_dir(model: Any) -> Path:
    p = Path(str(model)).expanduser()
    if p.is_dir():
        return p
    if isinstance(model, (str, Path)) and not str(model).endswith(".onnx"):
        from .loading import resolve_model_dir  # registry name or hf://: may download

        return Path(resolve_model_dir(str(model)))
    raise ModelError(f"{model} is not a model directory, registry name or hf:// reference")


def metadata_for(cfg: Mapping[str, Any], *, graph: str) -> dict[str, str]:
    """The ONNX metadata harnet writes: the whole config.json plus a few flat keys."""
    cfg = {k: v for k, v in cfg.items() if k != "path"}
    return {
        "harnet_config": json.dumps(cfg, sort_keys=True),
        "harnet_version": __version__,
        "harnet_graph": graph,
        "arch": str(cfg.get("arch", "")),
        "labels": json.dumps(list(cfg.get("labels", []))),
        "window_sec": str(cfg.get("window_sec", "")),
        "sample_rate": str(cfg.get("sample_rate", 30)),
        "weights_sha256": str(cfg.get("weights_sha256", "")),
    }


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """The harnet config embedded in an exported ONNX file (without loading the weights)."""
    import onnx

    p = Path(onnx_path)
    try:
        m = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # onnx raises several types for a damaged file
        raise ModelError(f"cannot read {p} as ONNX ({type(e).__name__}: {e}); export it again") from None
    meta = {e.key: e.value for e in m.metadata_props}
    if "harnet_config" not in meta:
        raise ModelError(f"{p} has no harnet metadata; export it with `harnet export`")
    out = json.loads(meta["harnet_config"])
    out["_onnx_metadata"] = meta
    return out


def _set_metadata(model: Any, meta: Mapping[str, str]) -> None:
    del model.metadata_props[:]
    for k, v in meta.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v


#: File name of each fp32 graph inside a model directory.
ONNX_FILES = {"direct": "model.onnx", "winograd": "model.winograd.onnx"}
#: Largest logit difference accepted at export: exact-order rounding for the direct graph;
#: Winograd rounds differently (its transforms grow rounding by ~10x), still far below any label change.
TOLERANCE = {"direct": 1e-4, "winograd": 1e-3}


def export_onnx(
    model: Any,
    path: str | Path | None = None,
    *,
    opset: int = OPSET,
    algorithm: str = "direct",
    fold: bool = True,
    verify: bool = True,
    compare_torch: bool | None = None,
    tolerance: float | None = None,
) -> Path:
    """Export a harnet network to ONNX and return the file written.

    ``model``: a :class:`harnet.model.Harnet`, a model directory, a registry name or
    ``hf://org/repo[@rev]``. ``path``: the ``.onnx`` file to write; default: inside the model
    directory, ``model.onnx`` (``model.winograd.onnx`` for ``algorithm="winograd"``), or, when that
    folder is read-only or a Hugging Face snapshot, harnet's cache under the weights' sha256 (where
    the ONNX backend finds it); required for an in-memory network. The graph: input ``x`` float32 ``(batch, 3, T)``, output ``logits``
    ``(batch, classes)``, dynamic batch axis, opset ``opset`` (>= 17), checked with
    ``onnx.checker``; the model's config.json (labels, window, sample rate, preprocessing,
    provenance) is embedded as metadata ``harnet_config``.

    ``algorithm``: ``"direct"`` convolutions (the reference graph) or ``"winograd"`` (F(4, 5):
    fewer multiplications, same fp32 arithmetic, slightly different rounding; see
    docs/performance.md). ``verify=True`` runs the graph in ONNX Runtime on gravity-like windows:
    the logits must be finite; a Winograd graph must match the direct graph; with
    ``compare_torch`` (default: when torch is importable) the graph must match the PyTorch
    network. The largest absolute logit difference allowed is ``tolerance`` (default
    :data:`TOLERANCE`) for logits up to 10 in magnitude, and in proportion for larger ones
    (float32 rounding grows with the values); else :class:`ModelError` and nothing is
    written. The differences found are recorded in the metadata (``harnet_check``). Exporting
    itself needs no torch.
    """
    if opset < 17:
        raise ModelError(f"opset {opset} is too old; harnet exports opset 17 or newer")
    if algorithm not in ONNX_FILES:
        raise ModelError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ONNX_FILES)}")
    cfg, sd, mdir = _model_source(model)
    _check_weights_fit(cfg, sd, mdir)
    if path is None:
        if mdir is None:
            raise ModelError("give a path for the .onnx file (an in-memory network has no model directory)")
        from .backends.onnx_backend import _writable_model_dir

        path = mdir / ONNX_FILES[algorithm]
        if not _writable_model_dir(mdir) and cfg.get("weights_sha256"):
            # a read-only folder or a Hugging Face snapshot: the first writable cache root, keyed by the weights
            from . import cachedirs

            name = cfg.get("provenance", {}).get("registry_name") or str(mdir)
            root = cachedirs.writable_root(f"the ONNX graph of {mdir}", name)
            path = root / "onnx" / str(cfg["weights_sha256"]) / ONNX_FILES[algorithm]
    path = Path(path)
    labels = list(cfg.get("labels", []))
    num_classes = int(cfg.get("num_classes", len(labels)))
    proto = build_graph(sd, cfg["arch"], num_classes, fold=fold, opset=opset, algorithm=algorithm)
    meta = metadata_for(cfg, graph=f"harnet-fp32-{algorithm}" + ("" if fold else "-unfolded"))
    if verify:
        tol = TOLERANCE[algorithm] if tolerance is None else float(tolerance)
        check = _verify(proto, sd, cfg, num_classes, tol, compare_torch, algorithm)
        meta["harnet_check"] = json.dumps(check, sort_keys=True)
    _set_metadata(proto, meta)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return path


def _check_windows(T: int, n: int = 4) -> np.ndarray:
    """Gravity-like windows: a unit vector per window plus movement, the range the network sees."""
    rng = np.random.default_rng(0)
    g = rng.standard_normal((n, 3, 1))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return (g + rng.standard_normal((n, 3, T)) * 0.3).astype(np.float32)


def _ort_logits(proto: Any, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # quick to build
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _verify(
    proto: Any,
    sd: Mapping[str, np.ndarray],
    cfg: Mapping[str, Any],
    num_classes: int,
    tol: float,
    compare_torch: bool | None,
    algorithm: str,
) -> dict[str, Any]:
    T = int(cfg["window_sec"]) * int(cfg.get("sample_rate", 30))
    x = _check_windows(T)
    got = _ort_logits(proto, x)
    if not np.all(np.isfinite(got)):
        raise ModelError("the exported graph gives non-finite logits; the weights may be damaged")
    check: dict[str, Any] = {"windows": int(len(x)), "tolerance": tol}
    refs: list[tuple[str, np.ndarray]] = []
    if algorithm != "direct":
        refs.append(("direct_graph", _ort_logits(build_graph(sd, cfg["arch"], num_classes), x)))
    if compare_torch is not False:
        try:
            import torch
        except ImportError:  # torch-free install: the graph was checked, the comparison needs torch
            if compare_torch:
                raise ModelError("comparing the export with PyTorch needs torch; install it or pass compare_torch=False") from None
        else:
            from .model import Harnet, HarnetConfig

            labels = tuple(cfg.get("labels", []))
            net = Harnet(HarnetConfig(arch=cfg["arch"], window_sec=int(cfg["window_sec"]),
                                      num_classes=num_classes, labels=labels))
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=True)
            with torch.inference_mode():
                refs.append(("torch", net.eval()(torch.from_numpy(x)).numpy()))
    for name, ref in refs:
        err = float(np.abs(got - ref).max())
        check[f"max_abs_logit_diff_vs_{name}"] = err
        # rounding differences scale with the logits (random-weight networks reach |logit| ~ 40);
        # a real exporter bug is off by O(0.1) relative, far above this
        allowed = tol * max(1.0, float(np.abs(ref).max()) / 10.0)
        if err > allowed:
            raise ModelError(
                f"the exported {algorithm} graph differs from the {name.replace('_', ' ')} by {err:.2e} "
                f"(> {allowed:.2g}); this is a bug in harnet's exporter: please report it"
            )
    return check


# ----------------------------------------------------------------------------------------------
# int8 quantisation, guarded by an agreement check on real recordings


def agreement(ref_probs: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> dict[str, float]:
    """Compare a reduced-precision path with fp32 on a set of recordings.

    Each argument is a list with one ``(N_i, C)`` probability array per recording (or per day).
    Returns ``label_agreement`` (share of windows whose argmax agrees), ``totals_rel_diff`` (the
    worst class of ``|n - n_fp32| / n_fp32``, where ``n`` is the number of windows given that
    class over all recordings, i.e. the class totals of the pooled time; the denominator is
    floored at 1 % of the windows so that a class seen twice cannot fail on one flip),
    ``max_prob_diff`` and ``windows``.
    """
    agree = n = 0
    maxdiff = 0.0
    ca = cb = None
    for a, b in zip(ref_probs, probs, strict=True):
        a = np.asarray(a)
        b = np.asarray(b)
        if len(a) == 0:
            continue
        la, lb = a.argmax(1), b.argmax(1)
        agree += int((la == lb).sum())
        n += len(a)
        c = a.shape[1]
        ca = np.bincount(la, minlength=c) + (0 if ca is None else ca)
        cb = np.bincount(lb, minlength=c) + (0 if cb is None else cb)
        maxdiff = max(maxdiff, float(np.abs(a - b).max()))
    worst = 0.0 if ca is None else float((np.abs(ca - cb) / np.maximum(ca, 0.01 * n)).max())
    return {
        "label_agreement": agree / n if n else float("nan"),
        "totals_rel_diff": worst,
        "max_prob_diff": maxdiff,
        "windows": float(n),
    }


def passes(report: Mapping[str, float]) -> bool:
    """The acceptance rule for a reduced-precision path (see :data:`MIN_LABEL_AGREEMENT`)."""
    return (
        report.get("windows", 0) > 0
        and report["label_agreement"] >= MIN_LABEL_AGREEMENT
        and report["totals_rel_diff"] <= MAX_TOTALS_REL_DIFF
    )


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calibration: np.ndarray,
    *,
    validation: Sequence[np.ndarray] | None = None,
    calibrate_method: str = "minmax",
    batch_size: int = 64,
    exclude: Iterable[str] = (),
    reduce_range: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Quantise an exported fp32 graph to int8 (static, QDQ) and check it on real windows.

    ``calibration``: float32 ``(N, 3, T)`` windows of real recordings (a few hundred are
    enough) that set the activation ranges. ``validation``: a list of ``(N_i, 3, T)`` arrays,
    one per recording, on which int8 is compared with fp32 (:func:`agreement`); default: the
    calibration windows (a weaker check; say so in reports). Weights are per-channel int8,
    activations uint8 (the u8s8 kernels of x86 CPUs). If the check fails (:func:`passes`) the
    file is not written and :class:`HarnetError` says by how much, unless ``force=True``.
    Returns the report, also embedded in the file's metadata (``harnet_int8_check``).
    ``exclude``: node names left in fp32. Needs no torch.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    fp32_onnx = Path(fp32_onnx)
    meta_cfg = read_metadata(fp32_onnx)
    T = int(meta_cfg["window_sec"]) * int(meta_cfg.get("sample_rate", 30))
    calib = np.asarray(calibration, dtype=np.float32)
    if calib.ndim != 3 or calib.shape[1:] != (3, T) or len(calib) == 0:
        raise InputError(f"calibration windows must be a non-empty (N, 3, {T}) array, got {calib.shape}")
    if not np.all(np.isfinite(calib)):
        raise InputError("calibration windows hold NaN or inf; pass only complete, valid windows")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if calibrate_method not in methods:
        raise ValueError(f"calibrate_method must be one of {', '.join(methods)}")

    # equal-sized batches: the histogram calibrators stack them
    bs = min(int(batch_size), len(calib))
    n_used = len(calib) // bs * bs

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self._i >= n_used:
                return None
            b = calib[self._i : self._i + bs]
            self._i += bs
            return {INPUT_NAME: b}

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(fp32_onnx),
                str(tmp),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[calibrate_method],
                nodes_to_exclude=list(exclude) or None,
                reduce_range=reduce_range,
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        val = list(validation) if validation is not None else [calib]
        ref = _run_all(fp32_onnx, val)
        got = _run_all(tmp, val)
        report: dict[str, Any] = agreement(ref, got)
        report.update(
            passed=passes(report),
            calibration_windows=int(n_used),
            validation_recordings=len(val),
            validated_on="calibration windows" if validation is None else "held-out recordings",
            calibrate_method=calibrate_method,
            onnxruntime=ort.__version__,
        )
        if not report["passed"] and not force:
            raise HarnetError(
                f"int8 model disagrees with fp32 too much: labels agree on {report['label_agreement']:.2%} "
                f"of {int(report['windows'])} windows (need {MIN_LABEL_AGREEMENT:.1%}), class totals differ by "
                f"up to {report['totals_rel_diff']:.2%} (limit {MAX_TOTALS_REL_DIFF:.0%}); keep fp32, or try "
                "another calibration method or more calibration recordings"
            )
        q = onnx.load(str(tmp))
        meta = {e.key: e.value for e in onnx.load(str(fp32_onnx), load_external_data=False).metadata_props}
        meta["harnet_graph"] = "harnet-int8-qdq"
        meta.pop("harnet_check", None)
        meta["harnet_int8_check"] = json.dumps(report, sort_keys=True)
        _set_metadata(q, meta)
        onnx.save(q, str(tmp))
    return report


def _run_all(onnx_path: str | Path, batches: Sequence[np.ndarray], batch_size: int = 128) -> list[np.ndarray]:
    import onnxruntime as ort

    from .backends.onnx_backend import softmax

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    out = []
    for X in batches:
        X = np.asarray(X, dtype=np.float32)
        parts = [sess.run([OUTPUT_NAME], {INPUT_NAME: X[i : i + batch_size]})[0] for i in range(0, len(X), batch_size)]
        out.append(softmax(np.concatenate(parts)) if parts else np.empty((0, 0), np.float32))
    return out


def windows_from_files(
    paths: Sequence[str | Path],
    *,
    window_sec: int,
    preprocessing: Mapping[str, Any] | None = None,
) -> list[np.ndarray]:
    """Valid windows ``(N_i, 3, T)`` of each device file, prepared as the model expects.

    Reads with :func:`harnet.io.read_device`, calibrates gravity and drops non-wear when the
    model's preprocessing asks for it, low-passes as configured and cuts clock-aligned windows
    (:func:`harnet.windows.iter_chunks`): the windows the network sees in ``harnet predict``.
    """
    from . import preprocess
    from .io import read_device
    from .windows import iter_chunks

    prep = dict(preprocessing or {})
    out = []
    for p in paths:
        rec = read_device(p)
        if prep.get("calibrate_gravity", True):
            preprocess.calibrate_gravity(rec)
        nonwear = preprocess.detect_nonwear(rec) if prep.get("detect_nonwear", True) else None
        chunks = [ch.X[ch.valid] for ch in iter_chunks(rec, window_sec=window_sec,
                                                      lowpass_hz=prep.get("lowpass_hz"), nonwear=nonwear)]
        X = np.concatenate(chunks) if chunks else np.empty((0, 3, window_sec * 30), np.float32)
        if len(X) == 0:
            raise InputError(f"{p} holds no complete worn window of {window_sec} s; it cannot calibrate or check int8")
        out.append(X)
    return out


def export_int8(
    model: Any,
    calibrate: Sequence[str | Path],
    *,
    validate: Sequence[str | Path] | None = None,
    fp32_path: str | Path | None = None,
    path: str | Path | None = None,
    calibrate_method: str = "minmax",
    max_calibration_windows: int = 1024,
) -> dict[str, Any]:
    """Write the int8 graph (``model.int8.onnx``) of a model directory, if it passes its check.

    ``calibrate``: device files whose windows set the activation ranges. ``validate``: other
    device files (held-out recordings) on which int8 must agree with fp32 (:func:`passes`);
    default: the calibration files themselves (a weaker check, recorded as such in the file).
    ``fp32_path``: the fp32 graph to quantise (default: the model directory's, exported when
    needed); ``path``: where to write (default: beside it, ``<stem>.int8.onnx``). Raises :class:`HarnetError` and writes nothing
    when the check fails. Returns the check's report.
    """
    from .backends.onnx_backend import ensure_onnx

    cfg, _, mdir = _model_source(model)
    if mdir is None:
        raise ModelError("int8 export needs a model directory (save the network with harnet.save_model_dir first)")
    fp32 = Path(fp32_path) if fp32_path is not None else ensure_onnx(mdir)
    w = int(cfg["window_sec"])
    prep = cfg.get("preprocessing")
    cal = windows_from_files(calibrate, window_sec=w, preprocessing=prep)
    calib = np.concatenate(cal)
    if len(calib) > max_calibration_windows:  # an even spread over the recordings
        idx = np.linspace(0, len(calib) - 1, max_calibration_windows).round().astype(int)
        calib = calib[idx]
    val = windows_from_files(validate, window_sec=w, preprocessing=prep) if validate else None
    target = Path(path) if path is not None else fp32.parent / (fp32.stem + ".int8.onnx")
    return quantize_int8(fp32, target, calib, validation=val, calibrate_method=calibrate_method)
