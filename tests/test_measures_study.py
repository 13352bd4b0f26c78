"""The study tables from scripted per-window tables: minute/hour tables (DST days), a day
without wear, bouts and sleep in the daily table, MAD from raw samples."""

import numpy as np
import pandas as pd
import pytest

from harnet.io.recording import Recording
from harnet.measures.intensity import band_codes, parse_cutpoints
from harnet.measures.study import study_measures
from harnet.measures.activity import summarize
from harnet.signal.windows import iter_chunks

LABELS = ["light", "moderate-vigorous", "sedentary", "sleep"]
CUT = parse_cutpoints(None)
BANDS = [f"Cut{b}" for b in CUT.bands]


def _table(start, minutes_codes, tz=None, acc_of=None):
    """Per-window (30 s) table from [(minutes, label or None for non-wear)]."""
    lab, acc = [], []
    acc_of = acc_of or {"light": 60.0, "moderate-vigorous": 250.0, "sedentary": 20.0, "sleep": 5.0}
    for m, c in minutes_codes:
        lab += [c] * (2 * m)
        acc += [acc_of.get(c, np.nan) if c else np.nan] * (2 * m)
    n = len(lab)
    t = pd.date_range(start, periods=n, freq="30s", tz=tz)
    wear = np.array([c is not None for c in lab])
    df = pd.DataFrame({
        "time": t, "acc": np.array(acc), "mad": np.array(acc) / 2, "wear": wear, "nonwear": ~wear,
        "label": pd.Categorical(lab, categories=LABELS),
    })
    return df


def _run(df, min_wear=16.0, **kw):
    s = summarize(df, LABELS, 30, min_wear_per_day_hours=min_wear,
                  bands=band_codes(df["acc"].to_numpy(), CUT, df["wear"].to_numpy()), band_names=BANDS, **kw)
    return s, study_measures(df, s, LABELS, 30, CUT, min_wear_per_day_hours=min_wear)


DAY = [(7 * 60, "sleep"), (60, "sedentary"), (30, "moderate-vigorous"), (9 * 60 + 30, "light"),
       (5 * 60, "sedentary"), (60, "sleep")]  # midnight to midnight, 24 h


def test_a_day_without_wear_is_never_valid_and_averages_skip_it():
    df = _table("2024-03-04", DAY * 2 + [(60, None)])  # 2 full days + 1 h of non-wear
    s, st = _run(df, min_wear=0.0)
    assert list(s.daily["DayValid"]) == [True, True, False]
    assert s.overall["NumValidDays"] == 2
    assert s.overall["sleep(hours/day)"] == pytest.approx(8.0)
    # nights: noon to noon; only the one fully worn night reaches the default 16 h of wear
    s, st = _run(df)
    assert list(st.sleep["NightValid"]) == [False, True, False]
    assert st.overall["Sleep/NumValidNights"] == 1 and st.overall["Sleep/SleepTime(hours)"] == 8.0


def test_minute_and_hour_tables_and_daily_enmo():
    df = _table("2024-03-04 06:00", DAY)  # starts at 06:00, 24 h
    s, st = _run(df)
    m, h = st.minutes, st.hours
    assert len(m) == 24 * 60 and len(h) == 24
    assert m["time"].iloc[0] == pd.Timestamp("2024-03-04 06:00")
    assert (m["RecordedTime(min)"] == 1.0).all() and m["WearTime(min)"].sum() == 1440
    for d, day in s.daily.iterrows():
        sel = m["time"].dt.strftime("%Y-%m-%d") == day["Date"]
        w = m.loc[sel, "WearTime(min)"]
        assert (m.loc[sel, "ENMO(mg)"] * w).sum() / w.sum() == pytest.approx(day["ENMO(mg)"])
        assert m.loc[sel, "sleep(min)"].sum() / 60 == pytest.approx(day["sleep(hours)"])
    assert h["moderate-vigorous(min)"].sum() == 30 and h["CutModerate(min)"].sum() == 30
    assert m["MAD(mg)"].iloc[0] == pytest.approx(2.5)
    # adjusted columns fill the unrecorded part of each calendar day from the other day's minutes
    assert s.daily["sleepAdjusted(hours)"].sum() == pytest.approx(16.0)


@pytest.mark.parametrize("day,hours", [("2024-03-31", 23), ("2024-10-27", 25)])
def test_dst_day_in_the_hour_table(day, hours):
    t0 = pd.Timestamp(day, tz="Europe/London")
    n = hours * 120
    t = t0 + pd.to_timedelta(np.arange(n) * 30, unit="s")
    df = pd.DataFrame({"time": t, "acc": np.full(n, 30.0), "mad": np.full(n, 10.0), "wear": True, "nonwear": False,
                       "label": pd.Categorical(["light"] * n, categories=LABELS)})
    s, st = _run(df, min_wear=0)
    assert len(st.hours) == hours and st.hours["time"].is_unique
    assert str(st.hours["time"].dt.tz) == "Europe/London"
    assert (st.hours["RecordedTime(min)"] == 60).all()
    assert s.daily["DayLength(hours)"].iloc[0] == hours


def test_bouts_and_circadian_in_the_daily_table():
    df = _table("2024-03-04", DAY * 3)
    s, st = _run(df)
    ex = st.daily_extra
    # one 30-min MVPA block per day: a bout of >=1, >=5 and >=10 min each
    assert list(ex["MVPABouts10min(count)"]) == [1, 1, 1]
    assert list(ex["MVPABouts10min(min)"]) == [30, 30, 30]
    assert list(ex["CutMVPABouts10min(count)"]) == [1, 1, 1]
    # sedentary: the 5-h block (and the 1-h one) are >= 30 min
    assert list(ex["SedentaryBouts30min(count)"]) == [2, 2, 2]
    b = st.bouts
    assert set(b["Kind"]) == {"MVPA", "Sedentary", "CutMVPA", "CutSedentary"}
    assert (b.loc[b["Kind"] == "MVPA", "ENMO(mg)"] == 250).all()
    # M10: 08:00-18:00 holds 30 min MVPA (250) and 9.5 h light (60) -> the most active 10 h
    assert ex["M10Start"].iloc[1] == "2024-03-05T08:00:00"
    m10 = (30 * 250 + 9.5 * 60 * 60) / 600
    assert ex["M10(mg)"].iloc[1] == pytest.approx(m10)
    assert ex["L5(mg)"].iloc[1] == pytest.approx(5.0)
    assert ex["RA"].iloc[1] == pytest.approx((m10 - 5) / (m10 + 5))
    assert st.overall["IS"] == pytest.approx(1.0)
    # sleep: 23:00-07:00 each night, 8 h
    sl = st.sleep
    full = sl[sl["NightValid"]]
    assert len(full) == 2 and (full["SleepTime(hours)"] == 8).all() and (full["WASO(min)"] == 0).all()
    assert st.overall["Sleep/Onset(clock)"] == "23:00" and st.overall["Sleep/Wake(clock)"] == "07:00"


def test_column_lists_match_what_is_computed():
    from harnet.measures.study import daily_extra_columns, recording_columns

    s, st = _run(_table("2024-03-04", DAY * 2))
    assert list(st.daily_extra.columns) == ["Weekday", *daily_extra_columns(LABELS, CUT)]
    scalars = [k for k, v in st.overall.items() if not isinstance(v, (dict, list))]
    assert scalars == recording_columns(LABELS, CUT)


def test_no_sleep_class_means_no_sleep_table():
    labels = ["rest", "active"]
    n = 2880
    df = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=n, freq="30s"), "acc": 10.0, "mad": 1.0,
                       "wear": True, "nonwear": False, "label": pd.Categorical(["rest"] * n, categories=labels)})
    s = summarize(df, labels, 30)
    st = study_measures(df, s, labels, 30, CUT, min_wear_per_day_hours=16)
    assert st.sleep is None and len(st.notes) == 1 and "no sleep class" in st.notes[0]


def test_mad_from_raw_samples():
    # 100 Hz, magnitude alternating 1.0 / 1.2 g: MAD 100 mg, ENMO mean(0, 0.2) = 100 mg
    n = 100 * 120
    t = np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(n) * np.timedelta64(10_000_000, "ns")
    mag = np.where(np.arange(n) % 2 == 0, 1.0, 1.2)
    xyz = np.stack([np.zeros(n), np.zeros(n), mag], axis=1)
    ch = next(iter_chunks(Recording(t, xyz, {}), window_sec=30, enmo_lowpass_hz=None))
    assert ch.mad_mg[:4] == pytest.approx([100.0] * 4, abs=1e-3)
    assert ch.enmo_mg[:4] == pytest.approx([100.0] * 4, abs=1e-3)
    still = next(iter_chunks(Recording(t, np.tile([0, 0, 1.0], (n, 1)), {}), window_sec=30))
    assert still.mad_mg[:4] == pytest.approx([0.0] * 4, abs=1e-6)
