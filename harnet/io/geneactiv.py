"""GENEActiv ``.bin`` reader: harnet's own, vectorised, streaming in blocks of pages, no Java.

Written from the published layout (reference section 7), not from another reader's source. The
file is text: a header of ``key:value`` lines (sections ``Device Identity``, ...,
``Calibration Data`` with ``x gain``, ``x offset``, ..., ``Memory Status`` with
``Number of Pages``), then pages of 10 lines::

    Recorded Data
    Device Unique Serial Code:012967
    Sequence Number:0
    Page Time:2013-05-30 10:12:54:500
    Unassigned:
    Temperature:21.5
    Battery voltage:4.1493
    Device Status:Recording
    Measurement Frequency:85.7
    <3600 hex characters: 300 samples x 12 digits>

Each sample's 12 hex digits hold x, y, z as signed 12-bit numbers (then 12 bits of light and
button). Values in g: ``(raw * 100 - offset) / gain`` with the header's calibration; sample
``i`` of a page is at ``page time + i / fs`` with the page's own measurement frequency (the
header's when the page has none). Times are the device's local clock (the header's
``Time Zone`` is kept in ``info["TimeZone"]``, times stay naive).

The file is read in chunks of whole pages (``chunk_bytes``); the hex digits of a chunk are
decoded at once through a lookup table (no per-sample Python). Damaged pages (a missing line,
a payload that is not 3600 hex digits, an impossible page time or frequency) are skipped and
counted in ``info["ReadErrors"]``; a file that ends inside a page (a truncated copy) keeps
its whole pages, and the partial page and the pages the header announced but the file lacks
are counted (``NumPagesTruncated``, ``NumPagesMissing``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harnet.errors import InputError
from harnet.io.blocks import Block, collect
from harnet.io.recording import Recording

MARKER = b"Recorded Data"
SAMPLES = 300
HEX_LEN = SAMPLES * 12
PAGE_LINES = 10
MIN_PAGE_BYTES = HEX_LEN + len(MARKER) + PAGE_LINES  # a whole page holds at least this much
HEADER_MAX = 1 << 20  # a header longer than 1 MiB is not a GENEActiv header
CHUNK_BYTES = 2 << 20
FS_RANGE = (0.1, 10_000.0)  # plausible measurement frequencies (Hz)

_LUT = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _LUT[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _LUT[_c] = 10 + _i
_DIGIT = np.full(256, 255, np.uint8)
_DIGIT[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint8)
_PAGE_TIME = b"Page Time:"
_TIME_LEN = 23  # YYYY-MM-DD hh:mm:ss:mmm
# positions of the digits in "YYYY-MM-DD hh:mm:ss:mmm" and the separators between them
_SEPS = {4: b"-", 7: b"-", 10: b" ", 13: b":", 16: b":", 19: b":"}


def _bad(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}")


def parse_header(path: Path) -> tuple[dict[str, str], int]:
    """The header's ``key:value`` fields (first occurrence wins) and the byte offset of the first
    page. Refuses a file that does not start like a GENEActiv ``.bin``."""
    with open(path, "rb") as f:
        head = f.read(HEADER_MAX)
    if not head:
        raise _bad(path, "is empty (0 bytes); re-download the recording with GENEActiv PC software")
    if head.startswith(b"PK"):
        raise _bad(path, "is a zip archive, not a GENEActiv .bin; unzip it or check the file type")
    pos = head.find(b"\n" + MARKER)
    first = head.split(b"\n", 1)[0].strip()
    if first != b"Device Identity" or pos < 0:
        what = "no 'Device Identity' first line" if first != b"Device Identity" else "no 'Recorded Data' page"
        raise _bad(path, f"is not a GENEActiv .bin file ({what} in its first 1 MiB); check the file or extract it again")
    fields: dict[str, str] = {}
    for raw in head[:pos].split(b"\n"):
        line = raw.replace(b"\x00", b"").decode("latin-1").strip()
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields, pos + 1


def _number(fields: dict[str, str], key: str, path: Path, kind: type = float) -> Any:
    raw = fields.get(key)
    if raw is None:
        raise _bad(path, f"header has no '{key}' line; the file is not a complete GENEActiv .bin: extract it again")
    try:
        v = kind(raw.split()[0]) if raw.split() else kind("")
    except ValueError:
        raise _bad(path, f"header's '{key}' is {raw!r}, not a number; extract the file again") from None
    if kind is float and not np.isfinite(v):
        raise _bad(path, f"header's '{key}' is {raw!r}, not a finite number; extract the file again")
    return v


def _page_times(arr: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``Page Time:YYYY-MM-DD hh:mm:ss:mmm`` -> (int64 ns, valid) for lines at ``starts``."""
    n = len(starts)
    need = len(_PAGE_TIME) + _TIME_LEN
    ok = lengths == need
    ns = np.zeros(n, np.int64)
    if not ok.any():
        return ns, ok
    idx = np.flatnonzero(ok)
    g = arr[starts[idx, None] + np.arange(need)]
    ok_sub = (g[:, : len(_PAGE_TIME)] == np.frombuffer(_PAGE_TIME, np.uint8)).all(axis=1)
    t = g[:, len(_PAGE_TIME) :]
    for p, s in _SEPS.items():
        ok_sub &= t[:, p] == s[0]
    d = _DIGIT[t].astype(np.int64)
    digit_pos = [i for i in range(_TIME_LEN) if i not in _SEPS]
    ok_sub &= (d[:, digit_pos] != 255).all(axis=1)

    def num(a: int, b: int) -> np.ndarray:
        v = np.zeros(len(d), np.int64)
        for i in range(a, b):
            v = v * 10 + d[:, i]
        return v

    year, month, day = num(0, 4), num(5, 7), num(8, 10)
    hour, minute, sec, ms = num(11, 13), num(14, 16), num(17, 19), num(20, 23)
    ok_sub &= (year >= 1970) & (year < 2200) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
    ok_sub &= (hour < 24) & (minute < 60) & (sec < 60)
    months = np.where(ok_sub, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    days = months.astype("datetime64[D]").astype(np.int64) + np.where(ok_sub, day - 1, 0)
    ok_sub &= days < (months + 1).astype("datetime64[D]").astype(np.int64)  # e.g. 31 April
    val = days * 86_400_000_000_000 + ((hour * 3600 + minute * 60 + sec) * 1000 + ms) * 1_000_000
    ns[idx] = np.where(ok_sub, val, 0)
    ok[idx] = ok_sub
    return ns, ok


class GeneactivReader:
    """Read a GENEActiv ``.bin`` in blocks of pages: ``for b in reader.blocks(): ...``.

    ``header`` holds the header fields; ``info`` is complete once ``blocks()`` is exhausted.
    """

    def __init__(self, path: str | os.PathLike, *, chunk_bytes: int = CHUNK_BYTES):
        self.path = Path(path)
        self.chunk_bytes = max(int(chunk_bytes), MIN_PAGE_BYTES * 2)
        self.header, self.data_offset = parse_header(self.path)
        h, p = self.header, self.path
        self.gain = np.array([_number(h, f"{a} gain", p) for a in "xyz"], np.float64)
        self.offset = np.array([_number(h, f"{a} offset", p) for a in "xyz"], np.float64)
        if not np.all(self.gain != 0):
            raise _bad(p, f"header's calibration gains are {self.gain.tolist()}; a zero gain cannot be used: extract the file again")
        self.fs = _number(h, "Measurement Frequency", p)
        if not (FS_RANGE[0] <= self.fs <= FS_RANGE[1]):
            raise _bad(p, f"header's 'Measurement Frequency' is {self.fs:g} Hz; it must be positive, {FS_RANGE[0]:g} to {FS_RANGE[1]:g} Hz")
        self.header_warnings: list[str] = []
        try:
            self.pages_expected: int | None = int(h["Number of Pages"]) if "Number of Pages" in h else None
        except ValueError:
            self.pages_expected = None
            self.header_warnings.append(f"ignored the header's 'Number of Pages' {h['Number of Pages']!r} (not a number)")
        self.info: dict[str, Any] = {}
        self._fs_cache: dict[bytes, float] = {}

    def capacity(self) -> int:
        """An upper bound of the number of samples in the file (each whole page needs >= 3623 bytes)."""
        size = self.path.stat().st_size - self.data_offset
        return (max(size, 0) // MIN_PAGE_BYTES + 1) * SAMPLES

    def blocks(self) -> Iterator[Block]:
        """Yield the samples of each chunk of whole pages, in file order."""
        stats: dict[str, Any] = {"pages": 0, "good": 0, "bad": 0, "stray": 0, "truncated": 0, "fs_seen": set()}
        reasons: dict[str, int] = {}
        carry = b""
        with open(self.path, "rb") as f:
            f.seek(self.data_offset)
            while True:
                chunk = f.read(self.chunk_bytes)
                eof = len(chunk) < self.chunk_bytes
                buf = carry + chunk if carry else chunk
                if not buf:
                    break
                block, carry = self._decode(buf, eof, stats, reasons)
                if block is not None:
                    yield block
                if eof:
                    break
        self._finish(stats, reasons)

    def _decode(self, buf: bytes, eof: bool, stats: dict, reasons: dict) -> tuple[Block | None, bytes]:
        """Decode the whole pages in ``buf``; return their samples and the bytes to carry over."""

        def why(reason: str, n: int) -> None:
            if n:
                reasons[reason] = reasons.get(reason, 0) + n

        arr = np.frombuffer(buf, np.uint8)
        nl = np.flatnonzero(arr == 10)
        starts = np.concatenate(([0], nl + 1))
        ends = np.concatenate((nl, [len(arr)]))
        cr = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
        lengths = ends - starts - cr
        # the bytes after the last newline wait for more, or at the end of the file are a line
        # of their own only when they are a whole payload (an unterminated last line)
        if not eof or starts[-1] >= len(arr) or lengths[-1] != HEX_LEN:
            starts, ends, cr, lengths = starts[:-1], ends[:-1], cr[:-1], lengths[:-1]
        n_lines = len(starts)
        is_marker = lengths == len(MARKER)
        if is_marker.any():
            m = np.flatnonzero(is_marker)
            same = (arr[starts[m, None] + np.arange(len(MARKER))] == np.frombuffer(MARKER, np.uint8)).all(axis=1)
            is_marker[m[~same]] = False
        marks = np.flatnonzero(is_marker)
        complete = marks + PAGE_LINES <= n_lines
        cut_line = n_lines  # lines from here on are carried over (not eof) or a truncated page (eof)
        if len(marks) and not complete[-1]:
            cut_line = int(marks[~complete][0])
            marks = marks[complete]
            if eof:
                stats["truncated"] += 1
        if eof:
            rest = b""
        else:
            cut = int(starts[cut_line]) if cut_line < n_lines else (int(nl[-1]) + 1 if len(nl) else 0)
            rest = buf[cut:]
            if len(rest) > 2 * self.chunk_bytes:  # one endless line: no page in sight
                stats["stray"] += 1
                rest = b""
        # lines before the cut that belong to no page are damage between pages
        covered = np.zeros(n_lines + PAGE_LINES + 1, np.int32)
        np.add.at(covered, marks, 1)
        np.add.at(covered, marks + PAGE_LINES, -1)
        inside = np.cumsum(covered)[:cut_line] > 0
        stats["stray"] += int((~inside & (lengths[:cut_line] > 0)).sum())
        if not len(marks):
            return None, rest
        stats["pages"] += len(marks)
        # a page is whole when no other marker falls inside its 10 lines
        nxt = np.concatenate((marks[1:], [n_lines + PAGE_LINES]))
        whole = nxt >= marks + PAGE_LINES
        why("a page with fewer than 10 lines", int((~whole).sum()))
        stats["bad"] += int((~whole).sum())
        pg = marks[whole]
        if not len(pg):
            return None, rest
        hex_line = pg + 9
        good = lengths[hex_line] == HEX_LEN
        why("a payload that is not 3600 hex digits", int((~good).sum()))
        t_ns, t_ok = _page_times(arr, starts[pg + 3], lengths[pg + 3])
        why("an impossible page time", int((good & ~t_ok).sum()))
        good &= t_ok
        fs = np.full(len(pg), self.fs)
        for j in np.flatnonzero(good):  # one small field per page (300 samples), cached
            s, n = int(starts[pg[j] + 8]), int(lengths[pg[j] + 8])
            line = buf[s : s + n]
            v = self._fs_cache.get(line)
            if v is None:
                key, sep, value = line.partition(b":")
                try:
                    v = float(value) if sep and key == b"Measurement Frequency" else self.fs
                except ValueError:
                    v = float("nan")
                if len(self._fs_cache) < 1000:
                    self._fs_cache[line] = v
            if FS_RANGE[0] <= v <= FS_RANGE[1]:
                fs[j] = v
            else:
                good[j] = False
                why("an impossible measurement frequency", 1)
        sel = np.flatnonzero(good)
        # the payload lines side by side (views joined once: no index arrays), then digits
        hs = starts[hex_line[sel]].tolist()
        hx = _LUT[np.concatenate([arr[a : a + HEX_LEN] for a in hs]) if hs else arr[:0]].reshape(len(sel), SAMPLES, 12)
        hex_ok = (hx != 255).reshape(len(sel), SAMPLES * 12).all(axis=1)  # explicit width: -1 fails for 0 pages
        why("a payload that is not 3600 hex digits", int((~hex_ok).sum()))
        sel, hx = sel[hex_ok], hx[hex_ok]
        stats["bad"] += len(pg) - len(sel)
        if not len(sel):
            return None, rest
        stats["good"] += len(sel)
        stats["fs_seen"].update(np.unique(fs[sel]).tolist())
        h16 = hx[:, :, :9].astype(np.int16)
        raw = (h16[:, :, 0::3] << 8) | (h16[:, :, 1::3] << 4) | h16[:, :, 2::3]  # (k, 300, 3): x, y, z
        raw = np.where(raw >= 2048, raw - 4096, raw)
        xyz = ((raw * 100.0 - self.offset) / self.gain).astype(np.float32).reshape(-1, 3)
        step = np.arange(SAMPLES, dtype=np.float64)[None, :] * (1e9 / fs[sel])[:, None]
        times = (t_ns[sel][:, None] + np.rint(step).astype(np.int64)).reshape(-1)
        return Block(times, xyz), rest

    def _finish(self, stats: dict, reasons: dict) -> None:
        good = stats["good"]
        warnings: list[str] = list(self.header_warnings)
        missing = 0
        if stats["truncated"]:
            warnings.append(
                f"file ends inside a page (truncated copy?): read the {good} whole page(s) only"
                + (f"; the header announces {self.pages_expected}" if self.pages_expected is not None else "")
            )
        found = stats["pages"] + stats["truncated"]
        if self.pages_expected is not None and found != self.pages_expected:
            missing = max(self.pages_expected - found, 0)
            warnings.append(
                f"page count differs from the header: it announces {self.pages_expected} pages, the file holds {found}"
            )
        bad = stats["bad"]
        if bad:
            why = ", ".join(f"{n} with {r}" for r, n in reasons.items())
            warnings.append(f"skipped {bad} damaged page(s) ({why})")
        if stats["stray"]:
            warnings.append(f"ignored {stats['stray']} line(s) outside any page (damaged page structure)")
        fs_seen = sorted(stats["fs_seen"])
        if fs_seen and (len(fs_seen) > 1 or abs(fs_seen[0] - self.fs) > 1e-6):
            warnings.append(f"page measurement frequencies {fs_seen} Hz differ from the header's {self.fs} Hz; each page's own is used")
        read_errors = bad + stats["truncated"]
        self.info = {
            "Filename": str(self.path),
            "Filesize(MB)": round(self.path.stat().st_size / 1e6, 1),
            "Device": "GENEActiv",
            "DeviceID": self.header.get("Device Unique Serial Code", ""),
            "ReadOK": int(read_errors == 0 and not stats["stray"] and not missing),
            "ReadErrors": read_errors,
            "SampleRate": self.fs,
            "TimeZone": self.header.get("Time Zone", ""),
            "NumPages": good,
            "NumPagesHeader": self.pages_expected,
            "NumPagesDamaged": bad,
            "NumPagesTruncated": stats["truncated"],
            "NumPagesMissing": missing,
            "Warnings": warnings,
        }


def read_geneactiv(path: str | os.PathLike, *, chunk_bytes: int = CHUNK_BYTES) -> Recording:
    """Read a whole GENEActiv ``.bin`` file: float32 x, y, z in g, device-local naive times.

    Refuses (:class:`InputError`) a file that is not a GENEActiv ``.bin``, a header without a
    usable calibration or frequency, and a file without a single readable page.
    """
    reader = GeneactivReader(path, chunk_bytes=chunk_bytes)
    t, xyz = collect(reader.blocks(), reader.capacity())
    info = reader.info
    if not len(t):
        raise _bad(
            reader.path,
            f"holds no readable pages ({info['ReadErrors']} damaged or truncated); the recording is empty or "
            "corrupt: extract it again with the GENEActiv software",
        )
    return Recording(t.view("datetime64[ns]"), xyz, info)
