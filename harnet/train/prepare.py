"""Labelled raw recordings -> window arrays for training and evaluation.

The output (:class:`WindowSet`, saved as ``.npz`` without pickles) holds

- ``X`` float32 ``(N, 3, T)``: x, y, z in g at 30 Hz (``T = window_sec * 30``);
- ``y`` the window labels as strings; ``pid`` the participant; ``recording`` the recording
  (a participant may have several); ``time`` the window start (datetime64[ns]);
- ``meta``: a JSON string with the window geometry, the preprocessing, the label order, where
  the data came from and how many windows were dropped and why;
- ``steps`` (only for step-count data, :mod:`harnet.train.steps_data`): the annotated steps in
  each window.

Every recording is resampled by its timestamps with :func:`harnet.signal.resample.resample` (the same
code ``harnet predict`` uses) onto the midnight-aligned 30 Hz grid, then cut into windows that
start every ``step_sec`` on that grid. A window's label is the majority label of the raw samples
inside it. A window is dropped (and counted) when any of its 30 Hz samples is missing
(``incomplete``), when most of its samples carry no usable label (``unlabelled``: missing, or a
label the caller excluded), or when its majority label covers less than ``min_agreement`` of its
samples (``mixed``).

Layouts (a generic table, the HAPT parquet, the Capture-24 folder): :mod:`harnet.train.datasets`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..arch import SAMPLE_RATE
from ..errors import InputError
from ..timegrid import NS

DROP_REASONS = ("incomplete", "unlabelled", "mixed")


# ------------------------------------------------------------------------------------------
# the window set


@dataclass
class WindowSet:
    """Labelled windows of many participants, in (recording, time) order."""

    X: np.ndarray
    y: np.ndarray
    pid: np.ndarray
    recording: np.ndarray
    time: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    steps: np.ndarray | None = None  # annotated steps per window (step-count data only)

    def __post_init__(self) -> None:
        n = len(self.X)
        if self.X.ndim != 3 or self.X.shape[1] != 3:
            raise InputError(f"window array X must have shape (N, 3, T), got {self.X.shape}")
        if self.steps is not None:
            self.steps = np.asarray(self.steps, dtype=np.int64)
        for name in ("y", "pid", "recording", "time") + (("steps",) if self.steps is not None else ()):
            if len(getattr(self, name)) != n:
                raise InputError(f"window set: {name} has {len(getattr(self, name))} entries for {n} windows")
        self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        self.y = np.asarray(self.y).astype(str)
        self.pid = np.asarray(self.pid).astype(str)
        self.recording = np.asarray(self.recording).astype(str)
        self.time = np.asarray(self.time).astype("datetime64[ns]")

    def __len__(self) -> int:
        return len(self.X)

    @property
    def window_sec(self) -> int:
        return int(self.meta.get("window_sec", self.X.shape[2] // SAMPLE_RATE))

    @property
    def step_sec(self) -> float:
        return float(self.meta.get("step_sec", self.window_sec))

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in model-output order: ``meta["labels"]`` (those present), else sorted."""
        present = set(self.y.tolist())
        order = [str(x) for x in self.meta.get("labels", []) if str(x) in present]
        return tuple(order + sorted(present - set(order)))

    def label_index(self, labels: Sequence[str] | None = None) -> np.ndarray:
        """``y`` as indices into ``labels`` (default :attr:`labels`)."""
        labels = list(self.labels if labels is None else labels)
        lut = {k: i for i, k in enumerate(labels)}
        missing = sorted(set(self.y.tolist()) - set(lut))
        if missing:
            raise InputError(f"labels {missing} are not among the model's labels {labels}")
        return np.array([lut[v] for v in self.y], dtype=np.int64)

    def segments(self) -> np.ndarray:
        """An id per window; consecutive windows share it when they follow each other without a gap.

        A new segment starts at a new recording or where the start times are not exactly one
        step apart (a dropped window in between). HMM transitions count only within a segment.
        """
        n = len(self)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        step_ns = int(round(self.step_sec * NS))
        t = self.time.view(np.int64)
        brk = np.ones(n, dtype=bool)
        brk[1:] = (self.recording[1:] != self.recording[:-1]) | (np.diff(t) != step_ns)
        return np.cumsum(brk) - 1

    def subset(self, mask: np.ndarray) -> "WindowSet":
        m = np.asarray(mask)
        return WindowSet(self.X[m], self.y[m], self.pid[m], self.recording[m], self.time[m], dict(self.meta),
                         None if self.steps is None else self.steps[m])

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (atomically; loads with ``allow_pickle=False``)."""
        from .._fileio import atomic_open

        path = Path(path)
        with atomic_open(path, "wb") as f:
            np.savez(
                f,
                X=self.X,
                y=self.y.astype(str),
                pid=self.pid.astype(str),
                recording=self.recording.astype(str),
                time=self.time,
                meta=np.array(json.dumps(self.meta)),
                **({} if self.steps is None else {"steps": self.steps}),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> "WindowSet":
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file; create it with `harnet prepare`")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ("X", "y", "pid", "time") if k not in z.files]
                if missing:
                    raise InputError(
                        f"{path} lacks the arrays {missing}; it was not written by `harnet prepare`"
                    )
                meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
                rec = z["recording"] if "recording" in z.files else z["pid"]
                ws = cls(z["X"], z["y"], z["pid"], rec, z["time"], meta, z["steps"] if "steps" in z.files else None)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {path} as a window file ({e}); create it with `harnet prepare`") from None
        if ws.X.shape[2] % SAMPLE_RATE:
            raise InputError(f"{path}: windows of {ws.X.shape[2]} samples are not whole seconds at 30 Hz")
        return ws


def concat(sets: Sequence[WindowSet], meta: Mapping[str, Any] | None = None) -> WindowSet:
    if not sets:
        raise InputError("no windows to join")
    return WindowSet(
        np.concatenate([s.X for s in sets]),
        np.concatenate([s.y for s in sets]),
        np.concatenate([s.pid for s in sets]),
        np.concatenate([s.recording for s in sets]),
        np.concatenate([s.time for s in sets]),
        dict(meta or sets[0].meta),
        np.concatenate([s.steps for s in sets]) if all(s.steps is not None for s in sets) else None,
    )


# ------------------------------------------------------------------------------------------
# one recording -> labelled windows


@dataclass(frozen=True)
class WindowOptions:
    """How windows are cut and labelled."""

    window_sec: int = 10
    step_sec: float | None = None  # None: the window length (no overlap)
    min_agreement: float = 0.9
    lowpass_hz: float | None = None
    max_gap_s: float = 1.0

    def __post_init__(self) -> None:
        if self.window_sec <= 0:
            raise ValueError(f"window_sec must be positive, got {self.window_sec}")
        step = self.step
        if step <= 0 or abs(step * SAMPLE_RATE - round(step * SAMPLE_RATE)) > 1e-9:
            raise ValueError(f"step_sec must be a positive multiple of 1/{SAMPLE_RATE} s, got {self.step_sec}")
        if not 0.0 < self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be within (0, 1], got {self.min_agreement}")

    @property
    def step(self) -> float:
        return float(self.window_sec if self.step_sec is None else self.step_sec)

    def preprocessing(self) -> dict[str, Any]:
        """What a model trained on these windows expects at prediction time."""
        return {
            "calibrate_gravity": False,
            "detect_nonwear": True,
            "lowpass_hz": self.lowpass_hz,
            "resample": "linear",
        }


def label_windows(
    time_ns: np.ndarray,
    codes: np.ndarray,
    starts_ns: np.ndarray,
    window_ns: int,
    n_classes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority label of the raw samples in each window ``[start, start + window)``.

    ``codes``: int per raw sample, ``-1`` for no usable label. Returns ``(label, share,
    unlabelled_share)``: the majority class (``-1`` when the window holds no labelled
    sample), the share of the window's samples that carry it, and the share without a label.
    One cumulative sum per class keeps memory at one int32 array of the recording's length.
    """
    a = np.searchsorted(time_ns, starts_ns, side="left")
    b = np.searchsorted(time_ns, starts_ns + window_ns, side="left")
    total = (b - a).astype(np.float64)
    best = np.zeros(len(starts_ns), dtype=np.int64)
    best_lab = np.full(len(starts_ns), -1, dtype=np.int64)
    labelled = np.zeros(len(starts_ns), dtype=np.int64)
    cum = np.zeros(len(codes) + 1, dtype=np.int32)
    for k in range(n_classes):
        np.cumsum(codes == k, out=cum[1:])
        cnt = cum[b] - cum[a]
        labelled += cnt
        better = cnt > best
        best[better] = cnt[better]
        best_lab[better] = k
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, best / np.maximum(total, 1), 0.0)
        unl = np.where(total > 0, (total - labelled) / np.maximum(total, 1), 1.0)
    return best_lab, share, unl


def as_ns(time: np.ndarray) -> np.ndarray:
    """Times (datetime64[ns] or int64 ns) as int64 ns."""
    t = np.asarray(time)
    return t.view(np.int64) if t.dtype.kind == "M" else t.astype(np.int64)


def empty_windows(options: WindowOptions) -> WindowSet:
    T = options.window_sec * SAMPLE_RATE
    return WindowSet(np.empty((0, 3, T), np.float32), np.empty(0, str), np.empty(0, str),
                     np.empty(0, str), np.empty(0, "datetime64[ns]"))


def cut_windows(
    t: np.ndarray, xyz: np.ndarray, options: WindowOptions, recording: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One recording resampled onto the midnight-aligned 30 Hz grid and cut into windows.

    Returns ``(view, starts, complete)``: the windows ``(N, 3, T)`` (a view, not yet copied),
    their start times (int64 ns) and whether each has all its samples; None when the recording
    is shorter than one window.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    from ..signal.resample import resample
    from ..timegrid import midnight_ns

    T = options.window_sec * SAMPLE_RATE
    step_n = int(round(options.step * SAMPLE_RATE))
    step_ns = int(round(options.step * NS))
    if len(t) < 2:
        return None
    if np.any(np.diff(t) <= 0):
        raise InputError(f"recording {recording!r}: timestamps are not strictly increasing; sort and de-duplicate them")
    origin = midnight_ns(int(t[0]))
    g0 = origin + -(-(int(t[0]) - origin) // step_ns) * step_ns  # first step boundary at/after t0
    xyz30 = resample(t, xyz, fs_out=SAMPLE_RATE, lowpass_hz=options.lowpass_hz,
                     max_gap_s=options.max_gap_s, grid_start_ns=g0, grid_stop_ns=int(t[-1]) + 1)
    if len(xyz30) < T:
        return None
    view = sliding_window_view(xyz30, T, axis=0)[::step_n]  # (N, 3, T), no copy yet
    complete = ~np.isnan(view).any(axis=(1, 2))
    starts = g0 + np.arange(len(view), dtype=np.int64) * step_ns
    return view, starts, complete


def windows_from_recording(
    time: np.ndarray,
    xyz: np.ndarray,
    codes: np.ndarray,
    class_names: Sequence[str],
    options: WindowOptions,
    *,
    pid: str,
    recording: str,
    counts: dict[str, int] | None = None,
) -> WindowSet:
    """Cut one recording into labelled windows (see the module docstring).

    ``time`` datetime64[ns] or int64 ns, strictly increasing; ``xyz`` (n, 3) in g; ``codes``
    int per sample indexing ``class_names`` (-1: no usable label). ``counts`` (if given) gets
    the number of candidate, kept and dropped windows added per reason.
    """
    t = as_ns(time)
    codes = np.asarray(codes, dtype=np.int64)
    cut = cut_windows(t, xyz, options, recording)
    if cut is None:
        return empty_windows(options)
    view, starts, complete = cut
    n = len(view)
    lab, share, unl = label_windows(t, codes, starts, options.window_sec * NS, len(class_names))
    unlabelled = complete & ((lab < 0) | (unl > share))
    mixed = complete & ~unlabelled & (share < options.min_agreement - 1e-12)
    keep = complete & ~unlabelled & ~mixed
    if counts is not None:
        counts["candidates"] = counts.get("candidates", 0) + n
        counts["kept"] = counts.get("kept", 0) + int(keep.sum())
        for name, mask in (("incomplete", ~complete), ("unlabelled", unlabelled), ("mixed", mixed)):
            counts[name] = counts.get(name, 0) + int(mask.sum())
    names = np.asarray(class_names, dtype=str)
    k = int(keep.sum())
    return WindowSet(
        X=np.ascontiguousarray(view[keep]),
        y=names[lab[keep]] if k else np.empty(0, str),
        pid=np.full(k, str(pid)),
        recording=np.full(k, str(recording)),
        time=starts[keep].view("datetime64[ns]"),
    )


def collect_windows(
    parts: Iterable[WindowSet], options: WindowOptions, counts: dict[str, int], meta: Mapping[str, Any]
) -> WindowSet:
    sets = [p for p in parts if len(p)]
    if not sets:
        raise InputError(
            f"no labelled window survived ({counts}); check the label column, the label mapping and "
            f"--min-agreement ({options.min_agreement})"
        )
    out = concat(sets)
    out.meta = {
        "format": "harnet-windows",
        "version": 1,
        "window_sec": options.window_sec,
        "step_sec": options.step,
        "sample_rate": SAMPLE_RATE,
        "min_agreement": options.min_agreement,
        "preprocessing": options.preprocessing(),
        "counts": dict(counts),
        "participants": int(len(np.unique(out.pid))),
        **dict(meta),
    }
    return out


def label_codes(values: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Map per-sample label values (any dtype, None/NaN for none) to codes into class_names."""
    import pandas as pd

    cat = pd.Categorical(pd.Series(values, copy=False).astype("string"), categories=list(class_names))
    return np.asarray(cat.codes, dtype=np.int64)
