"""All study measures of one recording, from the per-window table and its summary.

:func:`study_measures` is the one entry point the pipeline calls: it returns the minute, hour,
sleep and bouts tables, the extra daily columns (bouts, intensity gradient, MX, M10/L5/RA) and
the recording-level figures for info.json. Definitions: ``docs/outputs.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .activity import Summary

from .bouts import bout_mask, bout_runs
from .circadian import interdaily_stability, intradaily_variability, most_least_active, profile_m10_l5, relative_amplitude
from .intensity import MX_MINUTES, CutPoints, intensity_gradient, mx_metrics
from .sleep import mean_clock, night_table_arrays
from .tables import hour_grid, hour_table, minute_table

__all__ = [
    "BOUT_SPECS", "StudyTables", "band_column_names", "daily_extra_columns", "find_class", "recording_columns",
    "study_measures",
]

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: (kind, minimum minutes, criterion) of the bouts reported: GGIR's defaults (boutdur.mvpa 1, 5,
#: 10 with boutcriter.mvpa 0.8; boutdur.in 30 with boutcriter.in 0.9).
BOUT_SPECS: tuple[tuple[str, int, float], ...] = (("MVPA", 1, 0.8), ("MVPA", 5, 0.8), ("MVPA", 10, 0.8), ("Sedentary", 30, 0.9))

#: Minimum worn minutes for an hour to enter IS/IV.
MIN_WEAR_MIN_PER_HOUR = 30.0

_NAMES = {
    "sleep": ("sleep",),
    "sedentary": ("sedentary", "sitting", "sit"),
    "mvpa": ("moderate-vigorous", "mvpa", "moderate-to-vigorous", "moderate-vigorous-activity"),
}


def find_class(labels: Sequence[str], kind: str) -> int | None:
    """Index of the model class of a kind (``sleep``, ``sedentary``, ``mvpa``) by its name, or None."""
    norm = ["-".join(str(x).strip().lower().replace("_", " ").split()) for x in labels]
    for i, n in enumerate(norm):
        if n in _NAMES[kind]:
            return i
    return None


def band_column_names(cut: CutPoints) -> list[str]:
    """Daily/minute column stems of the cut-point bands: ``Cut<band>``."""
    return [f"Cut{b}" for b in cut.bands]


def _bout_kinds(labels: Sequence[str], cut: CutPoints) -> list[str]:
    kinds = []
    if find_class(labels, "mvpa") is not None:
        kinds.append("MVPA")
    if find_class(labels, "sedentary") is not None:
        kinds.append("Sedentary")
    kinds.append("CutMVPA")
    if cut.bands[0] == "Inactive":
        kinds.append("CutSedentary")
    return kinds


def _bout_stems(labels: Sequence[str], cut: CutPoints) -> list[str]:
    out = []
    for kind in _bout_kinds(labels, cut):
        base = "MVPA" if kind.endswith("MVPA") else "Sedentary"
        out += [f"{kind}Bouts{m}min" for k, m, _ in BOUT_SPECS if k == base]
    return out


def daily_extra_columns(labels: Sequence[str], cut: CutPoints) -> list[str]:
    """The daily columns :func:`study_measures` adds after the band columns, in order."""
    cols = []
    for stem in _bout_stems(labels, cut):
        cols += [f"{stem}(count)", f"{stem}(min)"]
    cols += ["IntensityGradient", "IntensityGradientIntercept", "IntensityGradientR2"]
    cols += [f"M{x}(mg)" for x in MX_MINUTES]
    return cols + ["M10(mg)", "M10Start", "L5(mg)", "L5Start", "RA"]


def recording_columns(labels: Sequence[str], cut: CutPoints) -> list[str]:
    """The scalar info.json keys :func:`study_measures` adds, in order (the cohort table's)."""
    cols = []
    for stem in _bout_stems(labels, cut):
        cols += [f"{stem}(count/day)", f"{stem}(min/day)"]
    cols += ["IntensityGradient", "IntensityGradientIntercept", "IntensityGradientR2"]
    cols += [f"M{x}(mg)" for x in MX_MINUTES] + ["M10(mg)", "L5(mg)", "RA", "IS", "IV"]
    cols += ["Profile/M10(mg)", "Profile/M10StartHour", "Profile/L5(mg)", "Profile/L5StartHour", "Profile/RA"]
    bands = band_column_names(cut)
    cols += [f"{b}(min/day)" for b in bands] + [f"{b}Adjusted(min/day)" for b in bands]
    if find_class(labels, "sleep") is not None:
        cols += ["Sleep/NumNights", "Sleep/NumValidNights"] + [
            f"Sleep/{c}" for c in ("SleepPeriod(hours)", "SleepTime(hours)", "WASO(min)", "NonwearInPeriod(min)",
                                   "SleepEfficiency(%)", "Awakenings", "Onset(clock)", "Wake(clock)")]
    return cols


@dataclass
class StudyTables:
    minutes: pd.DataFrame
    hours: pd.DataFrame
    sleep: pd.DataFrame | None
    bouts: pd.DataFrame
    daily_extra: pd.DataFrame
    overall: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _local(ns_utc: np.ndarray, tz: Any) -> pd.DatetimeIndex:
    t = pd.DatetimeIndex(np.asarray(ns_utc, dtype=np.int64).view("datetime64[ns]"))
    return t.tz_localize("UTC").tz_convert(tz) if tz is not None else t


def _mean(v: Any) -> float:
    a = np.asarray(v, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if len(a) else math.nan


def _clock(h: float) -> str | None:
    """Hours since noon -> 'HH:MM' wall clock."""
    if not math.isfinite(h):
        return None
    m = int(round((h + 12.0) * 60)) % 1440
    return f"{m // 60:02d}:{m % 60:02d}"


def study_measures(
    windows: pd.DataFrame,
    summary: Summary,
    labels: Sequence[str],
    window_sec: float,
    cut: CutPoints,
    *,
    min_wear_per_day_hours: float,
) -> StudyTables:
    """Every measure of docs/outputs.md beyond the daily class hours (see module doc).

    ``windows``: the pipeline's per-window table (continuous in time, ``time``, ``acc``,
    ``mad``, ``wear``, ``label``); ``summary``: :func:`harnet.measures.activity.summarize` of it with the
    cut-point bands.
    """
    labels = list(labels)
    bands = band_column_names(cut)
    g = summary.minutes
    assert g is not None
    notes: list[str] = []
    idx = pd.DatetimeIndex(windows["time"]).as_unit("ns")
    tz = idx.tz
    utc = idx.asi8 if tz is None else idx.tz_convert("UTC").tz_localize(None).asi8
    wall = idx.asi8 if tz is None else idx.tz_localize(None).asi8
    order = np.argsort(utc, kind="stable")
    utc, wall = utc[order], wall[order]
    acc = windows["acc"].to_numpy(dtype=np.float64, na_value=np.nan)[order]
    mad = windows["mad"].to_numpy(dtype=np.float64, na_value=np.nan)[order] if "mad" in windows else np.full(len(utc), np.nan)
    wear = windows["wear"].to_numpy(dtype=bool)[order]
    code = pd.Categorical(windows["label"], categories=labels).codes.astype(np.int64)[order]
    window_ns = int(round(window_sec * _NS))
    daily = summary.daily
    dates = list(daily["Date"])
    first_day = int(pd.Timestamp(dates[0]).value // _DAY_NS)
    D = len(dates)
    wday = np.floor_divide(wall, _DAY_NS) - first_day
    in_sel = (wday >= 0) & (wday < D)
    valid_day = daily["DayValid"].to_numpy(dtype=bool)
    cut_values = acc if cut.metric == "acc" else mad

    extra: dict[str, Any] = {"Weekday": [_WEEKDAYS[(first_day + i + 3) % 7] for i in range(D)]}

    # ---- bouts
    sources: list[tuple[str, str, np.ndarray]] = []
    i_mvpa, i_sed = find_class(labels, "mvpa"), find_class(labels, "sedentary")
    if i_mvpa is not None:
        sources.append(("MVPA", f"label:{labels[i_mvpa]}", wear & (code == i_mvpa)))
    if i_sed is not None:
        sources.append(("Sedentary", f"label:{labels[i_sed]}", wear & (code == i_sed)))
    fin = wear & np.isfinite(cut_values)
    metric = "ENMO" if cut.metric == "acc" else "MAD"
    sources.append(("CutMVPA", f"cutpoint:{metric}>={cut.mvpa_mg:g}mg", fin & (cut_values >= cut.mvpa_mg)))
    if cut.bands[0] == "Inactive":
        sources.append(("CutSedentary", f"cutpoint:{metric}<{cut.sedentary_below_mg:g}mg", fin & (cut_values < cut.sedentary_below_mg)))
    rows = []
    for kind, source, meets in sources:
        base = "MVPA" if kind.endswith("MVPA") else "Sedentary"
        for bkind, minutes, crit in BOUT_SPECS:
            if bkind != base:
                continue
            s, e = bout_runs(bout_mask(meets, window_sec, minutes, criterion=crit))
            day_i = wday[s] if len(s) else np.zeros(0, dtype=np.int64)
            ok = (day_i >= 0) & (day_i < D)
            s, e, day_i = s[ok], e[ok], day_i[ok]
            dur_min = (utc[e - 1] + window_ns - utc[s]) / (60 * _NS)
            col = f"{kind}Bouts{minutes}min"
            extra[f"{col}(count)"] = np.bincount(day_i, minlength=D).astype(np.int64)
            extra[f"{col}(min)"] = np.bincount(day_i, dur_min, minlength=D)
            if len(s):
                c_acc = np.concatenate([[0.0], np.cumsum(np.where(wear & np.isfinite(acc), acc, 0.0))])
                c_n = np.concatenate([[0], np.cumsum(wear & np.isfinite(acc))])
                with np.errstate(invalid="ignore", divide="ignore"):
                    m_acc = (c_acc[e] - c_acc[s]) / (c_n[e] - c_n[s])
                rows.append(pd.DataFrame({
                    "Kind": kind, "Source": source, "MinLength(min)": minutes, "Criterion": crit,
                    "Date": [dates[i] for i in day_i], "start": _local(utc[s], tz),
                    "end": _local(utc[e - 1] + window_ns, tz), "Duration(min)": dur_min, "ENMO(mg)": m_acc,
                }))
    bout_cols = ["Kind", "Source", "MinLength(min)", "Criterion", "Date", "start", "end", "Duration(min)", "ENMO(mg)"]
    bouts = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame({c: [] for c in bout_cols})
    bouts = bouts[bout_cols]
    if len(bouts):
        bouts = bouts.sort_values(["start", "Kind", "MinLength(min)"], kind="stable").reset_index(drop=True)

    # ---- intensity gradient and MX per day (worn windows of the day)
    ig = np.full((D, 3), np.nan)
    mx = np.full((D, len(MX_MINUTES)), np.nan)
    wsel = in_sel & wear & np.isfinite(acc)
    order_d = np.argsort(wday[wsel], kind="stable")
    vals = acc[wsel][order_d]
    dd = wday[wsel][order_d]
    bounds = np.searchsorted(dd, np.arange(D + 1))
    for i in range(D):  # one call per day (arrays inside)
        v = vals[bounds[i]:bounds[i + 1]]
        if len(v):
            ig[i] = intensity_gradient(v, window_sec)
            mxi = mx_metrics(v, window_sec)
            mx[i] = [mxi[x] for x in MX_MINUTES]
    extra["IntensityGradient"] = ig[:, 0]
    extra["IntensityGradientIntercept"] = ig[:, 1]
    extra["IntensityGradientR2"] = ig[:, 2]
    for j, x in enumerate(MX_MINUTES):
        extra[f"M{x}(mg)"] = mx[:, j]

    # ---- M10 / L5 per day on the adjusted minute ENMO (no wrap past midnight, GGIR)
    m10 = np.full(D, np.nan)
    l5 = np.full(D, np.nan)
    m10_t: list[str | None] = [None] * D
    l5_t: list[str | None] = [None] * D
    gb = np.searchsorted(g.day, np.arange(D + 1))
    for i in range(D):
        a, b = gb[i], gb[i + 1]
        hi, hs, _, _ = most_least_active(g.enmo_adj[a:b], 600)
        _, _, lo, ls = most_least_active(g.enmo_adj[a:b], 300)
        m10[i], l5[i] = hi, lo
        m10_t[i] = g.time[a + hs].isoformat() if hs >= 0 else None
        l5_t[i] = g.time[a + ls].isoformat() if ls >= 0 else None
    extra["M10(mg)"] = m10
    extra["M10Start"] = m10_t
    extra["L5(mg)"] = l5
    extra["L5Start"] = l5_t
    extra["RA"] = np.array([relative_amplitude(a, b) for a, b in zip(m10, l5)])
    daily_extra = pd.DataFrame(extra)

    # ---- recording level
    ov: dict[str, Any] = {}
    for c in daily_extra.columns:
        if c in ("Weekday", "M10Start", "L5Start"):
            continue
        ov[c] = _mean(daily_extra[c].to_numpy(dtype=np.float64)[valid_day]) if valid_day.any() else math.nan
        if c.endswith("(count)"):
            ov[c.replace("(count)", "(count/day)")] = ov.pop(c)
        elif "Bouts" in c and c.endswith("(min)"):
            ov[c.replace("(min)", "(min/day)")] = ov.pop(c)
    hid, _, ht = hour_grid(g)
    nh = len(ht)
    hw = np.bincount(hid, g.wear_s, nh) / 60.0
    fin_m = np.isfinite(g.enmo)
    with np.errstate(invalid="ignore", divide="ignore"):
        hw_e = np.bincount(hid, np.where(fin_m, g.wear_s, 0.0), nh)
        he = np.bincount(hid, np.where(fin_m, g.enmo * g.wear_s, 0.0), nh) / hw_e
    he[(hw < MIN_WEAR_MIN_PER_HOUR) | ~np.isfinite(he)] = np.nan
    hod = ht.hour.to_numpy()
    ov["IS"] = interdaily_stability(he, hod)
    ov["IV"] = intradaily_variability(he)
    prof = np.full(24, np.nan)
    okh = np.isfinite(he)
    if okh.any():
        cnt = np.bincount(hod[okh], minlength=24)
        with np.errstate(invalid="ignore", divide="ignore"):
            prof = np.bincount(hod[okh], he[okh], minlength=24) / cnt
    pm, pms, pl, pls = profile_m10_l5(prof, 10, 5)
    ov["Profile/M10(mg)"], ov["Profile/M10StartHour"] = pm, (pms % 24 if pms >= 0 else None)
    ov["Profile/L5(mg)"], ov["Profile/L5StartHour"] = pl, (pls % 24 if pls >= 0 else None)
    ov["Profile/RA"] = relative_amplitude(pm, pl)
    ov["CutPoints"] = {"name": cut.name, "metric": metric, "thresholds(mg)": list(cut.thresholds),
                       "bands": bands, "reference": cut.reference}
    for c in [f"{b}(min)" for b in bands] + [f"{b}Adjusted(min)" for b in bands]:
        if c in daily.columns:
            ov[c.replace("(min)", "(min/day)")] = _mean(daily[c].to_numpy(dtype=np.float64)[valid_day]) if valid_day.any() else math.nan

    # ---- sleep
    sleep_df = None
    i_sleep = find_class(labels, "sleep")
    if i_sleep is None:
        notes.append(f"the model has no sleep class (labels {labels}): no sleep table is written")
    else:
        sleep_df, sov = _sleep_table(wear & (code == i_sleep), wear, utc, wall, window_ns, tz, min_wear_per_day_hours)
        ov.update(sov)

    minutes_df = minute_table(g, labels, bands)
    hours_df = hour_table(g, labels, bands)
    return StudyTables(minutes_df, hours_df, sleep_df, bouts, daily_extra, ov, notes)


def _sleep_table(is_sleep, wear, utc, wall, window_ns, tz, min_wear_h) -> tuple[pd.DataFrame, dict[str, Any]]:
    a = night_table_arrays(is_sleep, wear, utc, wall, window_ns, min_wear_h)
    nights = a["night"]
    has = a["onset"] >= 0

    def times(ns: np.ndarray) -> list[str | None]:
        t = _local(np.where(has, ns, 0), tz)
        return [t[i].isoformat() if has[i] else None for i in range(len(ns))]

    night_dates = pd.to_datetime(nights * _DAY_NS, unit="ns")
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = 100.0 * a["sleep_s"] / a["period_s"]
    df = pd.DataFrame({
        "Night": [d.strftime("%Y-%m-%d") for d in night_dates],
        "RecordedTime(hours)": a["rec_s"] / 3600.0,
        "WearTime(hours)": a["wear_s"] / 3600.0,
        "Onset": times(a["onset"]),
        "Wake": times(a["wake"]),
        "SleepPeriod(hours)": a["period_s"] / 3600.0,
        "SleepTime(hours)": a["sleep_s"] / 3600.0,
        "WASO(min)": a["waso_s"] / 60.0,
        "Awakenings": pd.array([int(x) if h else pd.NA for x, h in zip(a["awakenings"], has)], dtype="Int64"),
        "NonwearInPeriod(min)": a["nonwear_s"] / 60.0,
        "SleepEfficiency(%)": eff,
        "NightValid": a["valid"],
    })
    v = a["valid"]
    ov: dict[str, Any] = {"Sleep/NumNights": int(len(nights)), "Sleep/NumValidNights": int(v.sum())}
    for c in ("SleepPeriod(hours)", "SleepTime(hours)", "WASO(min)", "NonwearInPeriod(min)", "SleepEfficiency(%)"):
        ov[f"Sleep/{c}"] = _mean(df[c].to_numpy(dtype=np.float64)[v]) if v.any() else math.nan
    ov["Sleep/Awakenings"] = _mean(a["awakenings"][v].astype(np.float64)) if v.any() else math.nan
    for key, col in (("Onset", "onset"), ("Wake", "wake")):
        ns = a[col][v]
        if len(ns):
            off = wall_offsets(ns, tz)
            ov[f"Sleep/{key}(clock)"] = _clock(mean_clock(ns, off))
        else:
            ov[f"Sleep/{key}(clock)"] = None
    return df, ov


def wall_offsets(ns_utc: np.ndarray, tz: Any) -> np.ndarray:
    """Local minus UTC (ns) at each time; zero for naive device time."""
    if tz is None:
        return np.zeros(len(ns_utc), dtype=np.int64)
    t = _local(ns_utc, tz)
    return t.tz_localize(None).asi8 - np.asarray(ns_utc, dtype=np.int64)
