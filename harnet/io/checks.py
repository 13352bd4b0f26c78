"""The reader-independent checks and info fields of a recording (``NumGaps``, ``SampleRateEffective``,
``MedianMagnitude(g)``, ``StartTime``, ...), shared by the whole-file path
(:func:`harnet.io.finalize`) and the streaming one (:class:`harnet.io.stream.DeviceStream`), so
both write the same info.json whatever the block size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

# plausibility of gravity-included acceleration in g
PLAUSIBLE_G = (0.5, 2.0)
MS2_AS_G = (6.0, 14.0)  # a median |a| here means m/s^2 read as g
MIN_SECONDS_FOR_UNIT_CHECK = 10.0
GAP_NS = 1_000_000_000
#: samples whose magnitude the unit check's median reads (every ``n // MEDIAN_SAMPLES``-th)
MEDIAN_SAMPLES = 1_000_000
#: time steps the nominal-rate estimate reads (when a reader gives none)
RATE_STEPS = 1_000_000


def magnitudes(sub: Any) -> Any:
    """float64 vector magnitudes (g) of rows ``(k, 3)`` (row by row: the same values in blocks)."""
    import numpy as np

    sub = np.asarray(sub).astype(np.float64)
    return np.sqrt((sub * sub).sum(axis=1))


def median_of(sub: Any) -> float:
    """Median vector magnitude (g) of the sub-sampled rows ``sub`` (every ``median_step``-th)."""
    import numpy as np

    return float(np.median(magnitudes(sub)))


def median_step(n: int) -> int:
    return max(1, n // MEDIAN_SAMPLES)


def time_steps(d: Any) -> tuple[int, int, int, int, int]:
    """(steps back, repeated times, intervals shorter than :data:`GAP_NS`, the other intervals,
    the summed length of the short ones in ns) of an array of time differences."""
    n_back = int((d < 0).sum())
    n_dup = int((d == 0).sum())
    small = d < GAP_NS
    n_int = int(small.sum())
    return n_back, n_dup, n_int, int(len(d) - n_int), int(d[small].sum())


def check_units(info: dict[str, Any], path: Path, units_given: str | None, med: float, dur_s: float) -> None:
    """``MedianMagnitude(g)``; refuse m/s^2 read as g; warn when the median is implausible."""
    from harnet.errors import InputError

    warn = info.setdefault("Warnings", [])
    info["MedianMagnitude(g)"] = round(med, 4)
    if units_given == "g" and MS2_AS_G[0] <= med <= MS2_AS_G[1]:
        raise InputError(
            f"{path}: median acceleration magnitude is {med:.2f} 'g', which is gravity in m/s^2; "
            "pass units='m/s2' (CLI: --units m/s2) if the values are in m/s^2"
        )
    if not PLAUSIBLE_G[0] <= med <= PLAUSIBLE_G[1] and dur_s >= MIN_SECONDS_FOR_UNIT_CHECK:
        hint = " (were values given in g with units='m/s2'?)" if units_given == "m/s2" and med < 0.2 else ""
        warn.append(
            f"median acceleration magnitude is {med:.3f} g, outside the {PLAUSIBLE_G[0]}-{PLAUSIBLE_G[1]} g expected "
            f"with gravity included{hint}; check the units and columns"
        )


def fill_span_info(info: dict[str, Any], steps: tuple[int, int, int, int, int], n: int, t_first: int, t_last: int,
                   first_steps: Callable[[], Any]) -> None:
    """``NumGaps``, ``SampleRate`` (from the median of ``first_steps()``, the first time
    differences, when the reader gave none), ``SampleRateEffective``, ``StartTime``, ``EndTime``
    and ``NumSamples`` from the time steps of strictly increasing times."""
    import numpy as np

    warn = info.setdefault("Warnings", [])
    _, _, n_int, n_gap, span = steps
    info["NumGaps"] = n_gap
    if info.get("SampleRate") is None:
        if n >= 2:
            info["SampleRate"] = round(1e9 / float(np.median(first_steps())), 3)
        else:
            info["SampleRate"] = None
            warn.append("a single sample: the sample rate cannot be estimated; pass sample_rate")
    if info.get("SampleRateEffective") is None:
        info["SampleRateEffective"] = n_int / (span / 1e9) if span > 0 else None
    start = np.datetime64(int(t_first), "ns")
    end = np.datetime64(int(t_last), "ns")
    info["StartTime"] = str(start.astype("datetime64[s]")).replace("T", " ")
    info["EndTime"] = str(end.astype("datetime64[s]")).replace("T", " ")
    info["NumSamples"] = n
