"""ActiGraph ActiLife raw CSV exports (``.csv`` / ``.csv.gz``), recognised by their first line.

ActiLife writes a 10-line header, then (optionally) a column-name line, then one row per sample::

    ------------ Data File Created By ActiGraph GT3X+ ActiLife v6.13.4 Firmware v2.5.0 date format M/d/yyyy at 30 Hz  Filter Normal -----------
    Serial Number: NEO1C04110003
    Start Time 11:55:00
    Start Date 12/20/2021
    Epoch Period (hh:mm:ss) 00:00:00
    ...
    --------------------------------------------------
    Accelerometer X,Accelerometer Y,Accelerometer Z

The first line states the sample rate (``at 30 Hz``) and how dates are written (``date format
M/d/yyyy``; also ``d/M/yyyy``, ``yyyy-MM-dd`` and other orders of ``d``, ``M``, ``yyyy``). Rows
without a ``Timestamp`` column are timed from the header's start at that rate; with one, its
times are used. Values are in g. The serial number becomes ``info["DeviceID"]``.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import os
import re
import zlib
from pathlib import Path
from typing import Any

from harnet.errors import InputError
from harnet.io.recording import Recording

_MARK = re.compile(r"^\ufeff?-*\s*Data File Created By ActiGraph", re.I)
_RATE = re.compile(r"\bat\s+(\d+(?:\.\d+)?)\s*Hz\b", re.I)
_DATEFMT = re.compile(r"date\s+format\s+(\S+)", re.I)
_TOKENS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "M": "%m", "dd": "%d", "d": "%d"}
_XYZ = ("Accelerometer X", "Accelerometer Y", "Accelerometer Z")
_MAX_HEADER = 30  # lines searched for the closing dashes
_NUM = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _head(path: Path, n: int) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    lines = []
    try:
        with opener(path, "rb") as f:
            for _ in range(n):
                raw = f.readline(1 << 16)
                if not raw:
                    break
                lines.append(raw.decode("utf-8-sig", "replace").rstrip("\r\n"))
    except (OSError, EOFError, zlib.error):
        return lines  # the table reader reports damaged files
    return lines


def is_actilife(path: str | os.PathLike) -> bool:
    """True when the file's first line is ActiLife's ``--- Data File Created By ActiGraph`` line."""
    first = _head(Path(path), 1)
    return bool(first) and bool(_MARK.match(first[0]))


def strptime_format(actilife_format: str, path: Path) -> str:
    """ActiLife's date format (``M/d/yyyy``, ``dd.MM.yyyy``, ``yyyy-MM-dd``) -> a strptime format."""
    toks = re.findall(r"y+|M+|d+|[^yMd]+", actilife_format)
    parts = [t for t in toks if t[0] in "yMd"]
    if (sorted(t[0] for t in parts) == ["M", "d", "y"] and all(t in _TOKENS for t in parts)
            and all(re.fullmatch(r"[-/. ]+", t) for t in toks if t[0] not in "yMd")):
        return "".join(_TOKENS.get(t, t) for t in toks)
    raise InputError(
        f"{path}: ActiLife header: date format {actilife_format!r} in the first line is not understood "
        "(expected day, month and year such as M/d/yyyy, d/M/yyyy or yyyy-MM-dd); export it again or convert it to time,x,y,z"
    )


def _field(lines: list[str], name: str, path: Path) -> str:
    for ln in lines[1:]:
        m = re.match(rf"^\s*{name}\s*:?\s*(.*?)\s*$", ln, re.I)
        if m:
            return m.group(1)
    raise InputError(f"{path}: ActiLife header has no '{name}' line; export the file again from ActiLife")


def parse_header(path: str | os.PathLike) -> dict[str, Any]:
    """The facts of an ActiLife header: rate, date format, start, serial, header length, columns."""
    path = Path(path)
    lines = _head(path, _MAX_HEADER + 2)
    if not lines or not _MARK.match(lines[0]):
        raise InputError(f"{path}: is not an ActiLife CSV export (its first line is not '--- Data File Created By ActiGraph ...')")
    first = lines[0]
    end = next((i for i in range(1, min(len(lines), _MAX_HEADER)) if re.fullmatch(r"\s*-{5,}\s*", lines[i])), None)
    if end is None:
        raise InputError(f"{path}: ActiLife header does not end with a line of dashes within {_MAX_HEADER} lines; the export is damaged")
    head = lines[:end]
    m = _DATEFMT.search(first)
    if not m:
        raise InputError(f"{path}: ActiLife header: the first line states no 'date format ...'; export it again from ActiLife")
    date_fmt = strptime_format(m.group(1), path)
    rate_m = _RATE.search(first)
    rate = float(rate_m.group(1)) if rate_m else None
    if rate is not None and not rate > 0:
        raise InputError(f"{path}: ActiLife header states a sample rate of {rate_m.group(1)} Hz; export it again")
    epoch = _field(head, r"Epoch Period \(hh:mm:ss\)", path) if any("Epoch Period" in ln for ln in head) else "00:00:00"
    if epoch.strip() not in ("00:00:00", "0:00:00", ""):
        raise InputError(
            f"{path}: is an ActiLife epoch (counts) export with {epoch} epochs, not raw acceleration; "
            "export the raw data from ActiLife (File > Export > Raw data to CSV)"
        )
    start_date, start_time = _field(head, "Start Date", path), _field(head, "Start Time", path)
    try:
        day = _dt.datetime.strptime(start_date, date_fmt).date()
    except ValueError:
        raise InputError(
            f"{path}: ActiLife header: Start Date {start_date!r} does not match the date format {m.group(1)} "
            "stated in the first line; fix the header or export the file again"
        ) from None
    try:
        clock = _dt.time.fromisoformat(start_time.strip())
    except ValueError:
        raise InputError(f"{path}: ActiLife header: Start Time {start_time!r} is not a time like 11:55:00; fix the header") from None
    serial = _field(head, "Serial Number", path) if any("Serial Number" in ln for ln in head) else None
    version = re.search(r"ActiLife\s+v?(\S+)", first, re.I)
    firmware = re.search(r"Firmware\s+v?(\S+)", first, re.I)
    model = re.search(r"ActiGraph\s+(.*?)\s+ActiLife", first, re.I)
    columns = lines[end + 1] if len(lines) > end + 1 else ""
    return {
        "rate": rate,
        "date_format": date_fmt,
        "start": _dt.datetime.combine(day, clock),
        "serial": serial or None,
        "header_lines": end + 1,
        "columns_line": columns,
        "version": version.group(1) if version else None,
        "firmware": firmware.group(1) if firmware else None,
        "model": model.group(1) if model else None,
    }


def read_actilife(
    path: str | os.PathLike, *, units: str = "g", sample_rate: float | None = None, progress: Any = None, **table_kw: Any
) -> Recording:
    """Read an ActiLife raw CSV export (see the module docstring). ``sample_rate`` overrides the
    header's rate (for files without a ``Timestamp`` column it then also times the rows)."""
    from harnet.io.table import read_table

    path = Path(path)
    given = [k for k, v in table_kw.items() if v is not None and not (k == "start_row" and v == 1) and not (k == "delimiter" and v == ",")]
    if given:
        names = {"start_row": "--csv-start-row", "delimiter": "--csv-delimiter", "header": "header"}
        opts = ", ".join(names.get(k, f"--{k.replace('_', '-')}") for k in given)
        raise InputError(f"{path}: is an ActiLife export, read from its own header; drop {opts}")
    h = parse_header(path)
    fields = [c.strip().strip('"') for c in h["columns_line"].split(",")]
    named = bool(fields) and not all(_NUM.match(f) or not f for f in fields)
    lower = [f.lower() for f in fields]
    if named:
        missing = [c for c in _XYZ if c.lower() not in lower]
        if missing:
            raise InputError(
                f"{path}: ActiLife export has no {missing[0]!r} column (columns: {', '.join(fields[:10])}); "
                "export the raw accelerometer data from ActiLife"
            )
        xyz: tuple = tuple(fields[lower.index(c.lower())] for c in _XYZ)
        has_time = "timestamp" in lower
        time_col: Any = fields[lower.index("timestamp")] if has_time else None
    else:  # no column-name line: x,y,z or Timestamp,x,y,z
        has_time = len(fields) >= 4 and not _NUM.match(fields[0])
        xyz = (1, 2, 3) if has_time else (0, 1, 2)
        time_col = 0 if has_time else None
    rate = float(sample_rate) if sample_rate is not None else h["rate"]
    if not has_time and rate is None:
        raise InputError(
            f"{path}: ActiLife header: the first line states no sample rate ('at NN Hz') and the rows have no "
            "Timestamp column; pass --sample-rate HZ"
        )
    rec = read_table(
        path,
        time_col=time_col if has_time else None,
        xyz_cols=xyz,
        time_format=f"{h['date_format']} %H:%M:%S.%f" if has_time else None,
        units=units,
        sample_rate=rate,
        header=named,
        start_row=h["header_lines"] + 1,
        start_time=None if has_time else h["start"],
        progress=progress,
    )
    rec.info.update({
        "Device": "ActiGraph",
        "DeviceID": h["serial"],
        "Format": "ActiLife CSV",
        "DeviceModel": h["model"],
        "ActiLifeVersion": h["version"],
        "Firmware": h["firmware"],
        "HeaderStartTime": h["start"].isoformat(sep=" "),
        "TimesFrom": "Timestamp column" if has_time else "header start and rate",
    })
    if h["rate"] is not None:
        rec.info["SampleRate"] = float(rate)
        if sample_rate is not None and float(sample_rate) != h["rate"]:
            rec.info["SampleRateFile"] = h["rate"]
    return rec


__all__ = ["is_actilife", "parse_header", "read_actilife", "strptime_format"]
