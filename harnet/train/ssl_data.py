"""Pre-training data: the configuration (:class:`PretrainConfig`) and the window store on disk
(each recording's valid windows, prepared as ``harnet predict`` prepares them, as ``.npy`` files
with their standard deviations), sampling and the held-out split. See :mod:`harnet.train.ssl`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np

from .._fileio import atomic_path, atomic_write_text
from ..errors import HarnetError, InputError
from .transforms import TASKS

log = logging.getLogger("harnet")

HEADS_FILE = "pretext_heads.safetensors"
CHECKPOINT = "checkpoint.pt"
STORE_INDEX = "index.json"
STORE_FORMAT = 1
CKPT_FORMAT = 1


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
RESUMABLE_CHANGES = {"max_epochs", "patience"}


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
        idx = self.root / STORE_INDEX
        if idx.is_file():
            try:
                data = json.loads(idx.read_text())
            except ValueError as e:
                raise InputError(f"{idx} is not valid JSON ({e}); delete {self.root} to rebuild the window store") from None
            if data.get("format") != STORE_FORMAT or data.get("window_len") != self.window_len:
                raise InputError(
                    f"{self.root} holds windows of another format or length; delete it or use another work dir"
                )
            self.entries: dict[str, dict[str, Any]] = data["recordings"]
        else:
            self.entries = {}

    def __contains__(self, key: str) -> bool:
        return key in self.entries and (self.root / f"{key}.npy").is_file()

    def _write_index(self) -> None:
        data = {"format": STORE_FORMAT, "window_len": self.window_len, "recordings": self.entries}
        atomic_write_text(self.root / STORE_INDEX, json.dumps(data, indent=1) + "\n")

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
