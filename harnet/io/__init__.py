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

SUFFIXES = (".cwa", ".cwa.gz", ".gt3x", ".agdc", ".bin", ".csv", ".csv.gz", ".parquet")
READERS = ("auto", "harnet", "actipy")

_LAZY = {
    "Recording": "harnet.io.recording:Recording",
    "strictly_increasing": "harnet.io.recording:strictly_increasing",
    "read_cwa": "harnet.io.cwa:read_cwa",
    "read_table": "harnet.io.table:read_table",
    "read_actilife": "harnet.io.actilife:read_actilife",
    "read_gt3x": "harnet.io.gt3x:read_gt3x",
    "read_geneactiv": "harnet.io.geneactiv:read_geneactiv",
    "Gt3xReader": "harnet.io.gt3x:Gt3xReader",
    "GeneactivReader": "harnet.io.geneactiv:GeneactivReader",
    "read_actipy": "harnet.io.actipy_reader:read_actipy",
    "java_available": "harnet.io.actipy_reader:java_available",
    "write_cwa": "harnet.io.cwa_writer:write_cwa",
}

__all__ = ["read_device", "block_reader", "SUFFIXES", "READERS", *_LAZY]

from harnet.io.checks import GAP_NS, MIN_SECONDS_FOR_UNIT_CHECK, MS2_AS_G, PLAUSIBLE_G  # noqa: F401 (public here too)

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


def kind_of(path: Path) -> str | None:
    """The reader kind of a path by its suffix (``cwa``, ``gt3x``, ``geneactiv``, ``table``), or None."""
    return _kind(path)


def _kind(path: Path) -> str | None:
    n = path.name.lower()
    for suffix, kind in (
        (".cwa.gz", "cwa"),
        (".cwa", "cwa"),
        (".gt3x", "gt3x"),
        (".agdc", "gt3x"),
        (".bin", "geneactiv"),
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
    progress: Any = None,
    reader: str = "auto",
    **kw: Any,
) -> "Recording":
    """Read a wearable's raw acceleration: device-local naive time and float32 x, y, z in g.

    Formats (by suffix): Axivity ``.cwa`` / ``.cwa.gz`` (AX3 and AX6, accelerometer channels),
    ActiGraph ``.gt3x`` / ``.agdc`` (GT3X v2 ``log.bin`` and old NHANES v1 ``activity.bin``) and
    GENEActiv ``.bin``, all with harnet's own readers (no Java), ActiLife raw CSV exports
    (``.csv`` / ``.csv.gz`` whose first line is ActiLife's header line; rate, start and serial
    number from the header), and ``.csv`` / ``.csv.gz`` / ``.parquet`` tables. ``reader="actipy"`` reads a device file (``.cwa``, ``.cwa.gz``, ``.gt3x``,
    ``.bin``) with actipy instead, which needs Java 8+ (every processing step off).

    Table options (CSV/parquet only): ``time_col`` and ``xyz_cols`` (names or 0-based indices),
    ``time_format`` (None for ISO text or Unix numbers, a strptime format, ``"unix_s"`` or
    ``"unix_ms"``), ``units`` (``"g"`` or ``"m/s2"``); ``header``, ``delimiter``, ``start_row``
    and ``start_time`` pass through (see :func:`harnet.io.table.read_table`).
    ``sample_rate`` overrides the nominal rate recorded in ``info["SampleRate"]``.
    ``.cwa`` keyword: ``use_fraction`` (default True: use the fractional-second timestamps).
    ``progress``: ``progress("read", bytes done, bytes total)`` while a CWA or CSV file is read
    (a CWA file is read twice, so its total is twice its size); other formats do not report.

    After reading, times are made strictly increasing (rows sorted if needed; repeated times
    dropped, the first kept), rows with NaN or infinite values are dropped, each with a warning
    in ``info["Warnings"]`` and a count in ``info``. Refuses (:class:`harnet.errors.InputError`)
    a missing or empty file, an unsupported format, a damaged file with no readable data, a
    recording without a single finite sample, and table values that look like m/s^2 read as g.
    """
    from harnet.errors import InputError

    path = Path(path)
    if reader not in READERS:
        raise InputError(f"reader={reader!r} is not one of {', '.join(READERS)}")
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
        from harnet.io.actilife import is_actilife, read_actilife
        from harnet.io.table import read_table

        if reader == "actipy":
            raise InputError(f"{path}: reader='actipy' (--reader actipy) applies to device files only; drop it for CSV/parquet")
        if path.name.lower().endswith((".csv", ".csv.gz")) and is_actilife(path):  # read from its own header
            given = [k for k in ("time_col", "xyz_cols", "time_format") if table_opts[k] is not None]
            rec = read_actilife(path, units=units or "g", sample_rate=sample_rate, progress=progress,
                                **dict.fromkeys(given, True), **kw)
        else:
            rec = read_table(path, **{k: v for k, v in table_opts.items() if v is not None}, progress=progress, **kw)
        units_given = rec.info.get("Units", "g")
    else:
        given = [k for k, v in table_opts.items() if v is not None and not (k == "units" and v == "g")]
        if given:
            raise InputError(f"{path}: option(s) {', '.join(given)} apply to CSV/parquet files only; drop them for device files")
        if kind == "cwa" and reader != "actipy":
            from harnet.io.cwa import read_cwa

            rec = read_cwa(path, progress=progress, **kw)
        else:
            if kw:
                what = "--reader actipy" if reader == "actipy" else ".gt3x/.agdc/.bin files"
                raise InputError(f"{path}: option(s) {', '.join(kw)} are not used for {what}; drop them")
            if reader == "actipy":
                from harnet.io.actipy_reader import read_actipy

                rec = read_actipy(path)
            elif kind == "gt3x":
                from harnet.io.gt3x import read_gt3x

                rec = read_gt3x(path)
            else:
                from harnet.io.geneactiv import read_geneactiv

                rec = read_geneactiv(path)
        units_given = None
    if sample_rate is not None:
        if not sample_rate > 0:
            raise InputError(f"{path}: sample_rate={sample_rate} must be a positive number of Hz")
        if rec.info.get("SampleRate") not in (None, float(sample_rate)):
            rec.info["SampleRateFile"] = rec.info["SampleRate"]
        rec.info["SampleRate"] = float(sample_rate)
    return finalize(rec, path, units_given)


def block_reader(path: str | os.PathLike, **kw: Any) -> Any:
    """A streaming reader for a ``.gt3x``/``.agdc`` or GENEActiv ``.bin`` file: its ``blocks()``
    yields :class:`harnet.io.blocks.Block` objects (int64 ns times, float32 g) of bounded size in
    file order, ``capacity()`` bounds the sample count and ``info`` is complete once the blocks
    are exhausted. ``kw`` (``chunk_bytes``) goes to the reader. The blocks are the raw samples:
    the checks of :func:`read_device` (sorting, repeated times, non-finite values) are not applied.
    """
    from harnet.errors import InputError

    path = Path(path)
    kind = _kind(path)
    if kind == "gt3x":
        from harnet.io.gt3x import Gt3xReader

        return Gt3xReader(path, **kw)
    if kind == "geneactiv":
        from harnet.io.geneactiv import GeneactivReader

        return GeneactivReader(path, **kw)
    raise InputError(f"{path}: block_reader streams .gt3x, .agdc and .bin files; use read_device for this format")


def _time_steps(t: Any) -> tuple[int, int, int, int, int]:
    """One pass over int64 times: :func:`harnet.io.checks.time_steps`, a block at a time."""
    import numpy as np

    from harnet.io.checks import time_steps

    tot = [0, 0, 0, 0, 0]
    for a in range(0, len(t) - 1, _CHUNK):
        for k, v in enumerate(time_steps(np.diff(t[a : a + _CHUNK + 1]))):
            tot[k] += v
    return tot[0], tot[1], tot[2], tot[3], tot[4]


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
    from harnet.io.checks import RATE_STEPS, check_units, fill_span_info, median_of, median_step

    check_units(info, path, units_given, median_of(xyz[:: median_step(len(xyz))]), (int(t[-1]) - int(t[0])) / 1e9)

    # 4. rates, gaps, span
    n = len(t)
    if n_back or n_dup or n_bad:
        steps = _time_steps(t)
    fill_span_info(info, steps, n, int(t[0]), int(t[-1]), lambda: np.diff(t[: min(n, RATE_STEPS + 1)]))
    if n_back or n_dup or n_bad:
        return Recording(t.view("datetime64[ns]"), xyz, info)
    return rec
