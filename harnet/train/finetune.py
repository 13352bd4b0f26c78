"""Fine-tuning a harnet network on labelled windows (the paper's recipe), and the HMM on top.

Recipe (reference section 6): Adam (amsgrad), lr 1e-4, cross-entropy weighted by inverse class
frequency, random axis order and random 3-D rotation as augmentation, early stopping on the
validation loss of held-out *subjects*. Settings: from scratch (``init="none"``), frozen
backbone (``freeze=True``, only the head trains) or all layers fine-tuned.

The HMM is fitted on the predictions for the validation subjects only: their windows never
took part in a gradient step, so their probabilities are out-of-sample, as the field's HMMs
require (reference section 4).

Determinism: every random draw comes from generators seeded by ``seed`` (a numpy Generator for
the split, shuffling and augmentation; a forked torch RNG for the head's initialisation), so
two runs with the same seed on the same machine give bit-identical weights. Nothing global is
changed: the torch thread count set for a run is restored afterwards.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..backends.torch_backend import num_threads as torch_threads  # noqa: F401 (also used by evaluate)
from ..errors import InputError, ModelError

log = logging.getLogger("harnet")


@dataclass
class TrainOptions:
    """Every option of ``harnet train`` that changes the result."""

    init: str = "harnet10"  # registry name, model directory, hf://repo, or "none" (from scratch)
    freeze: bool = False  # train only the head
    epochs: int = 20
    patience: int = 5
    batch_size: int = 64
    lr: float = 1e-4
    augment: bool = True
    axis_swap: bool = True
    max_rotation_deg: float = 180.0
    val_frac: float = 0.2  # share of subjects held out for early stopping and the HMM
    hmm: bool = True
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (batch norm), got {self.batch_size}")
        if not 0.0 < self.val_frac < 1.0:
            raise ValueError(f"val_frac must be within (0, 1), got {self.val_frac}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FitResult:
    """What :func:`fit` returns: the best model, its history and the out-of-sample material."""

    model: Any
    labels: tuple[str, ...]
    hmm: Any
    history: list[dict[str, float]]
    best_epoch: int
    train_index: np.ndarray  # indices (into the arrays given to fit) of the windows trained on
    val_index: np.ndarray  # ... of the validation windows (early stopping and the HMM)
    val_probs: np.ndarray
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# helpers


def split_subjects(groups: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of the windows of ``ceil(frac * subjects)`` randomly chosen subjects.

    At least one subject is held out and at least one is kept; needs two subjects or more.
    """
    uniq = np.unique(np.asarray(groups))
    if len(uniq) < 2:
        raise InputError(
            f"training needs windows from at least 2 participants (validation is by subject); got {len(uniq)}"
        )
    k = min(len(uniq) - 1, max(1, int(math.ceil(frac * len(uniq)))))
    chosen = rng.choice(uniq, size=k, replace=False)
    return np.isin(groups, chosen)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse class frequency, scaled so that a balanced set has all weights 1 (0 if absent)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.zeros(n_classes)
    present = counts > 0
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w


def init_model(
    init: str, labels: Sequence[str], window_sec: int, seed: int, *, device: str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """A network for ``labels`` with ``window_sec`` windows and a freshly initialised head.

    ``init``: ``"none"`` (random weights, from scratch), a registry name such as ``harnet10``
    (a published SSL backbone, fetched on request), ``hf://org/repo`` or a model directory (a
    backbone, or a classifier whose feature extractor is reused). The head is always new, with
    PyTorch's default ``Linear`` initialisation. Random initialisation draws
    from a torch RNG forked and seeded with ``seed`` (the global RNG is left as it was).
    Returns ``(model, provenance)``.
    """
    import torch

    from ..model import Classifier, Harnet, HarnetConfig, arch_for_window

    labels = tuple(str(x) for x in labels)
    arch = arch_for_window(int(window_sec))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if str(init).lower() in ("none", "scratch", ""):
            model = Harnet(HarnetConfig.for_arch(arch, num_classes=len(labels), labels=labels))
            prov: dict[str, Any] = {"init": "none"}
            # a new head with PyTorch's default Linear initialisation, as for a pre-trained
            # backbone below (the network's fan-out He init gives a head whose first logits are
            # in the tens, which slows the first epochs a lot)
            model.classifier = Classifier(model.feature_extractor.out_features, len(labels))
        else:
            from ..loading import resolve_model_dir
            from ..modeldir import load_model_dir, read_config

            mdir = resolve_model_dir(init)
            cfg = read_config(mdir)
            if cfg["arch"] != arch:
                raise ModelError(
                    f"{init} is a {cfg['arch']} ({cfg['window_sec']}-s windows) but the data has "
                    f"{window_sec}-s windows; prepare the data with --window-sec {cfg['window_sec']} or "
                    f"start from a {arch}"
                )
            if cfg.get("kind") == "backbone":
                src = load_model_dir(mdir, num_classes=len(labels))
            else:
                src = load_model_dir(mdir)
            model = Harnet(HarnetConfig.for_arch(arch, num_classes=len(labels), labels=labels))
            model.feature_extractor.load_state_dict(src.feature_extractor.state_dict(), strict=True)
            # the head is always new (fresh from the seeded RNG): the classes are the data's
            model.classifier = Classifier(model.feature_extractor.out_features, len(labels))
            prov = {
                "init": str(init),
                "init_kind": cfg.get("kind", "classifier"),
                "init_weights_sha256": cfg.get("weights_sha256"),
                "init_provenance": cfg.get("provenance", {}),
            }
            lic = (cfg.get("provenance") or {}).get("licence")
            if lic:
                prov["licence"] = lic
    return model.to(device), prov


def predict_proba(model: Any, X: np.ndarray, *, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Softmax probabilities ``(N, C)`` float32 of ``model`` (put in eval mode) for windows ``X``."""
    import torch

    model.eval()
    out = np.empty((len(X), model.config.num_classes), dtype=np.float32)
    with torch.inference_mode():
        for a in range(0, len(X), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(X[a : a + batch_size])).to(device)
            out[a : a + batch_size] = torch.softmax(model(xb), dim=1).cpu().numpy()
    return out


def fit_hmm(probs: np.ndarray, y: np.ndarray, segments: np.ndarray, labels: Sequence[str]) -> Any:
    """The HMM from out-of-sample probabilities, true labels and segment ids (time order).

    The prior is uniform, as the peers use it: the networks are trained with class-balanced
    weights, and a class-frequency prior on top pulls rare classes towards common ones.
    """
    from ..hmm import HMM

    return HMM.fit(probs, y, labels=tuple(labels), groups=segments, uniform_prior=True)


# ------------------------------------------------------------------------------------------
# training


def fit(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    labels: Sequence[str],
    options: TrainOptions,
    *,
    segments: np.ndarray | None = None,
    val_mask: np.ndarray | None = None,
) -> FitResult:
    """Train a network on windows ``X`` (N, 3, T) with class indices ``y`` into ``labels``.

    ``groups``: participant per window (validation subjects are drawn from them unless
    ``val_mask`` gives the validation windows). ``segments``: contiguity ids for the HMM
    (default: every window its own segment, i.e. no transitions). Windows of one segment must be
    in time order.
    """
    import torch
    from torch import nn

    from .augment import augmentation_matrices, apply_matrices

    t_start = _time.perf_counter()
    opts = options
    labels = tuple(str(x) for x in labels)
    n_cls = len(labels)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    groups = np.asarray(groups)
    if len(X) != len(y) or len(y) != len(groups):
        raise InputError(f"X, y and groups differ in length: {len(X)}, {len(y)}, {len(groups)}")
    if X.shape[2] % 30:
        raise InputError(f"windows of {X.shape[2]} samples are not whole seconds at 30 Hz")
    segments = np.arange(len(y)) if segments is None else np.asarray(segments)
    rng = np.random.default_rng(opts.seed)
    if val_mask is None:
        val_mask = split_subjects(groups, opts.val_frac, rng)
    val_mask = np.asarray(val_mask, dtype=bool)
    if set(groups[val_mask].tolist()) & set(groups[~val_mask].tolist()):
        raise InputError("validation and training windows share a participant; split by participant")
    tr_idx = np.flatnonzero(~val_mask)
    va_idx = np.flatnonzero(val_mask)
    if len(tr_idx) < 2 or len(va_idx) < 1:
        raise InputError(f"too few windows to train ({len(tr_idx)}) or validate ({len(va_idx)})")

    with torch_threads(opts.threads):
        model, prov = init_model(opts.init, labels, X.shape[2] // 30, opts.seed, device=opts.device)
        if opts.freeze:
            for p in model.feature_extractor.parameters():
                p.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.Adam(params, lr=opts.lr, amsgrad=True)
        w = torch.as_tensor(class_weights(y[tr_idx], n_cls), dtype=torch.float32, device=opts.device)
        loss_fn = nn.CrossEntropyLoss(weight=w)
        loss_sum = nn.CrossEntropyLoss(weight=w, reduction="sum")
        Xva = torch.from_numpy(X[va_idx]).to(opts.device)
        yva = torch.from_numpy(y[va_idx]).to(opts.device)
        wva = float(w[yva].sum())

        def val_loss() -> tuple[float, float]:
            model.eval()
            tot, correct = 0.0, 0
            with torch.inference_mode():
                for a in range(0, len(va_idx), 256):
                    logits = model(Xva[a : a + 256])
                    tot += float(loss_sum(logits, yva[a : a + 256]))
                    correct += int((logits.argmax(1) == yva[a : a + 256]).sum())
            return tot / max(wva, 1e-12), correct / len(va_idx)

        history: list[dict[str, float]] = []
        best_loss, best_state, best_epoch, bad = math.inf, None, 0, 0
        bar = _progress(opts.progress, opts.epochs, len(tr_idx))
        for epoch in range(1, opts.epochs + 1):
            t_ep = _time.perf_counter()
            model.train()
            if opts.freeze:
                model.feature_extractor.eval()  # frozen means frozen batch-norm statistics too
            order = tr_idx[rng.permutation(len(tr_idx))]
            # drop a last batch of one window: batch norm cannot train on it
            n_use = len(order) - 1 if len(order) % opts.batch_size == 1 else len(order)
            run_loss, seen = 0.0, 0
            for a in range(0, n_use, opts.batch_size):
                idx = order[a : min(a + opts.batch_size, n_use)]
                xb = X[idx]
                if opts.augment:
                    mats = augmentation_matrices(
                        len(idx), rng, axis_order=opts.axis_swap, rotation=opts.max_rotation_deg > 0,
                        max_angle_deg=opts.max_rotation_deg,
                    )
                    xb = apply_matrices(xb, mats)
                xt = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)).to(opts.device)
                yt = torch.from_numpy(y[idx]).to(opts.device)
                optim.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt), yt)
                loss.backward()
                optim.step()
                run_loss += float(loss.detach()) * len(idx)
                seen += len(idx)
                bar.update(len(idx))
            vl, vacc = val_loss()
            rec = {"epoch": epoch, "train_loss": run_loss / max(seen, 1), "val_loss": vl, "val_acc": vacc,
                   "seconds": _time.perf_counter() - t_ep}
            history.append(rec)
            bar.set_postfix(epoch=epoch, train_loss=f"{rec['train_loss']:.3f}", val_loss=f"{vl:.3f}", val_acc=f"{vacc:.3f}")
            log.info("epoch %d: train loss %.4f, val loss %.4f, val acc %.3f (%.1f s)", epoch, rec["train_loss"], vl, vacc, rec["seconds"])
            if vl < best_loss:
                best_loss, best_epoch, bad = vl, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
                if bad >= opts.patience:
                    break
        bar.close()
        assert best_state is not None
        model.load_state_dict(best_state)
        model.eval()
        val_probs = predict_proba(model, X[va_idx], device=opts.device)
    hmm = fit_hmm(val_probs, y[va_idx], segments[va_idx], labels) if opts.hmm else None
    if hmm is not None:
        model.hmm = hmm
    return FitResult(
        model=model.cpu(),
        labels=labels,
        hmm=hmm,
        history=history,
        best_epoch=best_epoch,
        train_index=tr_idx,
        val_index=va_idx,
        val_probs=val_probs,
        seconds=_time.perf_counter() - t_start,
        info={"provenance": prov, "val_subjects": sorted(set(groups[va_idx].tolist()))},
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(show: bool, epochs: int, per_epoch: int) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=epochs * per_epoch, unit="win", desc="training", leave=False)


# ------------------------------------------------------------------------------------------
# data file -> model directory

LICENCE_NOTE_SCRATCH = "weights trained by the user; the licence is the user's (check the training data's terms)"


def walking_detector_config(ws: Any, src: str, step_params: Mapping[str, float] | None) -> dict[str, Any]:
    """``{"steps": ...}`` for a window set of step-count data (its meta has ``"steps"``), else ``{}``."""
    from ..modeldir import DEFAULT_STEP_PARAMS, STEPS_KEY, WALK_LABELS, steps_config

    meta = ws.meta.get("steps")
    if meta is None:
        if step_params:
            raise InputError(f"{src} holds no step-count data (harnet prepare --layout steps); peak parameters do not apply")
        return {}
    if ws.labels != WALK_LABELS or ws.window_sec != 10:
        raise InputError(
            f"{src}: step-count windows must be 10 s and hold both {list(WALK_LABELS)}; got {ws.window_sec} s, "
            f"{list(ws.labels)}"
        )
    params = {**{k: v for k, v in DEFAULT_STEP_PARAMS.items() if k != "steptol"}, **dict(step_params or {})}
    try:
        return {STEPS_KEY: steps_config(steptol=meta["steptol"], source="harnet train", **params)}
    except (ModelError, TypeError, KeyError) as e:
        raise InputError(f"step counter for {src}: {e}") from None


def train(
    data: str | Path | Any,
    out_dir: str | Path,
    options: TrainOptions | None = None,
    *,
    description: str = "",
    step_params: Mapping[str, float] | None = None,
) -> FitResult:
    """Train on a window file from ``harnet prepare`` and write a harnet model directory.

    The directory (``config.json``, ``model.safetensors``, ``hmm.json`` when the HMM is on,
    ``training.json`` with the history) loads with ``harnet.load(out_dir)`` and runs with
    ``harnet predict --model out_dir``.

    Step-count data (``harnet prepare --layout steps``) gives a walking detector: labels
    not-walking / walking and a ``"steps"`` entry in config.json (the data's ``steptol``, and
    ``lowpass_hz``, ``peak_distance_s``, ``peak_prominence_g`` from ``step_params`` or
    :data:`harnet.modeldir.DEFAULT_STEP_PARAMS`).
    """
    from .._fileio import atomic_write_text
    from ..modeldir import save_model_dir, sha256_file
    from .prepare import WindowSet

    opts = options or TrainOptions()
    if isinstance(data, WindowSet):
        ws, data_sha, src = data, None, "<in memory>"
    else:
        ws = WindowSet.load(data)
        data_sha, src = sha256_file(data), str(data)
    labels = ws.labels
    if len(labels) < 2:
        raise InputError(f"{src} has a single class ({labels}); a classifier needs two or more")
    extra = walking_detector_config(ws, src, step_params)
    res = fit(ws.X, ws.label_index(labels), ws.pid, labels, opts, segments=ws.segments())
    prov = dict(res.info["provenance"])
    prov.setdefault("licence", LICENCE_NOTE_SCRATCH)
    if prov.get("init") != "none" and "licence" in (res.info["provenance"] or {}):
        prov["licence"] = (
            f"derived from {prov['init']}, whose weights come under: {prov['licence']}; "
            "the fine-tuned weights carry the same terms"
        )
    prov.update(
        source="harnet train",
        training_data=src,
        training_data_sha256=data_sha,
        training_windows=int(len(res.train_index)),
        validation_windows=int(len(res.val_index)),
        participants=int(len(np.unique(ws.pid))),
        validation_subjects=[str(s) for s in res.info["val_subjects"]],
    )
    prep = dict(ws.meta.get("preprocessing") or {})
    out = save_model_dir(
        res.model,
        out_dir,
        preprocessing=prep or None,
        provenance=prov,
        description=description or f"harnet {res.model.config.arch} trained on {Path(src).name} ({', '.join(labels)})",
        hmm=res.hmm,
        extra={"training": {"options": opts.to_dict(), "best_epoch": res.best_epoch,
                            "seconds": round(res.seconds, 1)}, **extra},
    )
    import json

    atomic_write_text(
        Path(out) / "training.json",
        json.dumps({"options": opts.to_dict(), "history": res.history, "best_epoch": res.best_epoch,
                    "labels": list(labels), "data_meta": ws.meta}, indent=1, default=str) + "\n",
    )
    return res
