"""Writers of ActiGraph .gt3x (v2 log.bin and NHANES v1 activity.bin) and GENEActiv .bin files
for tests and benchmarks, from the published layouts (reference section 7). Vectorised, so a
multi-hour file takes a second or two. Not part of the package: readers are tested against them
and against actipy's independent Java readers."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000
NS = 1_000_000_000
HEX = np.frombuffer(b"0123456789ABCDEF", np.uint8)


def wrist_like(n: int, seed: int = 0, fs: float = 25) -> np.ndarray:
    """(n, 3) float32 g at ``fs``: gravity on z plus slow sines and noise (the CLI tests' signal)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    xyz = np.stack([0.3 * np.sin(2 * np.pi * 1.3 * t), 0.2 * np.sin(2 * np.pi * 0.7 * t), 1 + 0.1 * np.sin(2 * np.pi * 2 * t)], 1)
    return (xyz + rng.normal(0, 0.02, xyz.shape)).astype(np.float32)


def moving_xyz(n: int, fs: float, seed: int = 0) -> np.ndarray:
    """(n, 3) float64 g: gravity on z, a wrist-like movement and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    xyz = np.empty((n, 3))
    xyz[:, 0] = 0.3 * np.sin(2 * np.pi * 1.3 * t)
    xyz[:, 1] = 0.15 * np.sin(2 * np.pi * 0.7 * t + 1.0)
    xyz[:, 2] = 1.0 + 0.1 * np.sin(2 * np.pi * 2.1 * t)
    return xyz + rng.normal(0, 0.02, (n, 3))


# ---- ActiGraph -----------------------------------------------------------------------------

def pack12(vals: np.ndarray) -> np.ndarray:
    """(k, m) ints (m even: a multiple of 2 values) -> (k, 1.5 m) bytes, 12-bit big-endian pairs."""
    v = (np.asarray(vals, np.int64) & 0xFFF).reshape(vals.shape[0], -1, 2)
    out = np.empty((vals.shape[0], v.shape[1], 3), np.uint8)
    out[:, :, 0] = v[:, :, 0] >> 4
    out[:, :, 1] = ((v[:, :, 0] & 15) << 4) | (v[:, :, 1] >> 8)
    out[:, :, 2] = v[:, :, 1] & 0xFF
    return out.reshape(vals.shape[0], -1)


def packed_payloads(counts: np.ndarray, order: str = "yxz") -> np.ndarray:
    """(k, fs, 3) raw counts -> (k, ceil(4.5 fs)) packed payloads (odd fs: the last 5 bytes hold one sample)."""
    k, m, _ = counts.shape
    c = counts[:, :, [1, 0, 2]] if order == "yxz" else counts
    flat = c.reshape(k, -1)
    if m % 2:
        flat = np.concatenate([flat, np.zeros((k, 3), np.int64)], axis=1)
    b = pack12(flat)
    return b[:, : (9 * m + 1) // 2] if m % 2 else b


def record(typ: int, ts: int, payload: bytes) -> bytes:
    head = bytes([0x1E, typ]) + int(ts).to_bytes(4, "little") + len(payload).to_bytes(2, "little")
    x = 0
    for c in head + payload:
        x ^= c
    return head + payload + bytes([~x & 0xFF])


def _info_txt(serial: str, fs: int, start_s: int, scale: float | None, last_s: int) -> str:
    lines = [
        f"Serial Number: {serial}",
        "Device Type: wGT3XBT" if serial.startswith("MOS") else "Device Type: GT3XPlus",
        "Firmware: 1.9.2",
        f"Sample Rate: {fs}",
        f"Start Date: {start_s * 10_000_000 + TICKS_AT_UNIX_EPOCH}",
        f"Last Sample Time: {last_s * 10_000_000 + TICKS_AT_UNIX_EPOCH}",
        "TimeZone: 01:00:00",
    ]
    if scale is not None:
        lines += [f"Acceleration Scale: {scale}", "Acceleration Min: -8.0", "Acceleration Max: 8.0"]
    return "\r\n".join(lines) + "\r\n"


def write_gt3x(path: Path, start: str, xyz: np.ndarray, fs: int = 30, *, scale: float = 256.0,
               kind: str = "packed", idle: Iterable[tuple[int, int]] = (), serial: str = "MOS2E00000001",
               info_scale: bool = True, param_scale: bool = False) -> Path:
    """A GT3X v2 file: one ACTIVITY (12-bit packed) or ACTIVITY2 (int16) record per second of
    ``xyz`` (whole seconds, ``len(xyz) = fs * seconds``) from ``start`` (device-local time).
    ``idle``: (first, stop) second indices of idle-sleep mode: those seconds get no record,
    an EVENT 0x08 at ``first`` and 0x09 at ``stop``. Returns the path."""
    xyz = np.asarray(xyz, np.float64)
    secs = len(xyz) // fs
    t0 = int(np.datetime64(start, "s").astype(np.int64))
    counts = np.clip(np.rint(xyz[: secs * fs] * scale), -2048 if kind == "packed" else -32768,
                     2047 if kind == "packed" else 32767).astype(np.int64).reshape(secs, fs, 3)
    sleep = np.zeros(secs, bool)
    starts, stops = {}, {}
    for a, b in idle:
        sleep[a:b] = True
        starts[a], stops[b] = True, True
    if kind == "packed":
        payloads = packed_payloads(counts)
        typ = 0
    else:
        payloads = counts.astype("<i2").reshape(secs, -1).view(np.uint8)
        typ = 26
    parts = [record(6, t0, b'{"metadata": "test"}')]
    if param_scale:  # parameters record: address 0, id 55 = acceleration scale (256 = 0x09400000)
        exp = int(np.floor(np.log2(scale))) + 1
        sig = int(round(scale / 2.0**exp * 8388608))
        val = ((exp & 0xFF) << 24) | (sig & 0xFFFFFF)
        parts.append(record(21, t0, (0).to_bytes(2, "little") + (55).to_bytes(2, "little") + val.to_bytes(4, "little")))
    for s in range(secs):
        if s in starts:
            parts.append(record(3, t0 + s, b"\x08"))
        if s in stops:
            parts.append(record(3, t0 + s, b"\x09"))
        if not sleep[s]:
            parts.append(record(typ, t0 + s, payloads[s].tobytes()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("info.txt", _info_txt(serial, fs, t0, scale if info_scale else None, t0 + secs))
        z.writestr("log.bin", b"".join(parts))
    return path


def write_gt3x_v1(path: Path, start: str, xyz: np.ndarray, fs: int = 30, *, scale: float = 341.0,
                  serial: str = "NEO1A00000001", info_scale: bool = False, tail: bytes = b"") -> Path:
    """An old NHANES GT3X v1 file: info.txt, log.txt, lux.bin and activity.bin (one continuous
    12-bit packed Y X Z stream from Start Date); ``tail`` is appended to activity.bin."""
    xyz = np.asarray(xyz, np.float64)
    n = len(xyz)
    t0 = int(np.datetime64(start, "s").astype(np.int64))
    counts = np.clip(np.rint(xyz * scale), -2048, 2047).astype(np.int64)
    act = packed_payloads(counts.reshape(1, n, 3))[0].tobytes() + tail
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("info.txt", _info_txt(serial, fs, t0, scale if info_scale else None, t0 + n // fs))
        z.writestr("log.txt", "NHANES test log\r\n")
        z.writestr("activity.bin", act)
        z.writestr("lux.bin", bytes(2 * (n // fs)))
    return path


# ---- GENEActiv -----------------------------------------------------------------------------

GAIN = (25875.0, 25734.0, 25538.0)
OFFSET = (439.0, -662.0, -3056.0)


def _header(fs: float, pages: int, start: str, serial: str, gain: Sequence[float], offset: Sequence[float]) -> list[str]:
    g, o = [int(v) for v in gain], [int(v) for v in offset]
    return [
        "Device Identity", f"Device Unique Serial Code:{serial}", "Device Type:GENEActiv", "Device Model:1.1",
        "Device Firmware Version:Ver1.30 date 05Aug11", "Calibration Date:2012-04-03 11:08:52:000", "",
        "Device Capabilities", "Accelerometer Range:-8 to 8", "Accelerometer Resolution:0.0039",
        "Accelerometer Units:g", "Light Meter Range:0 to 5000", "Light Meter Resolution:5", "Light Meter Units:lux",
        "Temperature Sensor Range:0 to 70", "Temperature Sensor Resolution:0.1", "Temperature Sensor Units:deg. C", "",
        "Configuration Info", f"Measurement Frequency:{fs:g} Hz", "Measurement Period:216 Hours",
        f"Start Time:{_gtime(np.datetime64(start, 'ns').astype(np.int64))}", "Time Zone:GMT +01:00", "",
        "Trial Info", "Study Centre:", "Study Code:", "Investigator ID:", "Exercise Type:", "Config Operator ID:2",
        "Config Time:2013-05-23 14:02:12:642", "Config Notes:Notes", "Extract Operator ID:",
        "Extract Time:2013-6-11 17:25:40:479", "Extract Notes:", "",
        "Subject Info", "Device Location Code:", "Subject Code:", "Date of Birth:1800-1-1", "Sex:", "Height:",
        "Weight:", "Handedness Code:", "Subject Notes:", "",
        "Calibration Data", f"x gain:{g[0]}", f"x offset:{o[0]}", f"y gain:{g[1]}", f"y offset:{o[1]}",
        f"z gain:{g[2]}", f"z offset:{o[2]}", "Volts:300", "Lux:800", "",
        "Memory Status", f"Number of Pages:{pages}", "",
    ]


def _gtime(ns: int) -> str:
    s = str(np.datetime64(int(ns), "ns").astype("datetime64[ms]")).replace("T", " ")
    return s[:19] + ":" + s[20:23]


def geneactiv_counts(xyz: np.ndarray, gain: Sequence[float] = GAIN, offset: Sequence[float] = OFFSET) -> np.ndarray:
    """g -> the 12-bit counts a GENEActiv would store: (g * gain + offset) / 100, rounded."""
    return np.clip(np.rint((np.asarray(xyz) * np.asarray(gain) + np.asarray(offset)) / 100), -2048, 2047).astype(np.int64)


def write_geneactiv(path: Path, start: str, xyz: np.ndarray, fs: float = 100.0, *, serial: str = "012967",
                    gain: Sequence[float] = GAIN, offset: Sequence[float] = OFFSET,
                    pages_in_header: int | None = None, page_fs: float | None = None, eol: str = "\r\n") -> Path:
    """A GENEActiv .bin: the header, then one 10-line page per 300 samples (``len(xyz)`` a
    multiple of 300); page ``p`` is stamped ``start + 300 p / fs`` (ms precision)."""
    xyz = np.asarray(xyz, np.float64)
    pages = len(xyz) // 300
    counts = geneactiv_counts(xyz[: pages * 300], gain, offset).reshape(pages, 300, 3) & 0xFFF
    light = (np.arange(pages * 300) % 1024).reshape(pages, 300)
    digits = np.empty((pages, 300, 12), np.uint8)
    for a in range(3):
        for d in range(3):
            digits[:, :, 3 * a + d] = (counts[:, :, a] >> (8 - 4 * d)) & 15
    lb = light << 2  # 10 bits of light, button 0, reserved 0
    for d in range(3):
        digits[:, :, 9 + d] = (lb >> (8 - 4 * d)) & 15
    hexes = HEX[digits].reshape(pages, 3600)
    t0 = np.datetime64(start, "ns").astype(np.int64)
    head = _header(fs, pages if pages_in_header is None else pages_in_header, start, serial, gain, offset)
    out = [eol.join(head).encode() + eol.encode()]
    pf = fs if page_fs is None else page_fs
    for p in range(pages):
        t = t0 + int(round(p * 300 / fs * 1000)) * 1_000_000
        lines = [
            "Recorded Data", f"Device Unique Serial Code:{serial}", f"Sequence Number:{p}", f"Page Time:{_gtime(t)}",
            "Unassigned:", "Temperature:21.5", "Battery voltage:4.1493", "Device Status:Recording",
            f"Measurement Frequency:{pf:g}",
        ]
        out.append((eol.join(lines) + eol).encode() + hexes[p].tobytes() + eol.encode())
    Path(path).write_bytes(b"".join(out))
    return Path(path)
