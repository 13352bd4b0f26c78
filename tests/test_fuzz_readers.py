"""Fuzzing the readers harnet owns: CSV / CSV.gz / parquet (harnet.io.table), CWA (harnet.io.cwa),
ActiGraph GT3X/AGDC (harnet.io.gt3x) and GENEActiv .bin (harnet.io.geneactiv).

Every generated file goes through :func:`harnet.io.read_device` and must end in one of two ways:
a :class:`Recording` that keeps its contract (strictly increasing ns times, finite float32
(n, 3) values, a list of one-line warnings) or a :class:`harnet.errors.HarnetError` with a
one-line message naming the file. Any other exception is a crash, and an example running past
``HANG_S`` seconds is a hang (a real timer interrupts it). The examples are bounded so that the
whole file runs in well under a minute (``max_examples`` below); the time it took is printed.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harnet.errors import HarnetError
from harnet.io import read_device, write_cwa
from harnet.io.cwa import BLOCK, HEADER

HANG_S = 20.0
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
RAW = settings(FUZZ, max_examples=120)
CWA = settings(FUZZ, max_examples=400)  # cheap to make and to read
_SPENT: dict[str, float] = {}
_RESULTS: dict[str, dict[str, int]] = {}


class Hang(BaseException):
    """Raised by the timer inside an example that runs too long (BaseException: never swallowed)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def on_alarm(signum, frame):  # pragma: no cover - only on a hang
        raise Hang(f"reader ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(name: str, data: bytes, **kw) -> str:
    """Write ``data`` as ``name`` in a fresh folder and read it: 'read' or 'refused'."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        return outcome_path(path, **kw)


def outcome_path(path: Path, **kw) -> str:
    t0 = time.perf_counter()
    try:
        with time_limit(HANG_S):
            rec = read_device(path, **kw)
    except HarnetError as e:
        msg = str(e)
        assert "\n" not in msg.strip(), msg
        assert path.name in msg, msg
        result = "refused"
    else:
        t = rec.time.view(np.int64)
        assert rec.time.dtype == np.dtype("datetime64[ns]") and len(t) >= 1
        assert (np.diff(t) > 0).all()
        assert rec.xyz.dtype == np.float32 and rec.xyz.shape == (len(t), 3)
        assert np.isfinite(rec.xyz).all()
        w = rec.info["Warnings"]
        assert isinstance(w, list) and all(isinstance(x, str) and "\n" not in x for x in w)
        assert rec.info["NumSamples"] == len(t)
        result = "read"
    finally:
        key = path.suffix if not path.name.endswith(".gz") else "".join(path.suffixes[-2:])
        _SPENT[key] = _SPENT.get(key, 0.0) + time.perf_counter() - t0
    _RESULTS.setdefault(key, {}).setdefault(result, 0)
    _RESULTS[key][result] += 1
    return result


@pytest.fixture(scope="module", autouse=True)
def report_fuzz_time():
    t0 = time.perf_counter()
    yield
    total = time.perf_counter() - t0
    print(f"\nfuzz: {total:.1f} s in all; reader time by kind: "
          + ", ".join(f"{k} {v:.1f} s {_RESULTS.get(k)}" for k, v in sorted(_SPENT.items())))


# ---- CSV ----------------------------------------------------------------------------------

_chars = st.characters(blacklist_categories=("Cs",))
ISO = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(lambda d: d.isoformat(sep=" "))
NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "-0", "+1.5", ".5", "5.", "0x10", "1_000", "١٢", "", " "]),
)
VALUE = st.one_of(st.floats(-20, 20, width=32), st.floats(-20, 20, width=32), st.sampled_from([np.nan, np.inf, -np.inf]))
FIELD = st.one_of(ISO, NUMBER, st.text(_chars, max_size=10), st.sampled_from(['"', '""', '"a,b"', "\\", "\t"]))


@st.composite
def csv_files(draw) -> tuple[bytes, dict]:
    """Mostly-valid rows (so the deep code paths run) with a share of damaged fields, rows,
    headers and encodings."""
    n = draw(st.integers(0, 40))
    start = draw(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2090, 1, 1)))
    steps = draw(st.lists(st.sampled_from([0.04, 0.04, 0.04, 0.0, -0.04, 1.5, 3600.0, -86400.0]), min_size=n, max_size=n))
    tfmt = draw(st.sampled_from(["iso", "iso_t", "unix_s", "unix_ms", "dmy"]))
    rows = []
    t = start
    for k in range(n):
        t = t + timedelta(seconds=steps[k])
        if tfmt == "iso":
            ts = t.isoformat(sep=" ", timespec="milliseconds")
        elif tfmt == "iso_t":
            ts = t.isoformat(timespec="microseconds")
        elif tfmt == "dmy":
            ts = t.strftime("%d/%m/%Y %H:%M:%S.%f")
        else:
            s = (t - datetime(1970, 1, 1)).total_seconds()
            ts = repr(s) if tfmt == "unix_s" else str(int(s * 1000))
        xyz = draw(st.lists(VALUE, min_size=3, max_size=3))
        row = [ts] + [repr(v) for v in xyz]
        if draw(st.integers(0, 29)) == 0:  # damage this row
            kind = draw(st.sampled_from(["field", "drop", "extra", "swap"]))
            if kind == "field":
                row[draw(st.integers(0, 3))] = draw(FIELD)
            elif kind == "drop":
                row = row[: draw(st.integers(0, 3))]
            elif kind == "extra":
                row = row + [draw(FIELD)]
            else:
                row = row[::-1]
        rows.append(row)
    odd = draw(st.integers(0, 3)) == 0  # a quarter of files get odd headers, delimiters or options
    header = "time,x,y,z"
    delim = ","
    kw: dict = {}
    if tfmt == "dmy":
        kw["time_format"] = "%d/%m/%Y %H:%M:%S.%f"
    elif tfmt.startswith("unix") and draw(st.booleans()):
        kw["time_format"] = tfmt
    if odd:
        header = draw(st.sampled_from(["", "Time,X,Y,Z", "t,x,y,z", "time,x,y", "time,x,x,y,z", "x,y,z,time",
                                       "\ufefftime,x,y,z", "time;x;y;z", "time,x,y,z,extra"]))
        delim = draw(st.sampled_from([",", ";", "\t"]))
        if delim != "," and draw(st.booleans()):
            kw["delimiter"] = delim
        fmt = draw(st.sampled_from([None, "unix_s", "unix_ms", "%d/%m/%Y %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%H"]))
        if fmt:
            kw["time_format"] = fmt
        if draw(st.booleans()):
            kw["xyz_cols"] = draw(st.sampled_from([(1, 2, 3), ("x", "y", "z"), (3, 2, 1), (0, 1, 2), (1, 2, 9), ("a", "b", "c")]))
    if draw(st.booleans()):
        kw["units"] = draw(st.sampled_from(["g", "m/s2"]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = ([header] if header else []) + [delim.join(r) for r in rows]
    text = eol.join(lines) + draw(st.sampled_from(["", eol, eol + eol, "garbage"]))
    return text.encode("utf-8"), kw


@FUZZ
@given(case=csv_files(), gz=st.booleans())
def test_fuzz_csv(case, gz):
    data, kw = case
    if gz:
        data = gzip.compress(data, compresslevel=1)
    outcome("f.csv.gz" if gz else "f.csv", data, **kw)


@RAW
@given(data=st.binary(max_size=2048), name=st.sampled_from(["f.csv", "f.csv.gz", "f.parquet"]), wrap=st.booleans())
def test_fuzz_raw_bytes_as_tables(data, name, wrap):
    if wrap and name.endswith(".gz"):
        data = gzip.compress(data)
    outcome(name, data)


# ---- parquet ------------------------------------------------------------------------------

@st.composite
def parquet_files(draw) -> tuple[bytes, dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = draw(st.integers(0, 30))
    base = np.datetime64("2024-03-31T00:00:00", "ns").astype(np.int64)
    steps = np.array(draw(st.lists(st.sampled_from([40_000_000, 40_000_000, 0, -40_000_000, 2 * 10**9]), min_size=n, max_size=n)), np.int64)
    t_ns = base + np.cumsum(steps)
    ttype = draw(st.sampled_from(["ts_ns", "ts_ms", "ts_tz", "int_s", "int_ms", "float_s", "str_iso", "str_bad", "date", "bool", "null"]))
    nulls = draw(st.lists(st.booleans(), min_size=n, max_size=n)) if draw(st.integers(0, 3)) == 0 else [False] * n
    mask = np.array(nulls, bool)
    if ttype == "ts_ns":
        tcol = pa.array(t_ns.view("datetime64[ns]"), mask=mask)
    elif ttype == "ts_ms":
        tcol = pa.array(t_ns.view("datetime64[ns]").astype("datetime64[ms]"), mask=mask)
    elif ttype == "ts_tz":
        tcol = pa.array(t_ns, type=pa.int64(), mask=mask).cast(pa.timestamp("ns", tz=draw(st.sampled_from(["UTC", "Europe/London", "+05:30"]))))
    elif ttype == "int_s":
        tcol = pa.array(t_ns // 10**9, mask=mask)
    elif ttype == "int_ms":
        tcol = pa.array(t_ns // 10**6, mask=mask)
    elif ttype == "float_s":
        v = t_ns / 1e9
        if n and draw(st.booleans()):
            v[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf, -1e300, 1e300]))
        tcol = pa.array(v, mask=mask)
    elif ttype == "str_iso":
        tcol = pa.array([str(x) for x in t_ns.view("datetime64[ns]")], mask=mask)
    elif ttype == "str_bad":
        tcol = pa.array(draw(st.lists(st.text(_chars, max_size=8), min_size=n, max_size=n)))
    elif ttype == "date":
        tcol = pa.array(t_ns.view("datetime64[ns]").astype("datetime64[D]"), mask=mask)
    elif ttype == "bool":
        tcol = pa.array([bool(i % 2) for i in range(n)])
    else:
        tcol = pa.nulls(n)
    vtype = draw(st.sampled_from(["f32", "f64", "i8", "i64", "str", "null", "f64special"]))
    cols = {}
    for c in "xyz":
        v = np.array(draw(st.lists(st.floats(-20, 20, width=32), min_size=n, max_size=n)), np.float64)
        if vtype == "f32":
            cols[c] = pa.array(v.astype(np.float32))
        elif vtype == "f64":
            cols[c] = pa.array(v)
        elif vtype == "i8":
            cols[c] = pa.array(np.clip(v, -128, 127).astype(np.int8))
        elif vtype == "i64":
            cols[c] = pa.array(v.astype(np.int64))
        elif vtype == "str":
            cols[c] = pa.array([repr(x) for x in v])
        elif vtype == "null":
            cols[c] = pa.nulls(n, pa.float64())
        else:
            cols[c] = pa.array(np.where(np.arange(n) % 3 == 0, np.nan, np.where(np.arange(n) % 5 == 0, np.inf, v)))
    names = draw(st.sampled_from([["time", "x", "y", "z"], ["time", "x", "y"], ["t", "x", "y", "z"], ["time", "x", "y", "z", "extra"]]))
    arrays = {"time": tcol, "t": tcol, "x": cols["x"], "y": cols["y"], "z": cols["z"], "extra": cols["x"]}
    table = pa.table({k: arrays[k] for k in names})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=max(1, draw(st.integers(1, 40))))
    data = buf.getvalue()
    if draw(st.integers(0, 5)) == 0:  # damage the file itself
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] if draw(st.booleans()) else data[:cut] + bytes([data[cut] ^ 0xFF]) + data[cut + 1:] if cut < len(data) else data
    return data, {}


@FUZZ
@given(case=parquet_files())
def test_fuzz_parquet(case):
    data, kw = case
    outcome("f.parquet", data, **kw)


# ---- CWA ----------------------------------------------------------------------------------

def _valid_cwa(kind: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.cwa"
        rng = np.random.default_rng(0)
        n = {"packed": 1200, "int16": 800, "six": 400}[kind]
        xyz = (np.array([0, 0, 1.0]) + rng.normal(0, 0.3, (n, 3))).astype(np.float32)
        gyro = rng.integers(-2000, 2000, (n, 3)).astype(np.int16) if kind == "six" else None
        write_cwa(p, "2024-01-01 23:59:55", xyz, fs=25, packed=kind == "packed", gyro=gyro)
        return p.read_bytes()


VALID = {k: _valid_cwa(k) for k in ("packed", "int16", "six")}


def fix_checksums(buf: bytearray) -> None:
    """Make every whole data block's checksum right again (so damaged fields get past it)."""
    nb = (len(buf) - HEADER) // BLOCK
    if nb <= 0:
        return
    arr = np.frombuffer(buf, np.uint8, count=nb * BLOCK, offset=HEADER).reshape(nb, BLOCK).copy()
    words = arr.view("<u2")
    words[:, 255] = ((-words[:, :255].sum(axis=1, dtype=np.int64)) & 0xFFFF).astype(np.uint16)
    buf[HEADER: HEADER + nb * BLOCK] = arr.tobytes()


# byte offsets inside a data block worth hitting: the 30-byte header, the samples, the checksum
HOT = [0, 1, 2, 4, 5, 6, 10, 14, 15, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29, 30, 31, 100, 509, 510, 511]


@st.composite
def cwa_files(draw) -> bytes:
    buf = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    nb = (len(buf) - HEADER) // BLOCK
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "field", "field", "dup", "drop", "swap", "header"]))
        nb = (len(buf) - HEADER) // BLOCK
        if op == "flip" and len(buf):
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= draw(st.integers(1, 255))
        elif op == "field" and nb:
            b = draw(st.integers(0, nb - 1))
            off = HEADER + b * BLOCK + draw(st.sampled_from(HOT))
            width = draw(st.sampled_from([1, 2, 4]))
            buf[off: off + width] = draw(st.binary(min_size=width, max_size=width))[: len(buf) - off]
        elif op == "dup" and nb:
            b = draw(st.integers(0, nb - 1))
            at = HEADER + draw(st.integers(0, nb)) * BLOCK
            buf[at:at] = buf[HEADER + b * BLOCK: HEADER + (b + 1) * BLOCK]
        elif op == "drop" and nb:
            b = draw(st.integers(0, nb - 1))
            del buf[HEADER + b * BLOCK: HEADER + (b + 1) * BLOCK]
        elif op == "swap" and nb >= 2:
            a, b = sorted(draw(st.lists(st.integers(0, nb - 1), min_size=2, max_size=2, unique=True)))
            A = buf[HEADER + a * BLOCK: HEADER + (a + 1) * BLOCK]
            B = buf[HEADER + b * BLOCK: HEADER + (b + 1) * BLOCK]
            buf[HEADER + a * BLOCK: HEADER + (a + 1) * BLOCK] = B
            buf[HEADER + b * BLOCK: HEADER + (b + 1) * BLOCK] = A
        elif op == "header":
            i = draw(st.integers(0, HEADER - 1))
            buf[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        fix_checksums(buf)
    if draw(st.integers(0, 3)) == 0:
        del buf[draw(st.integers(0, len(buf))):]
    return bytes(buf)


@CWA
@given(data=cwa_files(), gz=st.integers(0, 4), fraction=st.booleans())
def test_fuzz_cwa(data, gz, fraction):
    if gz == 0:
        data = gzip.compress(data, compresslevel=1)
        if len(data) > 20 and fraction:  # and sometimes cut the gzip stream itself
            data = data[: len(data) // 2]
    outcome("f.cwa.gz" if gz == 0 else "f.cwa", data, use_fraction=fraction)


@RAW
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"MD", b"MD\xfc\x03", b"\x1f\x8b"]))
def test_fuzz_raw_bytes_as_cwa(data, prefix):
    outcome("f.cwa", prefix + data)


# ---- ActiGraph GT3X (harnet.io.gt3x) -------------------------------------------------------

def _valid_gt3x() -> dict[str, tuple[bytes, bytes]]:
    """(info.txt, log.bin or activity.bin) of small valid files: packed, int16, v1."""
    import zipfile

    from _devicefiles import moving_xyz, write_gt3x, write_gt3x_v1

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for kind in ("packed", "int16", "v1"):
            p = Path(d) / f"{kind}.gt3x"
            xyz = moving_xyz(30 * 12, 30)
            if kind == "v1":
                write_gt3x_v1(p, "2024-01-01 23:59:55", xyz, 30)
            else:
                write_gt3x(p, "2024-01-01 23:59:55", xyz, 30, kind=kind, idle=[(4, 7)], param_scale=kind == "int16")
            with zipfile.ZipFile(p) as z:
                member = "activity.bin" if kind == "v1" else "log.bin"
                out[kind] = (z.read("info.txt"), z.read(member))
    return out


VALID_GT3X = _valid_gt3x()


def _gt3x_records(log: bytes) -> list[int]:
    """Offsets of the records of a well-formed log.bin."""
    offs, i = [], 0
    while i + 8 <= len(log) and log[i] == 0x1E:
        offs.append(i)
        i += 9 + int.from_bytes(log[i + 6 : i + 8], "little")
    return offs


def fix_gt3x_checksums(log: bytearray) -> None:
    """Recompute the checksum of every record the chain of sizes reaches."""
    i = 0
    while i + 8 <= len(log):
        end = i + 8 + int.from_bytes(log[i + 6 : i + 8], "little")
        if end >= len(log):
            return
        x = 0
        for c in log[i:end]:
            x ^= c
        log[end] = ~x & 0xFF
        i = end + 1


INFO_LINES = [
    b"Sample Rate: 0", b"Sample Rate: -30", b"Sample Rate: nan", b"Sample Rate: 1e9", b"Sample Rate: 0.000001",
    b"Sample Rate: abc", b"Acceleration Scale: 0", b"Acceleration Scale: -256", b"Acceleration Scale: inf",
    b"Acceleration Scale: 1e30", b"Start Date: 99999999999999999999999", b"Start Date: -5", b"Start Date: x",
    b"Serial Number: ", b"\xef\xbb\xbfSample Rate: 30", b"Sample Rate:30",
]


@st.composite
def gt3x_files(draw) -> tuple[bytes, bytes, str]:
    kind = draw(st.sampled_from(sorted(VALID_GT3X)))
    info, log = VALID_GT3X[kind]
    buf = bytearray(log)
    offs = _gt3x_records(log) if kind != "v1" else []
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "field", "field", "dup", "drop", "insert"]))
        if op == "flip" and buf:
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= draw(st.integers(1, 255))
        elif op == "field" and offs:
            o = draw(st.sampled_from(offs)) + draw(st.sampled_from([0, 1, 2, 5, 6, 7, 8, 9]))
            w = draw(st.sampled_from([1, 2, 4]))
            buf[o : o + w] = draw(st.binary(min_size=w, max_size=w))[: max(len(buf) - o, 0)]
        elif op == "dup" and offs:
            a = draw(st.sampled_from(offs))
            b = a + 9 + int.from_bytes(log[a + 6 : a + 8], "little")
            at = draw(st.sampled_from(offs))
            buf[at:at] = log[a:b]
        elif op == "drop" and offs:
            a = draw(st.sampled_from(offs))
            del buf[a : a + 9 + int.from_bytes(log[a + 6 : a + 8], "little")]
        elif op == "insert":
            at = draw(st.integers(0, len(buf)))
            buf[at:at] = draw(st.binary(max_size=40))
    if kind != "v1" and draw(st.booleans()):
        fix_gt3x_checksums(buf)
    if draw(st.integers(0, 3)) == 0:
        del buf[draw(st.integers(0, len(buf))) :]
    lines = info.split(b"\r\n")
    if draw(st.integers(0, 3)) == 0:
        lines[draw(st.integers(0, len(lines) - 1))] = draw(st.sampled_from(INFO_LINES))
    return b"\r\n".join(lines), bytes(buf), kind


@FUZZ
@given(case=gt3x_files(), suffix=st.sampled_from([".gt3x", ".agdc"]))
def test_fuzz_gt3x(case, suffix):
    import zipfile

    info, data, kind = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f{suffix}"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("info.txt", info)
            z.writestr("activity.bin" if kind == "v1" else "log.bin", data)
            if kind == "v1":
                z.writestr("lux.bin", b"")
        outcome_path(path)


@RAW
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x1e\x00"]))
def test_fuzz_raw_bytes_as_gt3x(data, prefix):
    outcome("f.gt3x", prefix + data)


# ---- GENEActiv .bin (harnet.io.geneactiv) ---------------------------------------------------

def _valid_bin() -> bytes:
    from _devicefiles import moving_xyz, write_geneactiv

    with tempfile.TemporaryDirectory() as d:
        return write_geneactiv(Path(d) / "v.bin", "2024-01-01 23:59:55", moving_xyz(300 * 4, 50), 50.0).read_bytes()


VALID_BIN = _valid_bin()
BIN_LINES = [
    b"Recorded Data", b"", b"Page Time:2024-02-30 10:00:00:000", b"Page Time:9999-99-99 99:99:99:999",
    b"Page Time:2024-01-01 10:00:00", b"Measurement Frequency:0", b"Measurement Frequency:-50",
    b"Measurement Frequency:nan", b"Measurement Frequency:1e300", b"Measurement Frequency:", b"x gain:0",
    b"x gain:abc", b"y offset:1e400", b"Measurement Frequency:0.00001 Hz", b"Number of Pages:-1",
    b"Number of Pages:abc", b"F" * 3600, b"G" * 3600, b"0" * 3599, b"\x00" * 10,
]


@st.composite
def bin_files(draw) -> bytes:
    lines = VALID_BIN.split(b"\r\n")
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "line", "line", "drop", "dup", "text"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "flip" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            b = bytearray(lines[i])
            b[j] ^= draw(st.integers(1, 255))
            lines[i] = bytes(b)
        elif op == "line":
            lines[i] = draw(st.sampled_from(BIN_LINES))
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            k = draw(st.integers(1, 12))
            lines[i:i] = lines[i : i + k]
        elif op == "text":
            lines[i] = draw(st.binary(max_size=60))
    data = draw(st.sampled_from([b"\r\n", b"\n"])).join(lines)
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@FUZZ
@given(data=bin_files())
def test_fuzz_geneactiv(data):
    outcome("f.bin", data)


@RAW
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"Device Identity\r\n", b"Device Identity\nRecorded Data\n"]))
def test_fuzz_raw_bytes_as_geneactiv(data, prefix):
    outcome("f.bin", prefix + data)


def test_fuzz_corpus_is_not_all_refused():
    """The generators must reach the readers' success paths, or the fuzz tests would prove little."""
    for kind in (".csv", ".parquet", ".cwa", ".gt3x", ".bin"):
        got = _RESULTS.get(kind, {})
        if not got:
            pytest.skip("run with the fuzz tests above (pytest -k fuzz)")
        assert got.get("read", 0) >= 5 and got.get("refused", 0) >= 5, (kind, got)


def test_hang_guard_fires():
    """The timer really interrupts a stuck call (so a hang fails instead of stalling CI)."""
    with pytest.raises(Hang):
        with time_limit(0.2):
            while True:
                time.sleep(0.01)


if os.name != "posix":  # pragma: no cover
    pytestmark = pytest.mark.skip("the hang guard needs POSIX signals")
