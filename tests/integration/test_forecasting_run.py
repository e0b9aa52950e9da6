"""The forecasting run and batch forecasts on a hand-made lake: backtest rows, registry, serving tables."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.forecast.protocol import backtest_origins
from shoplake.forecast.report import forecast_champion
from shoplake.forecast.schemas import FORECASTS, GRAIN, ITEM_DAILY_SALES, REPLENISHMENT_PLAN, TASK_FORECASTING
from shoplake.forecast.score import inventory_position, score_forecasts
from shoplake.forecast.train import MissingSalesError, run_forecasting
from shoplake.ingest.bronze import BRONZE
from shoplake.lake import Lake
from shoplake.recommend.schemas import TASK_RECOMMENDATION
from shoplake.train.model_metrics import read_model_metrics

D = dt.date(2024, 5, 1)
DAYS = 70
ITEMS = [f"i{j:02d}" for j in range(12)]
WEEK = np.array([1.0, 1.0, 1.0, 1.2, 1.5, 2.0, 0.3])
INGESTED = dt.datetime(2024, 5, 1, 1, tzinfo=dt.timezone.utc)
SETTINGS = [
    "forecasting.horizon_days=7", "forecasting.history_days=14", "forecasting.backtest_origins=2",
    "forecasting.min_history_days=14", "forecasting.epochs=2", "forecasting.windows_per_epoch=2000",
    "forecasting.batch_size=128", "forecasting.hidden=16",
    # The gradient-boosted model has tests of its own (a Ray Train run, and the weekly run below).
    "forecasting.models=[seasonal_naive,moving_average,ets,auto_theta,adida,croston,imapa,quantile_net,ensemble]",
    "forecasting.ensemble_members=[quantile_net,ets]",
]  # fmt: skip


def daily_sales(run_date: dt.date, days: int = DAYS) -> pa.Table:
    """Weekly patterns times a level per item; i11 starts selling 10 days before the run date."""
    rng = np.random.default_rng(3)
    rows = []
    for j, item in enumerate(ITEMS):
        first = days - 10 if item == "i11" else 0
        for d in range(first, days):
            day = run_date - dt.timedelta(days=days - d)
            units = int(rng.poisson(WEEK[day.weekday()] * (2 + j)))
            rows.append({
                C.ITEM_ID: item, C.SALE_DATE: day, C.UNITS: units, C.REVENUE: units * 2.5, C.AVG_PRICE: 2.5,
                C.ON_PROMOTION: False, C.STOCK_OUT: None, C.DAY_OF_WEEK: day.isoweekday(), C.DAY_OF_MONTH: day.day,
                C.WEEK_OF_YEAR: day.isocalendar()[1], C.MONTH: day.month, C.IS_WEEKEND: day.weekday() >= 5,
                C.DAYS_SINCE_FIRST_SALE: d - first, C.RUN_DATE: run_date,
            })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=ITEM_DAILY_SALES.arrow_schema())


def inventory_rows() -> pa.Table:
    spec = BRONZE["inventory"]
    rows = [
        # i00: an older and a newer snapshot, and a re-ingested copy of the newer one with other numbers.
        (dt.date(2024, 4, 28), "i00", 50, 0, 3, dt.date(2024, 4, 29), INGESTED),
        (dt.date(2024, 4, 30), "i00", 5, 10, 3, dt.date(2024, 4, 30), INGESTED),
        (dt.date(2024, 4, 30), "i00", 4, 10, 3, dt.date(2024, 4, 30), INGESTED + dt.timedelta(hours=1)),
        # i01: a snapshot on the run date itself is not known before it.
        (dt.date(2024, 4, 29), "i01", 500, 0, None, dt.date(2024, 4, 30), INGESTED),
        (D, "i01", 0, 0, 2, D, INGESTED),
    ]
    return pa.Table.from_pylist(
        [
            {
                C.SNAPSHOT_DATE: s,
                C.ITEM_ID: i,
                C.ON_HAND: h,
                C.ON_ORDER: o,
                C.LEAD_TIME_DAYS: lt,
                C.UNIT_COST: 1.0,
                C.SOURCE_FILE: "inventory.csv",
                C.ROW_NUMBER: n + 1,
                C.INGESTED_AT: at,
                C.RUN_DATE: landed,
            }  # fmt: skip
            for n, (s, i, h, o, lt, landed, at) in enumerate(rows)
        ],
        schema=spec.arrow_schema(),
    )


@pytest.fixture(scope="module", autouse=True)
def fresh_ray_after():
    """Ray is restarted after this module: in the same instance, the first Ray Train run of the
    nightly test that followed it waited for resources forever (2 of 2 runs); a fresh instance does not."""
    yield
    import ray

    from helpers import TEST_OVERRIDES
    from shoplake.config import load_config
    from shoplake.ray_runtime import init_ray

    ray.shutdown()
    init_ray(load_config("local", TEST_OVERRIDES))


@pytest.fixture
def forecast_lake(make_cfg, ray_local):
    cfg = make_cfg("lake.engine=delta-rs", *SETTINGS)
    lake = Lake(cfg)
    lake.ray_write(ray_local.data.from_arrow(daily_sales(D)), ITEM_DAILY_SALES, mode="replace", run_dates=[D])
    lake.ray_write(ray_local.data.from_arrow(inventory_rows()), BRONZE["inventory"], mode="overwrite")
    return cfg, lake


def test_inventory_position_takes_the_latest_snapshot_known_before_the_run_date(forecast_lake):
    _, lake = forecast_lake
    rows = {r[C.ITEM_ID]: r for r in inventory_position(lake, D).to_pylist()}
    assert (rows["i00"][C.SNAPSHOT_DATE], rows["i00"][C.ON_HAND]) == (dt.date(2024, 4, 30), 4)
    assert (rows["i01"][C.SNAPSHOT_DATE], rows["i01"][C.ON_HAND]) == (dt.date(2024, 4, 29), 500)


def test_run_backtests_registers_and_scores(forecast_lake):
    cfg, lake = forecast_lake
    with pytest.raises(MissingSalesError, match="no run date 2024-04-30"):
        run_forecasting(cfg, lake, D - dt.timedelta(days=1), register=False)
    result = run_forecasting(cfg, lake, D, name="fc_test")
    assert result.origins == backtest_origins(cfg, D) == [dt.date(2024, 4, 17), dt.date(2024, 4, 24)]
    # The network's settings were searched on the validation cut-off (gbdt is not among the models) and recorded.
    assert set(result.searched_settings) == {"quantile_net"} and result.searched_settings["quantile_net"]["trials"] == 2

    rows = read_model_metrics(lake, D, TASK_FORECASTING).to_pylist()
    assert read_model_metrics(lake, D, TASK_RECOMMENDATION).num_rows == 0
    models = set(cfg.forecasting.models)
    assert {(r[C.CUTOFF_DATE], r[C.MODEL_NAME]) for r in rows} == {(c, m) for c in result.origins for m in models}
    assert {"mase", "rmsse", "wrmsse", "bias", "coverage_p10_p90", "pinball"} <= {r[C.METRIC] for r in rows}
    # i11 has 10 days of history at the run date, fewer at the cut-offs: never evaluated.
    assert {r[C.N_EVALUATED] for r in rows} == {11}
    assert all(r[C.MLFLOW_RUN_ID] == result.mlflow_run_id for r in rows)
    wrmsse = {r[C.MODEL_NAME]: r[C.VALUE] for r in rows if r[C.METRIC] == "wrmsse" and r[C.CUTOFF_DATE] == result.origins[-1]}
    assert all(0 < v < 3 for v in wrmsse.values()), wrmsse
    assert result.model_version == "1"
    # The champion: the lowest WRMSSE at the validation cut-off (the first); the test cut-off only reports.
    valid = {r[C.MODEL_NAME]: r[C.VALUE] for r in rows if r[C.METRIC] == "wrmsse" and r[C.CUTOFF_DATE] == result.origins[0]}
    assert result.champion == forecast_champion(rows) == min(valid, key=valid.get)
    other, ratio = result.versus
    assert other != result.champion and ratio.low <= ratio.value <= ratio.high
    assert ratio.value == pytest.approx(wrmsse[result.champion] / wrmsse[other])
    low = {r[C.MODEL_NAME]: r[C.VALUE] for r in rows if r[C.METRIC] == "wrmsse_low" and r[C.CUTOFF_DATE] == result.origins[-1]}
    assert all(low[m] <= wrmsse[m] for m in models)

    scored = score_forecasts(cfg, lake)
    assert scored.run_date == D and scored.model_version == "1" and scored.model_name == result.champion
    fc = lake.to_arrow(FORECASTS, run_date=D)
    assert fc.schema.equals(FORECASTS.arrow_schema(), check_metadata=False)
    assert fc.num_rows == len(ITEMS) * 7 == scored.forecast_rows
    first = fc.filter(pa.compute.equal(fc[C.HORIZON_DAY], 1))
    assert set(first[C.FORECAST_DATE].to_pylist()) == {D}
    for row in fc.to_pylist():
        assert 0 <= row[C.P10] <= row[C.P50] <= row[C.P90]

    plan = {r[C.ITEM_ID]: r for r in lake.to_arrow(REPLENISHMENT_PLAN, run_date=D).to_pylist()}
    assert set(plan) == set(ITEMS)
    i00 = plan["i00"]
    assert (i00[C.ON_HAND], i00[C.ON_ORDER], i00[C.LEAD_TIME_DAYS], i00[C.SNAPSHOT_DATE]) == (4, 10, 3, dt.date(2024, 4, 30))
    assert i00[C.REORDER_POINT] == pytest.approx(i00[C.DEMAND_OVER_LEAD_TIME] + i00[C.SAFETY_STOCK])
    # Lead time 3 + review period 7 = 10 days > the 7 forecast: the plan extends the horizon.
    days = fc.filter(pa.compute.equal(fc[C.ITEM_ID], "i00")).sort_by(C.HORIZON_DAY)
    mean = np.array(days[C.MEAN].to_pylist())
    assert i00[C.DEMAND_OVER_LEAD_TIME] == pytest.approx(mean.sum() + 3 * mean.mean())
    assert i00[C.ORDER_QUANTITY] == max(0, int(np.ceil(i00[C.REORDER_POINT] - 14 - 1e-9)))
    assert plan["i01"][C.LEAD_TIME_DAYS] == cfg.forecasting.default_lead_time_days  # null in the snapshot used
    assert plan["i05"][C.SNAPSHOT_DATE] is None and plan["i05"][C.ON_HAND] == 0  # no inventory: an empty position
    # ... flagged on its row and counted in the run's result, never a silent zero.
    flagged = {i for i, r in plan.items() if r[C.NO_INVENTORY]}
    assert flagged == set(ITEMS) - {"i00", "i01"} and scored.items_without_inventory == len(flagged)
    # Default lead time 7 + review period 7 = 14 days: 7 forecast days and 7 more at their mean variance.
    i05 = fc.filter(pa.compute.equal(fc[C.ITEM_ID], "i05")).sort_by(C.HORIZON_DAY)
    var = ((np.array(i05[C.P90].to_pylist()) - np.array(i05[C.P10].to_pylist())) / (2 * 1.2815516)) ** 2
    assert plan["i05"][C.SAFETY_STOCK] == pytest.approx(1.6448536 * np.sqrt(var.sum() + 7 * var.mean()), rel=1e-4)

    # A re-run replaces the run date's rows instead of adding to them.
    again = score_forecasts(cfg, lake, D)
    assert again.forecasts_version == scored.forecasts_version + 1 and lake.to_arrow(FORECASTS, run_date=D).num_rows == fc.num_rows
    assert lake.to_arrow(REPLENISHMENT_PLAN, run_date=D).num_rows == len(ITEMS)


WEEKLY = [
    "forecasting.grain=week", "forecasting.horizon=2", "forecasting.history=4", "forecasting.min_history=3",
    "forecasting.backtest_origins=2", "forecasting.gbdt_rounds=20", "forecasting.gbdt_windows=300", "forecasting.review_period_days=7",
]  # fmt: skip


@pytest.mark.parametrize(
    "models",
    [
        ["forecasting.models=[seasonal_naive,moving_average,ets,croston,ensemble]", "forecasting.ensemble_members=[ets,croston]"],
        pytest.param(
            ["forecasting.models=[seasonal_naive,ets,gbdt,ensemble]", "forecasting.ensemble_members=[ets,gbdt]"],
            marks=pytest.mark.slow,
            id="with-gbdt",
        ),
    ],
    ids=["baselines", "with-gbdt"],
)
def test_a_weekly_run_backtests_calibrates_serves_weeks_and_plans_days(make_cfg, ray_local, models):
    """Seventy days summed to whole ISO weeks, three cut-offs two weeks apart, forecasts of weeks, a plan in days."""
    cfg = make_cfg("lake.engine=delta-rs", *WEEKLY, *models)
    lake = Lake(cfg)
    lake.ray_write(ray_local.data.from_arrow(daily_sales(D)), ITEM_DAILY_SALES, mode="replace", run_dates=[D])
    lake.ray_write(ray_local.data.from_arrow(inventory_rows()), BRONZE["inventory"], mode="overwrite")
    # D is Wednesday 1 May: its week starts on Monday 29 April; the sales start on Wednesday 21 February,
    # so the first whole week is that of Monday 26 February.
    result = run_forecasting(cfg, lake, D, name="fc_week")
    assert result.origins == [dt.date(2024, 4, 1), dt.date(2024, 4, 15)]
    assert result.backtest.calibration_cutoffs == [dt.date(2024, 3, 18)]
    rows = read_model_metrics(lake, D, TASK_FORECASTING).to_pylist()
    assert {r[C.CUTOFF_DATE] for r in rows} == set(result.origins)  # the calibration cut-off is never scored
    assert {"coverage_p10_p90", "coverage_p10_p90_raw"} <= {r[C.METRIC] for r in rows}
    # Every scored cut-off had earlier residuals: each band was calibrated.
    assert all(result.backtest.forecasts[m][c].calibration is not None for m in result.backtest.forecasts for c in result.origins)
    # i11 started ten days before the run date: no whole week before any cut-off, never evaluated.
    assert {r[C.N_EVALUATED] for r in rows} == {11}

    scored = score_forecasts(cfg, lake)
    fc = lake.to_arrow(FORECASTS, run_date=D).sort_by([(C.ITEM_ID, "ascending"), (C.HORIZON_DAY, "ascending")])
    assert fc.num_rows == len(ITEMS) * 2 == scored.forecast_rows and set(fc[GRAIN].to_pylist()) == {"week"}
    assert fc[C.FORECAST_DATE].to_pylist()[:2] == [dt.date(2024, 4, 29), dt.date(2024, 5, 6)]
    assert scored.model_name == result.champion
    plan = {r[C.ITEM_ID]: r for r in lake.to_arrow(REPLENISHMENT_PLAN, run_date=D).to_pylist()}
    i00 = fc.filter(pa.compute.equal(fc[C.ITEM_ID], "i00"))
    week1, week2 = i00[C.MEAN].to_pylist()
    # Lead time 3 + review 7 = 10 days from Wednesday 1 May: 5 days of the first week, 5 of the second.
    assert plan["i00"][C.DEMAND_OVER_LEAD_TIME] == pytest.approx(5 / 7 * week1 + 5 / 7 * week2)
