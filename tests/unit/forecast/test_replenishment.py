"""Safety stock, reorder point, order quantity and stock-out risk, checked against hand computations."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.forecast.replenishment import (
    PLAN_COLUMNS,
    Z_P90,
    demand_over_period,
    forecast_matrices,
    order_quantity,
    plan,
    safety_stock,
    sigma_from_band,
    stockout_risk,
)
from shoplake.forecast.schemas import REPLENISHMENT_PLAN

Z95 = 1.6448536269514715  # Phi^-1(0.95)


def band(mean, sigma):
    """P10 and P90 of Normal(mean, sigma) days."""
    mean, sigma = np.asarray(mean, float), np.asarray(sigma, float)
    return mean - Z_P90 * sigma, mean + Z_P90 * sigma


def test_sigma_from_band_reads_a_normal_band_and_clips_crossed_ones():
    assert Z_P90 == pytest.approx(1.2816, abs=1e-4)
    p10, p90 = band([10, 4], [2, 0.5])
    np.testing.assert_allclose(sigma_from_band(p10, p90), [2, 0.5])
    assert sigma_from_band([5.0], [4.0]).tolist() == [0.0]


def test_mean_10_a_day_lead_time_3_no_review_period():
    # mu = 3 x 10 = 30; sigma_LR = sqrt(3 x 2^2) = 3.4641; SS = 1.6449 x 3.4641 = 5.6979;
    # ROP = 35.6979; position 20 + 5 = 25 -> order ceil(10.6979) = 11;
    # risk = 1 - Phi((25 - 30) / 3.4641) = Phi(1.4434) = 0.92554.
    p10, p90 = band(np.full((1, 5), 10.0), np.full((1, 5), 2.0))
    out = plan(["a"], np.full((1, 5), 10.0), p10, p90, {C.ITEM_ID: ["a"], C.ON_HAND: [20], C.ON_ORDER: [5], C.LEAD_TIME_DAYS: [3]},
               service_level=0.95, review_period_days=0, default_lead_time_days=7).to_pylist()[0]  # fmt: skip
    assert out[C.DEMAND_OVER_LEAD_TIME] == pytest.approx(30.0)
    assert out[C.SAFETY_STOCK] == pytest.approx(Z95 * math.sqrt(12)) == pytest.approx(5.6979, abs=1e-4)
    assert out[C.REORDER_POINT] == pytest.approx(35.6979, abs=1e-4)
    assert out[C.ORDER_QUANTITY] == 11
    assert out[C.STOCKOUT_RISK] == pytest.approx(0.925543, abs=1e-6)
    assert (out[C.ON_HAND], out[C.ON_ORDER], out[C.LEAD_TIME_DAYS], out[C.SERVICE_LEVEL]) == (20, 5, 3, 0.95)


def test_review_period_adds_days_and_a_well_stocked_item_orders_nothing():
    # L = 2, R = 3: five days of mean 4, sigma 1 -> mu 20, sigma sqrt(5), ROP 20 + 1.6449 x 2.2361 = 23.678.
    p10, p90 = band(np.full((1, 10), 4.0), np.ones((1, 10)))
    out = plan(["b"], np.full((1, 10), 4.0), p10, p90, {C.ITEM_ID: ["b"], C.ON_HAND: [40], C.ON_ORDER: [0], C.LEAD_TIME_DAYS: [2]},
               service_level=0.95, review_period_days=3, default_lead_time_days=7).to_pylist()[0]  # fmt: skip
    assert out[C.DEMAND_OVER_LEAD_TIME] == pytest.approx(20.0)
    assert out[C.REORDER_POINT] == pytest.approx(20 + Z95 * math.sqrt(5))
    assert out[C.ORDER_QUANTITY] == 0
    assert out[C.STOCKOUT_RISK] == pytest.approx(1 - 0.5 * math.erfc(-(40 - 20) / math.sqrt(5) / math.sqrt(2)), abs=1e-12)
    assert out[C.STOCKOUT_RISK] < 1e-10


def test_days_past_the_horizon_count_as_average_days():
    # Horizon of 5 days, 7 to cover: mu = 1+2+3+4+5 + 2 x mean(1..5) = 15 + 6 = 21;
    # variance = (1+1+1+1+9) + 2 x 13/5 = 18.2.
    mean = np.array([[1.0, 2, 3, 4, 5]])
    sigma = np.array([[1.0, 1, 1, 1, 3]])
    mu, s = demand_over_period(mean, sigma, np.array([7]))
    assert mu.tolist() == pytest.approx([21.0])
    assert s.tolist() == pytest.approx([math.sqrt(18.2)])
    # Within the horizon only the first days count; zero days is nothing.
    mu, s = demand_over_period(np.vstack([mean, mean]), np.vstack([sigma, sigma]), np.array([2, 0]))
    assert mu.tolist() == [3.0, 0.0] and s.tolist() == pytest.approx([math.sqrt(2), 0.0])


def test_zero_sigma_makes_demand_certain():
    mean = np.full((2, 4), 10.0)
    inv = {C.ITEM_ID: ["short", "full"], C.ON_HAND: [10, 40], C.ON_ORDER: [0, 0], C.LEAD_TIME_DAYS: [3, 3]}
    out = plan(["short", "full"], mean, mean, mean, inv, service_level=0.95, review_period_days=0, default_lead_time_days=7)
    assert out[C.SAFETY_STOCK].to_pylist() == [0.0, 0.0]
    assert out[C.REORDER_POINT].to_pylist() == [30.0, 30.0]
    assert out[C.ORDER_QUANTITY].to_pylist() == [20, 0]
    assert out[C.STOCKOUT_RISK].to_pylist() == [1.0, 0.0]
    # Exactly at the mean: no demand above the position, nothing to order.
    assert stockout_risk(np.array([30.0]), np.array([0.0]), np.array([30.0])).tolist() == [0.0]
    assert order_quantity(np.array([30.0]), np.array([30.0])).tolist() == [0]


def test_missing_inventory_and_nulls_get_the_defaults():
    ids = ["known", "nulls", "absent"]
    mean = np.full((3, 20), 2.0)
    inventory = pa.table({
        C.ITEM_ID: ["nulls", "known", "not-forecast"],
        C.SNAPSHOT_DATE: [dt.date(2024, 3, 1)] * 3,
        C.ON_HAND: pa.array([3, 5, 100], pa.int32()),
        C.ON_ORDER: pa.array([None, 2, 0], pa.int32()),
        C.LEAD_TIME_DAYS: pa.array([None, 1, 1], pa.int32()),
    })  # fmt: skip
    out = plan(ids, mean, mean, mean, inventory, service_level=0.9, review_period_days=2, default_lead_time_days=4)
    rows = {r[C.ITEM_ID]: r for r in out.to_pylist()}
    assert out[C.ITEM_ID].to_pylist() == ids
    assert (rows["known"][C.SNAPSHOT_DATE], rows["known"][C.ON_HAND], rows["known"][C.ON_ORDER], rows["known"][C.LEAD_TIME_DAYS]) == (
        dt.date(2024, 3, 1),
        5,
        2,
        1,
    )
    assert (rows["nulls"][C.ON_HAND], rows["nulls"][C.ON_ORDER], rows["nulls"][C.LEAD_TIME_DAYS]) == (3, 0, 4)
    assert (rows["absent"][C.SNAPSHOT_DATE], rows["absent"][C.ON_HAND], rows["absent"][C.ON_ORDER], rows["absent"][C.LEAD_TIME_DAYS]) == (
        None,
        0,
        0,
        4,
    )
    # Covered days: 1 + 2, 4 + 2, 4 + 2 at 2 units a day.
    assert out[C.DEMAND_OVER_LEAD_TIME].to_pylist() == [6.0, 12.0, 12.0]
    assert out[C.ORDER_QUANTITY].to_pylist() == [0, 9, 12]
    # No inventory at all: every item from an empty position.
    bare = plan(ids, mean, mean, mean, None, service_level=0.9, review_period_days=2, default_lead_time_days=4)
    assert bare[C.ON_HAND].to_pylist() == [0, 0, 0] and bare[C.SNAPSHOT_DATE].null_count == 3
    # Every row planned from an unknown stock says so.
    assert out[C.NO_INVENTORY].to_pylist() == [False, False, True]
    assert bare[C.NO_INVENTORY].to_pylist() == [True, True, True]


def test_plan_has_the_tables_columns_and_types():
    mean = np.ones((2, 3))
    out = plan(["x", "y"], mean, mean * 0.5, mean * 1.5, None, service_level=0.95, review_period_days=7, default_lead_time_days=7)
    expected = REPLENISHMENT_PLAN.arrow_schema()
    assert out.column_names == list(PLAN_COLUMNS)
    assert set(REPLENISHMENT_PLAN.column_names) - set(PLAN_COLUMNS) == {C.MODEL_VERSION, C.RUN_DATE, C.SCORED_AT}
    assert [out.schema.field(c).type for c in PLAN_COLUMNS] == [expected.field(c).type for c in PLAN_COLUMNS]


def test_bad_inputs_are_refused():
    mean = np.ones((1, 3))
    kwargs = {"service_level": 0.95, "review_period_days": 0, "default_lead_time_days": 1}
    with pytest.raises(ValueError, match="several rows for item"):
        plan(["a"], mean, mean, mean, {C.ITEM_ID: ["a", "a"], C.ON_HAND: [1, 2]}, **kwargs)
    with pytest.raises(ValueError, match="lead_time_days must be >= 0"):
        plan(["a"], mean, mean, mean, {C.ITEM_ID: ["a"], C.ON_HAND: [1], C.LEAD_TIME_DAYS: [-1]}, **kwargs)
    with pytest.raises(ValueError, match="n_items=2"):
        plan(["a", "b"], mean, mean, mean, None, **kwargs)
    with pytest.raises(ValueError, match="service_level"):
        safety_stock(np.ones(1), 1.0)


def test_forecast_matrices_pivot_long_rows():
    rows = pa.table({
        C.ITEM_ID: ["b", "a", "b", "a"],
        C.HORIZON_DAY: pa.array([2, 2, 1, 1], pa.int32()),
        C.MEAN: [4.0, 2.0, 3.0, 1.0],
        C.P10: [0.4, 0.2, 0.3, 0.1],
        C.P90: [8.0, 4.0, 6.0, 2.0],
    })  # fmt: skip
    ids, mean, p10, p90 = forecast_matrices(rows)
    assert ids == ["a", "b"]
    np.testing.assert_array_equal(mean, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(p10, [[0.1, 0.2], [0.3, 0.4]])
    np.testing.assert_array_equal(p90, [[2, 4], [6, 8]])
    with pytest.raises(ValueError, match="different numbers of forecast days"):
        forecast_matrices(rows.slice(1))
    with pytest.raises(ValueError, match="horizon days must be 1..2"):
        forecast_matrices(rows.set_column(1, C.HORIZON_DAY, pa.array([2, 2, 1, 2], pa.int32())))


def test_weekly_forecasts_are_spread_over_their_days_from_the_run_date():
    from shoplake.forecast.replenishment import Z_P90, daily_from_periods, forecast_grain

    monday, wednesday = dt.date(2024, 3, 4), dt.date(2024, 3, 6)
    mean = np.array([[70.0, 140.0]])
    sigma_week = 7.0
    p10, p90 = mean - sigma_week * Z_P90, mean + sigma_week * Z_P90
    per_day, sigma = daily_from_periods(mean, p10, p90, monday, "week", wednesday)
    # Wednesday .. Sunday of the first week (5 days of 10), then 7 days of 20; each day's sigma 7 / sqrt(7).
    np.testing.assert_allclose(per_day, [[10.0] * 5 + [20.0] * 7])
    np.testing.assert_allclose(sigma, np.full((1, 12), 7.0 / math.sqrt(7)))
    # Lead time 4 + review 3 = 7 days: 5 x 10 + 2 x 20 units, variance 7 x 49 / 7.
    table = plan(["a"], per_day, None, None, None, service_level=0.95, review_period_days=3, default_lead_time_days=4, sigma_day=sigma)
    row = table.to_pylist()[0]
    assert row[C.DEMAND_OVER_LEAD_TIME] == pytest.approx(90.0)
    assert row[C.SAFETY_STOCK] == pytest.approx(1.6448536 * 7.0, rel=1e-6)
    with pytest.raises(ValueError, match="does not lie in the first forecast week"):
        daily_from_periods(mean, p10, p90, monday, "week", monday + dt.timedelta(days=7))
    # A month of 29 days: each day gets a 29th of it.
    per_day, _ = daily_from_periods(
        np.array([[29.0]]), np.array([[29.0]]), np.array([[29.0]]), dt.date(2024, 2, 1), "month", dt.date(2024, 2, 1)
    )
    np.testing.assert_allclose(per_day, np.ones((1, 29)))
    rows = pa.table({C.ITEM_ID: ["a", "a"], C.HORIZON_DAY: [1, 2], C.FORECAST_DATE: [monday, monday + dt.timedelta(days=7)],
                     "grain": ["week", "week"]})  # fmt: skip
    assert forecast_grain(rows) == ("week", monday)
    assert forecast_grain(rows.drop_columns(["grain"])) == ("day", monday)  # rows written before grains
