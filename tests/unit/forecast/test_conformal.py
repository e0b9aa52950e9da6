"""Conformal calibration of P10/P90: shifts fit on earlier residuals bring coverage to about 80 % on new data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake.forecast.conformal import BandCalibration, fit_calibration, item_scale
from shoplake.forecast.metrics import coverage
from shoplake.forecast.models.panel import Forecast

START = dt.date(2024, 1, 1)


def overconfident(rng, n: int = 400, h: int = 14):
    """Items at levels 1..100 with Normal noise of sd 0.3 x level, forecast with a band of +-0.1 x level (far too narrow)."""
    level = np.exp(rng.uniform(0, np.log(100), n))
    actual = level[:, None] * (1 + 0.3 * rng.standard_normal((n, h)))
    mean = np.repeat(level[:, None], h, axis=1)
    quantiles = np.stack([mean * 0.9, mean, mean * 1.1], axis=-1)
    return actual, Forecast.build([f"i{k}" for k in range(n)], START, mean, quantiles), level


def test_calibrated_band_covers_about_80_percent_of_new_residuals():
    rng = np.random.default_rng(0)
    actual, forecast, level = overconfident(rng)
    raw = coverage(actual, forecast.p10, forecast.p90)
    assert raw < 0.35  # +-0.1 of a +-0.3 sd: about 26 %
    band = fit_calibration([actual], [forecast.p10], [forecast.p90], [level])
    assert band.cells == actual.size and band.low < 0 < band.high
    # Fresh data from the same process: the shifts fit on the old residuals bring it to ~80 %.
    new_actual, new_forecast, new_level = overconfident(np.random.default_rng(1))
    calibrated = band.apply(new_forecast, new_level)
    assert coverage(new_actual, calibrated.p10, calibrated.p90) == pytest.approx(0.8, abs=0.03)
    # Each tail holds about 10 %.
    assert np.mean(new_actual < calibrated.p10) == pytest.approx(0.1, abs=0.02)
    assert np.mean(new_actual > calibrated.p90) == pytest.approx(0.1, abs=0.02)
    np.testing.assert_array_equal(calibrated.mean, new_forecast.mean)
    np.testing.assert_array_equal(calibrated.p50, new_forecast.p50)


def test_a_too_wide_band_is_narrowed_but_never_past_the_median():
    rng = np.random.default_rng(2)
    n, h = 300, 7
    actual = 10 + rng.standard_normal((n, h))
    mean = np.full((n, h), 10.0)
    wide = Forecast.build([str(k) for k in range(n)], START, mean, np.stack([mean - 8, mean, mean + 8], axis=-1))
    band = fit_calibration([actual], [wide.p10], [wide.p90], [np.ones(n)])
    assert band.low > 0 > band.high  # narrows from both sides
    calibrated = band.apply(wide, np.ones(n))
    assert coverage(actual, calibrated.p10, calibrated.p90) == pytest.approx(0.8, abs=0.05)
    # Shifts larger than the half-widths stop at the median, and nothing goes below 0.
    crossed = BandCalibration(low=50.0, high=-50.0, cells=1).apply(wide, np.ones(n))
    np.testing.assert_array_equal(crossed.p10, crossed.p50)
    np.testing.assert_array_equal(crossed.p90, crossed.p50)
    assert (BandCalibration(-100.0, 0.0, 1).apply(wide, np.ones(n)).p10 == 0).all()


def test_item_scale_and_unknown_cells():
    history = np.array([[np.nan, 2.0, 4.0], [np.nan, np.nan, np.nan], [-3.0, 0.0, 3.0]])
    np.testing.assert_allclose(item_scale(history, 2), [4.0, 1.0, 2.5])  # mean of the last two known (clipped at 0) + 1
    # Not counts: a hundredth of the median positive level (2.25) instead of 1.
    np.testing.assert_allclose(item_scale(history, 2, integer=False), [3.0225, 0.0225, 1.5225])
    assert fit_calibration([np.full((2, 2), np.nan)], [np.zeros((2, 2))], [np.zeros((2, 2))], [np.ones(2)]) is None
    band = BandCalibration(-0.5, 0.25, 10)
    assert BandCalibration.from_dict(band.as_dict()) == band and BandCalibration.from_dict(None) is None
