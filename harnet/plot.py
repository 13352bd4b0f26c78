"""One picture of a recording: a row per local calendar day, classes as coloured bands.

Headless and side-effect free: matplotlib is imported only when a plot is drawn, the figure is
rendered by its own Agg canvas (pyplot, the global backend and ``rcParams`` are never touched),
and the file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from harnet._fileio import atomic_path
from harnet.errors import InputError
from harnet.measures.windows import check_labels, local_midnight_utc, prepare_windows

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["plot_days", "label_colours", "NONWEAR_COLOUR"]

#: Colours of the classes most models share (names compared case-insensitively, "_" or " " = "-").
FIXED_COLOURS: dict[str, str] = {
    "sleep": "#3b4cc0",
    "sedentary": "#e8b730",
    "light": "#7cb342",
    "moderate-vigorous": "#d7301f",
    "mvpa": "#d7301f",
    "moderate-to-vigorous": "#d7301f",
}
NONWEAR_COLOUR = "#b0b0b0"
ENMO_COLOUR = "#111111"

ROW_HEIGHT_IN = 0.8  # per day
TOP_IN = 0.9  # title and legend
BOTTOM_IN = 0.55  # x axis
WIDTH_IN = 11.0
DPI = 100
_HOUR_NS = 3_600 * 1_000_000_000


def _norm(name: str) -> str:
    return "-".join(name.strip().lower().replace("_", " ").split())


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label: fixed ones for common names, the tab10/tab20 colour cycle for the rest."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    out: dict[str, str] = {}
    used = set()
    for lab in labels:
        c = FIXED_COLOURS.get(_norm(lab))
        if c is not None and c not in used:
            out[lab] = c
            used.add(c)
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    pool = [to_hex(cmap(i)) for i in range(cmap.N)]
    pool = [c for c in pool if c.lower() not in {NONWEAR_COLOUR, "#7f7f7f"} and c not in used]
    k = 0
    for lab in labels:
        if lab not in out:
            out[lab] = pool[k % len(pool)]
            k += 1
    return out


def _infer_window_sec(windows: pd.DataFrame) -> float:
    t = windows["time"] if "time" in windows.columns else windows.index.to_series()
    ns = np.unique(pd.DatetimeIndex(t).as_unit("ns").asi8)
    steps = np.diff(ns)
    if len(steps) == 0:
        raise InputError("cannot infer the window length from a single window; pass window_sec")
    vals, counts = np.unique(steps, return_counts=True)
    return float(vals[np.argmax(counts)]) / 1e9


def figure_height_in(n_days: int) -> float:
    """Figure height in inches for ``n_days`` rows (the PNG is this x :data:`DPI` pixels high)."""
    return TOP_IN + n_days * ROW_HEIGHT_IN + BOTTOM_IN


def _draw_days(windows: pd.DataFrame, labels: Sequence[str], *, title: str | None, window_sec: float | None) -> "Figure":
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    labs = check_labels(labels)
    if window_sec is None:
        window_sec = _infer_window_sec(windows)
    w = prepare_windows(windows, labs, window_sec)
    C = len(labs)
    colours = label_colours(labs)
    state = np.where(w.wear, w.code, np.where(w.nonwear, C, -1))
    fills = [colours[lab] for lab in labs] + [NONWEAR_COLOUR]

    first, last = int(w.wall_day.min()), int(w.wall_day.max())
    n_days = last - first + 1
    starts = np.array([local_midnight_utc(d, w.tz) for d in range(first, last + 2)], dtype=np.int64)
    lengths_h = np.diff(starts) / _HOUR_NS
    finite = w.acc[np.isfinite(w.acc)]
    ymax = max(50.0, float(np.percentile(finite, 99.5)) * 1.1) if finite.size else 100.0

    height = figure_height_in(n_days)
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    axes = fig.subplots(n_days, 1, sharex=True, squeeze=False)[:, 0]
    fig.subplots_adjust(left=0.1, right=0.98, top=1 - TOP_IN / height, bottom=BOTTOM_IN / height, hspace=0.12)
    xmax = float(max(24.0, lengths_h.max()))
    day_of = w.wall_day - first
    bounds = np.searchsorted(day_of, np.arange(n_days + 1))  # windows are sorted, so days are contiguous
    for i, ax in enumerate(axes):
        sl = slice(bounds[i], bounds[i + 1])
        utc, st = w.utc[sl], state[sl]
        x = (utc - starts[i]) / _HOUR_NS
        if len(utc):
            brk = np.flatnonzero((np.diff(st) != 0) | (np.diff(utc) != w.window_ns)) + 1
            r0 = np.r_[0, brk]
            r1 = np.r_[brk, len(utc)] - 1
            widths = (utc[r1] - utc[r0] + w.window_ns) / _HOUR_NS
            for s_val in np.unique(st[r0]):
                if s_val < 0:
                    continue  # gaps stay blank
                m = st[r0] == s_val
                ax.broken_barh(list(zip(x[r0][m], widths[m])), (0, ymax), facecolors=fills[s_val], linewidth=0)
            # ENMO at window centres, broken at gaps in time
            xc = x + w.window_ns / 2 / _HOUR_NS
            y = w.acc[sl].copy()
            cut = np.flatnonzero(np.diff(utc) != w.window_ns) + 1
            ax.plot(np.insert(xc, cut, np.nan), np.insert(y, cut, np.nan), color=ENMO_COLOUR, linewidth=0.6)
        if lengths_h[i] < xmax:  # a short (DST) day: hatch the hours it does not have
            ax.axvspan(lengths_h[i], xmax, facecolor="none", edgecolor="#dddddd", hatch="///", linewidth=0)
        ax.set_xlim(0, xmax)
        ax.set_ylim(0, ymax)
        day = pd.Timestamp((first + i) * 86_400, unit="s")
        ax.set_ylabel(day.strftime("%a\n%Y-%m-%d"), rotation=0, ha="right", va="center", fontsize=8)
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    axes[-1].set_xticks(np.arange(0, xmax + 0.01, 3))
    axes[-1].set_xlabel("hours since local midnight" + (" (time zone " + str(w.tz) + ")" if w.tz else ""), fontsize=8)
    handles = [Patch(facecolor=colours[lab], label=lab) for lab in labs]
    handles += [Patch(facecolor=NONWEAR_COLOUR, label="non-wear"), Line2D([], [], color=ENMO_COLOUR, lw=0.8, label=f"ENMO (row height {ymax:.0f} mg)")]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False, fontsize=8, bbox_to_anchor=(0.5, 1 - 0.35 / height))
    if title:
        fig.suptitle(title, y=1 - 0.08 / height, va="top", fontsize=10)
    return fig


def plot_days(
    windows: pd.DataFrame,
    labels: Sequence[str],
    out_path: str | os.PathLike,
    *,
    title: str | None = None,
    window_sec: float | None = None,
) -> Path:
    """Draw one row per local calendar day (x: hours since local midnight, 0-24, 23 or 25 on DST
    days) with each class as a coloured band, non-wear grey, gaps blank and the window ENMO (mg)
    as a line on top; write it to ``out_path`` (format from the suffix: .png, .pdf, .svg ...).

    ``windows`` is the per-window table described in :mod:`harnet.measures.activity`; ``window_sec`` is
    inferred from the most common step between window starts when not given. Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out_path)
    fig = _draw_days(windows, labels, title=title, window_sec=window_sec)
    canvas = FigureCanvasAgg(fig)
    fmt = out.suffix.lower().lstrip(".") or "png"
    if fmt not in canvas.get_supported_filetypes():
        raise InputError(f"{out}: cannot write a plot as .{fmt}; use .png, .pdf or .svg")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI)
    return out
