"""harnet's own GENEActiv reader (harnet.io.geneactiv): values, times, damage, truncation,
streaming; files written by tests/_devicefiles.py (no fixtures)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from _devicefiles import GAIN, OFFSET, geneactiv_counts, moving_xyz, write_geneactiv
from harnet.errors import InputError
from harnet.io import read_device
from harnet.io.blocks import collect
from harnet.io.geneactiv import GeneactivReader, read_geneactiv

START = "2024-03-01 10:00:00"
NS = 1_000_000_000


def _want(xyz):
    c = geneactiv_counts(xyz)
    return ((c * 100.0 - np.array(OFFSET)) / np.array(GAIN)).astype(np.float32)


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_round_trip_values_times_and_info(tmp_path, eol):
    xyz = moving_xyz(300 * 12, 100)
    path = write_geneactiv(tmp_path / "a.bin", START, xyz, 100.0, eol=eol)
    rec = read_device(path)
    assert len(rec) == len(xyz)
    np.testing.assert_array_equal(rec.xyz, _want(xyz))
    t0 = np.datetime64(START, "ns").astype(np.int64)
    np.testing.assert_array_equal(rec.time.view(np.int64), t0 + np.arange(len(xyz)) * (NS // 100))
    i = rec.info
    assert i["Device"] == "GENEActiv" and i["DeviceID"] == "012967" and i["SampleRate"] == 100.0
    assert i["NumPages"] == 12 and i["ReadErrors"] == 0 and i["ReadOK"] == 1 and i["Warnings"] == []
    assert i["TimeZone"] == "GMT +01:00" and i["NumGaps"] == 0


def test_page_frequency_times_and_header_rate(tmp_path):
    """Each page's own frequency times its samples; the header's is the nominal rate."""
    xyz = moving_xyz(300 * 4, 85.7)
    path = write_geneactiv(tmp_path / "f.bin", START, xyz, 85.7)
    rec = read_geneactiv(path)
    d = np.diff(rec.time.view(np.int64)[:300])
    assert np.abs(d - NS / 85.7).max() <= 1 and rec.info["SampleRate"] == 85.7
    path = write_geneactiv(tmp_path / "g.bin", START, xyz, 85.7, page_fs=86.0)
    assert any("differ from the header" in w for w in read_geneactiv(path).info["Warnings"])


def _pages(raw: bytes) -> list[int]:
    out, i = [], raw.find(b"Recorded Data")
    while i >= 0:
        out.append(i)
        i = raw.find(b"Recorded Data", i + 1)
    return out


def test_truncated_file_keeps_whole_pages_and_counts_the_rest(tmp_path):
    xyz = moving_xyz(300 * 10, 100)
    raw = write_geneactiv(tmp_path / "a.bin", START, xyz, 100.0, pages_in_header=500).read_bytes()
    starts = _pages(raw)
    for cut in (starts[7] + 1000, starts[7] + 40):  # inside the payload, inside the page header
        p = tmp_path / f"t{cut}.bin"
        p.write_bytes(raw[:cut])
        rec = read_device(p)
        assert len(rec) == 7 * 300
        np.testing.assert_array_equal(rec.xyz, _want(xyz[:2100]))
        i = rec.info
        assert i["NumPagesTruncated"] == 1 and i["ReadErrors"] == 1 and i["NumPagesMissing"] == 500 - 8
        w = " | ".join(i["Warnings"])
        assert "ends inside a page" in w and "page count differs" in w


def test_damaged_pages_are_skipped_and_counted(tmp_path):
    xyz = moving_xyz(300 * 10, 100)
    raw = bytearray(write_geneactiv(tmp_path / "a.bin", START, xyz, 100.0).read_bytes())
    s = _pages(bytes(raw))
    hex2 = raw.index(b"\r\n", raw.index(b"Measurement Frequency", s[2])) + 2
    raw[hex2 + 100] = ord("G")  # a non-hex digit in page 2
    t5 = raw.index(b"Page Time:", s[5]) + 10
    raw[t5 + 5 : t5 + 7] = b"13"  # month 13 in page 5
    f8 = raw.index(b"Measurement Frequency:", s[8])
    raw[f8 + 22 : f8 + 25] = b"abc"  # page 8's frequency is not a number
    h9 = raw.index(b"\r\n", raw.index(b"Measurement Frequency", s[9])) + 2
    del raw[h9 + 1000 : h9 + 1010]  # page 9's payload 10 digits short
    p = tmp_path / "d.bin"
    p.write_bytes(bytes(raw))
    rec = read_device(p)
    keep = [0, 1, 3, 4, 6, 7]
    assert len(rec) == 300 * len(keep)
    np.testing.assert_array_equal(rec.xyz, _want(xyz.reshape(10, 300, 3)[keep].reshape(-1, 3)))
    i = rec.info
    assert i["NumPagesDamaged"] == 4 and i["ReadErrors"] == 4 and i["ReadOK"] == 0
    w = " | ".join(i["Warnings"])
    assert "skipped 4 damaged page(s)" in w and "hex digits" in w and "page time" in w and "frequency" in w


def test_lines_between_pages_are_reported(tmp_path):
    xyz = moving_xyz(300 * 3, 100)
    raw = write_geneactiv(tmp_path / "a.bin", START, xyz, 100.0).read_bytes()
    s = _pages(raw)
    p = tmp_path / "s.bin"
    p.write_bytes(raw[: s[1]] + b"junk line\r\nmore junk\r\n" + raw[s[1] :])
    rec = read_device(p)
    assert len(rec) == 900 and rec.info["ReadOK"] == 0
    assert any("2 line(s) outside any page" in w for w in rec.info["Warnings"])


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda r: b"", "is empty"),
        (lambda r: b"PK\x03\x04" + r[4:], "is a zip archive"),
        (lambda r: b"Hello\r\n" + r, "not a GENEActiv .bin file"),
        (lambda r: r[: r.index(b"Recorded Data")], "not a GENEActiv .bin file"),
        (lambda r: r.replace(b"x gain:25875", b"x gain:wide"), "'x gain' is 'wide'"),
        (lambda r: r.replace(b"y gain:25734", b"y gain:0"), "zero gain"),
        (lambda r: r.replace(b"z offset:-3056\r\n", b""), "no 'z offset' line"),
        (lambda r: r.replace(b"Measurement Frequency:100 Hz", b"Measurement Frequency:-5 Hz"), "must be positive"),
        (lambda r: r.replace(b"Recorded Data", b"Recorded Date"), "not a GENEActiv"),
        (lambda r: r[: r.index(b"Recorded Data")] + b"Recorded Data\r\n" * 3, "holds no readable pages"),
    ],
)
def test_wrong_header_and_no_pages_are_refused(tmp_path, mutate, match):
    raw = write_geneactiv(tmp_path / "a.bin", START, moving_xyz(600, 100), 100.0).read_bytes()
    p = tmp_path / "w.bin"
    p.write_bytes(mutate(raw))
    with pytest.raises(InputError, match=match) as e:
        read_device(p)
    assert "w.bin" in str(e.value) and "\n" not in str(e.value)


def test_streams_in_bounded_blocks_and_memory_is_the_output(tmp_path):
    xyz = moving_xyz(300 * 1200, 100)  # one hour at 100 Hz, 360,000 samples, 4.5 MB of text
    path = write_geneactiv(tmp_path / "h.bin", START, xyz, 100.0)
    reader = GeneactivReader(path, chunk_bytes=1 << 16)
    sizes = [len(b) for b in reader.blocks()]
    assert len(sizes) > 50 and max(sizes) <= ((1 << 16) // 3623 + 1) * 300
    assert sum(sizes) == len(xyz) and reader.info["ReadErrors"] == 0
    whole = read_geneactiv(path)
    t, v = collect(GeneactivReader(path, chunk_bytes=1 << 16).blocks(), len(xyz))
    np.testing.assert_array_equal(t, whole.time.view(np.int64))
    np.testing.assert_array_equal(v, whole.xyz)
    out_bytes = len(xyz) * (8 + 12)
    tracemalloc.start()
    read_geneactiv(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the output (with the page-count bound's spare < 1 %) plus one 2 MiB chunk's work space
    assert peak < 1.05 * out_bytes + 12 * (2 << 20), (peak, out_bytes)


def test_unreadable_page_count_is_ignored_with_a_warning(tmp_path):
    raw = write_geneactiv(tmp_path / "a.bin", START, moving_xyz(600, 100), 100.0).read_bytes()
    p = tmp_path / "n.bin"
    p.write_bytes(raw.replace(b"Number of Pages:2", b"Number of Pages:two"))
    rec = read_device(p)
    assert len(rec) == 600 and rec.info["NumPagesHeader"] is None
    assert any("'Number of Pages'" in w for w in rec.info["Warnings"])


def test_a_file_whose_every_page_fails_its_header_checks_is_refused_in_one_line(tmp_path):
    """Found by tests/test_fuzz_readers.py: with no page left before the payload check, a reshape
    of zero pages raised ValueError (a traceback) instead of the reader's one-line refusal."""
    xyz = moving_xyz(300, 100)
    raw = bytearray(write_geneactiv(tmp_path / "a.bin", START, xyz, 100.0).read_bytes())
    f = raw.index(b"Measurement Frequency:", _pages(bytes(raw))[0])
    raw[f + 22 : f + 25] = b"abc"  # the only page's frequency is not a number
    p = tmp_path / "d.bin"
    p.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="no readable pages") as ei:
        read_device(p)
    assert "\n" not in str(ei.value)
