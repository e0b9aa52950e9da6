"""/forecast and /replenishment on Ray Serve, answering from the latest run date of the serving tables."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from helpers import get_json
from shoplake import columns as C
from shoplake.forecast.schemas import FORECASTS, REPLENISHMENT_PLAN

OLD, LATEST = dt.date(2024, 2, 29), dt.date(2024, 3, 1)
DAYS = 5
SCORED_AT = dt.datetime(2024, 3, 1, 2, 30, tzinfo=dt.timezone.utc)


def forecast_rows(run_date: dt.date, items: dict[str, float], version: str = "3") -> pa.Table:
    """``DAYS`` days per item: mean = level + day, P10/P50/P90 = mean - 1, mean, mean + 2."""
    rows = []
    for item, level in items.items():
        for day in range(1, DAYS + 1):
            mean = level + day
            rows.append({
                C.ITEM_ID: item, C.FORECAST_DATE: run_date + dt.timedelta(days=day - 1), C.HORIZON_DAY: day,
                C.MEAN: mean, C.P10: mean - 1, C.P50: mean, C.P90: mean + 2, C.MODEL_NAME: "quantile_net",
                C.MODEL_VERSION: version, C.RUN_DATE: run_date, C.SCORED_AT: SCORED_AT,
            })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=FORECASTS.arrow_schema())


def plan_rows(forecasts: pa.Table) -> pa.Table:
    """The replenishment plan of ``forecasts`` (one run date), as the batch job would write it."""
    from shoplake.forecast.replenishment import forecast_matrices, plan

    ids, mean, p10, p90 = forecast_matrices(forecasts)
    inventory = {
        C.ITEM_ID: ["i1"],
        C.SNAPSHOT_DATE: [LATEST - dt.timedelta(days=1)],
        C.ON_HAND: [4],
        C.ON_ORDER: [1],
        C.LEAD_TIME_DAYS: [2],
    }
    table = plan(ids, mean, p10, p90, inventory, service_level=0.95, review_period_days=1, default_lead_time_days=3)
    n = table.num_rows
    table = table.append_column(C.MODEL_VERSION, pa.array(["3"] * n)).append_column(
        C.RUN_DATE, pa.array([forecasts[C.RUN_DATE][0].as_py()] * n)
    )
    return table.append_column(C.SCORED_AT, pa.array([SCORED_AT] * n, pa.timestamp("us", tz="UTC"))).cast(REPLENISHMENT_PLAN.arrow_schema())


def write(lake, table: pa.Table, spec, mode: str = "overwrite", run_dates=None):
    import ray

    return lake.ray_write(ray.data.from_arrow(table), spec, mode=mode, run_dates=run_dates)


@pytest.fixture(scope="module")
def served(serve_url, tmp_path_factory):
    """The app over a lake with two run dates of forecasts and a plan at /, and over an empty lake at /empty."""
    from ray import serve

    from shoplake.config import load_config
    from shoplake.lake import Lake
    from shoplake.serve.app import build_app

    root = tmp_path_factory.mktemp("serve-forecast")
    lake_root, empty_root = root / "lake", root / "empty-lake"
    lake = Lake(load_config("local", [f"lake.root={lake_root}"]))
    latest = forecast_rows(LATEST, {"i1": 10.0, "i2": 20.0})
    write(lake, pa.concat_tables([forecast_rows(OLD, {"i1": 0.0, "only-old": 1.0}, version="2"), latest]), FORECASTS)
    plan = plan_rows(latest)
    write(lake, plan, REPLENISHMENT_PLAN)
    serve.run(build_app({"env": "local", "overrides": [f"lake.root={lake_root}"]}), name="forecast", route_prefix="/")
    serve.run(build_app({"env": "local", "overrides": [f"lake.root={empty_root}"]}), name="forecast-empty", route_prefix="/empty")
    return serve_url, plan


def test_forecast_of_the_latest_run_date(served):
    url, _ = served
    status, body = get_json(f"{url}/forecast?item_id=i1")
    assert status == 200, body
    assert {k: body[k] for k in ("item_id", "run_date", "model_name", "model_version", "horizon")} == {
        "item_id": "i1", "run_date": "2024-03-01", "model_name": "quantile_net", "model_version": "3", "horizon": DAYS,
    }  # fmt: skip
    assert body["grain"] == "day"  # rows without a grain (written before grains) are days
    assert body["forecasts"][0] == {"date": "2024-03-01", "mean": 11.0, "p10": 10.0, "p50": 11.0, "p90": 13.0}
    assert [f["date"] for f in body["forecasts"]] == [f"2024-03-0{d}" for d in range(1, DAYS + 1)]
    assert [f["mean"] for f in body["forecasts"]] == [11.0, 12.0, 13.0, 14.0, 15.0]

    status, body = get_json(f"{url}/forecast?item_id=i2&horizon=2")
    assert status == 200 and body["horizon"] == 2
    assert body["forecasts"] == [
        {"date": "2024-03-01", "mean": 21.0, "p10": 20.0, "p50": 21.0, "p90": 23.0},
        {"date": "2024-03-02", "mean": 22.0, "p10": 21.0, "p50": 22.0, "p90": 24.0},
    ]
    status, body = get_json(f"{url}/forecast?item_id=i2&horizon={DAYS}")
    assert status == 200 and len(body["forecasts"]) == DAYS


def test_replenishment_row(served):
    url, plan = served
    status, body = get_json(f"{url}/replenishment?item_id=i1")
    assert status == 200, body
    expected = {
        k: v.isoformat() if isinstance(v, dt.date) else v
        for k, v in plan.filter(pa.compute.field(C.ITEM_ID) == "i1").to_pylist()[0].items()
    }
    assert body == expected
    # i1: L + R = 3 days of means 11, 12, 13; sigma_day = 3 / 2.5631; position 5.
    assert body[C.DEMAND_OVER_LEAD_TIME] == pytest.approx(36.0)
    assert body[C.SAFETY_STOCK] == pytest.approx(1.6448536 * np.sqrt(3) * 3 / (2 * 1.2815516), rel=1e-6)
    assert (body[C.ON_HAND], body[C.ON_ORDER], body[C.LEAD_TIME_DAYS], body[C.SNAPSHOT_DATE]) == (4, 1, 2, "2024-02-29")
    assert body[C.ORDER_QUANTITY] == int(np.ceil(36.0 + body[C.SAFETY_STOCK] - 5))
    assert body[C.RUN_DATE] == "2024-03-01" and body[C.SCORED_AT].startswith("2024-03-01T02:30:00")

    status, body = get_json(f"{url}/replenishment?item_id=i2")  # no inventory row: the defaults
    assert status == 200 and (body[C.SNAPSHOT_DATE], body[C.ON_HAND], body[C.LEAD_TIME_DAYS]) == (None, 0, 3)


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("/forecast?item_id=i1&horizon=0", 422, ["horizon", "greater than or equal to 1"]),
        ("/forecast?item_id=i1&horizon=abc", 422, ["horizon", "integer", "'abc'"]),
        (f"/forecast?item_id=i1&horizon={DAYS + 1}", 422, ["horizon", f"at most {DAYS}", f"got {DAYS + 1}"]),
        ("/forecast?horizon=2", 422, ["item_id is required"]),
        ("/forecast?item_id=i1&days=3", 400, ["unknown query parameter", "days"]),
        ("/forecast?item_id=nope", 404, ["nope", "2024-03-01"]),
        ("/forecast?item_id=only-old", 404, ["only-old"]),  # in an older run date only
        ("/replenishment?item_id=i1&horizon=2", 400, ["unknown query parameter", "horizon"]),
        ("/replenishment?item_id=nope", 404, ["nope", "replenishment plan"]),
        ("/replenishment", 422, ["item_id is required"]),
    ],
)
def test_bad_requests_are_refused_with_a_message(served, query, status, words):
    url, _ = served
    got, body = get_json(url + query)
    assert got == status, body
    for word in words:
        assert word in body["detail"]


def test_health_says_what_is_loaded_and_no_tables_is_503(served):
    url, _ = served
    status, body = get_json(f"{url}/health")
    assert status == 200 and body["status"] == "ok" and "model" in body
    assert body["forecasts"] == {"loaded": True, "table": "serving.forecasts", "version": 0, "run_date": "2024-03-01", "items": 2}
    assert body["replenishment"] == {
        "loaded": True,
        "table": "serving.replenishment_plan",
        "version": 0,
        "run_date": "2024-03-01",
        "items": 2,
    }

    status, body = get_json(f"{url}/empty/health")
    assert status == 200 and body["forecasts"]["loaded"] is False and "serving.forecasts does not exist" in body["forecasts"]["detail"]
    assert body["replenishment"]["loaded"] is False
    status, body = get_json(f"{url}/empty/forecast?item_id=i1")
    assert status == 503 and "no forecasts are loaded" in body["detail"] and "serving.forecasts does not exist" in body["detail"]
    status, body = get_json(f"{url}/empty/replenishment?item_id=i1")
    assert status == 503 and "serving.replenishment_plan does not exist" in body["detail"]
    status, body = get_json(f"{url}/empty/forecast?item_id=i1&horizon=0")  # a bad value is still a 422
    assert status == 422


def test_store_reloads_when_the_table_changes(ray_local, make_cfg):
    from fastapi import HTTPException

    from shoplake.forecast.serve import ForecastStore
    from shoplake.lake import Lake

    lake = Lake(make_cfg())
    eager, lazy = ForecastStore(lake, check_every_s=0), ForecastStore(lake, check_every_s=3600)
    with pytest.raises(HTTPException) as err:
        eager.forecast("i1")
    assert err.value.status_code == 503

    write(lake, forecast_rows(OLD, {"i1": 0.0}), FORECASTS)
    assert eager.forecast("i1", 1)["forecasts"][0]["mean"] == 1.0
    write(lake, forecast_rows(LATEST, {"i1": 100.0}, version="4"), FORECASTS, mode="append")
    body = eager.forecast("i1", 1)
    assert (body["run_date"], body["model_version"], body["forecasts"][0]["mean"]) == ("2024-03-01", "4", 101.0)
    assert eager.status()["forecasts"]["version"] == 1
    # The other store checks once an hour: it still has no table.
    assert lazy.status()["forecasts"]["loaded"] is False
    lazy.forecasts.refresh()
    assert lazy.forecast("i1")["run_date"] == "2024-03-01"
