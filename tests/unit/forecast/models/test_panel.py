"""The daily panel summed to weeks and months, by hand: whole periods only, partial first periods unknown."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake.forecast.models.panel import SalesPanel

WEDNESDAY = dt.date(2024, 1, 3)


def daily(units: np.ndarray, start: dt.date = WEDNESDAY, price: float = 2.0) -> SalesPanel:
    units = np.atleast_2d(np.asarray(units, dtype=float))
    n, t = units.shape
    prices = np.where(np.isnan(units), np.nan, price)
    return SalesPanel([f"i{k}" for k in range(n)], start, units, units * price, prices, np.zeros((n, t), bool), np.full((n, t), np.nan))


def test_weeks_are_whole_iso_weeks_summed_and_a_partial_first_week_is_unknown():
    # 2024-01-03 (Wednesday) .. 2024-01-22 (Monday): whole weeks 8-14 and 15-21 only.
    units = np.vstack([np.arange(20.0), np.arange(20.0)])
    units[1, :8] = np.nan  # first sold on Thursday 11 January: its first week is partial
    panel = daily(units)
    panel.promo[0, 12] = True  # Monday 15 January
    panel.stock_out[0, 5:9] = [1.0, 0.0, np.nan, 1.0]  # 8, 9 (week 1), 10 unknown, 11 (week 1)
    week = panel.to_grain("week")

    assert (week.grain, week.start, week.n_periods, week.end) == ("week", dt.date(2024, 1, 8), 2, dt.date(2024, 1, 22))
    # Days 5..11 and 12..18 of the panel: 5 + ... + 11 = 56 and 12 + ... + 18 = 105.
    np.testing.assert_array_equal(week.units, [[56.0, 105.0], [np.nan, 105.0]])
    np.testing.assert_array_equal(week.revenue, [[112.0, 210.0], [np.nan, 210.0]])
    np.testing.assert_array_equal(week.price, [[2.0, 2.0], [np.nan, 2.0]])
    np.testing.assert_array_equal(week.promo, [[False, True], [False, False]])
    np.testing.assert_allclose(week.stock_out[0], [2 / 3, np.nan])  # 2 of the 3 days with a known stock
    np.testing.assert_array_equal(week.observed_periods, [2, 1])
    np.testing.assert_array_equal(week.dates, np.array(["2024-01-08", "2024-01-15"], "datetime64[D]"))
    # The forecast of this panel starts on the Monday of the run date's week (22 January).
    assert week.until(dt.date(2024, 1, 17)).n_periods == 1  # a day inside a week cuts at its Monday


def test_months_and_the_price_of_a_month_without_sales():
    start = dt.date(2024, 1, 1)
    units = np.zeros(91)  # January .. March 2024 (31 + 29 + 31 days)
    units[[0, 40, 45]] = [3.0, 1.0, 2.0]
    panel = daily(units, start)
    panel.price[0, 40:] = 5.0  # the price changes in February and stays
    panel.revenue[0, 40] = 5.0
    panel.revenue[0, 45] = 10.0
    month = panel.to_grain("month")
    assert (month.start, month.n_periods, month.end) == (start, 3, dt.date(2024, 4, 1))
    np.testing.assert_array_equal(month.units, [[3.0, 3.0, 0.0]])
    np.testing.assert_array_equal(month.revenue, [[6.0, 15.0, 0.0]])
    # January and February: revenue / units; March sold nothing: the last known daily price.
    np.testing.assert_array_equal(month.price, [[2.0, 5.0, 5.0]])
    # A run date inside April: April is not whole, so the panel still ends on 1 April.
    assert daily(np.zeros(95), start).to_grain("month").end == dt.date(2024, 4, 1)


def test_revenue_as_the_target_and_whole_numbers():
    panel = daily(np.array([[1.0, 2.0, np.nan]]), price=0.75)
    assert panel.integer and panel.y is panel.units
    revenue = panel.with_target("revenue")
    np.testing.assert_array_equal(revenue.y, [[0.75, 1.5, np.nan]])
    assert not revenue.integer
    with pytest.raises(ValueError, match="unknown forecasting target"):
        panel.with_target("profit")
    with pytest.raises(ValueError, match="must start on a period's first day"):
        SalesPanel(["a"], WEDNESDAY, [[1.0]], [[1.0]], [[1.0]], [[False]], [[np.nan]], grain="week")
    with pytest.raises(ValueError, match="only a daily panel"):
        daily(np.zeros((1, 28)), dt.date(2024, 1, 1)).to_grain("week").to_grain("month")
