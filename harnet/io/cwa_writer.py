"""Write synthetic Axivity CWA files (tests and benchmarks).

The files follow the published layout (one 1024-byte 'MD' header, 512-byte 'AX' data blocks with
valid checksums, packed timestamps with optional fractional seconds, sample-rate codes) and are
readable by actipy as well as by :func:`harnet.io.cwa.read_cwa`. Vectorised in chunks of blocks:
a week at 100 Hz (60 M samples) takes seconds.

Helpers to damage a file on purpose (:func:`corrupt_blocks`, :func:`truncate`) exist for the
reader's failure tests.
"""

from __future__ import annotations

import datetime as _dt
import gzip as _gzip
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from harnet.io.cwa_format import BLOCK, BLOCK_DTYPE, HEADER, pack_timestamp

_RATES = {3200.0 / (1 << k): 15 - k for k in range(16)}  # fs -> low nibble of the rate code
_RANGES = {16: 0, 8: 1, 4: 2, 2: 3}  # +-g -> top two bits of the rate code


def rate_code(fs: float, range_g: int) -> int:
    """The CWA sample-rate byte for a nominal rate (3200 / 2**k Hz) and an accelerometer range."""
    if float(fs) not in _RATES:
        raise ValueError(f"fs={fs} is not a CWA rate; use one of {sorted(_RATES)}")
    if range_g not in _RANGES:
        raise ValueError(f"range_g={range_g} is not a CWA range; use 2, 4, 8 or 16")
    return (_RANGES[range_g] << 6) | _RATES[float(fs)]


def int16_scale_bits(range_g: int) -> int:
    """n in lightScale bits 13-15 (1 / 2**(8 + n) g per LSB) so that +-range_g fills int16."""
    return {16: 3, 8: 4, 4: 5, 2: 6}[range_g]


def _packed_parts(xyz: np.ndarray, range_g: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) g -> (mantissas int32 (n, 3) in [-512, 511], shared exponent (n,) in 0..3)."""
    lim = range_g * 256
    v = np.clip(np.rint(np.asarray(xyz, np.float64) * 256), -lim, lim).astype(np.int32)
    peak = np.abs(v).max(axis=1)
    e = np.zeros(len(v), np.int32)
    for k in (1, 2, 3):  # smallest exponent whose mantissas fit in 10 bits
        e[peak > (511 << (k - 1))] = k
    m = np.clip(np.rint(v / (1 << e)[:, None]), -512, 511).astype(np.int32)
    return m, e


def quantise(xyz: np.ndarray, *, packed: bool = True, range_g: int = 8) -> np.ndarray:
    """The float32 g values :func:`write_cwa` stores for ``xyz`` (for exact round-trip tests)."""
    if packed:
        m, e = _packed_parts(xyz, range_g)
        return (m << e[:, None]).astype(np.float32) / np.float32(256)
    lsb = float(1 << (8 + int16_scale_bits(range_g)))
    return (np.clip(np.rint(np.asarray(xyz, np.float64) * lsb), -32768, 32767) / lsb).astype(np.float32)


def _as_ns(t: _dt.datetime | np.datetime64 | str) -> int:
    return int(np.datetime64(t, "ns").astype(np.int64))


def _header(
    start_ns: int, end_ns: int, *, device_id: int, session_id: int, code: int, hardware: int
) -> bytes:
    h = np.full(HEADER, 0xFF, np.uint8)
    h[0:2] = np.frombuffer(b"MD", np.uint8)
    h[2:4] = np.array([HEADER - 4], "<u2").view(np.uint8)
    h[4] = hardware
    h[5:7] = np.array([device_id & 0xFFFF], "<u2").view(np.uint8)
    h[7:11] = np.array([session_id], "<u4").view(np.uint8)
    upper = device_id >> 16
    h[11:13] = np.array([upper if upper else 0xFFFF], "<u2").view(np.uint8)
    stamps = pack_timestamp(np.array([start_ns, end_ns], "datetime64[ns]"))
    h[13:17] = stamps[:1].astype("<u4").view(np.uint8)
    h[17:21] = stamps[1:].astype("<u4").view(np.uint8)
    h[21:25] = 0  # capacity: unlimited
    h[26] = 0  # flash LED
    h[35] = 0  # sensor config
    h[36] = code
    h[37:41] = stamps[:1].astype("<u4").view(np.uint8)  # last change
    h[41] = 45  # firmware revision
    h[42:44] = np.array([-1], "<i2").view(np.uint8)  # time zone: unknown
    h[64:512] = ord(" ")  # annotation
    return h.tobytes()


def _blocks(
    xyz: np.ndarray,
    gyro: np.ndarray | None,
    sample_ns: np.ndarray,
    first_block: int,
    *,
    cap: int,
    fs: float,
    packed: bool,
    range_g: int,
    code: int,
    device_id: int,
    session_id: int,
    sequence_start: int,
    fractional: bool,
    ns_per_sample: float,
) -> np.ndarray:
    """Encode one chunk: samples already split into full blocks of ``cap`` (last may be short)."""
    n = len(xyz)
    k = -(-n // cap)
    counts = np.full(k, cap, np.int64)
    counts[-1] = n - cap * (k - 1)
    out = np.zeros((k, BLOCK), np.uint8)
    blk = np.arange(k) + first_block
    first_ns = sample_ns[np.arange(k) * cap]
    hdr = np.zeros(k, BLOCK_DTYPE)
    hdr["magic"] = b"AX"
    hdr["length"] = BLOCK - 4
    hdr["session"] = session_id
    hdr["sequence"] = blk + sequence_start
    hdr["temperature"] = 256  # 25 degC
    hdr["battery"] = 200
    hdr["rate"] = code
    hdr["count"] = counts
    if fractional:
        # the timestamp marks sample `off` of the block (a fixed pseudo-random pattern)
        off = (blk * 37) % cap
        stamp = first_ns + np.rint(off * ns_per_sample).astype(np.int64)
        sec = stamp // 1_000_000_000 * 1_000_000_000
        frac15 = ((stamp - sec) * 32768) // 1_000_000_000
        frac16 = frac15 << 1
        hdr["fractional"] = 0x8000 | frac15
        # the firmware's compatibility shift: timestampOffset minus the whole samples the fraction spans
        hdr["offset"] = off - np.floor(frac16 * fs / 65536.0).astype(np.int64)
    else:
        # whole-second RTC: the second that ticks during or after the block's first sample
        sec = -(-first_ns // 1_000_000_000) * 1_000_000_000
        off = np.rint((sec - first_ns) / ns_per_sample).astype(np.int64)
        hdr["fractional"] = device_id & 0x7FFF
        hdr["offset"] = off
    hdr["timestamp"] = pack_timestamp(sec.astype("datetime64[ns]"))
    if gyro is not None:
        hdr["axes"] = 0x62
        hdr["light"] = int16_scale_bits(range_g) << 13
        lsb = float(1 << (8 + int16_scale_bits(range_g)))
        acc = np.clip(np.rint(xyz.astype(np.float64) * lsb), -32768, 32767).astype("<i2")
        s = np.zeros((k * cap, 6), "<i2")
        s[:n, :3] = np.asarray(gyro, "<i2")
        s[:n, 3:] = acc
        samples = s.reshape(k, cap * 6).view(np.uint8)
    elif packed:
        hdr["axes"] = 0x30
        m, e = _packed_parts(xyz, range_g)
        w = np.zeros(k * cap, "<u4")
        mu = (m & 0x3FF).astype(np.uint32)
        w[:n] = mu[:, 0] | (mu[:, 1] << 10) | (mu[:, 2] << 20) | (e.astype(np.uint32) << 30)
        samples = w.reshape(k, cap).view(np.uint8)
    else:
        hdr["axes"] = 0x32
        n_bits = int16_scale_bits(range_g)
        hdr["light"] = n_bits << 13
        s = np.zeros((k * cap, 3), "<i2")
        s[:n] = np.clip(np.rint(xyz.astype(np.float64) * (1 << (8 + n_bits))), -32768, 32767)
        samples = s.reshape(k, cap * 3).view(np.uint8)
    out[:, :30] = hdr.view(np.uint8).reshape(k, 30)
    out[:, 30:510] = samples
    words = out.view("<u2")
    total = words[:, :255].sum(axis=1, dtype=np.uint64)
    words[:, 255] = ((-total.astype(np.int64)) & 0xFFFF).astype(np.uint16)
    return out


def write_cwa(
    path: str | os.PathLike,
    time_start: _dt.datetime | np.datetime64 | str,
    xyz: np.ndarray,
    *,
    fs: float = 100.0,
    packed: bool = True,
    range_g: int = 8,
    device_id: int = 12345,
    session_id: int = 1,
    gzip: bool = False,
    fractional: bool = True,
    fs_actual: float | None = None,
    gyro: np.ndarray | None = None,
    append: bool = False,
    sequence_start: int = 0,
    compresslevel: int = 1,
    chunk_blocks: int = 8192,
) -> Path:
    """Write ``xyz`` ((n, 3) g) as a CWA recording that starts at ``time_start`` (device time).

    ``fs`` is the nominal rate written in the rate code (3200 / 2**k Hz); ``fs_actual`` (default
    ``fs``) is the rate the samples are really spaced at, as on a device whose clock runs off.
    ``packed=True`` stores AX3 packed 10-bit samples (1/256 g, with a shared exponent beyond
    +-2 g); ``packed=False`` stores int16 samples; ``gyro`` ((n, 3) raw int16 counts) makes AX6
    six-axis blocks (gyro then accel). ``fractional=False`` writes old-style whole-second
    timestamps. ``append=True`` adds a new session (sequence restarting at ``sequence_start``) to
    an existing file without a second header, as a device restarted mid-file would.
    Returns the path. Values beyond the range are clipped; see :func:`quantise` for stored values.
    """
    path = Path(path)
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) == 0:
        raise ValueError(f"xyz must be (n, 3) with n >= 1, got {xyz.shape}")
    if gyro is not None and np.shape(gyro) != xyz.shape:
        raise ValueError("gyro must have the same shape as xyz")
    code = rate_code(fs, range_g)
    cap = 40 if gyro is not None else (120 if packed else 80)
    ns_per_sample = 1e9 / float(fs_actual or fs)
    start_ns = _as_ns(time_start)
    n = len(xyz)
    end_ns = start_ns + int(round((n - 1) * ns_per_sample))
    opener = (lambda p, m: _gzip.open(p, m, compresslevel=compresslevel)) if gzip else open
    mode = "ab" if append else "wb"
    f: BinaryIO
    with opener(path, mode) as f:
        if not append:
            hardware = 0x64 if gyro is not None else 0x17
            f.write(_header(start_ns, end_ns, device_id=device_id, session_id=session_id, code=code, hardware=hardware))
        step = chunk_blocks * cap
        for a in range(0, n, step):
            b = min(n, a + step)
            idx = np.arange(a, a + -(-(b - a) // cap) * cap, dtype=np.int64)
            sample_ns = start_ns + np.rint(idx * ns_per_sample).astype(np.int64)
            blocks = _blocks(
                xyz[a:b],
                None if gyro is None else np.asarray(gyro)[a:b],
                sample_ns,
                a // cap,
                cap=cap,
                fs=float(fs),
                packed=packed,
                range_g=range_g,
                code=code,
                device_id=device_id,
                session_id=session_id,
                sequence_start=sequence_start,
                fractional=fractional,
                ns_per_sample=ns_per_sample,
            )
            f.write(blocks.tobytes())
    return path


def sample_times(
    time_start: _dt.datetime | np.datetime64 | str, n: int, fs: float = 100.0, fs_actual: float | None = None
) -> np.ndarray:
    """The true datetime64[ns] times of the n samples :func:`write_cwa` writes."""
    ns_per_sample = 1e9 / float(fs_actual or fs)
    return (_as_ns(time_start) + np.rint(np.arange(n) * ns_per_sample).astype(np.int64)).astype("datetime64[ns]")


def corrupt_blocks(path: str | os.PathLike, blocks: list[int] | np.ndarray) -> None:
    """Flip one sample byte in each given data block (0 = first after the header) of an
    uncompressed CWA file, leaving its checksum wrong."""
    with open(path, "r+b") as f:
        for k in np.atleast_1d(blocks):
            pos = HEADER + int(k) * BLOCK + 100
            f.seek(pos)
            byte = f.read(1)
            f.seek(pos)
            f.write(bytes([byte[0] ^ 0x5A]))


def truncate(path: str | os.PathLike, n_bytes: int) -> None:
    """Cut the last ``n_bytes`` bytes off a file (e.g. 200 to end it inside a data block)."""
    size = os.path.getsize(path)
    os.truncate(path, max(0, size - n_bytes))
