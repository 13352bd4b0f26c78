"""Sleep per night from the smoothed per-window labels, and actinet's sleep-label rules.

Nights are local noon-to-noon periods (as asleep does): night ``D`` runs from noon of ``D`` to
noon of the next day on the wall clock (23 or 25 h across a DST change). Sleep *runs* are runs of
consecutive worn windows labelled sleep. Runs of one night whose gap (end of one to start of
the next) is at most ``merge_gap_min`` (60 min, the gap GGIR's HDCZA sleep-period detection
bridges: van Hees et al. 2018) form a sleep period; the night's *main sleep period* is its
longest period (ties: the first). Everything is vectorised over windows and runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MERGE_GAP_MIN", "SleepPeriods", "apply_sleep_rules", "main_sleep_periods", "mean_clock", "night_index",
    "night_table_arrays",
]

MERGE_GAP_MIN = 60.0
_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_NOON_NS = 12 * 3_600 * _NS


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def night_index(wall_ns: np.ndarray) -> np.ndarray:
    """Night (days since 1970-01-01 of the noon that starts it) of each wall-clock time."""
    return np.floor_divide(np.asarray(wall_ns, dtype=np.int64) - _NOON_NS, _DAY_NS)


@dataclass
class SleepPeriods:
    """Main sleep period per night: window index ranges ``[start, end)`` into the window arrays,
    one entry per night that has a period (``night`` its night index)."""

    night: np.ndarray
    start: np.ndarray
    end: np.ndarray


def _periods(is_sleep: np.ndarray, start_ns: np.ndarray, window_ns: int, night: np.ndarray, merge_gap_ns: float):
    """All sleep periods (merged runs within a night): (night, start idx, end idx)."""
    s, e = _runs(is_sleep)
    if len(s) == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    rn = night[s]
    gap = start_ns[s[1:]] - (start_ns[e[:-1] - 1] + window_ns)
    join = (gap <= merge_gap_ns) & (rn[1:] == rn[:-1])
    first = np.concatenate([[True], ~join])
    pid = np.cumsum(first) - 1
    ps = s[first]
    pe = np.zeros(int(pid[-1]) + 1, dtype=np.int64)
    np.maximum.at(pe, pid, e)
    return rn[first], ps, pe


def main_sleep_periods(
    is_sleep: np.ndarray, start_ns: np.ndarray, wall_ns: np.ndarray, window_ns: int, merge_gap_min: float = MERGE_GAP_MIN
) -> SleepPeriods:
    """The longest sleep period (see module doc) of every night that has sleep."""
    night = night_index(wall_ns)
    pn, ps, pe = _periods(np.asarray(is_sleep, dtype=bool), np.asarray(start_ns, dtype=np.int64), int(window_ns),
                          night, merge_gap_min * 60 * _NS)
    if len(pn) == 0:
        return SleepPeriods(pn, ps, pe)
    dur = (start_ns[pe - 1] + window_ns) - start_ns[ps]
    # longest per night, first on ties: sort by night, then -duration, then start
    order = np.lexsort((ps, -dur, pn))
    pn, ps, pe = pn[order], ps[order], pe[order]
    keep = np.concatenate([[True], pn[1:] != pn[:-1]])
    return SleepPeriods(pn[keep], ps[keep], pe[keep])


def apply_sleep_rules(
    code: np.ndarray,
    sleep: int,
    sedentary: int,
    start_ns: np.ndarray,
    wall_ns: np.ndarray,
    window_ns: int,
    *,
    require_sleep_above_s: float | None = None,
    single_sleep_block: bool = False,
) -> np.ndarray:
    """actinet's options on the label codes (a new array; -1 = not classified stays -1).

    ``require_sleep_above_s``: every run of consecutive sleep windows shorter than this becomes
    sedentary. ``single_sleep_block``: in every noon-to-noon night only the main sleep period's
    sleep windows stay sleep; all other sleep becomes sedentary. The require rule runs first.
    """
    out = np.array(code, dtype=np.int64, copy=True)
    if require_sleep_above_s:
        s, e = _runs(out == sleep)
        short = (e - s) * (window_ns / _NS) < float(require_sleep_above_s)
        if short.any():
            delta = np.zeros(len(out) + 1, dtype=np.int64)
            np.add.at(delta, s[short], 1)
            np.add.at(delta, e[short], -1)
            out[np.cumsum(delta[:-1]) > 0] = sedentary
    if single_sleep_block:
        mp = main_sleep_periods(out == sleep, start_ns, wall_ns, window_ns)
        inside = np.zeros(len(out) + 1, dtype=np.int64)
        np.add.at(inside, mp.start, 1)
        np.add.at(inside, mp.end, -1)
        keep = np.cumsum(inside[:-1]) > 0
        out[(out == sleep) & ~keep] = sedentary
    return out


def night_table_arrays(
    is_sleep: np.ndarray,
    wear: np.ndarray,
    start_ns: np.ndarray,
    wall_ns: np.ndarray,
    window_ns: int,
    min_wear_hours: float,
) -> dict[str, np.ndarray]:
    """Per night (every night the windows touch): the main sleep period's figures.

    Returns arrays keyed ``night`` (night index), ``wear_s``, ``rec_s``, ``onset`` / ``wake``
    (UTC ns; -1 when no sleep), ``period_s``, ``sleep_s``, ``waso_s``, ``awakenings``,
    ``nonwear_s`` (time inside the period not worn: non-wear and gaps), ``valid``.
    """
    is_sleep = np.asarray(is_sleep, dtype=bool)
    wear = np.asarray(wear, dtype=bool)
    start_ns = np.asarray(start_ns, dtype=np.int64)
    night = night_index(wall_ns)
    n0 = int(night.min())
    nights = np.arange(n0, int(night.max()) + 1)
    k = len(nights)
    ws = window_ns / _NS
    rec_s = np.bincount(night - n0, minlength=k) * ws
    wear_s = np.bincount(night[wear] - n0, minlength=k) * ws
    mp = main_sleep_periods(is_sleep, start_ns, wall_ns, window_ns)
    c_sleep = np.concatenate([[0], np.cumsum(is_sleep)])
    awake = wear & ~is_sleep
    c_awake = np.concatenate([[0], np.cumsum(awake)])
    c_worn = np.concatenate([[0], np.cumsum(wear)])
    # awakenings: runs of worn non-sleep windows (start of a run: awake and previous not awake)
    aw_start = awake & ~np.concatenate([[False], awake[:-1]])
    c_aws = np.concatenate([[0], np.cumsum(aw_start)])
    onset = np.full(k, -1, dtype=np.int64)
    wake = np.full(k, -1, dtype=np.int64)
    period_s = np.full(k, np.nan)
    sleep_s = np.full(k, np.nan)
    waso_s = np.full(k, np.nan)
    nonwear_s = np.full(k, np.nan)
    awakenings = np.full(k, -1, dtype=np.int64)
    if len(mp.night):
        j = mp.night - n0
        a, b = mp.start, mp.end
        onset[j] = start_ns[a]
        wake[j] = start_ns[b - 1] + window_ns
        period_s[j] = (wake[j] - onset[j]) / _NS
        sleep_s[j] = (c_sleep[b] - c_sleep[a]) * ws
        waso_s[j] = (c_awake[b] - c_awake[a]) * ws
        # windows of the period not worn, plus time between windows (none: table is continuous)
        nonwear_s[j] = period_s[j] - (c_worn[b] - c_worn[a]) * ws
        # a period starts and ends with sleep, so every awake run inside starts after a
        awakenings[j] = c_aws[b] - c_aws[a + 1]
    valid = (wear_s >= float(min_wear_hours) * 3600.0) & (wear_s > 0) & (onset >= 0)
    return {
        "night": nights, "rec_s": rec_s, "wear_s": wear_s, "onset": onset, "wake": wake,
        "period_s": period_s, "sleep_s": sleep_s, "waso_s": waso_s, "awakenings": awakenings,
        "nonwear_s": nonwear_s, "valid": valid,
    }


def mean_clock(ns_utc: np.ndarray, offsets_ns: np.ndarray, anchor_h: float = 12.0) -> float:
    """Mean wall-clock time as hours since ``anchor_h`` (noon: nights never wrap), NaN if empty."""
    if len(ns_utc) == 0:
        return math.nan
    wall = np.asarray(ns_utc, dtype=np.int64) + np.asarray(offsets_ns, dtype=np.int64)
    h = ((wall - int(anchor_h * 3600 * _NS)) % _DAY_NS) / (3600 * _NS)
    return float(h.mean())
