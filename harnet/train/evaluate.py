"""Subject-wise cross-validation of the paper's settings, with and without the HMM.

Settings (reference section 6):

- ``rf``: random forest on the 22 hand-crafted features (:mod:`harnet.train.features`);
- ``scratch``: harnet trained from random weights;
- ``frozen``: a pre-trained backbone, only the head trained;
- ``finetune``: a pre-trained backbone, all layers trained.

Splits are by participant: the participants are shuffled with the seed and cut into ``cv``
groups (or one group each with ``loso``); each group is the test set once. Inside the training
participants, the networks hold out ``val_frac`` of the participants for early stopping, and
their HMM is fitted on those validation participants' predictions; the forest's HMM is fitted
on out-of-fold predictions from an inner participant-grouped split of the training
participants. Test participants never reach any fit, early stopping or HMM.

Metrics are computed per test participant (macro F1, Cohen's kappa, balanced accuracy) and
reported as mean and SD over participants, with confusion matrices pooled over all test
windows. Each setting's results are cached in ``OUT/settings/NAME.json`` with a signature of the
data, folds and options, so a later call can add a setting (e.g. ``finetune`` once a backbone
exists) without recomputing the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import HarnetError, InputError
from .finetune import TrainOptions

log = logging.getLogger("harnet")

SETTINGS = ("rf", "scratch", "frozen", "finetune")
#: Bumped whenever a change to the method changes results, so cached settings are recomputed.
METHOD_VERSION = 1
_NET = {"scratch": ("none", False), "frozen": (None, True), "finetune": (None, False)}


@dataclass
class EvalOptions:
    settings: tuple[str, ...] = ("rf", "scratch", "finetune")
    cv: int = 5
    loso: bool = False
    backbone: str = "harnet10"  # for frozen / finetune: registry name, model directory or hf://
    seed: int = 0
    train: TrainOptions = field(default_factory=lambda: TrainOptions(hmm=True))
    rf_trees: int = 200
    inner_cv: int = 5
    force: bool = False  # recompute settings even when cached results match

    def __post_init__(self) -> None:
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad or not self.settings:
            raise ValueError(f"unknown settings {bad}; choose from {', '.join(SETTINGS)}")
        if not self.loso and self.cv < 2:
            raise ValueError(f"cv must be >= 2, got {self.cv}")


# ------------------------------------------------------------------------------------------
# splits and metrics


def subject_folds(groups: np.ndarray, k: int, seed: int, *, loso: bool = False) -> list[np.ndarray]:
    """Test participants of each fold: shuffled with ``seed``, cut into ``k`` near-equal groups."""
    uniq = np.unique(np.asarray(groups).astype(str))
    if loso:
        return [np.array([u]) for u in uniq]
    if len(uniq) < k:
        raise InputError(f"{k}-fold cross-validation needs at least {k} participants; the data has {len(uniq)}")
    rng = np.random.default_rng(seed)
    perm = uniq[rng.permutation(len(uniq))]
    return [np.sort(p) for p in np.array_split(perm, k)]


def _sk() -> Any:
    try:
        import sklearn.metrics as m
    except ImportError:  # pragma: no cover - depends on the environment
        raise HarnetError("evaluation needs scikit-learn; install it with `pip install harnet[train]`") from None
    return m


def subject_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Macro F1, Cohen's kappa and balanced accuracy of one participant's windows.

    Macro F1 averages over the classes present in the participant's true or predicted labels;
    kappa is NaN when it is undefined (one class in both).
    """
    m = _sk()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f1 = float(m.f1_score(y_true, y_pred, average="macro", zero_division=0))
        kappa = float(m.cohen_kappa_score(y_true, y_pred))
        bacc = float(m.balanced_accuracy_score(y_true, y_pred))
    return {"f1_macro": f1, "kappa": kappa if math.isfinite(kappa) else float("nan"), "balanced_accuracy": bacc}


def summarise(per_subject: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and SD (ddof 1) over participants of each metric, ignoring NaN."""
    out = {}
    for key in ("f1_macro", "kappa", "balanced_accuracy"):
        v = np.array([d[key] for d in per_subject.values()], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[key] = {
            "mean": float(v.mean()) if len(v) else float("nan"),
            "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
            "n": int(len(v)),
        }
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def smooth_segments(hmm: Any, pred: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """HMM-decode each contiguous segment on its own (windows in time order within a segment)."""
    out = np.empty_like(pred)
    brk = np.flatnonzero(np.diff(segments) != 0) + 1
    for a, b in zip(np.concatenate([[0], brk]), np.concatenate([brk, [len(pred)]])):
        out[a:b] = hmm.viterbi(pred[a:b])
    return out


# ------------------------------------------------------------------------------------------
# one setting


def _forest_fold(
    feats: np.ndarray, y: np.ndarray, groups: np.ndarray, segments: np.ndarray, train: np.ndarray,
    test: np.ndarray, labels: Sequence[str], opts: EvalOptions, seed: int,
) -> dict[str, Any]:
    from .features import make_forest
    from .finetune import fit_hmm

    n_cls = len(labels)
    threads = opts.train.threads or 1

    def fit_predict(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        rf = make_forest(seed=seed, n_estimators=opts.rf_trees, n_jobs=threads)
        rf.fit(feats[tr], y[tr])
        p = np.zeros((len(te), n_cls), dtype=np.float32)
        p[:, rf.classes_] = rf.predict_proba(feats[te])
        return p

    info: dict[str, Any] = {"fit_subjects": sorted(set(groups[train].tolist()))}
    hmm = None
    if opts.train.hmm:
        # out-of-fold probabilities over the training participants, participant-grouped
        inner = subject_folds(groups[train], min(opts.inner_cv, len(np.unique(groups[train]))), seed)
        oof = np.zeros((len(train), n_cls), dtype=np.float32)
        for sub in inner:
            te_m = np.isin(groups[train], sub)
            oof[te_m] = fit_predict(train[~te_m], train[te_m])
        hmm = fit_hmm(oof, y[train], segments[train], labels)
        info["hmm_subjects"] = info["fit_subjects"]
        info["hmm_windows"] = train.tolist()
        info["hmm_source"] = f"out-of-fold forest probabilities ({len(inner)} inner participant folds)"
    probs = fit_predict(train, test)
    return {"probs": probs, "hmm": hmm, "info": info}


def _net_fold(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, segments: np.ndarray, train: np.ndarray,
    test: np.ndarray, labels: Sequence[str], topts: TrainOptions,
) -> dict[str, Any]:
    from .finetune import fit, predict_proba

    res = fit(X[train], y[train], groups[train], labels, topts, segments=segments[train])
    probs = predict_proba(res.model, X[test], device="cpu")
    info = {
        "fit_subjects": sorted(set(groups[train[res.train_index]].tolist())),
        "val_subjects": sorted(set(groups[train[res.val_index]].tolist())),
        "best_epoch": res.best_epoch,
        "epochs_run": len(res.history),
        "history": res.history,
    }
    if res.hmm is not None:
        info["hmm_subjects"] = info["val_subjects"]
        info["hmm_windows"] = train[res.val_index].tolist()
        info["hmm_source"] = "validation participants' probabilities (held out from gradient steps)"
    return {"probs": probs, "hmm": res.hmm, "info": info}


def _setting_options(name: str, opts: EvalOptions) -> dict[str, Any]:
    if name == "rf":
        return {"trees": opts.rf_trees, "inner_cv": opts.inner_cv, "hmm": opts.train.hmm,
                "features": "22 hand-crafted (harnet.train.features)"}
    init, freeze = _NET[name]
    t = dataclasses.replace(opts.train, init=init or opts.backbone, freeze=freeze)
    d = t.to_dict()
    for k in ("device", "threads", "progress"):  # do not change results
        d.pop(k, None)
    return d


def run_setting(
    name: str, ws: Any, labels: Sequence[str], folds: list[np.ndarray], opts: EvalOptions,
    *, feats: np.ndarray | None = None, echo: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Cross-validate one setting; returns its results with per-window predictions."""
    y = ws.label_index(labels)
    groups = ws.pid
    segments = ws.segments()
    n = len(y)
    n_cls = len(labels)
    pred_raw = np.full(n, -1, dtype=np.int64)
    pred_hmm = np.full(n, -1, dtype=np.int64)
    probs_all = np.full((n, n_cls), np.nan, dtype=np.float32)
    fold_info = []
    t0 = _time.perf_counter()
    for k, test_subj in enumerate(folds):
        t_f = _time.perf_counter()
        test = np.flatnonzero(np.isin(groups, test_subj))
        train = np.flatnonzero(~np.isin(groups, test_subj))
        seed = opts.seed * 1000 + k
        if name == "rf":
            r = _forest_fold(feats, y, groups, segments, train, test, labels, opts, seed)
        else:
            init, freeze = _NET[name]
            topts = dataclasses.replace(opts.train, init=init or opts.backbone, freeze=freeze, seed=seed)
            r = _net_fold(ws.X, y, groups, segments, train, test, labels, topts)
        probs_all[test] = r["probs"]
        pred_raw[test] = np.argmax(r["probs"], axis=1)
        if r["hmm"] is not None:
            pred_hmm[test] = smooth_segments(r["hmm"], pred_raw[test], segments[test])
        info = dict(r["info"])
        info.update(fold=k, test_subjects=[str(s) for s in test_subj], test_windows=int(len(test)),
                    seconds=round(_time.perf_counter() - t_f, 1))
        if r["hmm"] is not None:
            info["hmm"] = r["hmm"].to_dict()
        fold_info.append(info)
        echo(f"{name}: fold {k + 1}/{len(folds)} done in {info['seconds']:.0f} s")
    result: dict[str, Any] = {
        "setting": name,
        "options": _setting_options(name, opts),
        "folds": fold_info,
        "seconds": round(_time.perf_counter() - t0, 1),
        "pred_raw": pred_raw.tolist(),
        "pred_hmm": pred_hmm.tolist() if opts.train.hmm else None,
    }
    result["variants"] = _score_variants(y, groups, pred_raw, pred_hmm if opts.train.hmm else None, n_cls)
    return result


def _score_variants(y: np.ndarray, groups: np.ndarray, raw: np.ndarray, hmm: np.ndarray | None, n_cls: int) -> dict[str, Any]:
    out = {}
    for variant, pred in (("raw", raw), ("hmm", hmm)):
        if pred is None:
            continue
        per = {}
        for g in np.unique(groups):
            m = groups == g
            per[str(g)] = subject_metrics(y[m], pred[m])
        out[variant] = {"per_subject": per, "summary": summarise(per), "confusion": confusion(y, pred, n_cls).tolist()}
    return out


# ------------------------------------------------------------------------------------------
# the whole evaluation


def _signature(data_sha: str, folds: list[np.ndarray], labels: Sequence[str], setting_opts: dict[str, Any], n: int) -> str:
    blob = json.dumps({"method": METHOD_VERSION, "data": data_sha, "folds": [f.tolist() for f in folds], "labels": list(labels),
                       "options": setting_opts, "n": n}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def evaluate(
    data: str | Path,
    out_dir: str | Path,
    options: EvalOptions | None = None,
    *,
    echo: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Cross-validate ``options.settings`` on a window file and write the report to ``out_dir``.

    Writes ``results.json`` (everything: options, folds, per-participant metrics, confusion
    matrices), ``results.md`` (the table), ``confusion.png`` and ``predictions.csv`` (one row
    per window: participant, time, true label, each setting's prediction), and the per-setting
    caches in ``settings/``. Returns the content of ``results.json``.
    """
    from .._fileio import atomic_write_text
    from ..modeldir import sha256_file
    from .finetune import torch_threads
    from .prepare import WindowSet

    opts = options or EvalOptions()
    data = Path(data)
    ws = WindowSet.load(data)
    labels = ws.labels
    if len(labels) < 2:
        raise InputError(f"{data} has a single class ({labels}); nothing to classify")
    data_sha = sha256_file(data)
    folds = subject_folds(ws.pid, opts.cv, opts.seed, loso=opts.loso)
    out = Path(out_dir)
    (out / "settings").mkdir(parents=True, exist_ok=True)
    echo(f"{len(ws)} windows, {len(np.unique(ws.pid))} participants, {len(labels)} classes, {len(folds)} folds")
    results: dict[str, Any] = {}
    feats = None
    for name in opts.settings:
        sig = _signature(data_sha, folds, labels, _setting_options(name, opts), len(ws))
        cache = out / "settings" / f"{name}.json"
        if cache.is_file() and not opts.force:
            try:
                cached = json.loads(cache.read_text())
            except ValueError:
                cached = {}
            if cached.get("signature") == sig:
                echo(f"{name}: cached results reused ({cache})")
                results[name] = cached
                continue
        if name == "rf" and feats is None:
            from .features import extract_features

            feats = extract_features(ws.X)
        with torch_threads(opts.train.threads):
            r = run_setting(name, ws, labels, folds, opts, feats=feats, echo=echo)
        r["signature"] = sig
        atomic_write_text(cache, json.dumps(r, default=_json_default) + "\n")
        results[name] = r
    report = {
        "data": str(data),
        "data_sha256": data_sha,
        "data_meta": ws.meta,
        "windows": len(ws),
        "participants": int(len(np.unique(ws.pid))),
        "labels": list(labels),
        "class_counts": {lab: int((ws.y == lab).sum()) for lab in labels},
        "cv": "loso" if opts.loso else opts.cv,
        "seed": opts.seed,
        "folds": [f.tolist() for f in folds],
        "settings": {
            name: {k: v for k, v in r.items() if k not in ("pred_raw", "pred_hmm")} for name, r in results.items()
        },
    }
    atomic_write_text(out / "results.json", json.dumps(report, indent=1, default=_json_default) + "\n")
    atomic_write_text(out / "results.md", markdown_table(report))
    _write_predictions(out / "predictions.csv", ws, labels, results)
    plot_confusions(report, out / "confusion.png")
    return report


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _write_predictions(path: Path, ws: Any, labels: Sequence[str], results: dict[str, Any]) -> None:
    import pandas as pd

    from .._fileio import atomic_path

    names = np.asarray(list(labels) + [""], dtype=object)
    df = pd.DataFrame({"participant": ws.pid, "recording": ws.recording, "time": ws.time, "label": ws.y})
    for name, r in results.items():
        df[name] = names[np.asarray(r["pred_raw"])]
        if r.get("pred_hmm") is not None:
            df[f"{name}+hmm"] = names[np.asarray(r["pred_hmm"])]
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _fmt(s: dict[str, float]) -> str:
    if not math.isfinite(s["mean"]):
        return "n/a"
    sd = f" ± {s['sd']:.3f}" if math.isfinite(s["sd"]) else ""
    return f"{s['mean']:.3f}{sd}"


def markdown_table(report: dict[str, Any]) -> str:
    """The results as a markdown table: one row per setting and HMM variant."""
    lines = [
        f"Data: `{report['data']}` ({report['windows']} windows, {report['participants']} participants, "
        f"{len(report['labels'])} classes); subject-wise CV: {report['cv']}"
        + (" folds" if report["cv"] != "loso" else " (leave one subject out)") + f", seed {report['seed']}.",
        "Per-participant metrics, mean ± SD over test participants.",
        "",
        "| setting | HMM | macro F1 | Cohen's kappa | balanced accuracy | participants | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["settings"].items():
        for variant, v in r["variants"].items():
            s = v["summary"]
            lines.append(
                f"| {name} | {'yes' if variant == 'hmm' else 'no'} | {_fmt(s['f1_macro'])} | {_fmt(s['kappa'])} | "
                f"{_fmt(s['balanced_accuracy'])} | {s['f1_macro']['n']} | {r['seconds']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def plot_confusions(report: dict[str, Any], path: str | Path) -> None:
    """Row-normalised confusion matrices (counts written in the cells), one per setting x HMM."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .._fileio import atomic_path

    panels = [(f"{n}{' + HMM' if v == 'hmm' else ''}", np.asarray(r["variants"][v]["confusion"]))
              for n, r in report["settings"].items() for v in r["variants"]]
    labels = report["labels"]
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    size = 1.0 + 0.55 * len(labels)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * (size + 1.5), rows * (size + 1.0)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, cm) in zip(axes.flat, panels):
        ax.axis("on")
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
