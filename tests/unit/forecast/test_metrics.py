"""Forecast metrics against numbers worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoplake.forecast.metrics import bias, coverage, mase, pinball, revenue_weights, rmsse, summarise, weighted_mean

NAN = np.nan
# Item 0: naive differences 2, 1, 2 after two days before its first sale; item 1 never changes.
HISTORY = np.array([[NAN, NAN, 1.0, 3.0, 2.0, 4.0], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]])
ACTUAL = np.array([[2.0, 4.0], [3.0, 1.0]])
POINT = np.array([[3.0, 3.0], [2.0, 2.0]])


def test_mase_divides_by_the_in_sample_naive_error():
    # Item 0: MAE 1 over a naive MAE of 5/3; item 1: naive error 0, so it is left out.
    np.testing.assert_allclose(mase(ACTUAL, POINT, HISTORY), [0.6, NAN])
    # Lag 2: differences |2 - 1| and |4 - 3| give a scale of 1.
    np.testing.assert_allclose(mase(ACTUAL, POINT, HISTORY, season=2), [1.0, NAN])


def test_rmsse_divides_squared_errors():
    # Squared naive differences 4, 1, 4: mean 3; squared errors 1, 1: mean 1.
    np.testing.assert_allclose(rmsse(ACTUAL, POINT, HISTORY), [math.sqrt(1 / 3), NAN])


def test_scaled_errors_of_too_short_a_history_are_undefined():
    assert np.isnan(rmsse(ACTUAL[:1], POINT[:1], np.array([[NAN, NAN, NAN, NAN, NAN, 5.0]])))[0]
    assert np.isnan(mase(ACTUAL[:1], POINT[:1], np.array([[5.0]])))[0]


def test_revenue_weights_use_the_last_days():
    revenue = np.array([[100.0, 10.0, 0.0], [NAN, 0.0, 30.0]])
    np.testing.assert_allclose(revenue_weights(revenue, days=2), [0.25, 0.75])
    np.testing.assert_allclose(revenue_weights(revenue, days=3), [110 / 140, 30 / 140])
    assert np.isnan(revenue_weights(np.zeros((2, 3)))).all()


def test_weighted_mean_renormalises_over_defined_values():
    assert weighted_mean(np.array([1.0, NAN, 3.0]), np.array([0.5, 0.25, 0.25])) == pytest.approx((0.5 + 0.75) / 0.75)
    assert math.isnan(weighted_mean(np.array([NAN]), np.array([1.0])))


def test_bias_total_and_per_item():
    actual = np.array([[1.0, 2.0], [3.0, 4.0]])
    point = np.array([[2.0, 2.0], [3.0, 5.0]])
    assert bias(actual, point) == pytest.approx(0.2)  # (12 - 10) / 10
    np.testing.assert_allclose(bias(actual, point, per_item=True), [1 / 3, 1 / 7])
    assert math.isnan(bias(np.zeros((1, 2)), point[:1]))
    assert bias(np.array([[1.0, NAN]]), np.array([[2.0, 100.0]])) == pytest.approx(1.0)  # the NaN day is left out


def test_coverage_counts_the_bounds_as_inside():
    actual = np.array([[1.0, 2.0, 3.0, 4.0]])
    p10 = np.array([[1.0, 0.0, 4.0, 0.0]])
    p90 = np.array([[2.0, 1.0, 5.0, 4.0]])
    assert coverage(actual, p10, p90) == pytest.approx(0.5)


def test_pinball_weighs_under_and_over_forecasts_by_the_quantile():
    actual = np.array([10.0, 10.0])
    pred = np.array([8.0, 14.0])  # under by 2, over by 4
    assert pinball(actual, pred, 0.1) == pytest.approx((0.1 * 2 + 0.9 * 4) / 2)
    assert pinball(actual, pred, 0.9) == pytest.approx((0.9 * 2 + 0.1 * 4) / 2)
    assert pinball(actual, pred, 0.5) == pytest.approx(1.5)


def test_summarise_puts_one_models_figures_together():
    revenue = np.array([[NAN, NAN, 1.0, 3.0, 2.0, 4.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    p10, p90 = POINT - 1, POINT + 1
    got = summarise(ACTUAL, POINT, p10, POINT, p90, HISTORY, revenue)
    assert got["mase"] == pytest.approx(0.6)
    assert got["rmsse"] == pytest.approx(math.sqrt(1 / 3))
    assert got["wrmsse"] == pytest.approx(math.sqrt(1 / 3))  # item 1 has no scale: item 0 weighs 1
    assert got["bias"] == pytest.approx(0.0)  # 10 forecast, 10 sold
    assert got["coverage_p10_p90"] == pytest.approx(1.0)  # every error is 1: on the bounds
    # The median misses by 1 either way every day: 0.5 per day.
    assert got["pinball"] == pytest.approx(np.mean([pinball(ACTUAL, p10, 0.1), pinball(ACTUAL, POINT, 0.5), pinball(ACTUAL, p90, 0.9)]))
    assert got["pinball_p50"] == pytest.approx(0.5)
    assert got["n_items"] == 1
    assert set(got) == {
        "mase",
        "rmsse",
        "wrmsse",
        "bias",
        "coverage_p10_p90",
        "pinball",
        "pinball_p10",
        "pinball_p50",
        "pinball_p90",
        "coverage_p10_p90_raw",
        "n_items",
    }
    assert got["coverage_p10_p90_raw"] == got["coverage_p10_p90"]  # no calibration: the same band
    raw = summarise(ACTUAL, POINT, p10, POINT, p90, HISTORY, revenue, raw_p10=POINT, raw_p90=POINT)
    assert raw["coverage_p10_p90_raw"] == pytest.approx(0.0) and raw["coverage_p10_p90"] == pytest.approx(1.0)


def test_scaled_errors_of_weekly_sums_use_week_to_week_changes():
    """A shop selling on Saturdays only: at week grain the scale is the change between weeks, not between days."""
    import datetime as dt

    from shoplake.forecast.models.panel import SalesPanel

    saturdays = [7.0, 7.0, 14.0, 7.0, 14.0, 7.0]
    units = np.zeros((1, 42))
    units[0, 5::7] = saturdays  # 2024-01-01 is a Monday: column 5 is the first Saturday
    ones = np.ones_like(units)
    week = SalesPanel(["a"], dt.date(2024, 1, 1), units, units, ones, np.zeros_like(units, bool), ones * np.nan).to_grain("week")
    np.testing.assert_array_equal(week.units, [saturdays])
    history, actual, flat = week.units[:, :4], week.units[:, 4:], np.full((1, 2), 7.0)
    # Weekly history 7, 7, 14, 7: squared changes 0, 49, 49 (mean 98/3); errors 7, 0 (mean square 24.5).
    assert rmsse(actual, flat, history)[0] == pytest.approx(math.sqrt(24.5 / (98 / 3)))  # 0.866
    assert mase(actual, flat, history)[0] == pytest.approx(3.5 / (14 / 3))  # 0.75
    # The same forecast spread over days and scaled by day-to-day changes (8 jumps of 7 or 14 in 27
    # pairs) reads as something else entirely: the grain of the scale matters.
    daily_scale = np.mean(np.diff(units[0, :28]) ** 2)
    assert daily_scale == pytest.approx((4 * 49 + 2 * 196 + 2 * 49) / 27)
