"""Property tests for the summaries: time adds up, adjusted days never exceed their length, and the
result does not depend on row order or on the order in which chunk tables are concatenated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harnet.measures.activity import summarize

LABELS = ["sleep", "sedentary", "light", "moderate-vigorous"]
STATES = LABELS + ["nonwear", "gap"]

# starts close to DST changes: London spring/autumn, New York spring, Lord Howe (30-min shift)
ANCHORS = ["2024-03-30 17:00", "2024-10-26 21:13:07", "2024-03-09 22:00", "2024-04-06 20:00", "2024-06-01 00:00"]


@st.composite
def window_tables(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    window_sec = draw(st.sampled_from([5, 10, 15, 30, 45, 60]))
    tz = draw(st.sampled_from([None, "Europe/London", "America/New_York", "Australia/Lord_Howe"]))
    anchor = draw(st.sampled_from(ANCHORS))
    offset_s = draw(st.integers(0, 86_400))
    span_h = draw(st.floats(0.2, 60))
    holes = draw(st.booleans())
    rng = np.random.default_rng(seed)
    n = max(1, int(span_h * 3600 / window_sec))
    # runs of states with random lengths
    n_runs = max(1, n // int(rng.integers(20, 400)))
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n_runs, n - 1), replace=False)) if n > 1 else np.array([], int)
    run_state = rng.choice(len(STATES), size=len(cuts) + 1, p=[0.2, 0.3, 0.2, 0.1, 0.15, 0.05])
    state = np.repeat(run_state, np.diff(np.r_[0, cuts, n]))
    start = pd.Timestamp(anchor, tz=tz) + pd.Timedelta(seconds=offset_s)
    utc0 = start.as_unit("ns").value
    times = utc0 + np.arange(n, dtype=np.int64) * window_sec * 1_000_000_000
    keep = rng.random(n) > 0.05 if holes else np.ones(n, bool)
    keep[0] = True
    times, state = times[keep], state[keep]
    idx = pd.DatetimeIndex(times, tz="UTC").tz_convert(tz) if tz else pd.DatetimeIndex(times)
    names = np.array(STATES, dtype=object)[state]
    wear = state < len(LABELS)
    df = pd.DataFrame(
        {
            "time": idx,
            "acc": np.where(wear, rng.gamma(2.0, 15.0, len(state)), np.nan),
            "wear": wear,
            "nonwear": names == "nonwear",
            "label": pd.Categorical(np.where(wear, names, None), categories=LABELS),
        }
    )
    return df, window_sec, tz


def check_equal(a, b):
    pd.testing.assert_frame_equal(a.daily, b.daily, check_exact=True)
    pd.testing.assert_frame_equal(a.hourly, b.hourly, check_exact=True)
    assert a.overall == b.overall


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(window_tables())
def test_time_adds_up(case):
    df, window_sec, tz = case
    s = summarize(df, LABELS, window_sec)
    d = s.daily
    crude = d[[f"{lab}(hours)" for lab in LABELS]].to_numpy()
    adj = d[[f"{lab}Adjusted(hours)" for lab in LABELS]].to_numpy()
    length = d["DayLength(hours)"].to_numpy()
    tol = 1e-9
    # days: whole local days, DST-correct (Lord Howe shifts by 30 min)
    allowed = {24.0} if tz is None else {23.0, 23.5, 24.0, 24.5, 25.0}
    assert set(length) <= allowed
    assert s.overall["DSTCrossings"] == list(d["Date"][length != 24])
    # crude: classes = wear; wear + non-wear <= recorded <= day length
    np.testing.assert_allclose(crude.sum(1), d["WearTime(hours)"], atol=tol)
    assert (d["WearTime(hours)"] + d["NonwearTime(hours)"] <= d["RecordedTime(hours)"] + tol).all()
    assert (d["RecordedTime(hours)"] <= length + tol).all()
    assert d["ValidWindows"].sum() == df["wear"].sum()
    # every window counts once, except the part of the last one past the last midnight
    total = d["RecordedTime(hours)"].sum() * 3600
    assert len(df) * window_sec - window_sec - 1e-6 < total <= len(df) * window_sec + 1e-6
    # adjusted: never beyond the day's length; what is missing is exactly the non-imputable time
    not_imp = d["Date"].map(s.overall["NotImputableByDay(hours)"]).fillna(0.0).to_numpy()
    assert (adj.sum(1) <= length + tol).all()
    np.testing.assert_allclose(adj.sum(1) + not_imp, length, atol=1e-7)
    assert (adj >= crude - tol).all()  # filling only adds time
    assert s.overall["WearTime(days)"] == pytest.approx(d["WearTime(hours)"].sum() / 24)
    if s.overall["GoodWear"]:
        assert s.overall["Covers24hOK"] == 1 and s.overall["WearTime(days)"] >= 3


@SETTINGS
@given(window_tables(), st.integers(0, 2**32 - 1))
def test_row_order_does_not_matter(case, seed):
    df, window_sec, _ = case
    ref = summarize(df, LABELS, window_sec)
    rng = np.random.default_rng(seed)
    shuffled = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    check_equal(ref, summarize(shuffled, LABELS, window_sec))


@SETTINGS
@given(window_tables(), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_chunk_concatenation_order_does_not_matter(case, n_chunks, seed):
    df, window_sec, _ = case
    ref = summarize(df, LABELS, window_sec, min_wear_per_day_hours=2.0)
    rng = np.random.default_rng(seed)
    bounds = np.sort(rng.choice(np.arange(1, max(len(df), 2)), size=min(n_chunks, max(len(df) - 1, 0)), replace=False))
    edges = np.r_[0, bounds, len(df)]
    chunks = [df.iloc[a:b] for a, b in zip(edges[:-1], edges[1:])]
    order = rng.permutation(len(chunks))
    joined = pd.concat([chunks[i] for i in order], ignore_index=True)
    check_equal(ref, summarize(joined, LABELS, window_sec, min_wear_per_day_hours=2.0))
