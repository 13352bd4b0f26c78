"""Cut-point bands, intensity gradient (Rowlands 2018) and MX metrics (Rowlands 2019) on
scripted values whose answers are known by hand."""

import math

import numpy as np
import pytest

from harnet.errors import InputError
from harnet.measures.intensity import (
    CUTPOINT_SETS,
    band_codes,
    intensity_gradient,
    mx_metrics,
    parse_cutpoints,
)


def test_default_cutpoints_are_ggir_hildebrand():
    c = parse_cutpoints(None)
    assert c.name == "hildebrand" and c.thresholds == (40.0, 100.0, 400.0) and c.metric == "acc"
    assert c.bands == ("Inactive", "Light", "Moderate", "Vigorous") and c.mvpa_mg == 100.0
    assert parse_cutpoints("vahaypya2015").metric == "mad"
    assert all(s.reference for s in CUTPOINT_SETS.values())


def test_custom_cutpoints_and_errors():
    c = parse_cutpoints("50,150")
    assert c.thresholds == (50.0, 150.0) and c.bands == ("Inactive", "Light", "MVPA") and c.mvpa_mg == 150.0
    assert parse_cutpoints("30, 90, 350").bands[-1] == "Vigorous"
    for bad in ("fast", "100", "100,50", "0,100", "1,2,3,4", "50,50"):
        with pytest.raises(InputError):
            parse_cutpoints(bad)


def test_band_edges_belong_to_the_upper_band():
    c = parse_cutpoints(None)
    v = np.array([0, 39.99, 40, 99.99, 100, 399.9, 400, 5000, np.nan, 120])
    worn = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    assert band_codes(v, c, worn).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, -1, -1]


def test_intensity_gradient_of_a_power_law():
    # minutes in bins at midpoints 12.5 * 3^k follow y = 270 / 3^k = 3375 / x: gradient -1,
    # intercept ln(3375), R² 1 (30-s windows: 2 windows a minute)
    mids = np.array([12.5, 37.5, 112.5, 337.5])
    minutes = np.array([270, 90, 30, 10])
    values = np.repeat(mids, minutes * 2)
    g, a, r2 = intensity_gradient(values, 30)
    assert g == pytest.approx(-1.0, abs=1e-12)
    assert a == pytest.approx(math.log(3375.0), abs=1e-9)
    assert r2 == pytest.approx(1.0, abs=1e-12)


def test_intensity_gradient_noisy_matches_hand_regression():
    # values anywhere inside a bin count at its midpoint; 4000+ mg goes in the 4000-8000 bin
    values = np.array([1.0] * 120 + [30.0] * 20 + [60.0] * 12 + [9000.0] * 2)
    g, a, r2 = intensity_gradient(values, 60)
    x = np.log([12.5, 37.5, 62.5, 6000.0])
    y = np.log([120.0, 20.0, 12.0, 2.0])
    b, c = np.polyfit(x, y, 1)
    pred = c + b * x
    r2_hand = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert (g, a, r2) == pytest.approx((b, c, r2_hand), rel=1e-12)
    assert all(math.isnan(z) for z in intensity_gradient(np.array([5.0, 6.0]), 30))  # one bin


def test_mx_metrics():
    # 30-s windows, one day: 4 windows at 500 mg (2 min), 6 at 200 (3 min), the rest low
    v = np.concatenate([np.full(4, 500.0), np.full(6, 200.0), np.linspace(0, 50, 2870)])
    mx = mx_metrics(v, 30)
    assert mx[2] == 500.0 and mx[5] == 200.0
    assert mx[15] == pytest.approx(np.sort(v)[::-1][29]) and mx[60] == pytest.approx(np.sort(v)[::-1][119])
    assert math.isnan(mx_metrics(np.full(10, 1.0), 30)[60])  # fewer than 60 minutes
