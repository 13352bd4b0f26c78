"""harnet prepare: labelled recordings -> windows (generic table, HAPT, Capture-24)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from harnet.errors import InputError
from harnet.train.datasets import HAPT_LABELS, prepare_capture24, prepare_hapt, prepare_table
from harnet.train.prepare import WindowOptions, WindowSet, label_windows

from conftest import shared_path

NS = 1_000_000_000


def _recording(seconds: float, fs: float, labels_per_sec: list[str | None], start="2024-03-01 10:00:00", phase=0.0):
    """A raw recording at ``fs`` Hz: x = a 1 Hz sine, y = 0.5, z = 1 (g); labels per second."""
    n = int(round(seconds * fs))
    t = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) / fs, unit="s")
    s = np.arange(n) / fs
    lab = [labels_per_sec[int(v)] for v in s]
    return pd.DataFrame({"time": t, "x": np.sin(2 * np.pi * s + phase), "y": 0.5, "z": 1.0, "label": lab})


def test_table_windows_majority_and_drop_counts(tmp_path):
    # 40 s at 50 Hz: seconds 0-9 walk; 10-19 walk except 1 s sit (90 % walk: kept at 0.9);
    # 20-29 half sit / half walk (mixed, dropped); 30-39 unlabelled (dropped)
    per_sec = ["walk"] * 10 + ["walk"] * 9 + ["sit"] + ["sit"] * 5 + ["walk"] * 5 + [None] * 10
    a = _recording(40, 50, per_sec)
    a["participant"] = "A"
    b = _recording(40, 50, ["sit"] * 40)
    b["participant"] = "B"
    b = b.drop(index=range(1000, 1100))  # a 2-s hole at 20-22 s: the window holding it is incomplete
    path = tmp_path / "table.csv"
    pd.concat([a, b]).to_csv(path, index=False)

    ws = prepare_table(path, WindowOptions(window_sec=10, min_agreement=0.9))
    assert ws.X.dtype == np.float32 and ws.X.shape[1:] == (3, 300)
    got = list(zip(ws.pid, ws.time.astype("datetime64[s]").astype(str), ws.y))
    assert got == [
        ("A", "2024-03-01T10:00:00", "walk"),
        ("A", "2024-03-01T10:00:10", "walk"),
        ("B", "2024-03-01T10:00:00", "sit"),
        ("B", "2024-03-01T10:00:10", "sit"),
        ("B", "2024-03-01T10:00:30", "sit"),
    ]
    assert ws.meta["counts"] == {"candidates": 8, "kept": 5, "incomplete": 1, "unlabelled": 1, "mixed": 1}
    # resampled by timestamps onto 30 Hz: x is the 1 Hz sine at t = k/30 (linear interpolation of 50 Hz)
    k = np.arange(300) / 30.0
    np.testing.assert_allclose(ws.X[0, 0], np.sin(2 * np.pi * k), atol=4e-3)
    np.testing.assert_allclose(ws.X[0, 1:], np.broadcast_to([[0.5], [1.0]], (2, 300)), atol=1e-6)
    # a stricter threshold drops the 90 % window too
    strict = prepare_table(path, WindowOptions(window_sec=10, min_agreement=0.95))
    assert strict.meta["counts"]["mixed"] == 2 and len(strict) == 4


def test_table_sample_index_units_and_overlap(tmp_path):
    df = _recording(30, 25, ["lie"] * 30).drop(columns="time")
    df[["x", "y", "z"]] *= 1000.0  # mg
    path = tmp_path / "one.parquet"
    df.to_parquet(path)
    ws = prepare_table(path, WindowOptions(window_sec=5, step_sec=2.5), time_col=None, sample_rate=25,
                       units="mg", pid_col=None, pid="P7")
    assert ws.X.shape[2] == 150 and set(ws.pid) == {"P7"}
    starts = (ws.time - ws.time[0]) / np.timedelta64(1, "ms")
    np.testing.assert_array_equal(starts, np.arange(len(ws)) * 2500)  # windows every 2.5 s
    np.testing.assert_allclose(ws.X[:, 2], 1.0, atol=1e-6)  # mg -> g
    assert len(np.unique(ws.segments())) == 1  # all contiguous


def test_label_windows_counts_exactly():
    t = np.arange(20, dtype=np.int64) * NS // 2  # 2 Hz
    codes = np.array([0] * 8 + [1] * 2 + [-1] * 5 + [1] * 5)
    lab, share, unl = label_windows(t, codes, np.array([0, 5 * NS]), 5 * NS, 2)
    np.testing.assert_array_equal(lab, [0, 1])
    np.testing.assert_allclose(share, [0.8, 0.5])
    np.testing.assert_allclose(unl, [0.0, 0.5])


def test_save_load_roundtrip_without_pickle(tmp_path):
    df = _recording(20, 30, ["a"] * 10 + ["b"] * 10)
    df["participant"] = "x"
    df.to_csv(tmp_path / "t.csv", index=False)
    ws = prepare_table(tmp_path / "t.csv", WindowOptions(window_sec=5))
    p = ws.save(tmp_path / "w.npz")
    with np.load(p, allow_pickle=False) as z:
        assert set(z.files) >= {"X", "y", "pid", "recording", "time", "meta"}
    back = WindowSet.load(p)
    np.testing.assert_array_equal(back.X, ws.X)
    assert back.y.tolist() == ["a", "a", "b", "b"] and back.labels == ("a", "b")
    assert back.meta["window_sec"] == 5 and back.meta["preprocessing"]["resample"] == "linear"
    with pytest.raises(InputError, match="harnet prepare"):
        WindowSet.load(tmp_path / "missing.npz")


def _capture24_folder(tmp_path):
    root = tmp_path / "capture24"
    root.mkdir()
    anns = {
        "P001": ["7030 sleeping;MET 0.95"] * 20 + ["home activity;walking;17150 walking household without observable loads;MET 2.0"] * 20,
        "P002": ["occupation;office and administrative support;11580 office/computer work general;MET 1.5"] * 30
        + [None] * 10,
    }
    for pid, per_sec in anns.items():
        df = _recording(40, 100, per_sec, start="2016-11-13 02:18:00")
        df = df.rename(columns={"label": "annotation"})
        df["time"] = df["time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        with gzip.open(root / f"{pid}.csv.gz", "wt") as f:
            df[["time", "x", "y", "z", "annotation"]].to_csv(f, index=False)
    (root / "notes.csv.gz").write_bytes(b"")  # not a participant file: ignored
    dictionary = tmp_path / "annotation-label-dictionary.csv"
    pd.DataFrame({
        "annotation": ["7030 sleeping;MET 0.95",
                       "home activity;walking;17150 walking household without observable loads;MET 2.0",
                       "occupation;office and administrative support;11580 office/computer work general;MET 1.5"],
        "label:Walmsley2020": ["sleep", "light", "sedentary"],
        "label:WillettsSpecific2018": ["sleep", "walking", "sitting"],
    }).to_csv(dictionary, index=False)
    return root, dictionary


def test_capture24_layout(tmp_path):
    root, dictionary = _capture24_folder(tmp_path)
    ws = prepare_capture24(root, dictionary, "label:Walmsley2020", WindowOptions(window_sec=10))
    assert sorted(set(ws.pid)) == ["P001", "P002"]
    assert ws.y[ws.pid == "P001"].tolist() == ["sleep", "sleep", "light", "light"]
    assert ws.y[ws.pid == "P002"].tolist() == ["sedentary"] * 3
    assert ws.meta["counts"]["unlabelled"] == 1 and ws.meta["label_column"] == "label:Walmsley2020"
    assert ws.time[0] == np.datetime64("2016-11-13T02:18:00")
    other = prepare_capture24(root, dictionary, "label:WillettsSpecific2018", WindowOptions(window_sec=10))
    assert set(other.y) == {"sleep", "walking", "sitting"}
    with pytest.raises(InputError, match="label:Nope"):
        prepare_capture24(root, dictionary, "label:Nope")


@pytest.mark.shared_data
def test_hapt_real_file():
    path = shared_path("labelled/hapt_uci_raw_50hz.parquet")
    ws = prepare_hapt(path, WindowOptions(window_sec=10))
    assert len(np.unique(ws.pid)) == 30
    assert set(ws.y) == set(HAPT_LABELS.values())
    assert ws.X.shape[1:] == (3, 300) and np.isfinite(ws.X).all()
    c = ws.meta["counts"]
    assert c["kept"] == len(ws) and c["kept"] + c["incomplete"] + c["unlabelled"] + c["mixed"] == c["candidates"]
    # check one window against the raw 50 Hz samples: time = sequence / 50 s, linear interpolation
    raw = pd.read_parquet(path, filters=[("user", "=", 1), ("recording", "=", 0)])
    w = int(np.flatnonzero(ws.recording == "1/0")[0])
    t0 = (ws.time[w] - np.datetime64("1970-01-01")) / np.timedelta64(1, "s")
    tq = t0 + np.arange(300) / 30.0
    expect = np.interp(tq, raw["sequence"].to_numpy() / 50.0, raw["acc_x"].to_numpy())
    np.testing.assert_allclose(ws.X[w, 0], expect, atol=1e-5)
    lab = raw["label"].to_numpy()[(raw["sequence"] >= t0 * 50) & (raw["sequence"] < (t0 + 10) * 50)]
    assert (lab == {v: k for k, v in HAPT_LABELS.items()}[ws.y[w]]).mean() >= 0.9
