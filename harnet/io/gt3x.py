"""ActiGraph ``.gt3x`` / ``.agdc`` reader: harnet's own, vectorised, streaming, no Java.

Written from the published format (reference section 7; ActiGraph's GT3X file-format notes),
not from another reader's source. A ``.gt3x`` is a zip archive with ``info.txt`` (``Key: Value``
lines: ``Serial Number``, ``Sample Rate``, ``Start Date`` in .NET ticks, ``Acceleration Scale``,
...) and either

- ``log.bin`` (GT3X v2, also inside ``.agdc``): records ``0x1E, type u8, timestamp u32 (Unix
  seconds on the device's local clock), payload size u16, payload, checksum u8`` where the
  checksum is the one's complement of the XOR of the header and payload bytes. Samples are in
  ``ACTIVITY`` records (type 0: 12-bit packed, Y X Z per sample, two samples per 9 bytes),
  ``ACTIVITY2`` (type 26: int16 little-endian X Y Z) and ``ACTIVITY3`` (type 27: 12-bit packed
  X Y Z); sample ``i`` of a record is at ``timestamp + i / fs``. Values in g are ``raw / scale``
  where the scale comes from a ``PARAMETERS`` record (type 21, address 0, id 55), else
  ``info.txt``, else the serial number (NEO/CLE: 341, MOS: 256). ``EVENT`` records (type 3) with
  payload 0x08 / 0x09 start and stop idle-sleep mode: the device stores no samples then, and none
  are invented here, so those seconds stay gaps in the recording (counted in
  ``info["IdleSleepSeconds"]``). A 1-byte ``ACTIVITY`` record is a USB-connection mark, not data.
- ``activity.bin`` (old NHANES GT3X v1, with ``log.txt``/``lux.bin``): one continuous stream of
  12-bit packed Y X Z samples from ``Start Date`` at ``Sample Rate``.

Records with a wrong checksum are skipped and counted (``info["ReadErrors"]``); after a byte
that is not a record start the reader searches for the next record that checks out (counted in
``NumResyncs``); a file that ends inside a record keeps every whole record. ``log.bin`` is read
in chunks, and samples are yielded per chunk (:class:`harnet.io.blocks.Block`).
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from harnet.errors import InputError
from harnet.io.blocks import Block, collect
from harnet.io.recording import Recording

SYNC = 0x1E
HEAD = 8
ACTIVITY, EVENT, PARAMETERS, ACTIVITY2, ACTIVITY3 = 0, 3, 21, 26, 27
SAMPLE_TYPES = (ACTIVITY, ACTIVITY2, ACTIVITY3)
IDLE_START, IDLE_STOP = b"\x08", b"\x09"
TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000  # .NET ticks (100 ns since 0001-01-01) at 1970-01-01
SCALE_RANGE = (10.0, 100_000.0)  # plausible counts per g
FS_RANGE = (1.0, 10_000.0)  # plausible sample rates (Hz)
YEARS = (1970, 2200)  # plausible start dates
CHUNK_BYTES = 2 << 20
_REC = struct.Struct("<BBIH")


def _bad(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}")


def open_archive(path: Path) -> tuple[zipfile.ZipFile, str]:
    """Open the zip and say which layout it holds ('v2' with log.bin, 'v1' with activity.bin)."""
    if path.stat().st_size == 0:
        raise _bad(path, "is empty (0 bytes); re-download the recording with ActiLife")
    if not zipfile.is_zipfile(path):
        raise _bad(path, "is not an ActiGraph .gt3x file (not a zip archive); check the file or export it again with ActiLife")
    try:
        z = zipfile.ZipFile(path)
        names = {n.lower(): n for n in z.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise _bad(path, f"is a damaged .gt3x zip ({exc}); export it again with ActiLife") from None
    if "log.bin" in names:
        kind = "v2"
    elif "activity.bin" in names:
        kind = "v1"
    else:
        z.close()
        raise _bad(
            path,
            "has no log.bin (nor the older activity.bin), so it holds no samples; it is not a complete GT3X file: "
            "export it again with ActiLife",
        )
    if "info.txt" not in names:
        z.close()
        raise _bad(path, "has no info.txt (sample rate, serial number); it is not a complete GT3X file: export it again with ActiLife")
    return z, kind


def parse_info(text: str) -> dict[str, str]:
    """``Key: Value`` lines of info.txt (a byte-order mark and blank lines ignored)."""
    out: dict[str, str] = {}
    for line in text.lstrip("\ufeff").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out


def decode_parameter(v: int) -> float:
    """ActiGraph's 32-bit float parameter: signed 8-bit exponent, signed 24-bit significand / 2**23."""
    if v == 0x007FFFFF:
        return float(2**31 - 1)
    if v == 0x00800000:
        return -float(2**31 - 1)
    exp = v >> 24
    exp = exp - 256 if exp & 0x80 else exp
    sig = v & 0xFFFFFF
    sig = sig - (1 << 24) if sig & 0x800000 else sig
    return sig / 8388608.0 * 2.0**exp


def _sign12(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 2048, v - 4096, v)


def unpack12(b: np.ndarray) -> np.ndarray:
    """(k, 9 * m) uint8 -> (k, 2 * m, 3) int16: 12-bit big-endian values, three per sample in the
    stored order (two samples per 9 bytes)."""
    k = b.shape[0]
    t = b.reshape(k, -1, 3).astype(np.int16)  # 3 bytes = two 12-bit values
    hi = (t[:, :, 0] << 4) | (t[:, :, 1] >> 4)
    lo = ((t[:, :, 1] & 15) << 8) | t[:, :, 2]
    vals = np.empty((k, t.shape[1] * 2), np.int16)
    vals[:, 0::2] = hi
    vals[:, 1::2] = lo
    return _sign12(vals).reshape(k, -1, 3)


def decode_packed(payload: np.ndarray, order: str) -> np.ndarray:
    """(k, S) uint8 packed payloads -> (k, n, 3) int16 x, y, z; n = 2S // 9 (S % 9 == 5: odd n)."""
    k, size = payload.shape
    pairs, rest = divmod(size, 9)
    if rest:
        pad = np.zeros((k, (pairs + 1) * 9), np.uint8)
        pad[:, :size] = payload
        vals = unpack12(pad)[:, : 2 * pairs + 1]
    else:
        vals = unpack12(payload)
    if order == "yxz":
        vals = vals[:, :, [1, 0, 2]]
    return vals


class Gt3xReader:
    """Read an ActiGraph ``.gt3x``/``.agdc`` in blocks: ``for b in reader.blocks(): ...``.

    ``meta`` holds info.txt; ``info`` is complete once ``blocks()`` is exhausted.
    """

    def __init__(self, path: str | os.PathLike, *, chunk_bytes: int = CHUNK_BYTES):
        self.path = p = Path(path)
        self.chunk_bytes = max(int(chunk_bytes), 1 << 16)
        z, self.kind = open_archive(p)
        try:
            names = {n.lower(): n for n in z.namelist()}
            try:
                self.meta = parse_info(z.read(names["info.txt"]).decode("utf-8", "replace"))
                cal = z.read(names["calibration.json"]).decode("utf-8", "replace") if "calibration.json" in names else None
                member = z.getinfo(names["log.bin" if self.kind == "v2" else "activity.bin"])
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError) as exc:
                raise _bad(p, f"is a damaged .gt3x zip ({exc}); export it again with ActiLife") from None
        finally:
            z.close()
        # a size the compressed bytes cannot hold (deflate expands at most ~1032:1) is damage,
        # and would otherwise size the output arrays
        if member.file_size > max(member.compress_size, 1) * (1 if member.compress_type == zipfile.ZIP_STORED else 1100):
            raise _bad(p, f"is a damaged .gt3x zip ({member.filename} claims {member.file_size} bytes in "
                       f"{member.compress_size}); export it again with ActiLife")
        self.member = member
        self.warnings: list[str] = []
        if cal is not None:
            try:
                calibrated = json.loads(cal).get("isCalibrated", True)
            except (ValueError, AttributeError):
                calibrated = True
            if calibrated is False:
                self.warnings.append(
                    "calibration.json says the samples are not factory-calibrated; harnet applies no device calibration"
                )
        rate = self.meta.get("Sample Rate", "")
        try:
            self.fs = float(rate)
        except ValueError:
            raise _bad(p, f"info.txt has no usable 'Sample Rate' ({rate!r}); export the file again with ActiLife") from None
        if not (FS_RANGE[0] <= self.fs <= FS_RANGE[1]):
            raise _bad(p, f"info.txt's 'Sample Rate' is {rate!r}; it must be {FS_RANGE[0]:g} to {FS_RANGE[1]:g} Hz")
        self.serial = self.meta.get("Serial Number", "")
        self.scale, self.scale_source = self._info_scale()
        self.info: dict[str, Any] = {}

    def _info_scale(self) -> tuple[float | None, str]:
        raw = self.meta.get("Acceleration Scale")
        if raw is not None:
            try:
                v = float(raw.replace(",", "."))
            except ValueError:
                v = float("nan")
            if SCALE_RANGE[0] <= v <= SCALE_RANGE[1]:
                return v, "info.txt"
            self.warnings.append(f"ignored info.txt's implausible 'Acceleration Scale' {raw!r}")
        if self.serial.startswith(("NEO", "CLE")):
            return 341.0, "serial number"
        if self.serial.startswith("MOS"):
            return 256.0, "serial number"
        return None, "none"

    def capacity(self) -> int:
        """An upper bound of the sample count: 4.5 bytes of log per sample at the least."""
        return int(self.member.file_size * 2 // 9) + 2

    def _open_member(self) -> tuple[zipfile.ZipFile, BinaryIO]:
        z = zipfile.ZipFile(self.path)
        return z, z.open(self.member)  # type: ignore[return-value]

    def blocks(self) -> Iterator[Block]:
        """Yield the samples of each chunk of the log, in file order."""
        try:
            if self.kind == "v1":
                yield from self._blocks_v1()
            else:
                yield from self._blocks_v2()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise _bad(self.path, f"cannot be read to the end ({exc}); the .gt3x zip is damaged: export it again with ActiLife") from None

    # ---- GT3X v1 (NHANES): one packed stream from the start date

    def _blocks_v1(self) -> Iterator[Block]:
        p = self.path
        if self.scale is None:
            self.scale, self.scale_source = 341.0, "v1 default"
            self.warnings.append("no acceleration scale in info.txt; used 341 counts/g (GT3X v1 devices)")
        ticks = self.meta.get("Start Date", "")
        try:
            t0 = (int(ticks) - TICKS_AT_UNIX_EPOCH) * 100
        except ValueError:
            t0 = None
        if t0 is None or not (0 <= t0 < (YEARS[1] - 1970) * 365 * 86_400 * 10**9):
            raise _bad(p, f"info.txt has no usable 'Start Date' ({ticks!r}); a v1 GT3X needs it: export the file again")
        n = 0
        tail = 0
        step = 1e9 / self.fs
        z, f = self._open_member()
        with z, f:
            carry = b""
            while True:
                chunk = f.read(self.chunk_bytes // 9 * 9 or 9)
                buf = carry + chunk
                whole = len(buf) // 9 * 9
                if not chunk:
                    break
                carry = buf[whole:]
                if whole:
                    vals = unpack12(np.frombuffer(buf, np.uint8, whole).reshape(1, whole))[0][:, [1, 0, 2]]
                    k = len(vals)
                    t = t0 + np.rint((n + np.arange(k)) * step).astype(np.int64)
                    n += k
                    yield Block(t, (vals / np.float32(self.scale)).astype(np.float32))
            if len(carry) >= 5:  # a last odd sample (5 bytes)
                vals = decode_packed(np.frombuffer(carry[:5], np.uint8).reshape(1, 5), "yxz")[0]
                t = t0 + np.rint(np.array([n]) * step).astype(np.int64)
                n += 1
                yield Block(t, (vals / np.float32(self.scale)).astype(np.float32))
                tail = len(carry) - 5
            else:
                tail = len(carry)
        if tail:
            self.warnings.append(f"activity.bin ends inside a sample ({tail} stray byte(s); truncated copy?): read the whole samples")
        self.info = self._info(samples=n, read_errors=int(tail > 0), extra={"Format": "GT3X v1 (activity.bin)"})

    # ---- GT3X v2: records in log.bin

    def _blocks_v2(self) -> Iterator[Block]:
        st = {"records": 0, "bad_checksum": 0, "resync": 0, "skipped_bytes": 0, "samples": 0, "usb": 0,
              "idle_events": 0, "idle_s": 0, "idle_start": None, "unknown_size": 0, "no_scale": 0,
              "in_resync": False}
        z, f = self._open_member()
        with z, f:
            carry = b""
            while True:
                chunk = f.read(self.chunk_bytes)
                eof = not chunk
                buf = carry + chunk if carry else chunk
                if not buf:
                    break
                block, used = self._decode_v2(buf, eof, st)
                carry = buf[used:]
                if block is not None:
                    yield block
                if eof:
                    if carry:
                        self.warnings.append(
                            f"log.bin ends inside a record ({len(carry)} byte(s); truncated copy?): read the whole records"
                        )
                    st["truncated"] = len(carry)
                    break
        if st["idle_start"] is not None:
            st["idle_open"] = 1
        if st["bad_checksum"]:
            self.warnings.append(f"skipped {st['bad_checksum']} record(s) with a wrong checksum")
        if st["resync"]:
            self.warnings.append(
                f"skipped {st['skipped_bytes']} byte(s) that are not records at {st['resync']} place(s) (damaged log.bin)"
            )
        if st["unknown_size"]:
            self.warnings.append(f"skipped {st['unknown_size']} activity record(s) whose size holds no whole sample")
        if st["no_scale"]:
            raise _bad(self.path, "holds activity records but no acceleration scale (info.txt, parameters or a known serial number); export it again with ActiLife")
        read_errors = st["bad_checksum"] + st["resync"] + st["unknown_size"] + int(st.get("truncated", 0) > 0)
        self.info = self._info(
            samples=st["samples"],
            read_errors=read_errors,
            extra={
                "Format": "GT3X v2 (log.bin)",
                "NumRecords": st["records"],
                "ChecksumErrors": st["bad_checksum"],
                "NumResyncs": st["resync"],
                "IdleSleepEvents": st["idle_events"],
                "IdleSleepSeconds": st["idle_s"],
            },
        )

    def _decode_v2(self, buf: bytes, eof: bool, st: dict) -> tuple[Block | None, int]:
        """Walk the records of ``buf``; decode the activity ones in groups; return bytes used."""
        n = len(buf)
        arr = np.frombuffer(buf, np.uint8)
        # prefix XOR: the XOR of buf[a:b] is px[b] ^ px[a]
        px = np.zeros(n + 1, np.uint8)
        np.bitwise_xor.accumulate(arr, out=px[1:])
        unpack = _REC.unpack_from
        pos = 0
        starts: list[int] = []
        sizes: list[int] = []
        kinds: list[int] = []
        stamps: list[int] = []
        in_resync = st["in_resync"]
        while pos + HEAD <= n:
            sync, typ, ts, size = unpack(buf, pos)
            end = pos + HEAD + size + 1
            if sync != SYNC:
                ok = False
            elif end > n:
                if not eof or not in_resync:
                    break  # the record continues in the next chunk (or the file is truncated)
                ok = False  # a false start while searching: its size runs past the end
            else:
                ok = (px[end - 1] ^ px[pos] ^ 0xFF) == arr[end - 1]
                if not ok and not in_resync:
                    st["bad_checksum"] += 1  # a record-shaped run with a wrong checksum: skip it
                    pos = end
                    continue
            if not ok:
                if not in_resync:
                    st["resync"] += 1
                    in_resync = True
                nxt = buf.find(b"\x1e", pos + 1)
                if nxt < 0:
                    nxt = n
                st["skipped_bytes"] += nxt - pos
                pos = nxt
                continue
            in_resync = False
            st["records"] += 1
            if typ in SAMPLE_TYPES:
                if size > 1:
                    starts.append(pos + HEAD)
                    sizes.append(size)
                    kinds.append(typ)
                    stamps.append(ts)
                else:
                    st["usb"] += 1
            elif typ == EVENT:
                payload = buf[pos + HEAD : pos + HEAD + size]
                if payload == IDLE_START:
                    st["idle_events"] += 1
                    if st["idle_start"] is None:
                        st["idle_start"] = ts
                elif payload == IDLE_STOP and st["idle_start"] is not None:
                    st["idle_s"] += max(ts - st["idle_start"], 0)
                    st["idle_start"] = None
            elif typ == PARAMETERS:
                self._parameters(buf[pos + HEAD : pos + HEAD + size])
            pos = end
        st["in_resync"] = in_resync
        if not starts:
            return None, pos
        if self.scale is None:
            st["no_scale"] += 1
            return None, pos
        return self._samples(arr, np.array(starts), np.array(sizes), np.array(kinds), np.array(stamps, np.int64), st), pos

    def _parameters(self, payload: bytes) -> None:
        if len(payload) % 8:
            return
        for a, ident, value in struct.iter_unpack("<HHI", payload):
            if a == 0 and ident == 55:
                v = decode_parameter(value)
                if SCALE_RANGE[0] <= v <= SCALE_RANGE[1]:
                    self.scale, self.scale_source = v, "parameters"

    def _samples(self, arr: np.ndarray, starts: np.ndarray, sizes: np.ndarray, kinds: np.ndarray,
                 stamps: np.ndarray, st: dict) -> Block | None:
        """Decode the activity records of one chunk, grouped by (type, size), back in file order."""
        per = np.where(kinds == ACTIVITY2, np.where(sizes % 6 == 0, sizes // 6, -1),
                       np.where(np.isin(sizes % 9, (0, 5)), 2 * (sizes // 9) + (sizes % 9 == 5), -1))
        bad = per < 0
        if bad.any():
            st["unknown_size"] += int(bad.sum())
            starts, sizes, kinds, stamps, per = starts[~bad], sizes[~bad], kinds[~bad], stamps[~bad], per[~bad]
        if not len(starts):
            return None
        total = int(per.sum())
        dest = np.concatenate(([0], np.cumsum(per)[:-1]))
        t = np.empty(total, np.int64)
        xyz = np.empty((total, 3), np.float32)
        inv = np.float32(1.0 / self.scale)
        step = 1e9 / self.fs
        keys = kinds.astype(np.int64) * 65536 + sizes
        for key in np.unique(keys):
            g = np.flatnonzero(keys == key)
            kind, size, m = int(kinds[g[0]]), int(sizes[g[0]]), int(per[g[0]])
            payload = np.concatenate([arr[a : a + size] for a in starts[g].tolist()]).reshape(len(g), size)
            if kind == ACTIVITY2:
                raw = payload.view("<i2").reshape(len(g), m, 3)
            else:
                raw = decode_packed(payload, "yxz" if kind == ACTIVITY else "xyz")
            rows = (dest[g, None] + np.arange(m)).reshape(-1)
            xyz[rows] = (raw.reshape(-1, 3) * inv).astype(np.float32)
            t[rows] = (stamps[g, None] * 1_000_000_000 + np.rint(np.arange(m) * step).astype(np.int64)).reshape(-1)
        st["samples"] += total
        return Block(t, xyz)

    def _info(self, samples: int, read_errors: int, extra: dict) -> dict[str, Any]:
        return {
            "Filename": str(self.path),
            "Filesize(MB)": round(self.path.stat().st_size / 1e6, 1),
            "Device": "Actigraph",  # as actipy names it (outputs unchanged)
            "DeviceID": self.serial,
            "DeviceType": self.meta.get("Device Type", ""),
            "ReadOK": int(read_errors == 0),
            "ReadErrors": read_errors,
            "SampleRate": self.fs,
            "AccelerationScale": self.scale,
            "TimeZone": self.meta.get("TimeZone", ""),
            **extra,
            "Warnings": list(self.warnings),
        }


def read_gt3x(path: str | os.PathLike, *, chunk_bytes: int = CHUNK_BYTES) -> Recording:
    """Read a whole ActiGraph ``.gt3x``/``.agdc``: float32 x, y, z in g, device-local naive times.

    Idle-sleep seconds hold no samples (gaps). Refuses (:class:`InputError`) a file that is not a
    GT3X zip, lacks ``log.bin``/``activity.bin`` or ``info.txt``, or holds no readable sample.
    """
    reader = Gt3xReader(path, chunk_bytes=chunk_bytes)
    t, xyz = collect(reader.blocks(), reader.capacity())
    info = reader.info
    if not len(t):
        raise _bad(
            reader.path,
            f"holds no readable samples ({info.get('ReadErrors', 0)} damaged record(s)); the recording is empty or "
            "corrupt: export it again with ActiLife",
        )
    return Recording(t.view("datetime64[ns]"), xyz, info)
