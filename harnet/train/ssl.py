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

import dataclasses
import hashlib
import json
import logging
import re
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np

from .._fileio import atomic_path, atomic_write_text
from ..errors import HarnetError, InputError, ModelError
from .transforms import TASKS, apply_pretext

log = logging.getLogger("harnet")

HEADS_FILE = "pretext_heads.safetensors"
CHECKPOINT = "checkpoint.pt"
_STORE_INDEX = "index.json"
_STORE_FORMAT = 1
_CKPT_FORMAT = 1


# ---- configuration -------------------------------------------------------------------------

@dataclass(frozen=True)
class PretrainConfig:
    """Every setting of a pre-training run (recorded in the checkpoint and the output config).

    ``subjects_per_batch`` recordings are visited per optimiser step and ``windows_per_subject``
    windows drawn from each (the paper: 4-5 subjects x ~1500 windows on a GPU; the defaults suit
    a CPU). One epoch visits every training recording once. The learning rate is ``lr``, times
    ``batch / lr_ref_batch`` when ``lr_scale``, warmed up geometrically from ``warmup_start``
    times that value over ``warmup_epochs`` epochs, then held.
    """

    arch: str = "harnet10"
    tasks: tuple[str, ...] = TASKS
    p: float = 0.5
    subjects_per_batch: int = 4
    windows_per_subject: int = 32
    lr: float = 1e-4
    lr_scale: bool = True
    lr_ref_batch: int = 512
    warmup_epochs: int = 5
    warmup_start: float = 0.1
    max_epochs: int = 20
    patience: int = 5
    val_fraction: float = 0.2
    max_val_windows: int = 2048
    augment: bool = True
    seed: int = 0
    calibrate: bool = True
    detect_nonwear: bool = True
    lowpass_hz: float | None = 20.0
    max_gap_s: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise InputError(f"pretext tasks {list(self.tasks)} invalid; use one or more of {', '.join(TASKS)}")
        for name in ("subjects_per_batch", "windows_per_subject", "max_epochs", "lr_ref_batch", "max_val_windows"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 < self.p < 1.0:
            raise InputError(f"p must be strictly between 0 and 1, got {self.p}")
        if self.lr <= 0 or not 0 < self.warmup_start <= 1 or self.warmup_epochs < 0 or self.patience < 1:
            raise InputError("lr > 0, 0 < warmup_start <= 1, warmup_epochs >= 0 and patience >= 1 are required")

    @property
    def batch_size(self) -> int:
        return self.subjects_per_batch * self.windows_per_subject

    @property
    def window_sec(self) -> int:
        from ..model import HarnetConfig

        return HarnetConfig.for_arch(self.arch).window_sec

    def target_lr(self) -> float:
        return self.lr * (self.batch_size / self.lr_ref_batch if self.lr_scale else 1.0)

    def preprocessing(self) -> dict[str, Any]:
        """The preprocessing of the windows, as a model directory's ``preprocessing`` field."""
        return {
            "calibrate_gravity": self.calibrate,
            "detect_nonwear": self.detect_nonwear,
            "lowpass_hz": self.lowpass_hz,
            "resample": "linear",
        }

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        return d


#: Settings that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"max_epochs", "patience"}


def learning_rate(epoch: int, cfg: PretrainConfig) -> float:
    """The learning rate of ``epoch`` (0-based): geometric warm-up to the target, then held."""
    target = cfg.target_lr()
    w = cfg.warmup_epochs
    if epoch >= w:
        return target
    return target * cfg.warmup_start ** ((w - epoch) / w)


# ---- window store --------------------------------------------------------------------------

def window_std(x: np.ndarray) -> np.ndarray:
    """Movement per window ``(N,)``: root of the mean over axes of each axis' variance in time.

    Invariant to rotations of the axes (it is the root of the covariance trace over 3), so the
    random rotation of augmentation does not change which windows are drawn.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(x.var(axis=2).mean(axis=1)).astype(np.float32)


@dataclass
class RecordingSource:
    """An in-memory recording to pre-train on: ``name`` must be unique; ``group`` (e.g. the
    subject) keeps recordings of one person on the same side of the held-out split.

    With ``calibrate`` on, gravity calibration corrects ``recording.xyz`` in place when it
    helps (as in ``harnet predict``); pass a copy to keep the original values."""

    name: str
    recording: Any
    group: str | None = None


Source = Union[str, Path, RecordingSource]


class WindowStore:
    """Valid 30 Hz windows of many recordings on disk, read back as memory maps.

    ``root/index.json`` lists the recordings (key, name, group, number of windows, source);
    ``root/<key>.npy`` holds float32 ``(n, 3, T)`` windows and ``root/<key>.std.npy`` their
    :func:`window_std`. A recording appears in the index only after both files were written,
    so an interrupted first pass resumes at the recording it was on.
    """

    def __init__(self, root: str | Path, window_len: int) -> None:
        self.root = Path(root)
        self.window_len = int(window_len)
        self.root.mkdir(parents=True, exist_ok=True)
        self._mm: dict[str, np.ndarray] = {}
        idx = self.root / _STORE_INDEX
        if idx.is_file():
            try:
                data = json.loads(idx.read_text())
            except ValueError as e:
                raise InputError(f"{idx} is not valid JSON ({e}); delete {self.root} to rebuild the window store") from None
            if data.get("format") != _STORE_FORMAT or data.get("window_len") != self.window_len:
                raise InputError(
                    f"{self.root} holds windows of another format or length; delete it or use another work dir"
                )
            self.entries: dict[str, dict[str, Any]] = data["recordings"]
        else:
            self.entries = {}

    def __contains__(self, key: str) -> bool:
        return key in self.entries and (self.root / f"{key}.npy").is_file()

    def _write_index(self) -> None:
        data = {"format": _STORE_FORMAT, "window_len": self.window_len, "recordings": self.entries}
        atomic_write_text(self.root / _STORE_INDEX, json.dumps(data, indent=1) + "\n")

    def add(self, key: str, name: str, group: str, chunks: Iterable[np.ndarray], source: Mapping[str, Any]) -> int:
        """Write a recording's windows, given as an iterable of ``(n_i, 3, T)`` arrays; returns n.

        Each chunk goes to disk as it arrives (memory holds one chunk, not the recording); the
        ``.npy`` is then assembled from that file block by block.
        """
        raw = self.root / f".{key}.raw"
        stds: list[np.ndarray] = []
        n = 0
        try:
            with open(raw, "wb") as f:
                for c in chunks:
                    if c.ndim != 3 or c.shape[1:] != (3, self.window_len):
                        raise ValueError(f"windows must be (n, 3, {self.window_len}), got {c.shape}")
                    c = np.ascontiguousarray(c, dtype=np.float32)
                    f.write(c.data)
                    stds.append(window_std(c))
                    n += len(c)
            with atomic_path(self.root / f"{key}.npy") as tmp:
                mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, 3, self.window_len))
                if n:
                    src = np.memmap(raw, dtype=np.float32, mode="r", shape=(n, 3, self.window_len))
                    block = max(1, (64 << 20) // (3 * self.window_len * 4))  # 64 MB at a time
                    for a in range(0, n, block):
                        mm[a : a + block] = src[a : a + block]
                    del src
                mm.flush()
                del mm
        finally:
            raw.unlink(missing_ok=True)
        with atomic_path(self.root / f"{key}.std.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.concatenate(stds) if stds else np.empty(0, np.float32))
        self.entries[key] = {"name": name, "group": group, "n": n, "source": dict(source)}
        self._write_index()
        return n

    def windows(self, key: str) -> np.ndarray:
        """The recording's windows as a read-only memory map ``(n, 3, T)``."""
        if key not in self._mm:
            self._mm[key] = np.load(self.root / f"{key}.npy", mmap_mode="r")
        return self._mm[key]

    def std(self, key: str) -> np.ndarray:
        return np.load(self.root / f"{key}.std.npy")


def _safe_name(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60]
    return s or "rec"


def _source_key(src: Source, cfg: PretrainConfig) -> tuple[str, str, str, dict[str, Any]]:
    """(key, name, group, source description) of a source; the key changes when its content
    or the preprocessing changes, so a stale store entry is never reused."""
    prep = json.dumps({**cfg.preprocessing(), "max_gap_s": cfg.max_gap_s, "window_sec": cfg.window_sec}, sort_keys=True)
    h = hashlib.sha256(prep.encode())
    if isinstance(src, RecordingSource):
        rec = src.recording
        h.update(src.name.encode())
        h.update(np.ascontiguousarray(rec.time).view(np.uint8).data)
        h.update(np.ascontiguousarray(rec.xyz).view(np.uint8).data)
        name = src.name
        group = src.group if src.group is not None else src.name
        desc: dict[str, Any] = {"kind": "memory", "name": src.name, "samples": len(rec)}
    else:
        p = Path(src)
        try:
            st = p.stat()
        except OSError as e:
            raise InputError(f"cannot read {p}: {e.strerror}; check the path") from None
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        name = str(p)
        group = str(p.resolve())
        desc = {"kind": "file", "path": str(p.resolve()), "bytes": st.st_size}
    return f"{_safe_name(Path(name).name)}-{h.hexdigest()[:12]}", name, group, desc


def recording_windows(rec: Any, cfg: PretrainConfig) -> Iterator[np.ndarray]:
    """The valid windows of a recording, chunk by chunk, prepared as ``harnet predict`` prepares
    them: gravity calibration, non-wear detection, low-pass, 30 Hz resampling, clock-aligned
    windows; windows with missing samples or non-wear are dropped."""
    from ..modeldir import Preprocessing
    from ..predictor import prepare_recording, window_chunks

    prep = Preprocessing.from_dict(cfg.preprocessing())
    _, nonwear = prepare_recording(rec, prep)
    for ch in window_chunks(rec, cfg.window_sec, prep, nonwear, max_gap_s=cfg.max_gap_s):
        if ch.valid.any():
            yield ch.X[ch.valid]


def build_window_store(
    sources: Sequence[Source],
    store: WindowStore,
    cfg: PretrainConfig,
    *,
    skip_unreadable: bool = False,
    progress: Callable[[str], None] = log.info,
) -> list[str]:
    """First pass: write each source's valid windows to ``store`` (reusing what is already
    there); returns the store keys in source order (recordings without windows included)."""
    keys: list[str] = []
    names: dict[str, str] = {}
    for src in sources:
        key, name, group, desc = _source_key(src, cfg)
        if name in names:
            raise InputError(f"{name} is given twice; give each recording once")
        names[name] = key
        if key in store:
            progress(f"windows of {name}: {store.entries[key]['n']} (from the window store)")
            keys.append(key)
            continue
        t0 = _time.perf_counter()
        try:
            if isinstance(src, RecordingSource):
                rec = src.recording
            else:
                from ..io import read_device

                rec = read_device(src)
            n = store.add(key, name, group, recording_windows(rec, cfg), desc)
        except HarnetError as e:
            if not skip_unreadable:
                raise
            progress(f"skipped {name}: {e}")
            continue
        finally:
            rec = None
        progress(f"windows of {name}: {n} ({_time.perf_counter() - t0:.1f} s)")
        keys.append(key)
    return keys


def sample_windows(std: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` window indices drawn with replacement, window ``i`` with probability
    ``std[i] / std.sum()`` (windows without movement are never drawn); sorted for disk locality."""
    std = np.asarray(std, dtype=np.float64)
    total = std.sum()
    if not np.isfinite(total) or total <= 0 or (std < 0).any():
        raise ValueError("window standard deviations must be non-negative, finite and not all zero")
    idx = np.searchsorted(np.cumsum(std), rng.random(k) * total, side="right")
    return np.sort(np.minimum(idx, len(std) - 1))


def split_groups(groups: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Held-out split by group: returns (train groups, validation groups), both sorted.

    ``round(val_fraction * n)`` groups (at least one when ``val_fraction > 0`` and there are two
    or more groups) are held out, chosen by ``seed``; the same inputs give the same split.
    """
    uniq = sorted(set(groups))
    if val_fraction <= 0 or len(uniq) < 2:
        return uniq, []
    n_val = min(len(uniq) - 1, max(1, int(round(val_fraction * len(uniq)))))
    order = np.random.default_rng([seed, 7]).permutation(len(uniq))
    val = sorted(uniq[i] for i in order[:n_val])
    return sorted(set(uniq) - set(val)), val


# ---- network -------------------------------------------------------------------------------

def _torch():
    import torch

    return torch


def make_ssl_net(feature_extractor: Any, tasks: Sequence[str], in_features: int) -> Any:
    """Feature extractor plus one ``<task>_h.linear1 = Linear(F, 2)`` head per task.

    The state-dict names (``feature_extractor.*``, ``aot_h.linear1.weight``, ...) match the
    published pre-training checkpoints, so their heads can be loaded to continue pre-training.
    """
    torch = _torch()
    from torch import nn

    class PretextHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear1 = nn.Linear(in_features, 2)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.linear1(z)

    class SSLNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.feature_extractor = feature_extractor
            self.tasks = tuple(tasks)
            for t in self.tasks:
                self.add_module(f"{t}_h", PretextHead())

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            z = self.feature_extractor(x).flatten(1)
            return [getattr(self, f"{t}_h")(z) for t in self.tasks]

    return SSLNet()


def init_ssl_net(
    cfg: PretrainConfig, resume_from: str | Path | None = None, progress: Callable[[str], None] = log.info
) -> tuple[Any, Any]:
    """``(backbone, net)``: a :class:`harnet.model.Harnet` and the pre-training network that
    shares its feature extractor. Random weights are drawn from ``cfg.seed`` (without touching
    torch's global generator); ``resume_from`` loads a backbone directory and its pretext heads
    when it has them."""
    torch = _torch()
    from ..model import build
    from ..modeldir import load_model_dir

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        backbone = build(cfg.arch) if resume_from is None else load_model_dir(resume_from)
        net = make_ssl_net(backbone.feature_extractor, cfg.tasks, backbone.feature_extractor.out_features)
    if resume_from is not None and (Path(resume_from) / HEADS_FILE).is_file():
        _load_heads(net, Path(resume_from) / HEADS_FILE, progress)
    return backbone, net


def _heads_state(net: Any) -> dict[str, Any]:
    return {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items() if not k.startswith("feature_extractor.")}


def _load_heads(net: Any, path: Path, progress: Callable[[str], None]) -> list[str]:
    """Load the heads in ``path`` that ``net`` has (others, e.g. ``scale_h``, are ignored)."""
    from safetensors.torch import load_file

    sd = load_file(str(path))
    own = net.state_dict()
    use = {k: v for k, v in sd.items() if k in own and not k.startswith("feature_extractor.")}
    for k, v in use.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelError(f"{path}: head {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    net.load_state_dict({**own, **use})
    loaded = sorted({k.split("_h.")[0] for k in use})
    missing = [t for t in net.tasks if t not in loaded]
    if missing:
        progress(f"pretext heads not in {path.name}, started fresh: {', '.join(missing)}")
    return loaded


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
    torch = _torch()
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
    torch = _torch()
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
            save_file(_heads_state(net), str(tmp), metadata={"format": "pt", "tasks": ",".join(cfg.tasks)})
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
    torch = _torch()
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
                    "format": _CKPT_FORMAT,
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
                _load_heads(net, out / HEADS_FILE, say)
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
    if st.get("format") != _CKPT_FORMAT:
        raise InputError(f"{path} is from another harnet version; delete it or pass --restart")
    old = dict(st["config"])
    new = cfg.to_dict()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in _RESUMABLE_CHANGES)
    if diff:
        raise InputError(
            f"{path} was written with other settings ({', '.join(f'{k}: {old.get(k)} -> {new.get(k)}' for k in diff)}); "
            "use the same settings to resume, or pass --restart (or another --work-dir) to start afresh"
        )
    if list(st["train_keys"]) != list(train_keys) or list(st["val_keys"]) != list(val_keys):
        raise InputError(
            f"{path} was written for other input recordings; give the same files to resume, or pass --restart"
        )
