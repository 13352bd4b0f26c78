"""The ONNX graph of a harnet network, written from its weights (graph construction only).

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
(``harnet_config``), so a ``.onnx`` file is self-describing
(:func:`harnet.onnx.export.export_onnx`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from ..arch import STAGES
from ..errors import ModelError

#: ONNX opset the graph is written for (>= 17 for the whole ecosystem we target).
OPSET = 17
INPUT_NAME = "x"
OUTPUT_NAME = "logits"

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

    if arch not in STAGES:
        raise ModelError(f"unknown architecture {arch!r}; use one of {', '.join(STAGES)}")
    if algorithm not in GRAPHS:
        raise ValueError(f"algorithm must be one of {', '.join(GRAPHS)}")
    sd = {k: to_numpy(v) for k, v in state_dict.items()}
    T = {"harnet5": 150, "harnet10": 300, "harnet30": 900}[arch]
    g = _Graph()
    f32 = np.float32
    em: Any = _DirectEmitter(g) if algorithm == "direct" else _WinogradEmitter(g)

    x = em.begin(INPUT_NAME)
    t_len = T
    for li, (cout, nblocks, factor, order) in enumerate(STAGES[arch], 1):
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


def to_numpy(v: Any) -> np.ndarray:
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "detach"):  # a torch tensor; no torch import needed to convert it
        return v.detach().cpu().float().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
    return np.asarray(v)
