"""Sleep per noon-to-noon night and actinet's sleep rules on scripted labels."""

import numpy as np

from harnet.measures.sleep import apply_sleep_rules, main_sleep_periods, night_table_arrays

NS = 1_000_000_000
W = 30 * NS
T0 = np.datetime64("2024-03-04T12:00:00", "ns").astype(np.int64)  # noon


def _night(segments):
    """segments: list of (minutes, code) from noon; codes 0 sleep, 1 sedentary, -1 not worn."""
    code = np.concatenate([np.full(m * 2, c) for m, c in segments]).astype(np.int64)
    t = T0 + np.arange(len(code), dtype=np.int64) * W
    return code, t


def test_night_with_a_ten_minute_awakening():
    # noon -> 23:00 awake, 23:00-03:00 sleep, 10 min awake, 03:10-07:10 sleep, awake to noon
    code, t = _night([(11 * 60, 1), (240, 0), (10, 1), (240, 0), (290, 1)])
    a = night_table_arrays(code == 0, code >= 0, t, t, W, 16)
    assert len(a["night"]) == 1
    assert (a["onset"][0] - T0) / NS / 3600 == 11.0  # 23:00
    assert (a["wake"][0] - T0) / NS / 3600 == 19 + 10 / 60  # 07:10
    assert a["period_s"][0] == (8 * 60 + 10) * 60
    assert a["sleep_s"][0] == 8 * 3600 and a["waso_s"][0] == 600
    assert a["awakenings"][0] == 1 and a["nonwear_s"][0] == 0 and bool(a["valid"][0])


def test_nonwear_inside_and_invalid_night():
    # 20 min not worn inside the period; only 10 h worn overall -> not a valid night
    code, t = _night([(60, -1), (13 * 60, -1), (120, 0), (20, -1), (120, 0), (100, -1)])
    a = night_table_arrays(code == 0, code >= 0, t, t, W, 16)
    assert a["nonwear_s"][0] == 1200 and a["waso_s"][0] == 0 and a["awakenings"][0] == 0
    assert not bool(a["valid"][0])


def test_main_period_is_the_longest_and_gaps_over_an_hour_split():
    # a 2-h nap at 14:00, then 61 min awake splits ... the 6-h night is the main period
    code, t = _night([(120, 1), (120, 0), (8 * 60, 1), (360, 0), (61, 1), (30, 0), (269, 1)])
    mp = main_sleep_periods(code == 0, t, t, W)
    assert len(mp.start) == 1
    assert (t[mp.start[0]] - T0) / NS / 3600 == 12.0  # 00:00
    assert mp.end[0] - mp.start[0] == 720


def test_require_sleep_above_and_single_block():
    code, t = _night([(120, 1), (20, 0), (60, 1), (90, 0), (9 * 60, 1), (420, 0), (230, 1)])
    short = apply_sleep_rules(code, 0, 1, t, t, W, require_sleep_above_s=30 * 60)
    assert (short == 0).sum() == (90 + 420) * 2  # the 20-min nap became sedentary
    one = apply_sleep_rules(code, 0, 1, t, t, W, single_sleep_block=True)
    assert (one == 0).sum() == 420 * 2  # only the main period stays sleep
    assert ((one == 1) | (one == 0)).all()
    # not-classified windows stay -1
    code[:4] = -1
    assert (apply_sleep_rules(code, 0, 1, t, t, W, single_sleep_block=True)[:4] == -1).all()
