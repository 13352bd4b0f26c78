"""The Axivity CWA format: block layout, sample-rate and range codes, packed timestamps, checksums
and sample decoding (written from the published layout, reference section 7). Used by the reader
(:mod:`harnet.io.cwa`) and the writer (:mod:`harnet.io.cwa_writer`)."""

from __future__ import annotations

import numpy as np

BLOCK = 512
HEADER = 1024
CHUNK_BLOCKS = 8192  # 4 MiB of file per chunk

# data-block header, little-endian, bytes 0..29
BLOCK_DTYPE = np.dtype(
    [
        ("magic", "S2"),
        ("length", "<u2"),
        ("fractional", "<u2"),
        ("session", "<u4"),
        ("sequence", "<u4"),
        ("timestamp", "<u4"),
        ("light", "<u2"),
        ("temperature", "<u2"),
        ("events", "u1"),
        ("battery", "u1"),
        ("rate", "u1"),
        ("axes", "u1"),
        ("offset", "<i2"),
        ("count", "<u2"),
    ]
)
assert BLOCK_DTYPE.itemsize == 30

# axes/packing byte -> (number of axes, bytes per sample, samples per block)
FORMATS = {0x30: ("packed", 120), 0x32: ("int16x3", 80), 0x62: ("int16x6", 40)}


def rate_from_code(code: np.ndarray | int) -> np.ndarray:
    """Nominal sample rate (Hz) from the sample-rate code: 3200 / 2**(15 - (code & 15))."""
    code = np.asarray(code)
    return 3200.0 / np.left_shift(1, 15 - (code & 15)).astype(np.float64)


def range_from_code(code: np.ndarray | int) -> np.ndarray:
    """Accelerometer range (+-g) from the sample-rate code: 16 >> (code >> 6)."""
    return np.right_shift(16, np.asarray(code) >> 6)


def unpack_timestamp(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Packed RTC -> (datetime64[ns] as int64, valid mask). Invalid dates give 0 and False."""
    v = np.asarray(v, dtype=np.uint32).astype(np.int64)
    year = (v >> 26) + 2000
    month = (v >> 22) & 15
    day = (v >> 17) & 31
    hour = (v >> 12) & 31
    minute = (v >> 6) & 63
    second = v & 63
    ok = (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31) & (hour < 24) & (minute < 60) & (second < 60)
    months = np.where(ok, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    days = months.astype("datetime64[D]").astype(np.int64) + np.where(ok, day - 1, 0)
    # a day past the month's end (e.g. 31 April) is invalid too
    next_month = (months + 1).astype("datetime64[D]").astype(np.int64)
    ok &= days < next_month
    ns = days * 86_400_000_000_000 + (hour * 3600 + minute * 60 + second) * 1_000_000_000
    return np.where(ok, ns, 0), ok


def pack_timestamp(ns: np.ndarray) -> np.ndarray:
    """datetime64[ns] (or int64 ns), whole seconds -> packed RTC (uint32). Years 2000..2063."""
    t = np.asarray(ns).astype("datetime64[ns]").astype("datetime64[s]")
    years = t.astype("datetime64[Y]").astype(np.int64) + 1970
    months = t.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (t.astype("datetime64[D]") - t.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    secs = (t - t.astype("datetime64[D]").astype("datetime64[s]")).astype(np.int64)
    if np.any(years < 2000) or np.any(years > 2063):
        raise ValueError("CWA timestamps hold years 2000..2063 only")
    v = (
        ((years - 2000) << 26)
        | (months << 22)
        | (days << 17)
        | ((secs // 3600) << 12)
        | (((secs // 60) % 60) << 6)
        | (secs % 60)
    )
    return v.astype(np.uint32)


def block_checksum_ok(blocks: np.ndarray) -> np.ndarray:
    """(k, 512) uint8 -> bool (k,): the 16-bit sum of the 256 little-endian words is zero."""
    words = blocks.view("<u2")
    return (words.sum(axis=1, dtype=np.uint64) & 0xFFFF) == 0


def decode_packed(raw: np.ndarray) -> np.ndarray:
    """(k, 120) uint32 packed samples -> (k, 120, 3) float32 g (1/256 g units, shifted by e):
    per axis the sign-extended 10-bit value (x bits 0-9, y 10-19, z 20-29) shifted left by the
    exponent in bits 30-31, in one compiled pass (:func:`harnet.kernels.decode_packed`)."""
    from harnet.kernels import decode_packed as kernel

    v = np.ascontiguousarray(raw, dtype=np.uint32)
    out = np.empty(v.shape + (3,), dtype=np.float32)
    kernel(v, out)
    return out


def decode_int16(raw: np.ndarray, n_axes: int, accel_first: int, scale: np.ndarray) -> np.ndarray:
    """(k, 240) int16 -> (k, 240 // n_axes, 3) float32 g using per-block ``scale`` (g per LSB)."""
    s = raw.reshape(raw.shape[0], -1, n_axes)[:, :, accel_first : accel_first + 3]
    return s.astype(np.float32) * scale.astype(np.float32)[:, None, None]


# AX6 stores each sample as gyro x, y, z then accel x, y, z (reference section 7); checked
# against actipy on the AX6 sample files.
ACCEL_FIRST_6AXIS = 3
