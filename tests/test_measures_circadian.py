"""M10/L5, RA, IS and IV on scripted series whose answers are known by hand (van Someren 1999)."""

import math

import numpy as np
import pytest

from harnet.measures.circadian import (
    interdaily_stability,
    intradaily_variability,
    most_least_active,
    profile_m10_l5,
    relative_amplitude,
)


def test_m10_l5_on_a_scripted_day():
    # minutes of one day: 0-6 h at 5 mg, 6-8 h at 20, 8-18 h at 60, 18-24 h at 30
    day = np.concatenate([np.full(360, 5.0), np.full(120, 20.0), np.full(600, 60.0), np.full(360, 30.0)])
    m10, m10s, _, _ = most_least_active(day, 600)
    _, _, l5, l5s = most_least_active(day, 300)
    assert (m10, m10s) == (60.0, 480)  # 08:00
    assert (l5, l5s) == (5.0, 0)  # 00:00 (first of the tied windows)
    assert relative_amplitude(m10, l5) == pytest.approx(55 / 65)
    # a NaN makes the windows holding it ineligible
    day2 = day.copy()
    day2[500] = np.nan
    m, s, _, _ = most_least_active(day2, 600)
    assert s != 480 and m < 60.0
    assert math.isnan(most_least_active(np.full(100, 1.0), 600)[0])


def test_profile_wraps_around_midnight():
    prof = np.full(24, 10.0)
    prof[[22, 23, 0, 1, 2]] = 1.0  # least active 5 h from 22:00 across midnight
    _, _, l5, ls = profile_m10_l5(prof, 10, 5)
    assert (l5, ls % 24) == (1.0, 22)


def test_is_iv_of_a_periodic_series():
    days = 3
    pattern = np.array([0.0] * 8 + [1.0] * 16)
    x = np.tile(pattern, days)
    hod = np.tile(np.arange(24), days)
    assert interdaily_stability(x, hod) == pytest.approx(1.0)
    n = 24 * days
    iv_hand = n * (2 * days - 1) / ((n - 1) * (n * (2 / 3) * (1 / 3)))
    assert intradaily_variability(x) == pytest.approx(iv_hand)


def test_is_iv_of_an_aperiodic_ramp():
    n = 48
    x = np.arange(n, dtype=float)
    hod = np.arange(n) % 24
    assert interdaily_stability(x, hod) == pytest.approx(575 / (n * n - 1))
    assert intradaily_variability(x) == pytest.approx(12 / (n * n - 1))


def test_missing_hours_are_left_out():
    x = np.tile(np.array([0.0] * 8 + [1.0] * 16), 2)
    x[30] = np.nan
    hod = np.tile(np.arange(24), 2)
    assert interdaily_stability(x, hod) == pytest.approx(1.0)
    ok = np.isfinite(x)
    d = np.diff(x)
    pairs = ok[1:] & ok[:-1]
    xm = x[ok].mean()
    hand = ok.sum() * (d[pairs] ** 2).sum() / (pairs.sum() * ((x[ok] - xm) ** 2).sum())
    assert intradaily_variability(x) == pytest.approx(hand)
