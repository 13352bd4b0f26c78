"""Daily and recording summaries against hand-computed expectations."""

from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from harnet.errors import InputError
from harnet.measures.activity import DAILY_COLUMNS_FIXED, HOURLY_COLUMNS_FIXED, daily_columns, summarize

LABELS = ["sleep", "sedentary", "light", "moderate-vigorous"]
ACC = {"sleep": 5.0, "sedentary": 20.0, "light": 60.0, "moderate-vigorous": 200.0}


def make_table(
    start: str,
    end: str,
    window_sec: float,
    script: Callable[[np.ndarray, np.ndarray], np.ndarray],
    tz: str | None = None,
) -> pd.DataFrame:
    """Windows from start to end (exclusive). ``script(date_str, clock_hour_float)`` gives one entry per
    window: a label, "nonwear", or "gap"."""
    t = pd.date_range(pd.Timestamp(start, tz=tz), pd.Timestamp(end, tz=tz), freq=f"{window_sec}s", inclusive="left")
    wall = t.tz_localize(None) if tz else t
    hour = (wall.hour + wall.minute / 60 + wall.second / 3600).to_numpy()
    date = np.asarray(wall.strftime("%Y-%m-%d"))
    state = np.asarray(script(date, hour), dtype=object)
    wear = ~np.isin(state, ["nonwear", "gap"])
    label = pd.Categorical(np.where(wear, state, None), categories=LABELS)
    acc = np.array([ACC.get(s, np.nan) for s in state])
    return pd.DataFrame(
        {
            "time": t,
            "acc": acc,
            "wear": wear,
            "nonwear": state == "nonwear",
            "label": label,
            **{f"prob_{lab}": (state == lab).astype(float) for lab in LABELS},
        }
    )


def row(summary, date: str) -> pd.Series:
    d = summary.daily.set_index("Date")
    return d.loc[date]


# ------------------------------------------------------------------------------------------
# 3 days of 30-s windows, Monday 12:00 to Wednesday 12:00.
# Every day: 00-07 sleep, 07-09 light, 09-17 sedentary, 17-18 moderate-vigorous, 18-24 sedentary;
# except Tuesday: non-wear 13-15 and light 18-20.


def three_day_script(date, h):
    s = np.where(h < 7, "sleep", np.where(h < 9, "light", np.where(h < 17, "sedentary", np.where(h < 18, "moderate-vigorous", "sedentary"))))
    s = s.astype(object)
    tue = date == "2024-03-05"
    s[tue & (h >= 13) & (h < 15)] = "nonwear"
    s[tue & (h >= 18) & (h < 20)] = "light"
    return s


@pytest.fixture(scope="module")
def three_days():
    df = make_table("2024-03-04 12:00", "2024-03-06 12:00", 30, three_day_script)
    return df, summarize(df, LABELS, 30)


def test_schema(three_days):
    _, s = three_days
    assert DAILY_COLUMNS_FIXED == (
        "Date", "DayLength(hours)", "RecordedTime(hours)", "WearTime(hours)", "NonwearTime(hours)",
        "ValidWindows", "DayValid", "ENMO(mg)", "ENMOAdjusted(mg)",
    )  # fmt: skip
    assert list(s.daily.columns) == list(DAILY_COLUMNS_FIXED) + [
        "sleep(hours)", "sleepAdjusted(hours)", "sedentary(hours)", "sedentaryAdjusted(hours)",
        "light(hours)", "lightAdjusted(hours)", "moderate-vigorous(hours)", "moderate-vigorousAdjusted(hours)",
    ]  # fmt: skip
    assert list(s.daily.columns) == daily_columns(LABELS)
    assert s.daily["ValidWindows"].dtype == np.int64 and s.daily["DayValid"].dtype == bool
    assert list(s.hourly.columns) == list(HOURLY_COLUMNS_FIXED) + [f"{lab}(fraction)" for lab in LABELS]
    assert list(s.hourly.index) == list(range(24))
    json.dumps(s.overall, allow_nan=False)  # info.json-ready


def test_three_days_crude(three_days):
    _, s = three_days
    assert list(s.daily["Date"]) == ["2024-03-04", "2024-03-05", "2024-03-06"]
    # Monday 12-24: sedentary 12-17 and 18-24 = 11 h, mvpa 1 h; ENMO (11*20 + 200) / 12 = 35
    mon = row(s, "2024-03-04")
    assert mon["RecordedTime(hours)"] == 12 and mon["WearTime(hours)"] == 12 and mon["NonwearTime(hours)"] == 0
    assert mon["ValidWindows"] == 12 * 120
    assert (mon["sleep(hours)"], mon["sedentary(hours)"], mon["light(hours)"], mon["moderate-vigorous(hours)"]) == (0, 11, 0, 1)
    assert mon["ENMO(mg)"] == pytest.approx(35.0)
    # Tuesday: 22 h worn: sleep 7, light 2 + 2, sedentary 4 + 2 + 4, mvpa 1; ENMO (35 + 240 + 200 + 200) / 22
    tue = row(s, "2024-03-05")
    assert (tue["RecordedTime(hours)"], tue["WearTime(hours)"], tue["NonwearTime(hours)"]) == (24, 22, 2)
    assert tue["ValidWindows"] == 22 * 120
    assert (tue["sleep(hours)"], tue["sedentary(hours)"], tue["light(hours)"], tue["moderate-vigorous(hours)"]) == (7, 10, 4, 1)
    assert tue["ENMO(mg)"] == pytest.approx(675 / 22)
    # Wednesday 00-12: sleep 7, light 2, sedentary 3; ENMO (35 + 120 + 60) / 12
    wed = row(s, "2024-03-06")
    assert (wed["sleep(hours)"], wed["sedentary(hours)"], wed["light(hours)"], wed["moderate-vigorous(hours)"]) == (7, 3, 2, 0)
    assert wed["ENMO(mg)"] == pytest.approx(215 / 12)
    # accounting: classes + non-wear + gaps = recorded, classes = wear
    d = s.daily
    cls = d[[f"{lab}(hours)" for lab in LABELS]].sum(axis=1)
    np.testing.assert_allclose(cls, d["WearTime(hours)"])
    np.testing.assert_allclose(cls + d["NonwearTime(hours)"], d["RecordedTime(hours)"])


def test_three_days_adjusted(three_days):
    _, s = three_days
    # Monday 00-12 missing; no other Monday, so the weekday group (Tue, Wed) fills it:
    # sleep 7, light 2, sedentary 3 -> sedentary 14 in all; ENMO (35 + 120 + 14*20 + 200) / 24
    mon = row(s, "2024-03-04")
    assert mon["sleepAdjusted(hours)"] == pytest.approx(7)
    assert mon["lightAdjusted(hours)"] == pytest.approx(2)
    assert mon["sedentaryAdjusted(hours)"] == pytest.approx(14)
    assert mon["moderate-vigorousAdjusted(hours)"] == pytest.approx(1)
    assert mon["ENMOAdjusted(mg)"] == pytest.approx(635 / 24)
    # Tuesday 13-15 non-wear: Monday has sedentary there, Wednesday no data -> sedentary 12
    tue = row(s, "2024-03-05")
    assert tue["sedentaryAdjusted(hours)"] == pytest.approx(12)
    assert tue["lightAdjusted(hours)"] == pytest.approx(4)
    assert tue["ENMOAdjusted(mg)"] == pytest.approx((675 + 2 * 20) / 24)
    # Wednesday 12-24 from Monday and Tuesday: 12-17 sedentary (13-15 from Monday only), 17-18 mvpa,
    # 18-20 half sedentary (Mon) half light (Tue), 20-24 sedentary
    wed = row(s, "2024-03-06")
    assert wed["sleepAdjusted(hours)"] == pytest.approx(7)
    assert wed["lightAdjusted(hours)"] == pytest.approx(3)
    assert wed["sedentaryAdjusted(hours)"] == pytest.approx(13)
    assert wed["moderate-vigorousAdjusted(hours)"] == pytest.approx(1)
    assert wed["ENMOAdjusted(mg)"] == pytest.approx((215 + 5 * 20 + 200 + 2 * 40 + 4 * 20) / 24)
    adj = s.daily[[f"{lab}Adjusted(hours)" for lab in LABELS]].sum(axis=1)
    np.testing.assert_allclose(adj, 24.0)
    assert s.overall["NotImputable(hours)"] == 0


def test_three_days_overall(three_days):
    _, s = three_days
    o = s.overall
    assert o["NumDays"] == 3 and o["NumValidDays"] == 3
    assert o["RecordedTime(days)"] == pytest.approx(2.0)
    assert o["WearTime(days)"] == pytest.approx(46 / 24)
    assert o["NonwearTime(days)"] == pytest.approx(2 / 24)
    assert o["Covers24hOK"] == 1
    assert o["GoodWear"] == 0  # 46 h < 72 h
    assert o["sleep(hours/day)"] == pytest.approx(14 / 3)
    assert o["sedentary(hours/day)"] == pytest.approx(24 / 3)
    assert o["sedentaryAdjusted(hours/day)"] == pytest.approx((14 + 12 + 13) / 3)
    assert o["light(%)"] == pytest.approx(100 * 6 / 46)
    assert o["sleepAdjusted(%)"] == pytest.approx(100 * 21 / 72)
    assert o["ENMO(mg)"] == pytest.approx((420 + 675 + 215) / 46)
    assert o["ENMOAdjusted(mg)"] == pytest.approx((635 + 715 + 675) / 72)
    assert o["Weekday/NumDays"] == 3 and o["Weekend/NumDays"] == 0 and o["Weekend/sleepAdjusted(hours/day)"] is None
    assert o["Weekday/lightAdjusted(hours/day)"] == pytest.approx(3)
    assert o["DSTCrossings"] == [] and o["Timezone"] is None
    # hour of day: 18-19 worn on Mon and Tue (light on Tue), 13-14 only on Monday
    assert o["HourOfDay/WearTime(hours)"][18] == pytest.approx(2) and o["HourOfDay/WearTime(hours)"][13] == pytest.approx(1)
    assert o["HourOfDay/light(fraction)"][18] == pytest.approx(0.5)
    assert o["HourOfDay/ENMO(mg)"][18] == pytest.approx(40)
    assert o["HourOfDay/sleep(fraction)"][3] == pytest.approx(1)
    assert s.hourly.loc[18, "light(fraction)"] == pytest.approx(0.5)


def test_options_exclusions_and_min_wear(three_days):
    df, _ = three_days
    s = summarize(df, LABELS, 30, exclude_first_day=True, exclude_last_day=True)
    assert list(s.daily["Date"]) == ["2024-03-05"]
    # the only day left has no donors: its 2 h of non-wear cannot be filled
    assert s.overall["NotImputable(hours)"] == pytest.approx(2)
    assert s.overall["NotImputableByDay(hours)"] == {"2024-03-05": pytest.approx(2)}
    assert row(s, "2024-03-05")["sedentaryAdjusted(hours)"] == pytest.approx(10)
    assert s.overall["Covers24hOK"] == 0  # 13-15 never worn

    s = summarize(df, LABELS, 30, min_wear_per_day_hours=20)
    assert list(s.daily["DayValid"]) == [False, True, False]
    assert s.overall["NumValidDays"] == 1
    assert s.overall["sleep(hours/day)"] == pytest.approx(7)
    assert s.overall["sedentaryAdjusted(hours/day)"] == pytest.approx(12)  # invalid days still donate
    assert s.overall["WearTime(days)"] == pytest.approx(46 / 24)  # wear counts every selected day

    s = summarize(df, LABELS, 30, start="2024-03-05 06:00", end="2024-03-06")
    assert list(s.daily["Date"]) == ["2024-03-05"]
    assert row(s, "2024-03-05")["RecordedTime(hours)"] == 18
    assert row(s, "2024-03-05")["sleep(hours)"] == 1

    with pytest.raises(InputError, match="no windows left"):
        summarize(df, LABELS, 30, start="2025-01-01")


# ------------------------------------------------------------------------------------------
# Imputation order: same weekday, then weekday/weekend, then all days (8 full days Mon..Mon).


def week_script(date, h):
    s = np.full(len(h), "sedentary", dtype=object)
    s[date == "2024-03-04"] = "light"  # first Monday
    s[date == "2024-03-10"] = "sleep"  # Sunday
    s[(date == "2024-03-11") & (h >= 10) & (h < 12)] = "nonwear"  # second Monday
    s[(date == "2024-03-09") & (h >= 10) & (h < 12)] = "nonwear"  # Saturday
    s[np.isin(date, ["2024-03-09", "2024-03-10"]) & (h >= 20) & (h < 21)] = "nonwear"
    return s


def test_imputation_order():
    df = make_table("2024-03-04", "2024-03-12", 30, week_script)
    s = summarize(df, LABELS, 30)
    # second Monday 10-12 from the first Monday (same weekday): light
    mon2 = row(s, "2024-03-11")
    assert mon2["lightAdjusted(hours)"] == pytest.approx(2) and mon2["sedentaryAdjusted(hours)"] == pytest.approx(22)
    # Saturday 10-12: no other Saturday, weekend group = Sunday: sleep.
    # Saturday and Sunday 20-21: nobody in the weekend group, all days: 1 Monday light, 5 weekdays sedentary
    sat = row(s, "2024-03-09")
    assert sat["sleepAdjusted(hours)"] == pytest.approx(2)
    assert sat["lightAdjusted(hours)"] == pytest.approx(1 / 6)
    assert sat["sedentaryAdjusted(hours)"] == pytest.approx(21 + 5 / 6)
    sun = row(s, "2024-03-10")
    assert sun["sleepAdjusted(hours)"] == pytest.approx(23)
    assert sun["lightAdjusted(hours)"] == pytest.approx(1 / 6)
    assert sun["ENMOAdjusted(mg)"] == pytest.approx((23 * 5 + (60 + 5 * 20) / 6) / 24)
    o = s.overall
    assert o["Weekend/NumDays"] == 2 and o["Weekday/NumDays"] == 6
    assert o["Weekend/sleepAdjusted(hours/day)"] == pytest.approx((2 + 23) / 2)
    assert o["WearTime(days)"] == pytest.approx(8 - 6 / 24)  # 2 + 3 + 1 h of non-wear
    assert o["GoodWear"] == 1 and o["Covers24hOK"] == 1


# ------------------------------------------------------------------------------------------
# windows that do not line up with minutes


def test_unaligned_windows_split_over_minutes():
    def script(date, h):
        s = np.full(len(h), "sedentary", dtype=object)
        s[np.isclose(h, 10 + 45 / 3600)] = "light"  # the window 10:00:45-10:01:15
        return s

    df = make_table("2024-03-04 00:00:15", "2024-03-05 00:00:15", 30, script)
    assert len(df) == 2880
    s = summarize(df, LABELS, 30)
    d = row(s, "2024-03-04")
    assert len(s.daily) == 1  # the last window's 15 s past midnight are dropped, no stub day
    assert d["ValidWindows"] == 2880
    # 00:00:00-00:00:15 is before the first window; the last window's 15 s after midnight are dropped
    assert d["RecordedTime(hours)"] == pytest.approx(24 - 15 / 3600)
    assert d["light(hours)"] == pytest.approx(30 / 3600) and d["lightAdjusted(hours)"] == pytest.approx(30 / 3600)
    # 00:00:00-00:00:15 has no data and no other day to borrow from
    assert s.overall["NotImputable(hours)"] == pytest.approx(15 / 3600)
    assert d["sedentaryAdjusted(hours)"] == pytest.approx(24 - 45 / 3600)


def test_partly_worn_minute_keeps_its_observed_part():
    # 2 days: on day 1 the minute 10:00 is 30 s non-wear then 30 s light; day 2 is all sedentary
    def script(date, h):
        s = np.full(len(h), "sedentary", dtype=object)
        d1 = date == "2024-03-04"
        s[d1 & np.isclose(h, 10)] = "nonwear"
        s[d1 & np.isclose(h, 10 + 30 / 3600)] = "light"
        return s

    s = summarize(make_table("2024-03-04", "2024-03-06", 30, script), LABELS, 30)
    d = row(s, "2024-03-04")
    assert d["lightAdjusted(hours)"] == pytest.approx(30 / 3600)
    assert d["sedentaryAdjusted(hours)"] == pytest.approx(24 - 30 / 3600)
    assert d["NonwearTime(hours)"] == pytest.approx(30 / 3600)


def test_gaps_count_as_recorded_not_worn():
    def script(date, h):
        s = np.full(len(h), "sedentary", dtype=object)
        s[(h >= 3) & (h < 4)] = "gap"
        s[(h >= 5) & (h < 6)] = "nonwear"
        return s

    s = summarize(make_table("2024-03-04", "2024-03-05", 10, script), LABELS, 10)
    d = row(s, "2024-03-04")
    assert (d["RecordedTime(hours)"], d["WearTime(hours)"], d["NonwearTime(hours)"]) == (24, 22, 1)
    assert d["sedentary(hours)"] + d["NonwearTime(hours)"] + 1 == d["RecordedTime(hours)"]
    assert s.overall["Covers24hOK"] == 0 and s.overall["NotImputable(hours)"] == pytest.approx(2)


# ------------------------------------------------------------------------------------------
# DST, Europe/London: spring forward on Sunday 31 March 2024, fall back on Sunday 27 October 2024


def dst_script(date, h):
    s = np.where(h < 7, "sleep", "sedentary").astype(object)
    s[(date == "2024-03-31") & (h >= 2) & (h < 3)] = "nonwear"
    s[(date == "2024-03-30") & (h >= 2) & (h < 3)] = "light"
    s[(date == "2024-10-27") & (h >= 1) & (h < 2)] = "nonwear"  # both 01:xx hours
    s[(date == "2024-10-26") & (h >= 1) & (h < 2)] = "light"
    return s


@pytest.mark.parametrize(
    "start,end,dst_day,length,clock_sleep_hours,nonwear_hours",
    [("2024-03-30", "2024-04-01", "2024-03-31", 23, 6, 1), ("2024-10-26", "2024-10-28", "2024-10-27", 25, 8, 2)],
)
def test_dst_days(start, end, dst_day, length, clock_sleep_hours, nonwear_hours):
    df = make_table(start, end, 30, dst_script, tz="Europe/London")
    assert len(df) == (24 + length) * 120  # the tz-aware clock has a 23-h or a 25-h day
    s = summarize(df, LABELS, 30)
    assert list(s.daily["Date"]) == [start, dst_day]
    d = row(s, dst_day)
    assert d["DayLength(hours)"] == length and d["RecordedTime(hours)"] == length
    assert d["ValidWindows"] == (length - nonwear_hours) * 120
    assert d["NonwearTime(hours)"] == nonwear_hours
    # sleep 00-07 local: 6 clock hours in spring (01:xx does not exist), 8 in autumn (01:xx twice),
    # less the non-wear (spring 02:xx, autumn both 01:xx)
    assert d["sleep(hours)"] == clock_sleep_hours - nonwear_hours
    assert d["sedentary(hours)"] == 17
    # each non-wear minute borrows the same clock minute from Saturday, which is light there
    assert d["lightAdjusted(hours)"] == pytest.approx(nonwear_hours)
    assert d["sleepAdjusted(hours)"] == pytest.approx(clock_sleep_hours - nonwear_hours)
    adj = sum(d[f"{lab}Adjusted(hours)"] for lab in LABELS)
    assert adj == pytest.approx(length)
    assert s.overall["DSTCrossings"] == [dst_day]
    assert s.overall["Timezone"] == "Europe/London"
    assert row(s, start)["DayLength(hours)"] == 24

    # start/end given as naive local time on a tz-aware table
    s2 = summarize(df, LABELS, 30, start=f"{dst_day} 12:00")
    assert row(s2, dst_day)["RecordedTime(hours)"] == 12


def test_dst_naive_days_are_24h():
    df = make_table("2024-03-30", "2024-04-01", 30, dst_script)
    s = summarize(df, LABELS, 30)
    assert list(s.daily["DayLength(hours)"]) == [24, 24] and s.overall["DSTCrossings"] == []


# ------------------------------------------------------------------------------------------
# inputs


def test_label_column_as_plain_strings_and_time_index(three_days):
    df, ref = three_days
    df2 = df.assign(label=df["label"].astype(object)).set_index("time")
    s = summarize(df2, LABELS, 30)
    pd.testing.assert_frame_equal(s.daily, ref.daily)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d.drop(columns="nonwear"), "lacks column"),
        (lambda d: d.assign(label=d["label"].astype(object).where(d["label"].astype(object) != "light", "walking")), "walking"),
        (lambda d: pd.concat([d, d.iloc[:1]]), "overlap or repeat"),
        (lambda d: d.assign(label=d["label"].where(d.index != 5)), "no label"),
        (lambda d: d.assign(nonwear=d["wear"]), "both worn and non-wear"),
        (lambda d: d.assign(time=d["time"].astype(str)), "datetime64"),
        (lambda d: d.assign(wear=d["wear"].astype(object).where(d.index != 3)), "missing values"),
    ],
)
def test_bad_tables_raise(three_days, mutate, match):
    df, _ = three_days
    with pytest.raises(InputError, match=match):
        summarize(mutate(df), LABELS, 30)


def test_bad_arguments_raise(three_days):
    df, _ = three_days
    with pytest.raises(InputError, match="overlap"):
        summarize(df, LABELS, 60)  # 30-s steps cannot be 60-s windows
    with pytest.raises(InputError, match="labels"):
        summarize(df, ["sleep", "sleep"], 30)
    with pytest.raises(InputError, match="window_sec"):
        summarize(df, LABELS, 0)
    with pytest.raises(InputError, match="time zone"):
        summarize(df, LABELS, 30, start=pd.Timestamp("2024-03-05", tz="UTC"))


def test_week_of_10s_windows_is_fast():
    rng = np.random.default_rng(1)
    n = 7 * 8640
    t = pd.date_range("2024-03-04 09:13:20", periods=n, freq="10s")
    wear = rng.random(n) > 0.2
    df = pd.DataFrame(
        {
            "time": t,
            "acc": np.where(wear, rng.gamma(2, 10, n), np.nan),
            "wear": wear,
            "nonwear": ~wear,
            "label": pd.Categorical(np.where(wear, rng.choice(LABELS, n), None), categories=LABELS),
        }
    )
    t0 = time.perf_counter()
    s = summarize(df, LABELS, 10)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, elapsed
    assert s.daily["ValidWindows"].sum() == wear.sum()
    assert s.daily["WearTime(hours)"].sum() == pytest.approx(wear.sum() * 10 / 3600)
