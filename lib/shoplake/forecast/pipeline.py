"""What forecasting and replenishment declare to the platform: tables, the feature node and the metrics report."""

from __future__ import annotations

import datetime as dt

from shoplake.features.run import FeatureNode
from shoplake.forecast import schemas
from shoplake.forecast.features import compute_item_daily_sales
from shoplake.forecast.schemas import ITEM_DAILY_SALES
from shoplake.ingest.landing import INVENTORY, ORDERS, PRODUCTS
from shoplake.pipeline import Step, StepContext
from shoplake.usecases import UseCase


def _features(ctx, day: dt.date) -> dict:
    sales = compute_item_daily_sales(
        ctx.landed_before(ORDERS.name, day), ctx.landed_before(PRODUCTS.name, day), ctx.landed_before(INVENTORY.name, day), day
    )
    return {ITEM_DAILY_SALES.full_name: sales}


FEATURES = FeatureNode(
    name="forecast",
    outputs=(ITEM_DAILY_SALES,),
    compute=_features,
    required=(ORDERS.name,),
    optional={PRODUCTS.name: "no day is on promotion", INVENTORY.name: "item daily sales have no stock-out flags"},
    skipped_because="it is built from orders",
)


def _train(ctx: StepContext) -> None:
    from shoplake.forecast.train import run_forecasting
    from shoplake.ray_runtime import init_ray

    init_ray(ctx.cfg)
    fc = ctx.cfg.forecasting
    update = ctx.bar("forecasters", len(fc.models) * (fc.backtest_origins + fc.calibration_origins) + 4)
    result = run_forecasting(ctx.cfg, ctx.lake, ctx.run_date, on_step=lambda text: update(f"forecasters: {text}"))
    update(f"forecasters: {result.champion} v{result.model_version} registered (champion)", done=True)
    if result.versus_line():
        ctx.say(result.versus_line())
    if result.chart_path:
        ctx.say(f"actual vs forecast at the last backtest cut-off: {result.chart_path}")


def _score(ctx: StepContext) -> None:
    from shoplake.forecast.score import no_inventory_warning, score_forecasts

    update = ctx.bar("forecasting serving.forecasts", 1)
    scored = score_forecasts(ctx.cfg, ctx.lake, ctx.run_date)
    fc = ctx.cfg.forecasting
    update(f"forecasts: {scored.items:,} items x {fc.horizon} {fc.grain}s, {scored.items_to_order:,} items to reorder", done=True)
    if scored.items_without_inventory:
        ctx.warn(no_inventory_warning(scored.items_without_inventory, scored.items, ctx.run_date))


STEPS = (
    Step(
        "train-forecaster", "ray", "shoplake.forecast.commands:train", ("ray_apps/train.py", "forecast"),
        "backtest, train and register the demand forecasters (ray_apps/train.py forecast)", after=("features",),
        inputs=("gold.item_daily_sales",), outputs=("ops.model_metrics",), nightly=_train,
    ),
    Step(
        "score-forecasts", "ray", "shoplake.forecast.commands:score", ("ray_apps/score.py", "forecast"),
        "forecasts and the replenishment plan into the serving tables (ray_apps/score.py forecast)", after=("train-forecaster",),
        inputs=("gold.item_daily_sales", "bronze.inventory"), outputs=("serving.forecasts", "serving.replenishment_plan"),
        nightly=_score,
    ),
)  # fmt: skip


def _holder(cfg, lake, check_every_s: float):
    from shoplake.forecast.serve import ForecastStore

    return ForecastStore(lake, check_every_s)


def _metrics_table(rows: list[dict], cfg):
    from shoplake.forecast.report import forecast_metrics_table

    return forecast_metrics_table(rows, cfg.forecasting.main_model)  # named only when the run had one cut-off


USE_CASE = UseCase(
    name="forecast", order=20, tables=schemas.SPECS, feature_nodes=(FEATURES,), steps=STEPS, metrics_task=schemas.TASK_FORECASTING,
    metrics_table=_metrics_table, routes="shoplake.forecast.routes:router", holder=_holder, health_key=None,
    config_section="forecasting",
)  # fmt: skip
