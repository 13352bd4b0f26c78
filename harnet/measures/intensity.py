"""Intensity from the per-window acceleration: cut-point bands, intensity gradient, MX metrics.

Everything here works on per-window arrays (one value per window, ``window_sec`` seconds each)
and is defined in ``docs/outputs.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harnet.errors import InputError

__all__ = [
    "CUTPOINT_SETS",
    "DEFAULT_CUTPOINTS",
    "CutPoints",
    "IG_BIN_MG",
    "MX_MINUTES",
    "band_codes",
    "intensity_gradient",
    "mx_metrics",
    "parse_cutpoints",
]


@dataclass(frozen=True)
class CutPoints:
    """Thresholds (mg, ascending) on one per-window metric, and the names of the bands they make.

    Band ``k`` holds windows with ``thresholds[k-1] <= value < thresholds[k]``; band 0 starts at
    0 mg, the last band is open above. ``mvpa_from`` is the first band counted as
    moderate-to-vigorous (its threshold is the MVPA cut-point used for bouts).
    """

    name: str
    metric: str  # "acc" (ENMO) or "mad"
    thresholds: tuple[float, ...]
    bands: tuple[str, ...]
    mvpa_from: int
    reference: str

    @property
    def mvpa_mg(self) -> float:
        return self.thresholds[self.mvpa_from - 1]

    @property
    def sedentary_below_mg(self) -> float:
        return self.thresholds[0]


#: Named published threshold sets. The default is GGIR's default wrist-ENMO set (threshold.lig 40,
#: threshold.mod 100, threshold.vig 400 mg), taken from Hildebrand et al. 2014 (MSSE 46:1816) and
#: 2017 (Scand J Med Sci Sports 27:1814), the thresholds most wrist-ENMO studies report.
CUTPOINT_SETS: dict[str, CutPoints] = {
    "hildebrand": CutPoints(
        "hildebrand", "acc", (40.0, 100.0, 400.0), ("Inactive", "Light", "Moderate", "Vigorous"), 2,
        "Hildebrand et al. 2014 MSSE 46(9):1816-24 and 2017 SJMSS 27(12):1814-23; GGIR defaults "
        "threshold.lig=40, threshold.mod=100, threshold.vig=400 mg (wrist ENMO, adults)",
    ),
    "vahaypya2015": CutPoints(
        "vahaypya2015", "mad", (91.0, 414.0), ("Light", "Moderate", "Vigorous"), 1,
        "Vaha-Ypya et al. 2015 Clin Physiol Funct Imaging 35(1):64-70: MAD 91 mg (3 MET) and "
        "414 mg (6 MET), hip-worn; bands on MAD, not ENMO",
    ),
}

DEFAULT_CUTPOINTS = "hildebrand"

#: Intensity-gradient bins (Rowlands et al. 2018, as GGIR's iglevels): 25 mg wide from 0 to
#: 4000 mg, then one bin 4000-8000 mg.
IG_BIN_MG: np.ndarray = np.concatenate([np.arange(0.0, 4000.0 + 1e-9, 25.0), [8000.0]])

#: MX metrics reported (Rowlands et al. 2019): minutes.
MX_MINUTES: tuple[int, ...] = (60, 30, 15, 5, 2)


def parse_cutpoints(spec: str | None) -> CutPoints:
    """``NAME`` of :data:`CUTPOINT_SETS`, or two or three ascending ENMO thresholds in mg
    (``a,b`` -> Inactive/Light/MVPA, ``a,b,c`` -> Inactive/Light/Moderate/Vigorous)."""
    if spec is None or spec == "":
        return CUTPOINT_SETS[DEFAULT_CUTPOINTS]
    s = str(spec).strip()
    if s.lower() in CUTPOINT_SETS:
        return CUTPOINT_SETS[s.lower()]
    parts = [p.strip() for p in s.split(",")]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"--cutpoints {spec!r} is neither a named set ({', '.join(CUTPOINT_SETS)}) nor numbers; "
            "give a name or ENMO thresholds in mg such as 40,100,400"
        ) from None
    if len(vals) not in (2, 3) or not all(math.isfinite(v) and v > 0 for v in vals) or list(vals) != sorted(set(vals)):
        raise InputError(f"--cutpoints {spec!r}: give 2 or 3 distinct ascending positive ENMO thresholds in mg, e.g. 40,100,400")
    bands = ("Inactive", "Light", "MVPA") if len(vals) == 2 else ("Inactive", "Light", "Moderate", "Vigorous")
    return CutPoints("custom", "acc", vals, bands, 2, "user-given ENMO thresholds (mg)")


def band_codes(values: np.ndarray, cut: CutPoints, worn: np.ndarray) -> np.ndarray:
    """Band index per window (int64), -1 where not worn or the value is missing."""
    v = np.asarray(values, dtype=np.float64)
    code = np.searchsorted(np.asarray(cut.thresholds), v, side="right").astype(np.int64)
    code[~(np.asarray(worn, dtype=bool) & np.isfinite(v))] = -1
    return code


def intensity_gradient(values_mg: np.ndarray, window_sec: float) -> tuple[float, float, float]:
    """(gradient, intercept, R²) of Rowlands et al. 2018 for one day's worn windows.

    Windows are binned by acceleration (:data:`IG_BIN_MG`: 0-25, 25-50, ... mg; values at or
    above 8000 mg go in the last bin, as GGIR does); y = minutes in each bin, x = the bin's
    midpoint in mg; bins with no time are left out; ln(y) = intercept + gradient ln(x) by least
    squares. NaN when fewer than two bins have time.
    """
    v = np.asarray(values_mg, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    edges = IG_BIN_MG
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
    minutes = np.bincount(idx, minlength=len(edges) - 1) * (float(window_sec) / 60.0)
    mid = (edges[:-1] + edges[1:]) / 2.0
    keep = minutes > 0
    if keep.sum() < 2:
        return (math.nan, math.nan, math.nan)
    x, y = np.log(mid[keep]), np.log(minutes[keep])
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum()) / sxx
    icept = float(ym - slope * xm)
    ss_tot = float(((y - ym) ** 2).sum())
    ss_res = float(((y - icept - slope * x) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return (slope, icept, r2)


def mx_metrics(values_mg: np.ndarray, window_sec: float, minutes: tuple[int, ...] = MX_MINUTES) -> dict[int, float]:
    """MX (Rowlands et al. 2019): the acceleration above which the day's most active X minutes
    are accumulated (not necessarily in a row) = the lowest value among the top ``ceil(X*60 /
    window_sec)`` windows. NaN when fewer windows have a value."""
    v = np.asarray(values_mg, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])[::-1]
    out: dict[int, float] = {}
    for x in minutes:
        k = int(math.ceil(x * 60.0 / float(window_sec)))
        out[x] = float(v[k - 1]) if 0 < k <= len(v) else math.nan
    return out
