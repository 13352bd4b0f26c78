"""Device readers behind one function: :func:`read_device` returns a :class:`Recording`.

Importing this package is cheap (no numpy, pandas, pyarrow or torch until a reader runs).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from harnet.io.recording import Recording

SUFFIXES = (".cwa", ".cwa.gz", ".gt3x", ".bin", ".csv", ".csv.gz", ".parquet")

_LAZY = {
    "Recording": "harnet.io.recording:Recording",
    "strictly_increasing": "harnet.io.recording:strictly_increasing",
    "read_cwa": "harnet.io.cwa:read_cwa",
    "read_table": "harnet.io.table:read_table",
    "read_actipy": "harnet.io.actipy_reader:read_actipy",
    "java_available": "harnet.io.actipy_reader:java_available",
    "write_cwa": "harnet.io.cwa_writer:write_cwa",
}

__all__ = ["read_device", "SUFFIXES", *_LAZY]

# plausibility of gravity-included acceleration in g
PLAUSIBLE_G = (0.5, 2.0)
MS2_AS_G = (6.0, 14.0)  # a median |a| here means m/s^2 read as g
MIN_SECONDS_FOR_UNIT_CHECK = 10.0
GAP_NS = 1_000_000_000
_CHUNK = 4_000_000


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'harnet.io' has no attribute {name!r}")
    mod, attr = target.split(":")
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def _kind(path: Path) -> str | None:
    n = path.name.lower()
    for suffix, kind in (
        (".cwa.gz", "cwa"),
        (".cwa", "cwa"),
        (".gt3x", "actipy"),
        (".bin", "actipy"),
        (".csv.gz", "table"),
        (".csv", "table"),
        (".parquet", "table"),
    ):
        if n.endswith(suffix):
            return kind
    return None


def read_device(
    path: str | os.PathLike,
    *,
    time_col: int | str | None = None,
    xyz_cols: Sequence[int | str] | None = None,
    time_format: str | None = None,
    units: str | None = None,
    sample_rate: float | None = None,
    **kw: Any,
) -> "Recording":
    """Read a wearable's raw acceleration: device-local naive time and float32 x, y, z in g.

    Formats (by suffix): Axivity ``.cwa`` / ``.cwa.gz`` (AX3 and AX6, accelerometer channels;
    harnet's own reader), ActiGraph ``.gt3x`` and GENEActiv ``.bin`` (through actipy, which
    needs Java 8+), and ``.csv`` / ``.csv.gz`` / ``.parquet`` tables.

    Table options (CSV/parquet only): ``time_col`` and ``xyz_cols`` (names or 0-based indices),
    ``time_format`` (None for ISO text or Unix numbers, a strptime format, ``"unix_s"`` or
    ``"unix_ms"``), ``units`` (``"g"`` or ``"m/s2"``); ``header`` and ``delimiter`` pass through.
    ``sample_rate`` overrides the nominal rate recorded in ``info["SampleRate"]``.
    ``.cwa`` keyword: ``use_fraction`` (default True: use the fractional-second timestamps).

    After reading, times are made strictly increasing (rows sorted if needed; repeated times
    dropped, the first kept), rows with NaN or infinite values are dropped, each with a warning
    in ``info["Warnings"]`` and a count in ``info``. Refuses (:class:`harnet.errors.InputError`)
    a missing or empty file, an unsupported format, a damaged file with no readable data, a
    recording without a single finite sample, and table values that look like m/s^2 read as g.
    """
    from harnet.errors import InputError

    path = Path(path)
    kind = _kind(path)
    if kind is None:
        raise InputError(
            f"{path}: format not supported (by its suffix); harnet reads {', '.join(SUFFIXES)}; "
            "convert the file to one of these (e.g. a CSV of time,x,y,z)"
        )
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise InputError(f"{path}: is not a file; pass the path of one recording")
    table_opts = {"time_col": time_col, "xyz_cols": xyz_cols, "time_format": time_format, "units": units}
    if kind == "table":
        from harnet.io.table import read_table

        rec = read_table(path, **{k: v for k, v in table_opts.items() if v is not None}, **kw)
        units_given = rec.info.get("Units", "g")
    else:
        given = [k for k, v in table_opts.items() if v is not None and not (k == "units" and v == "g")]
        if given:
            raise InputError(f"{path}: option(s) {', '.join(given)} apply to CSV/parquet files only; drop them for device files")
        if kind == "cwa":
            from harnet.io.cwa import read_cwa

            rec = read_cwa(path, **kw)
        else:
            if kw:
                raise InputError(f"{path}: option(s) {', '.join(kw)} are not used for .gt3x/.bin files; drop them")
            from harnet.io.actipy_reader import read_actipy

            rec = read_actipy(path)
        units_given = None
    if sample_rate is not None:
        if not sample_rate > 0:
            raise InputError(f"{path}: sample_rate={sample_rate} must be a positive number of Hz")
        if rec.info.get("SampleRate") not in (None, float(sample_rate)):
            rec.info["SampleRateFile"] = rec.info["SampleRate"]
        rec.info["SampleRate"] = float(sample_rate)
    return finalize(rec, path, units_given)


def _median_magnitude(xyz: Any) -> float:
    import numpy as np

    step = max(1, len(xyz) // 1_000_000)
    sub = xyz[::step].astype(np.float64)
    return float(np.median(np.sqrt((sub * sub).sum(axis=1))))


def _time_steps(t: Any) -> tuple[int, int, int, int, int]:
    """One pass over int64 times: (steps back, repeated times, intervals shorter than
    :data:`GAP_NS`, the other intervals (gaps), the summed length of the short ones in ns)."""
    import numpy as np

    n_back = n_dup = n_int = n_gap = span = 0
    for a in range(0, len(t) - 1, _CHUNK):
        d = np.diff(t[a : a + _CHUNK + 1])
        n_back += int((d < 0).sum())
        n_dup += int((d == 0).sum())
        small = d < GAP_NS
        n_int += int(small.sum())
        n_gap += int(len(d) - small.sum())
        span += int(d[small].sum())
    return n_back, n_dup, n_int, n_gap, span


def finalize(rec: "Recording", path: Path, units_given: str | None) -> "Recording":
    """Enforce the :class:`Recording` contract on a reader's output and fill the shared info.

    ``units_given``: the units a table was declared in (None for device files), used for the
    m/s^2 check.
    """
    import numpy as np

    from harnet.errors import InputError
    from harnet.io.recording import Recording, strictly_increasing

    info = rec.info
    warn = info.setdefault("Warnings", [])
    t = rec.time.view(np.int64)
    xyz = rec.xyz
    if len(t) == 0:
        raise InputError(f"{path}: holds no samples; check the file is a recording with data (export it again)")

    # 1. strictly increasing times: sort only when needed, then drop repeated times. One pass
    # over the time steps also gives step 4's intervals, unless rows are sorted or dropped.
    steps = _time_steps(t)
    n_back = n_dup = 0
    if steps[0] or steps[1]:
        t, xyz, n_back, n_dup = strictly_increasing(t, xyz)
    if n_back:
        warn.append(f"times went backwards {n_back} time(s); rows sorted by time")
    if n_dup:
        warn.append(f"dropped {n_dup} row(s) repeating an earlier time (first kept)")
    info["NumTimesBackwards"] = n_back
    info["NumDuplicateTimes"] = n_dup

    # 2. finite values
    n_bad = 0
    for a in range(0, len(t), _CHUNK):
        n_bad += int((~np.isfinite(xyz[a : a + _CHUNK]).all(axis=1)).sum())
    if n_bad:
        if n_bad == len(t):
            raise InputError(f"{path}: every sample is NaN or infinite; check the x, y, z columns (xyz_cols) and the file")
        ok = np.isfinite(xyz).all(axis=1)
        t = t[ok]
        xyz = xyz[ok]
        warn.append(f"dropped {n_bad} row(s) with NaN or infinite values")
    info["NumNonFinite"] = n_bad

    # 3. units
    med = _median_magnitude(xyz)
    info["MedianMagnitude(g)"] = round(med, 4)
    dur_s = (int(t[-1]) - int(t[0])) / 1e9
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

    # 4. rates, gaps, span
    n = len(t)
    if n_back or n_dup or n_bad:
        steps = _time_steps(t)
    _, _, n_int, n_gap, span = steps
    info["NumGaps"] = n_gap
    if info.get("SampleRate") is None:
        if n >= 2:
            d = np.diff(t[: min(n, 1_000_001)])
            info["SampleRate"] = round(1e9 / float(np.median(d)), 3)
        else:
            info["SampleRate"] = None
            warn.append("a single sample: the sample rate cannot be estimated; pass sample_rate")
    if info.get("SampleRateEffective") is None:
        info["SampleRateEffective"] = n_int / (span / 1e9) if span > 0 else None
    start = np.datetime64(int(t[0]), "ns")
    end = np.datetime64(int(t[-1]), "ns")
    info["StartTime"] = str(start.astype("datetime64[s]")).replace("T", " ")
    info["EndTime"] = str(end.astype("datetime64[s]")).replace("T", " ")
    info["NumSamples"] = n
    if n_back or n_dup or n_bad:
        return Recording(t.view("datetime64[ns]"), xyz, info)
    return rec
