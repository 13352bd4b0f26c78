"""Axivity CWA reader (AX3 and AX6 accelerometer channels), vectorised and chunked.

Written from the published block layout (see ``docs``/reference section 7), not from another
reader's source. The file is read twice in chunks of blocks: a first pass collects the 30-byte
block headers and checksums (a few bytes per block), a second pass decodes the samples straight
into the final arrays. Peak memory is the output (8 bytes of time plus 12 bytes of x, y, z per
sample) plus one chunk; ``.cwa.gz`` is decompressed twice as a stream instead of held in memory.

Timing follows the reference converter's rule: a block starts at
``t0 = RTC + fraction - timestampOffset / fs`` and ends at ``t1 = t0 + sampleCount / fs``; when
``t0`` lies within 1 s of the previous block's ``t1`` the block starts at that ``t1`` instead, so
consecutive blocks join without jitter while each block still spans its own measured duration.
Blocks are applied in file order and earlier data wins: samples of a later session (or a repeated
block) whose time an earlier part of the file already covers are dropped and counted, never
written over it; the rest is ordered by time, so a recording restarted in the same file becomes
a gap. Sample times come out strictly increasing.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from harnet.errors import InputError
from harnet.io.recording import Recording

from harnet.io.cwa_format import (  # noqa: F401 (BLOCK, HEADER and the timestamps are public here too)
    ACCEL_FIRST_6AXIS,
    BLOCK,
    BLOCK_DTYPE,
    CHUNK_BLOCKS,
    FORMATS,
    HEADER,
    block_checksum_ok,
    decode_int16,
    decode_packed,
    pack_timestamp,
    range_from_code,
    rate_from_code,
    unpack_timestamp,
)


@dataclass
class _Blocks:
    """Per-block header facts from pass 1 (valid AX blocks only, file order)."""

    index: np.ndarray  # block number in the data area
    fmt: np.ndarray  # axes byte
    count: np.ndarray
    scale: np.ndarray  # g per LSB for int16 blocks
    t0: np.ndarray  # int64 ns, own start
    t1: np.ndarray  # int64 ns, own end
    rate_code: np.ndarray
    fs: np.ndarray
    sequence: np.ndarray
    session: np.ndarray


def _open(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _read_exact(f: BinaryIO, n: int) -> bytes:
    parts = []
    while n > 0:
        b = f.read(n)
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def _iter_chunks(path: Path, chunk_blocks: int, report: Callable[[int], None] | None = None) -> Iterator[tuple[int, np.ndarray, int]]:
    """Yield (first block number, (k, 512) uint8 blocks, trailing partial bytes at EOF).
    ``report(bytes of the file read so far)`` is called after each chunk (compressed bytes for .gz)."""
    with open(path, "rb") as raw, (gzip.GzipFile(fileobj=raw) if path.name.lower().endswith(".gz") else raw) as f:
        _read_exact(f, HEADER)
        first = 0
        while True:
            buf = _read_exact(f, chunk_blocks * BLOCK)
            if report is not None:
                report(raw.tell())
            if not buf:
                return
            k, rest = divmod(len(buf), BLOCK)
            if k:
                yield first, np.frombuffer(buf, dtype=np.uint8, count=k * BLOCK).reshape(k, BLOCK), 0
            first += k
            if rest:
                yield first, np.empty((0, BLOCK), np.uint8), rest
                return


def _bad_file(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}")


def read_header(path: Path) -> dict:
    """Check the 'MD' header and return its fields (device id, session id, rate code, ...)."""
    try:
        with _open(path) as f:
            head = _read_exact(f, HEADER)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise _bad_file(path, f"cannot be decompressed ({exc}); check the file is a complete .cwa.gz, or re-download it") from None
    if not head:
        raise _bad_file(path, "is empty (0 bytes); re-copy the recording from the device")
    if head[:2] != b"MD" or len(head) < 64:
        raise _bad_file(path, "is not an Axivity CWA file (no 'MD' header block); check the file type or re-export it with OmGui")
    h = np.frombuffer(head.ljust(HEADER, b"\xff"), dtype=np.uint8)
    length = int(h[2:4].view("<u2")[0])
    device = int(h[5:7].view("<u2")[0])
    upper = int(h[11:13].view("<u2")[0])
    device_id = device if upper in (0, 0xFFFF) else (upper << 16) | device
    return {
        "header_length": length,
        "hardware_type": int(h[4]),
        "DeviceID": device_id,
        "SessionID": int(h[7:11].view("<u4")[0]),
        "rate_code": int(h[36]),
        "short": len(head) < HEADER,
    }


def _pass1(path: Path, chunk_blocks: int, use_fraction: bool, report: Callable[[int], None] | None = None) -> tuple[_Blocks, dict]:
    stats = {"blocks": 0, "checksum_errors": 0, "invalid": 0, "other": 0, "partial_bytes": 0}
    keep: list[dict[str, np.ndarray]] = []
    for first, blocks, partial in _iter_chunks(path, chunk_blocks, report):
        if partial:
            stats["partial_bytes"] = partial
            continue
        k = len(blocks)
        stats["blocks"] += k
        hdr = blocks[:, :30].copy().view(BLOCK_DTYPE).reshape(k)
        is_ax = hdr["magic"] == b"AX"
        stats["other"] += int(k - is_ax.sum())
        csum = block_checksum_ok(blocks)
        stats["checksum_errors"] += int((is_ax & ~csum).sum())
        fmt = hdr["axes"]
        cap = np.select([fmt == 0x30, fmt == 0x32, fmt == 0x62], [120, 80, 40], 0)
        code = hdr["rate"].astype(np.int64)
        offset = hdr["offset"].astype(np.int64)
        old = code == 0  # old format: the rate is stored in timestampOffset
        fs = np.where(old, offset.astype(np.float64), rate_from_code(code))
        rtc, rtc_ok = unpack_timestamp(hdr["timestamp"])
        count = hdr["count"].astype(np.int64)
        valid = (
            is_ax
            & csum
            & (hdr["length"] == 508)
            & (cap > 0)
            & (count >= 1)
            & (count <= cap)
            & (fs > 0)
            & (fs <= 3200)
            & rtc_ok
        )
        stats["invalid"] += int((is_ax & csum & ~valid).sum())
        if not valid.any():
            continue
        sel = np.flatnonzero(valid)
        fs_s = fs[sel]
        off = np.where(old[sel], 0, offset[sel]).astype(np.float64)
        frac = hdr["fractional"][sel].astype(np.int64)
        has_frac = ((frac & 0x8000) != 0) & use_fraction
        frac16 = np.where(has_frac, (frac & 0x7FFF) << 1, 0)  # fraction of a second in 1/65536
        # Firmware that stores a fraction also shifts timestampOffset back by the whole samples
        # the fraction spans, so that readers ignoring the fraction stay within a sample; undo it.
        off += np.floor(frac16 * fs_s / 65536.0)
        t0 = rtc[sel] + np.rint(frac16 * (1e9 / 65536) - off * 1e9 / fs_s).astype(np.int64)
        t1 = t0 + np.rint(count[sel] * 1e9 / fs_s).astype(np.int64)
        scale = 1.0 / np.left_shift(1, 8 + ((hdr["light"][sel].astype(np.int64) >> 13) & 7)).astype(np.float64)
        keep.append(
            {
                "index": sel + first,
                "fmt": fmt[sel],
                "count": count[sel],
                "scale": scale,
                "t0": t0,
                "t1": t1,
                "rate_code": code[sel],
                "fs": fs_s,
                "sequence": hdr["sequence"][sel].astype(np.int64),
                "session": hdr["session"][sel].astype(np.int64),
            }
        )
    fields = _Blocks.__dataclass_fields__
    if keep:
        cat = {name: np.concatenate([d[name] for d in keep]) for name in fields}
    else:
        cat = {name: np.empty(0, np.int64) for name in fields}
    return _Blocks(**cat), stats


def _sample_times(t0: np.ndarray, span: np.ndarray, count: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Sample i of a block: t0 + round(i * span / count); shapes broadcast (blocks, samples)."""
    return t0 + np.rint(i * (span / count)).astype(np.int64)


MAX_OVERLAPPING_RUNS = 10_000


def _resolve_overlaps(
    path: Path,
    join: np.ndarray,
    first_t: np.ndarray,
    last_t: np.ndarray,
    start: np.ndarray,
    span: np.ndarray,
    count: np.ndarray,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Earlier data wins: samples of a run (joined blocks, file order) that fall inside the time
    extent of an earlier run are dropped. Returns keep masks of partly kept blocks and the kept
    count of every block."""
    kept = count.copy()
    masks: dict[int, np.ndarray] = {}
    run_start = np.flatnonzero(~join)
    run_start[0] = 0
    run_end = np.append(run_start[1:], len(join))
    r_first = first_t[run_start]
    r_last = np.maximum.reduceat(last_t, run_start)
    srt = np.argsort(r_first, kind="stable")
    prev_max = np.maximum.accumulate(r_last[srt])
    if not np.any(r_first[srt][1:] <= prev_max[:-1]):
        return masks, kept
    runs = np.arange(len(run_start))  # file order
    if len(runs) > MAX_OVERLAPPING_RUNS:
        raise _bad_file(
            path,
            f"has {len(runs)} separate stretches of time, some overlapping: its timestamps are erratic "
            "(damaged file or clock); re-download it with OmGui or check the device",
        )
    cov_s = np.empty(0, np.int64)  # covered time: sorted disjoint [cov_s, cov_e] intervals
    cov_e = np.empty(0, np.int64)
    for r in runs:
        blocks = np.arange(run_start[r], run_end[r])
        if len(cov_s):
            j = np.searchsorted(cov_s, last_t[blocks], side="right") - 1
            jj = np.maximum(j, 0)
            touch = (j >= 0) & (cov_e[jj] >= first_t[blocks])
            inside = touch & (cov_s[jj] <= first_t[blocks]) & (cov_e[jj] >= last_t[blocks])
            kept[blocks[inside]] = 0
            for k in blocks[touch & ~inside]:
                t = _sample_times(start[k], span[k], count[k], np.arange(count[k]))
                idx = np.searchsorted(cov_s, t, side="right") - 1
                m = ~((idx >= 0) & (t <= cov_e[np.maximum(idx, 0)]))
                masks[int(k)] = m
                kept[k] = int(m.sum())
        # add this run's extent to the covered time
        a, z = r_first[r], r_last[r]
        lo = int(np.searchsorted(cov_e, a, side="left"))
        hi = int(np.searchsorted(cov_s, z, side="right"))
        if hi > lo:
            a, z = min(a, cov_s[lo]), max(z, cov_e[hi - 1])
        cov_s = np.concatenate((cov_s[:lo], [a], cov_s[hi:]))
        cov_e = np.concatenate((cov_e[:lo], [z], cov_e[hi:]))
    return masks, kept


@dataclass
class CwaPlan:
    """What pass 1 of the CWA reader knows before any sample is decoded: the valid blocks, their
    sample times, which samples are kept, where each block's samples land in the output (in time
    order), the sample count and the reader's info. ``in_file_order``: the output is the kept
    blocks in file order, so the file can be decoded chunk by chunk straight into time order."""

    path: Path
    chunk_blocks: int
    b: _Blocks
    start: np.ndarray
    span: np.ndarray
    kept: np.ndarray
    keep_mask: dict
    blk_dest: np.ndarray
    n_total: int
    in_file_order: bool
    info: dict


def plan_cwa(path: str | os.PathLike, *, use_fraction: bool = True, chunk_blocks: int = CHUNK_BLOCKS,
             report: Callable[[int], None] | None = None) -> CwaPlan:
    """Pass 1 of :func:`read_cwa` (block headers only; ``report(bytes read)``): see :class:`CwaPlan`."""
    path = Path(path)
    hdr = read_header(path)
    warnings: list[str] = []
    if hdr["short"]:
        raise _bad_file(path, "ends inside its 1024-byte header: no data blocks; re-copy the recording from the device")
    if hdr["header_length"] != HEADER - 4:
        warnings.append(f"header length field is {hdr['header_length']}, expected 1020; assumed a 1024-byte header")
    try:
        b, stats = _pass1(path, chunk_blocks, use_fraction, report)
    except (OSError, EOFError, zlib.error) as exc:
        raise _bad_file(path, f"cannot be read to the end ({exc}); the file is damaged or incomplete; re-copy it") from None
    if stats["partial_bytes"]:
        warnings.append(
            f"file ends inside a block ({stats['partial_bytes']} of 512 bytes; truncated copy?): read the "
            f"{stats['blocks']} whole blocks only"
        )
    read_errors = stats["checksum_errors"] + stats["invalid"]
    if read_errors:
        warnings.append(
            f"skipped {read_errors} damaged data block(s) ({stats['checksum_errors']} bad checksum, "
            f"{stats['invalid']} impossible header fields)"
        )
    nb = len(b.index)
    if nb == 0:
        raise _bad_file(
            path,
            f"holds no readable data blocks ({stats['blocks']} blocks, {read_errors} damaged); "
            "the recording is empty or corrupt: re-download it from the device with OmGui",
        )

    # --- block times, in file order: a block joins the previous one when its own start lies
    # within 1 s of the previous end (the reference converter's rule); runs of joined blocks
    # are sessions whose sample times increase strictly.
    t0, t1, cs = b.t0, b.t1, b.count
    start = t0.copy()
    join = np.zeros(nb, bool)
    if nb > 1:
        gap = t0[1:] - t1[:-1]
        new_span = t1[1:] - t1[:-1]
        own_span = t1[1:] - t0[1:]
        join[1:] = (np.abs(gap) < 1_000_000_000) & (new_span > own_span // 2) & (new_span < 2 * own_span)
        start[1:] = np.where(join[1:], t1[:-1], t0[1:])
    span = (t1 - start).astype(np.float64)
    first_t = start
    last_t = _sample_times(start, span, cs, cs - 1)
    keep_mask, kept = _resolve_overlaps(path, join, first_t, last_t, start, span, cs)
    dropped = int(cs.sum() - kept.sum())
    if dropped:
        warnings.append(
            f"dropped {dropped} sample(s) whose time an earlier part of the file already covers "
            "(overlapping sessions, repeated blocks or a clock set back)"
        )
    # output order: by the time of each block's first kept sample (file order breaks ties)
    key = first_t.copy()
    for j, m in keep_mask.items():
        if m.any():
            key[j] = _sample_times(start[j], span[j], cs[j], np.flatnonzero(m)[:1])[0]
    live = np.flatnonzero(kept > 0)
    order = live[np.argsort(key[live], kind="stable")]
    in_file_order = not np.any(np.diff(order) < 0)
    if not in_file_order:
        warnings.append("data blocks were out of time order (recording restarted in the same file); sorted by time")
    blk_dest = np.zeros(nb, np.int64)
    blk_dest[order] = np.concatenate(([0], np.cumsum(kept[order])[:-1]))
    n_total = int(kept.sum())
    restarts = int(np.sum(np.diff(b.sequence) < 0) + np.sum(np.diff(b.session) != 0)) if nb > 1 else 0
    codes, code_counts = np.unique(b.rate_code, return_counts=True)
    main_code = int(codes[np.argmax(code_counts)])
    fs_main = float(b.fs[np.argmax(b.rate_code == main_code)])
    span_total = float(span[kept > 0].sum()) / 1e9
    info: dict = {
        "Filename": str(path),
        "Filesize(MB)": round(path.stat().st_size / 1e6, 1),
        "Device": "Axivity",
        "DeviceID": hdr["DeviceID"],
        "SessionID": hdr["SessionID"],
        "ReadOK": int(read_errors == 0),
        "ReadErrors": read_errors,
        "ChecksumErrors": stats["checksum_errors"],
        "SampleRate": fs_main,
        "SampleRateEffective": float(cs[kept > 0].sum() / span_total) if span_total > 0 else None,
        "AccelRange": int(range_from_code(main_code)) if main_code else None,
        "NumBlocks": nb,
        "NumDroppedOverlap": dropped,
        "NumSessionRestarts": restarts,
        "Warnings": warnings,
    }
    # pass 2 reads only the blocks' place, format, count and scale: free the rest (a month at
    # 100 Hz has 2 million blocks)
    # in the narrowest exact types (a block holds at most 480 samples; its scale is a power of 2,
    # exact in float32, which is what the int16 decoder multiplies in): 37 bytes a block, not 64
    none = np.empty(0, np.int64)
    small = np.int16 if cs.max(initial=0) < 2**15 else np.int64
    b = _Blocks(b.index.astype(np.int32 if nb < 2**31 else np.int64), b.fmt.astype(np.uint8), cs.astype(small),
                b.scale.astype(np.float32), none, none, none, none, none, none)
    kept = kept.astype(small)
    del t0, t1, cs, join, first_t, last_t, key, live, order
    return CwaPlan(path, chunk_blocks, b, start, span, kept, keep_mask, blk_dest, n_total, in_file_order, info)


def decoded_chunks(plan: CwaPlan, report: Callable[[int], None] | None = None) -> Iterator[list[tuple[object, np.ndarray, np.ndarray]]]:
    """Pass 2: per chunk of the file, the decoded samples as ``[(dest, xyz (k, 3), times (k,)), ...]``
    (one entry per sample format present): ``dest`` is the output position of the first sample
    (an int, the samples land one after another) or an index array."""
    from harnet.kernels import sample_times

    b, start, span, kept, keep_mask, blk_dest = plan.b, plan.start, plan.span, plan.kept, plan.keep_mask, plan.blk_dest
    cs = b.count
    nb = len(b.index)
    partial_blocks = np.fromiter(keep_mask, np.int64, len(keep_mask))
    pos = 0  # position in b (valid blocks are in file order)
    try:
        for first, blocks, partial in _iter_chunks(plan.path, plan.chunk_blocks, report):
            if partial or pos >= nb:
                continue
            end = int(np.searchsorted(b.index, first + len(blocks), side="left"))
            if end == pos:
                continue
            sl = slice(pos, end)
            local = b.index[sl] - first
            out: list[tuple[object, np.ndarray, np.ndarray]] = []
            for fmt, (kind, cap) in FORMATS.items():
                m = (b.fmt[sl] == fmt) & (kept[sl] > 0)
                if not m.any():
                    continue
                rows = np.flatnonzero(m) + pos
                data = np.ascontiguousarray(blocks[local[m], 30:510])
                if kind == "packed":
                    vals = decode_packed(data.view("<u4"))
                elif kind == "int16x3":
                    vals = decode_int16(data.view("<i2"), 3, 0, b.scale[rows])
                else:
                    vals = decode_int16(data.view("<i2"), 6, ACCEL_FIRST_6AXIS, b.scale[rows])
                i = np.arange(cap)[None, :]
                cnt = cs[rows][:, None]
                times = np.empty((len(rows), cap), np.int64)
                sample_times(start[rows], span[rows], cs[rows], cap, times)  # _sample_times, compiled
                d0 = int(blk_dest[rows[0]])
                if (
                    not keep_mask
                    and np.all(cs[rows] == cap)
                    and np.array_equal(blk_dest[rows] - d0, np.arange(len(rows)) * cap)
                ):  # the usual case: full blocks landing one after another
                    out.append((d0, vals.reshape(-1, 3), times.reshape(-1)))
                    continue
                mask = i < cnt
                if keep_mask:  # partly covered blocks: keep only the new samples
                    for r in np.flatnonzero(np.isin(rows, partial_blocks)):
                        mask[r, : cs[rows[r]]] &= keep_mask[int(rows[r])]
                    rank = np.cumsum(mask, axis=1) - 1
                else:
                    rank = i
                dest = (blk_dest[rows][:, None] + rank)[mask]
                out.append((dest, vals[mask], times[mask]))
            pos = end
            if out:
                yield out
    except (OSError, EOFError, zlib.error) as exc:
        raise _bad_file(plan.path, f"cannot be read to the end ({exc}); the file is damaged or incomplete; re-copy it") from None


def read_cwa(path: str | os.PathLike, *, use_fraction: bool = True, chunk_blocks: int = CHUNK_BLOCKS,
             progress: Callable[[str, int, int], None] | None = None) -> Recording:
    """Read an Axivity ``.cwa`` or ``.cwa.gz`` file: accelerometer samples in g, device-local time.

    Blocks with a wrong checksum or impossible fields are skipped and counted in
    ``info["ReadErrors"]``; a truncated last block is ignored with a warning; a recording
    restarted inside the file becomes a gap; samples whose time earlier data in the file
    already covers are dropped and counted in ``info["NumDroppedOverlap"]``.
    ``use_fraction=False`` ignores the fractional-second timestamps, as actipy does (times then
    agree with actipy within 1 ms; with fractions they are smoother and differ by < 1 sample).
    ``progress("read", done, total)`` reports bytes as the file is read (twice: two passes).
    """
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    report = (lambda k: None) if progress is None else (lambda k: lambda pos: progress("read", k * size + pos, 2 * size))
    plan = plan_cwa(path, use_fraction=use_fraction, chunk_blocks=chunk_blocks, report=report(0))
    time_out = np.empty(plan.n_total, dtype=np.int64)
    xyz_out = np.empty((plan.n_total, 3), dtype=np.float32)
    # --- pass 2: decode samples straight into place
    for parts in decoded_chunks(plan, report(1)):
        for dest, vals, times in parts:
            if isinstance(dest, int):
                xyz_out[dest : dest + len(vals)] = vals
                time_out[dest : dest + len(vals)] = times
            else:
                xyz_out[dest] = vals
                time_out[dest] = times
    # a block straddling a whole shorter session can still interleave: sort samples (rare)
    from harnet.io.recording import strictly_increasing

    time_out, xyz_out, n_back, n_dup = strictly_increasing(time_out, xyz_out)
    info = plan.info
    info["NumDroppedOverlap"] += n_dup
    if n_back:
        info["Warnings"].append(f"sample times went backwards {n_back} time(s) across blocks; samples sorted by time")
    rec = Recording(time_out.view("datetime64[ns]"), xyz_out, info)
    rec.info["NumSamples"] = len(rec)
    return rec
