"""CSV / CSV.gz / parquet readers for raw tri-axial acceleration, streamed with pyarrow.

The file is read in record batches straight into preallocated numpy arrays (time as int64 ns,
x, y, z as float32), so a week at 100 Hz needs about the output's memory, never a pandas frame.
Only the four selected columns are parsed. The rows come back in file order: sorting, duplicate
times, non-finite values and the unit check are applied by :func:`harnet.io.read_device`.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from harnet.errors import InputError
from harnet.io.recording import Recording

G = 9.80665
UNITS = {"g": 1.0, "m/s2": 1.0 / G, "m/s^2": 1.0 / G, "mps2": 1.0 / G, "m/s²": 1.0 / G}
UNIX_FORMATS = ("unix_s", "unix_ms")
BATCH_BYTES = 16 << 20

_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(nan|inf|infinity)\s*$", re.I)
_DATEISH = re.compile(r"^\s*\"?\d{1,4}[-/.:]\d")


def is_table(path: Path) -> bool:
    n = path.name.lower()
    return n.endswith((".csv", ".csv.gz", ".parquet", ".pq"))


class _Grow:
    """Preallocated output arrays that grow geometrically only if the row estimate was short."""

    def __init__(self, capacity: int) -> None:
        capacity = max(int(capacity), 1)
        self.time = np.empty(capacity, np.int64)
        self.xyz = np.empty((capacity, 3), np.float32)
        self.n = 0

    def add(self, t: np.ndarray, xyz: np.ndarray) -> None:
        k = len(t)
        if self.n + k > len(self.time):
            cap = max(self.n + k, int(len(self.time) * 1.5))
            self.time = np.resize(self.time, cap)
            self.xyz = np.resize(self.xyz, (cap, 3))
        self.time[self.n : self.n + k] = t
        self.xyz[self.n : self.n + k] = xyz
        self.n += k

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 0.9 * len(self.time):
            return self.time[: self.n].copy(), self.xyz[: self.n].copy()
        return self.time[: self.n], self.xyz[: self.n]


def _first_line(path: Path, skip: int = 0) -> str:
    """The first line after ``skip`` lines (decoded; empty at the end of the file)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for _ in range(skip):
                f.readline(1 << 20)
            raw = f.readline(1 << 20)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot be read ({exc}); check it is a complete CSV (or gzip of a CSV)") from None
    try:
        return raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InputError(f"{path}: is not a text CSV file (not UTF-8); export the data as CSV text and retry") from None


def _split(line: str, delimiter: str) -> list[str]:
    return [c.strip().strip('"').strip() for c in line.split(delimiter)]


def _resolve(spec: int | str, names: list[str], path: Path, what: str) -> int:
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if 0 <= spec < len(names):
            return int(spec)
        raise InputError(
            f"{path}: has {len(names)} columns, so {what} column index {spec} does not exist; "
            f"pass a column index 0..{len(names) - 1} or a name"
        )
    if spec in names:
        return names.index(spec)
    lower = [n.lower() for n in names]
    if str(spec).lower() in lower:
        return lower.index(str(spec).lower())
    raise InputError(
        f"{path}: has no {what} column {spec!r} (columns: {', '.join(names[:20])}); "
        "pass time_col=/xyz_cols= with the right names or 0-based indices"
    )


def _distinct(idx: list[int], names: list[str], path: Path) -> None:
    """time, x, y and z must be four different columns (one column twice crashed the parser)."""
    if len(set(idx)) != len(idx):
        shown = ", ".join(f"{a}={names[i]!r}" for a, i in zip(("time", "x", "y", "z"), idx))
        raise InputError(f"{path}: the same column is selected twice ({shown}); pass four different columns as time_col and xyz_cols")


def _unit_factor(units: str, path: Path) -> float:
    f = UNITS.get(units.lower().replace(" ", "")) if isinstance(units, str) else None
    if f is None:
        raise InputError(f"{path}: units={units!r} is not understood; pass units='g' or units='m/s2'")
    return f


def _time_to_ns(arr: Any, time_format: str | None, path: Path, row0: int, state: dict) -> np.ndarray:
    """One batch of the time column -> int64 ns (device-local wall time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if time_format in UNIX_FORMATS or (time_format is None and (pa.types.is_integer(t) or pa.types.is_floating(t))):
        if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            try:
                arr = pc.cast(arr, pa.float64())
            except pa.ArrowInvalid as exc:
                raise InputError(f"{path}: time column is not numeric ({exc}); pass the right time_format") from None
        v = arr.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{path}: row {row0 + i + 1} has no valid time ({v[i]}); remove the row or fix the file")
        fmt = time_format or state.get("auto_unix")
        if fmt is None:
            mag = float(np.median(np.abs(v))) if len(v) else 0.0
            if mag < 1e11:
                fmt = "unix_s"
            elif mag < 1e14:
                fmt = "unix_ms"
            else:
                raise InputError(
                    f"{path}: numeric times around {mag:.3g} are neither Unix seconds nor milliseconds; "
                    "pass time_format='unix_s' or 'unix_ms', or convert the times"
                )
            state["auto_unix"] = fmt
            if fmt == "unix_s" and mag < 315_532_800:  # before 1980
                state.setdefault("warnings", []).append(
                    "numeric times look relative (before 1980) and were read as seconds since 1970-01-01"
                )
        state["TimeFormat"] = fmt
        per = 1e6 if fmt == "unix_s" else 1e3
        us = np.rint(v * per)
        far = np.abs(us) > 9.2e15  # beyond about 2261 AD / before 1678: no int64 nanosecond time
        if far.any():
            i = int(np.flatnonzero(far)[0])
            raise InputError(f"{path}: row {row0 + i + 1} has a time out of range ({v[i]:.6g} as {fmt}); "
                             "fix the row or pass the right time_format")
        return us.astype(np.int64) * 1000  # to the microsecond, then ns
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            state["TimeZone"] = t.tz
            arr = pc.local_timestamp(arr)
        ns = pc.cast(arr, pa.timestamp("ns"))
    elif pa.types.is_date(t):
        ns = pc.cast(pc.cast(arr, pa.timestamp("s")), pa.timestamp("ns"))
    else:
        if not pa.types.is_string(t) and not pa.types.is_large_string(t):
            arr = pc.cast(arr, pa.string())
        ns = _parse_text(arr, time_format, path, row0)
    if ns.null_count:
        i = int(np.flatnonzero(ns.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{path}: row {row0 + i + 1} has no time; remove the row or fix the file")
    return ns.cast(pa.int64()).to_numpy(zero_copy_only=False)


def _parse_text(arr: Any, time_format: str | None, path: Path, row0: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    def fail(parsed: Any) -> None:
        bad = parsed.is_null().to_numpy(zero_copy_only=False)
        i = int(np.flatnonzero(bad)[0])
        shown = arr[i].as_py()
        hint = f"time_format={time_format!r} does not match it; pass the right" if time_format else "pass"
        raise InputError(
            f"{path}: row {row0 + i + 1}: time {shown!r} cannot be parsed; {hint} "
            "time_format (e.g. '%Y-%m-%d %H:%M:%S.%f', 'unix_s', 'unix_ms') or fix the row"
        )

    if time_format is None:
        try:
            return pc.cast(arr, pa.timestamp("ns"))
        except pa.ArrowInvalid:
            # find the first bad row for the message
            for j in range(0, len(arr), 65536):
                piece = arr.slice(j, 65536)
                try:
                    pc.cast(piece, pa.timestamp("ns"))
                except pa.ArrowInvalid:
                    for i in range(len(piece)):
                        try:
                            pc.cast(piece.slice(i, 1), pa.timestamp("ns"))
                        except pa.ArrowInvalid:
                            raise InputError(
                                f"{path}: row {row0 + j + i + 1}: time {piece[i].as_py()!r} cannot be parsed as an ISO date-time; "
                                "pass time_format (e.g. '%d/%m/%Y %H:%M:%S.%f', 'unix_s', 'unix_ms') or fix the row"
                            ) from None
            raise InputError(f"{path}: times cannot be parsed; pass time_format") from None  # pragma: no cover
    fmt = time_format
    frac = None
    if fmt.endswith("%f") and len(fmt) > 2 and fmt[-3] in ".,":
        parts = pc.extract_regex(arr, r"^(?P<main>.*?)(?:[.,](?P<frac>\d{1,9}))?$")
        main = pc.struct_field(parts, "main")
        frac = pc.struct_field(parts, "frac")
        fmt = fmt[:-3]
        arr_main = main
    elif "%f" in fmt:
        return _parse_pandas(arr, time_format, path, row0)
    else:
        arr_main = arr
    parsed = pc.strptime(arr_main, format=fmt, unit="ns", error_is_null=True)
    if parsed.null_count:
        fail(parsed)
    if frac is not None:
        digits = pc.utf8_rpad(frac, width=9, padding="0")
        digits = pc.if_else(pc.equal(pc.utf8_length(frac), 0), "000000000", digits)
        sub = pc.cast(pc.utf8_slice_codeunits(digits, 0, 9), pa.int64())
        parsed = pc.cast(pc.add(pc.cast(parsed, pa.int64()), sub), pa.timestamp("ns"))
    return parsed


def _parse_pandas(arr: Any, time_format: str, path: Path, row0: int) -> Any:
    import pandas as pd
    import pyarrow as pa

    s = pd.Series(arr.to_pylist())
    t = pd.to_datetime(s, format=time_format, errors="coerce")
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise InputError(
            f"{path}: row {row0 + i + 1}: time {s.iloc[i]!r} does not match time_format={time_format!r}; "
            "pass the right time_format or fix the row"
        )
    return pa.array(t.to_numpy("datetime64[ns]"))


def _batches_csv(
    path: Path, idx: list[int], names: list[str], header: bool, delimiter: str, time_type: Any, skip: int = 0,
    report: Any = None,
) -> Iterator[Any]:
    """Parse the file in pieces of about BATCH_BYTES cut at line ends (arrow's own streaming
    reader reads ahead without bound, so memory would grow with the file)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    cols = [names[i] for i in idx if i is not None]  # idx[0] None: no time column
    read = pcsv.ReadOptions(column_names=names, use_threads=False)
    types = {names[i]: pa.float32() for i in idx[1:]}
    if time_type is not None and idx[0] is not None:
        types[names[idx[0]]] = time_type
    conv = pcsv.ConvertOptions(include_columns=cols, column_types=types, strings_can_be_null=True)
    parse = pcsv.ParseOptions(delimiter=delimiter)
    gz = path.name.lower().endswith(".gz")
    try:
        with open(path, "rb") as raw, (gzip.GzipFile(fileobj=raw) if gz else raw) as f:
            for _ in range(skip + bool(header)):
                f.readline()
            carry = b""
            done = 0
            while True:
                buf = f.read(BATCH_BYTES)
                if report is not None:
                    report(raw.tell())
                data = carry + buf
                if buf:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        carry = data
                        continue
                    data, carry = data[:cut], data[cut:]
                if data.strip():
                    table = pcsv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse, convert_options=conv)
                    del data
                    if table.num_rows:
                        done += table.num_rows
                        got = [table.column(c).combine_chunks() for c in cols]
                        yield got if idx[0] is not None else [None, *got]
                    del table
                if not buf:
                    return
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        msg = str(exc).splitlines()[0]
        raise InputError(
            f"{path}: cannot be parsed as CSV after data row {done} ({msg}); "
            "check time_col/xyz_cols, delimiter and header, or fix the row"
        ) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot be read ({exc}); check it is a complete CSV (or gzip of a CSV)") from None


def _estimate_rows(path: Path, first_line: str) -> int:
    """Rows in the file, from its size and the mean length of the first 64 KiB of lines."""
    gz = path.name.lower().endswith(".gz")
    size = path.stat().st_size
    if gz:
        with open(path, "rb") as f:
            f.seek(max(0, size - 4))
            size = max(size * 3, int.from_bytes(f.read(4), "little"))  # gzip ISIZE (mod 4 GiB)
    with (gzip.open if gz else open)(path, "rb") as f:
        head = f.read(1 << 16)
    per_row = len(head) / max(head.count(b"\n"), 1) if head else max(len(first_line) + 1, 8)
    return int(size / max(per_row, 4) * 1.05) + 1024


def read_table(
    path: str | os.PathLike,
    *,
    time_col: int | str | None = None,
    xyz_cols: Sequence[int | str] | None = None,
    time_format: str | None = None,
    units: str = "g",
    sample_rate: float | None = None,
    header: bool | str = "infer",
    delimiter: str = ",",
    start_row: int = 1,
    start_time: Any = None,
    progress: Any = None,
) -> Recording:
    """Read x, y, z acceleration and a time column from ``.csv``, ``.csv.gz`` or ``.parquet``.

    Columns are given by name or 0-based index: ``time_col`` (default ``"time"`` when the file
    has a header, else 0) and ``xyz_cols`` (default ``("x", "y", "z")`` with a header, else
    ``(1, 2, 3)``). ``time_format``: None (ISO text such as ``2024-01-31 08:00:00.010``, or
    numbers read as Unix seconds or milliseconds by their size), a strptime format (``%f``
    allowed), ``"unix_s"`` or ``"unix_ms"``. Times are kept as written (device-local, naive);
    time-zone-aware parquet timestamps become wall-clock time in their zone. ``units``: ``"g"`` or
    ``"m/s2"`` (divided by 9.80665). ``sample_rate`` overrides the nominal rate otherwise
    estimated from the median time step. ``header``: ``"infer"``, True or False (CSV only).
    ``delimiter``: the field separator (CSV only). ``start_row``: the 1-based line the table
    starts on (its column-name line, if any; earlier lines are skipped, as actinet's
    ``--csv-start-row``). ``start_time``: for tables without a time column, the time of the first
    row; row ``i`` is then timed ``i / sample_rate`` s later (``sample_rate`` is required).
    ``progress("read", bytes done, file size)`` is called as a CSV is read.
    """
    path = Path(path)
    factor = _unit_factor(units, path)
    if time_format is not None and not isinstance(time_format, str):
        raise InputError(f"{path}: time_format must be a string such as '%Y-%m-%d %H:%M:%S.%f', 'unix_s' or 'unix_ms'")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes); export the recording again")
    state: dict = {}
    parquet = path.name.lower().endswith((".parquet", ".pq"))
    skip = _check_layout(path, parquet, delimiter, start_row, start_time, sample_rate)
    if parquet:
        batches, n_est, info_extra = _parquet_batches(path, time_col, xyz_cols)
    else:
        line = _first_line(path, skip)
        if not line.strip():
            where = "first line" if not skip else f"line {skip + 1} (--csv-start-row)"
            raise InputError(f"{path}: {where} is empty; the file holds no CSV data there (export it again or fix the start row)")
        fields = _split(line, delimiter)
        if header == "infer":
            has_header = any(not _NUMBER.match(f) and not _DATEISH.match(f) for f in fields)
        else:
            has_header = bool(header)
        names = fields if has_header else [f"f{i}" for i in range(len(fields))]
        if len(set(names)) != len(names):
            names = [f"{n}.{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
        tc = time_col if time_col is not None else ("time" if has_header else 0)
        xc = list(xyz_cols) if xyz_cols is not None else (["x", "y", "z"] if has_header else [1, 2, 3])
        if len(xc) != 3:
            raise InputError(f"{path}: xyz_cols must name 3 columns, got {xc!r}")
        idx: list = [None if start_time is not None else _resolve(tc, names, path, "time")]
        idx += [_resolve(c, names, path, a) for c, a in zip(xc, "xyz")]
        _distinct([i for i in idx if i is not None], names, path)
        time_type = None if idx[0] is None else _csv_time_type(
            time_format, fields[idx[0]] if not has_header else None, idx, path, delimiter, skip)
        size = path.stat().st_size
        report = None if progress is None else (lambda pos: progress("read", pos, size))
        batches = _batches_csv(path, idx, names, has_header, delimiter, time_type, skip, report)
        n_est = _estimate_rows(path, line)
        info_extra = {"Columns": [names[i] for i in idx if i is not None] if has_header else idx}
    t_first = None if start_time is None else np.datetime64(start_time, "ns").astype(np.int64)
    out = _Grow(n_est)
    for cols in batches:
        if t_first is None:
            t = _time_to_ns(cols[0], time_format, path, out.n, state)
        else:  # no time column: row i at start + i / rate
            t = t_first + np.rint(np.arange(out.n, out.n + len(cols[1])) * (1e9 / sample_rate)).astype(np.int64)
        xyz = np.empty((len(t), 3), np.float32)
        for j in range(3):
            xyz[:, j] = cols[j + 1].to_numpy(zero_copy_only=False)
        if factor != 1.0:
            xyz *= np.float32(factor)
        out.add(t, xyz)
    time, xyz = out.arrays()
    info: dict[str, Any] = {
        "Filename": str(path),
        "Filesize(MB)": round(path.stat().st_size / 1e6, 1),
        "Device": "Parquet" if parquet else "CSV",
        "DeviceID": None,
        "ReadOK": 1,
        "ReadErrors": 0,
        "Units": "g" if factor == 1.0 else "m/s2",
        **info_extra,
        "Warnings": list(state.get("warnings", [])),
    }
    for k in ("TimeZone", "TimeFormat"):
        if k in state:
            info[k] = state[k]
    if sample_rate is not None:
        info["SampleRate"] = float(sample_rate)
    return Recording(time.view("datetime64[ns]"), xyz, info)


def _check_layout(path: Path, parquet: bool, delimiter: str, start_row: Any, start_time: Any, rate: Any) -> int:
    """Check the CSV layout options before reading; returns the number of lines to skip."""
    if parquet and (start_row != 1 or start_time is not None or delimiter != ","):
        raise InputError(f"{path}: --csv-start-row, --csv-delimiter and a start time apply to CSV files, not parquet; drop them")
    if not isinstance(start_row, (int, np.integer)) or isinstance(start_row, bool) or start_row < 1:
        raise InputError(f"{path}: --csv-start-row {start_row!r} must be a line number >= 1 (1: the first line)")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise InputError(f"{path}: --csv-delimiter {delimiter!r} must be one character such as ',' ';' or a tab")
    if start_time is not None and not (rate and rate > 0):
        raise InputError(f"{path}: a table without a time column needs its sample rate (--sample-rate HZ)")
    return int(start_row) - 1


def _csv_time_type(
    time_format: str | None, first_value: str | None, idx: list[int], path: Path, delimiter: str, skip: int
) -> Any:
    """Arrow type to parse the time column as: numbers for Unix times, text otherwise."""
    import pyarrow as pa

    if time_format in UNIX_FORMATS:
        return pa.float64()
    if time_format is not None:
        return pa.string()
    if first_value is None:  # header: look at the first data row
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            for _ in range(skip + 1):
                f.readline(1 << 20)
            row = f.readline(1 << 20).decode("utf-8", "replace").rstrip("\r\n")
        fields = _split(row, delimiter)
        first_value = fields[idx[0]] if len(fields) > idx[0] else ""
    return pa.float64() if _NUMBER.match(first_value or "") else pa.string()


def _parquet_batches(path: Path, time_col: int | str | None, xyz_cols: Sequence[int | str] | None) -> tuple[Iterator[Any], int, dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:  # names not UTF-8 (found by fuzzing)
        raise InputError(f"{path}: is not a readable parquet file ({str(exc).splitlines()[0]}); export it again") from None
    names = pf.schema_arrow.names
    tc = time_col if time_col is not None else "time"
    xc = list(xyz_cols) if xyz_cols is not None else ["x", "y", "z"]
    if len(xc) != 3:
        raise InputError(f"{path}: xyz_cols must name 3 columns, got {xc!r}")
    idx = [_resolve(tc, names, path, "time")] + [_resolve(c, names, path, a) for c, a in zip(xc, "xyz")]
    _distinct(idx, names, path)
    cols = [names[i] for i in idx]

    def gen() -> Iterator[Any]:
        try:
            for batch in pf.iter_batches(batch_size=1 << 20, columns=list(dict.fromkeys(cols))):
                out = [batch.column(cols[0])]
                for c in cols[1:]:
                    a = batch.column(c)
                    if not (pa.types.is_floating(a.type) or pa.types.is_integer(a.type)):
                        raise InputError(f"{path}: column {c!r} is {a.type}, not numbers; pick numeric x, y, z columns")
                    out.append(a.cast(pa.float32()))
                yield out
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot be read ({str(exc).splitlines()[0]}); export it again") from None

    return gen(), pf.metadata.num_rows, {"Columns": cols}


__all__ = ["read_table", "is_table", "UNITS", "G"]
