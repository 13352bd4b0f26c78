"""Minute and hour tables from the summary's minute grid (:class:`harnet.measures.imputation.MinuteGrid`).

Minute table: one row per local clock minute that holds any recorded time; hour table: one row
per local clock hour that holds any (a DST day has 23 or 25). Times are the local start of the
minute/hour (tz-aware when a time zone was given, else the device's naive clock). Durations
are minutes; ``ENMO(mg)``/``MAD(mg)`` are means weighted by worn time; ``...Adjusted`` columns
are imputed by the daily table's rule (same clock minute on other days).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .imputation import MinuteGrid

__all__ = ["hour_grid", "hour_table", "minute_columns", "minute_table"]

_NS = 1_000_000_000
_HOUR_NS = 3_600 * _NS


def minute_columns(labels: Sequence[str], bands: Sequence[str]) -> list[str]:
    """Columns of the minute table (the hour table has the same)."""
    cols = ["time", "RecordedTime(min)", "WearTime(min)", "NonwearTime(min)", "ENMO(mg)", "ENMOAdjusted(mg)", "MAD(mg)"]
    for lab in labels:
        cols += [f"{lab}(min)", f"{lab}Adjusted(min)"]
    for b in bands:
        cols += [f"{b}(min)", f"{b}Adjusted(min)"]
    return cols


def _frame(g: MinuteGrid, labels: Sequence[str], bands: Sequence[str], sel: np.ndarray | None, groups: np.ndarray | None,
           n_groups: int = 0) -> dict[str, np.ndarray]:
    """Column arrays of the minute grid, optionally summed into groups (hours)."""

    def agg(v: np.ndarray) -> np.ndarray:
        if groups is None:
            return v
        if v.ndim == 1:
            return np.bincount(groups, v, n_groups)
        return np.stack([np.bincount(groups, v[:, j], n_groups) for j in range(v.shape[1])], axis=1)

    wear = g.wear_s
    enmo_fin = np.isfinite(g.enmo)
    mad_fin = np.isfinite(g.mad)
    adj_fin = np.isfinite(g.enmo_adj)
    out: dict[str, np.ndarray] = {
        "RecordedTime(min)": agg(g.rec_s) / 60.0,
        "WearTime(min)": agg(wear) / 60.0,
        "NonwearTime(min)": agg(g.nonwear_s) / 60.0,
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        ew = agg(np.where(enmo_fin, wear, 0.0))
        out["ENMO(mg)"] = np.where(ew > 0, agg(np.where(enmo_fin, g.enmo * wear, 0.0)) / ew, np.nan)
        aw = agg(adj_fin.astype(np.float64))
        out["ENMOAdjusted(mg)"] = np.where(aw > 0, agg(np.where(adj_fin, g.enmo_adj, 0.0)) / aw, np.nan)
        mw = agg(np.where(mad_fin, wear, 0.0))
        out["MAD(mg)"] = np.where(mw > 0, agg(np.where(mad_fin, g.mad * wear, 0.0)) / mw, np.nan)
    cls, cadj = agg(g.cls_s) / 60.0, agg(g.cls_adj_s) / 60.0
    for c, lab in enumerate(labels):
        out[f"{lab}(min)"] = cls[:, c]
        out[f"{lab}Adjusted(min)"] = cadj[:, c]
    if bands and g.band_s is not None and g.band_adj_s is not None:
        bs, ba = agg(g.band_s) / 60.0, agg(g.band_adj_s) / 60.0
        for b, name in enumerate(bands):
            out[f"{name}(min)"] = bs[:, b]
            out[f"{name}Adjusted(min)"] = ba[:, b]
    if sel is not None:
        out = {k: v[sel] for k, v in out.items()}
    return out


def minute_table(g: MinuteGrid, labels: Sequence[str], bands: Sequence[str] = ()) -> pd.DataFrame:
    """One row per recorded minute (see module doc)."""
    keep = g.rec_s > 0
    data = {"time": g.time[keep]}
    data.update(_frame(g, labels, bands, keep, None))
    return pd.DataFrame(data, columns=minute_columns(labels, bands if g.band_s is not None else ()))


def hour_grid(g: MinuteGrid) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """(hour id per minute 0..H-1, UTC ns of each hour's start, local start of each hour) for the
    local clock hours of the grid (a repeated DST hour is two hours: grouping is on UTC)."""
    idx = g.time
    utc = idx.asi8 if idx.tz is None else idx.tz_convert("UTC").tz_localize(None).asi8
    wall = idx.asi8 if idx.tz is None else idx.tz_localize(None).asi8
    start = utc - (wall % _HOUR_NS)
    uniq, hid = np.unique(start, return_inverse=True)
    t = pd.DatetimeIndex(uniq.view("datetime64[ns]"))
    if idx.tz is not None:
        t = t.tz_localize("UTC").tz_convert(idx.tz)
    return hid.reshape(-1), uniq, t


def hour_table(g: MinuteGrid, labels: Sequence[str], bands: Sequence[str] = ()) -> pd.DataFrame:
    """One row per recorded local clock hour (see module doc)."""
    hid, _, t = hour_grid(g)
    n = len(t)
    cols = _frame(g, labels, bands, None, hid, n)
    keep = cols["RecordedTime(min)"] > 0
    data = {"time": t[keep]}
    data.update({k: v[keep] for k, v in cols.items()})
    return pd.DataFrame(data, columns=minute_columns(labels, bands if g.band_s is not None else ()))
