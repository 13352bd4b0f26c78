"""Multi-task self-supervised pre-training of the harnet feature extractor.

The method of Yuan, Chan et al. (2024): unlabelled windows are transformed by three pretext
tasks (arrow of time, segment permutation, time warp; see :mod:`harnet.train.transforms`), each
applied independently with probability 0.5, and the network learns to tell, for each task,
whether it was applied (one ``Linear(F, 2)`` head per task, loss = mean of the tasks'
cross-entropies). Windows are drawn with probability proportional to their standard
deviation; each subject batch gets one random axis order and 3-D rotation
(:mod:`harnet.train.augment`); Adam (amsgrad) with the learning rate scaled by batch/512 and a
geometric warm-up; early stopping on held-out recordings.

Data flow (bounded memory): a first pass reads each device file with the same reader,
calibration, non-wear detection, resampling and windowing as ``harnet predict`` and writes its
valid 30 Hz windows to a window store on disk (one ``.npy`` per recording plus the per-window
standard deviations). Training then reads only the windows it samples from memory-mapped files,
so the data may be much larger than memory.

Interruption: a checkpoint (model, optimiser, position in the epoch, history) is written
atomically every few minutes and after each epoch; running the same command again resumes
from it exactly (every batch's randomness is derived from the seed, the epoch and the step).
The output is a backbone model directory (``config.json``, ``model.safetensors``) holding the
best epoch on the held-out recordings, plus ``pretext_heads.safetensors`` so that pre-training
can continue from it (``resume_from``).
"""

from __future__ import annotations

import logging
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .._fileio import atomic_path
from ..errors import InputError
from .ssl_data import (
    CHECKPOINT,
    CKPT_FORMAT,
    HEADS_FILE,
    RESUMABLE_CHANGES,
    PretrainConfig,
    RecordingSource,
    Source,
    WindowStore,
    build_window_store,
    learning_rate,
    recording_windows,
    sample_windows,
    split_groups,
    window_std,
)
from .ssl_net import heads_state, init_ssl_net, load_heads, make_ssl_net, torch_module
from .transforms import apply_pretext

log = logging.getLogger("harnet")

__all__ = [
    "CHECKPOINT", "HEADS_FILE", "PretrainConfig", "PretrainResult", "RecordingSource", "WindowStore", "evaluate_pretext",
    "init_ssl_net", "learning_rate", "make_ssl_net", "pretrain", "recording_windows", "sample_windows", "split_groups",
    "window_std",
]

# ---- training ------------------------------------------------------------------------------

@dataclass
class PretrainResult:
    """What :func:`pretrain` did: the output directory and the run's figures."""

    out_dir: Path
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_val_loss: float | None
    val_accuracy: dict[str, float]
    stopped: str
    n_train_recordings: int
    n_val_recordings: int
    n_windows: int
    seconds: float
    resumed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _batch(
    store: WindowStore, keys: Sequence[str], stds: Mapping[str, np.ndarray], cfg: PretrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One training batch: std-weighted windows of each recording, one augmentation per
    recording (subject batch), then the pretext transforms with their labels."""
    from .augment import augment

    xs, groups = [], []
    for j, key in enumerate(keys):
        idx = sample_windows(stds[key], cfg.windows_per_subject, rng)
        xs.append(np.asarray(store.windows(key)[idx], dtype=np.float32))
        groups.append(np.full(len(idx), j))
    x = np.concatenate(xs)
    if cfg.augment:
        x = augment(x, rng, groups=np.concatenate(groups))
    return apply_pretext(x, rng, cfg.tasks, cfg.p)


def _val_set(store: WindowStore, keys: Sequence[str], stds: Mapping[str, np.ndarray], cfg: PretrainConfig):
    """Fixed validation windows: every moving window of the held-out recordings (a uniform
    subsample when more than ``max_val_windows``), each with one fixed pretext draw."""
    rng = np.random.default_rng([cfg.seed, 11])
    pairs = [(k, i) for k in keys for i in np.flatnonzero(stds[k] > 0)]
    if not pairs:
        return None
    if len(pairs) > cfg.max_val_windows:
        pick = np.sort(rng.choice(len(pairs), cfg.max_val_windows, replace=False))
        pairs = [pairs[i] for i in pick]
    x = np.stack([np.asarray(store.windows(k)[i], dtype=np.float32) for k, i in pairs])
    return apply_pretext(x, rng, cfg.tasks, cfg.p)


def evaluate_pretext(net: Any, x: np.ndarray, y: np.ndarray, batch: int = 256) -> tuple[float, dict[str, float]]:
    """Mean pretext loss and per-task accuracy of ``net`` (eval mode) on transformed windows."""
    torch = torch_module()
    net.eval()
    dev = next(net.parameters()).device
    losses = np.zeros(len(net.tasks))
    correct = np.zeros(len(net.tasks))
    with torch.no_grad():
        for a in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[a : a + batch])).to(dev)
            yb = torch.from_numpy(y[a : a + batch]).to(dev)
            for t, logit in enumerate(net(xb)):
                losses[t] += float(torch.nn.functional.cross_entropy(logit, yb[:, t], reduction="sum"))
                correct[t] += float((logit.argmax(1) == yb[:, t]).sum())
    n = len(x)
    return float(losses.mean() / n), {t: float(correct[i] / n) for i, t in enumerate(net.tasks)}


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    torch = torch_module()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _write_output(
    out: Path, backbone: Any, net: Any, cfg: PretrainConfig, summary: Mapping[str, Any], provenance: Mapping[str, Any],
    save_heads: bool,
) -> None:
    from safetensors.torch import save_file

    from ..modeldir import save_model_dir, sha256_file

    out.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"pretraining": dict(summary)}
    if save_heads:
        with atomic_path(out / HEADS_FILE) as tmp:
            save_file(heads_state(net), str(tmp), metadata={"format": "pt", "tasks": ",".join(cfg.tasks)})
        extra["pretext_heads"] = {"file": HEADS_FILE, "tasks": list(cfg.tasks), "sha256": sha256_file(out / HEADS_FILE)}
    elif (out / HEADS_FILE).exists():
        (out / HEADS_FILE).unlink()
    save_model_dir(
        backbone,
        out,
        backbone_only=True,
        preprocessing=cfg.preprocessing(),
        provenance=provenance,
        description=f"{cfg.arch} feature extractor, self-supervised pre-training ({', '.join(cfg.tasks)})",
        extra=extra,
    )


def pretrain(
    sources: Sequence[Source],
    out_dir: str | Path,
    config: PretrainConfig | None = None,
    *,
    resume_from: str | Path | None = None,
    work_dir: str | Path | None = None,
    restart: bool = False,
    save_heads: bool = True,
    threads: int | None = None,
    device: str | None = None,
    skip_unreadable: bool = False,
    checkpoint_every_s: float = 300.0,
    stop_after_steps: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> PretrainResult:
    """Pre-train a harnet feature extractor on unlabelled recordings; write a backbone directory.

    Parameters
    ----------
    sources:
        Device files (any format ``harnet predict`` reads) and/or :class:`RecordingSource`
        objects. Each file is one subject for the held-out split.
    out_dir:
        Where the backbone model directory goes (``config.json``, ``model.safetensors``,
        ``pretext_heads.safetensors``). It holds the best epoch so far while training runs;
        load it with ``harnet.load(out_dir)`` or fine-tune it with ``harnet train --from``.
    config:
        A :class:`PretrainConfig` (architecture, tasks, batches, learning rate, epochs, ...).
    resume_from:
        Start from this model directory instead of random weights: a path, ``hf://org/repo``
        or a registry name such as ``harnet10`` (the published backbone, fetched and converted
        once). Its pretext heads are loaded too when it has them.
    work_dir:
        Window store and checkpoint (default: ``<out_dir>.pretrain-work`` beside ``out_dir``).
        An existing checkpoint there is resumed unless ``restart``.
    threads:
        torch CPU threads during the run (restored afterwards).
    device:
        torch device to train on (``"cpu"`` by default, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
    stop_after_steps:
        Stop (after writing a checkpoint) once this many steps ran in this call; for tests and
        time-boxed runs.
    """
    torch = torch_module()
    from ..model import SAMPLE_RATE
    from ..modeldir import load_model_dir, read_config

    cfg = config or PretrainConfig()
    say = progress or log.info
    out = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".pretrain-work")
    ckpt_path = work / CHECKPOINT
    t_start = _time.perf_counter()

    init: dict[str, Any] = {"init": "random"}
    parent_cfg: dict[str, Any] | None = None
    if resume_from is not None:
        from ..loading import resolve_model_dir

        spec = str(resume_from)
        resume_from = resolve_model_dir(resume_from)
        parent_cfg = read_config(resume_from)
        if parent_cfg["arch"] != cfg.arch:
            raise InputError(
                f"{resume_from} holds a {parent_cfg['arch']} network but --arch is {cfg.arch}; "
                f"use --arch {parent_cfg['arch']} (or leave it out)"
            )
        init = {"init": spec, "init_weights_sha256": parent_cfg.get("weights_sha256")}

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        store = WindowStore(work / f"windows-{cfg.window_sec}s", cfg.window_sec * SAMPLE_RATE)
        keys = build_window_store(sources, store, cfg, skip_unreadable=skip_unreadable, progress=say)
        stds = {k: store.std(k) for k in keys}
        usable = [k for k in keys if stds[k].sum() > 0]
        for k in keys:
            if k not in usable:
                say(f"no usable windows in {store.entries[k]['name']} (too short, non-wear or no movement); left out")
        if not usable:
            raise InputError("none of the inputs holds a usable window; give longer recordings with wear time")
        group_of = {k: store.entries[k]["group"] for k in usable}
        train_g, val_g = split_groups(list(group_of.values()), cfg.val_fraction, cfg.seed)
        train_keys = sorted(k for k in usable if group_of[k] in train_g)
        val_keys = sorted(k for k in usable if group_of[k] in val_g)
        n_windows = int(sum(store.entries[k]["n"] for k in usable))
        say(
            f"{len(train_keys)} training and {len(val_keys)} held-out recordings, {n_windows} windows; "
            f"batch {cfg.batch_size} ({cfg.subjects_per_batch} x {cfg.windows_per_subject}), "
            f"lr {cfg.target_lr():.3g}"
        )

        backbone, net = init_ssl_net(cfg, resume_from, progress=say)
        try:
            dev = torch.device(device or "cpu")
            net.to(dev)
        except (RuntimeError, AssertionError) as e:
            raise InputError(f"cannot train on device {device!r} ({e}); use cpu or an available accelerator") from None
        opt = torch.optim.Adam(net.parameters(), lr=learning_rate(0, cfg), amsgrad=True)

        epoch, step = 0, 0
        best_loss: float | None = None
        best_epoch: int | None = None
        bad_epochs = 0
        history: list[dict[str, Any]] = []
        elapsed_before = 0.0
        ep_stats: dict[str, Any] = {"loss": 0.0, "correct": [0.0] * len(cfg.tasks), "n": 0}
        ep_seconds = 0.0
        resumed = False
        if ckpt_path.is_file() and not restart:
            st = torch.load(ckpt_path, weights_only=True, map_location=dev)
            _check_resumable(st, cfg, train_keys, val_keys, ckpt_path)
            net.load_state_dict(st["net"])
            opt.load_state_dict(st["optim"])
            epoch, step = int(st["epoch"]), int(st["step"])
            best_loss, best_epoch = st["best_val_loss"], st["best_epoch"]
            bad_epochs = int(st["bad_epochs"])
            history = list(st["history"])
            elapsed_before = float(st["elapsed_s"])
            ep_stats = dict(st["epoch_stats"])
            ep_seconds = float(st["epoch_seconds"])
            resumed = True
            say(f"resuming from {ckpt_path}: epoch {epoch + 1}, step {step}")

        val = _val_set(store, val_keys, stds, cfg) if val_keys else None
        if val is None:
            say("no held-out recordings: no early stopping; the last epoch is kept")
        provenance = {"source": "harnet pretrain", **init}
        if parent_cfg is not None and parent_cfg.get("provenance", {}).get("licence"):
            provenance["licence"] = parent_cfg["provenance"]["licence"]
            provenance["derived_from"] = parent_cfg.get("provenance")

        def summary(stopped: str) -> dict[str, Any]:
            best = next((h for h in history if h["epoch"] == best_epoch), history[-1] if history else {})
            return {
                "method": "multi-task self-supervision (Yuan, Chan et al. 2024)",
                "config": cfg.to_dict(),
                "recordings": {"train": len(train_keys), "val": len(val_keys)},
                "windows": n_windows,
                "val_windows": 0 if val is None else int(len(val[0])),
                "best_epoch": best_epoch,
                "val_loss": best.get("val_loss"),
                "val_accuracy": best.get("val_accuracy", {}),
                "stopped": stopped,
                "history": history,
            }

        def checkpoint() -> None:
            _save_checkpoint(
                ckpt_path,
                {
                    "format": CKPT_FORMAT,
                    "config": cfg.to_dict(),
                    "train_keys": train_keys,
                    "val_keys": val_keys,
                    "epoch": epoch,
                    "step": step,
                    "net": net.state_dict(),
                    "optim": opt.state_dict(),
                    "best_val_loss": best_loss,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "history": history,
                    "epoch_stats": ep_stats,
                    "epoch_seconds": ep_seconds,
                    "elapsed_s": elapsed_before + _time.perf_counter() - t_start,
                },
            )

        stopped = "max_epochs"
        steps_run = 0
        last_ckpt = _time.perf_counter()
        done = bad_epochs >= cfg.patience
        if done:
            stopped = "patience"
        while not done and epoch < cfg.max_epochs:
            lr = learning_rate(epoch, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            order = np.random.default_rng([cfg.seed, epoch, 0]).permutation(len(train_keys))
            plan = [[train_keys[i] for i in order[a : a + cfg.subjects_per_batch]]
                    for a in range(0, len(order), cfg.subjects_per_batch)]
            t_ep = _time.perf_counter() - ep_seconds  # a resumed epoch keeps its earlier time
            if step == 0:
                ep_stats = {"loss": 0.0, "correct": [0.0] * len(cfg.tasks), "n": 0}
            while step < len(plan):
                x, y = _batch(store, plan[step], stds, cfg, np.random.default_rng([cfg.seed, epoch, 1, step]))
                net.train()
                xb, yb = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
                logits = net(xb)
                losses = [torch.nn.functional.cross_entropy(lg, yb[:, t]) for t, lg in enumerate(logits)]
                loss = torch.stack(losses).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                ep_stats["loss"] += float(loss.detach()) * len(x)
                for t, lg in enumerate(logits):
                    ep_stats["correct"][t] += float((lg.detach().argmax(1) == yb[:, t]).sum())
                ep_stats["n"] += len(x)
                step += 1
                steps_run += 1
                interrupt = stop_after_steps is not None and steps_run >= stop_after_steps
                if step < len(plan) and (interrupt or _time.perf_counter() - last_ckpt > checkpoint_every_s):
                    ep_seconds = _time.perf_counter() - t_ep
                    checkpoint()
                    last_ckpt = _time.perf_counter()
                if interrupt and step < len(plan):
                    say(f"stopped after {steps_run} steps; run again to resume from {ckpt_path}")
                    return _result(out, history, best_epoch, best_loss, "interrupted", train_keys, val_keys,
                                   n_windows, elapsed_before + _time.perf_counter() - t_start, resumed)
            n = max(ep_stats["n"], 1)
            rec: dict[str, Any] = {
                "epoch": epoch,
                "lr": lr,
                "train_loss": ep_stats["loss"] / n,
                "train_accuracy": {t: ep_stats["correct"][i] / n for i, t in enumerate(cfg.tasks)},
                "train_windows": ep_stats["n"],
            }
            improved = True
            if val is not None:
                vl, va = evaluate_pretext(net, *val)
                rec.update(val_loss=vl, val_accuracy=va)
                improved = best_loss is None or vl < best_loss
            rec["seconds"] = _time.perf_counter() - t_ep
            history.append(rec)
            if improved:
                best_loss, best_epoch, bad_epochs = rec.get("val_loss"), epoch, 0
            else:
                bad_epochs += 1
            acc = rec.get("val_accuracy", rec["train_accuracy"])
            say(
                f"epoch {epoch + 1}/{cfg.max_epochs} lr {lr:.3g} train loss {rec['train_loss']:.4f}"
                + (f" val loss {rec['val_loss']:.4f}" if "val_loss" in rec else "")
                + " acc " + " ".join(f"{t} {a:.3f}" for t, a in acc.items())
                + f" ({rec['seconds']:.0f} s)" + (" *" if improved else "")
            )
            epoch += 1
            step = 0
            ep_seconds = 0.0
            if improved:
                _write_output(out, backbone, net, cfg, summary("running"), provenance, save_heads)
            checkpoint()
            last_ckpt = _time.perf_counter()
            if bad_epochs >= cfg.patience:
                stopped = "patience"
                done = True
            if stop_after_steps is not None and steps_run >= stop_after_steps and not done and epoch < cfg.max_epochs:
                say(f"stopped after {steps_run} steps; run again to resume from {ckpt_path}")
                return _result(out, history, best_epoch, best_loss, "interrupted", train_keys, val_keys,
                               n_windows, elapsed_before + _time.perf_counter() - t_start, resumed)

        # final output: the best epoch's weights with the whole history in config.json
        if (out / "model.safetensors").is_file():
            best = load_model_dir(out)
            backbone.feature_extractor.load_state_dict(best.feature_extractor.state_dict())
            if (out / HEADS_FILE).is_file():
                load_heads(net, out / HEADS_FILE, say)
        _write_output(out, backbone, net, cfg, summary(stopped), provenance, save_heads)
        say(f"backbone written to {out} (best epoch {None if best_epoch is None else best_epoch + 1}, stopped: {stopped})")
        return _result(out, history, best_epoch, best_loss, stopped, train_keys, val_keys, n_windows,
                       elapsed_before + _time.perf_counter() - t_start, resumed)
    finally:
        torch.set_num_threads(old_threads)


def _result(out, history, best_epoch, best_loss, stopped, train_keys, val_keys, n_windows, seconds, resumed) -> PretrainResult:
    best = next((h for h in history if h.get("epoch") == best_epoch), {})
    return PretrainResult(
        out_dir=out,
        history=list(history),
        best_epoch=best_epoch,
        best_val_loss=best_loss,
        val_accuracy=dict(best.get("val_accuracy", {})),
        stopped=stopped,
        n_train_recordings=len(train_keys),
        n_val_recordings=len(val_keys),
        n_windows=n_windows,
        seconds=seconds,
        resumed=resumed,
    )


def _check_resumable(st: Mapping[str, Any], cfg: PretrainConfig, train_keys, val_keys, path: Path) -> None:
    if st.get("format") != CKPT_FORMAT:
        raise InputError(f"{path} is from another harnet version; delete it or pass --restart")
    old = dict(st["config"])
    new = cfg.to_dict()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        raise InputError(
            f"{path} was written with other settings ({', '.join(f'{k}: {old.get(k)} -> {new.get(k)}' for k in diff)}); "
            "use the same settings to resume, or pass --restart (or another --work-dir) to start afresh"
        )
    if list(st["train_keys"]) != list(train_keys) or list(st["val_keys"]) != list(val_keys):
        raise InputError(
            f"{path} was written for other input recordings; give the same files to resume, or pass --restart"
        )
