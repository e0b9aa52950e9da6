"""Forecasting tables: daily item sales (gold), forecasts and replenishment plans (serving).

``gold.item_daily_sales`` is partitioned by ``run_date`` like the recommendation
features: the partition of day D is the sales history as known before D's midnight
(UTC), one row per item and day from the item's first sale to D - 1, zeros filled.
The serving tables hold what the forecasting run wrote for D: forecasts of the
``forecasting.horizon`` periods of ``forecasting.grain`` from the one holding D on (a
period is named by its first day, with its grain beside it: at week grain the first
row is the week holding D, from its Monday), and the replenishment plan.
"""

from __future__ import annotations

from shoplake import columns as C
from shoplake.lake.spec import Col, TableSpec

#: Quantile levels of the forecasts, and their columns.
QUANTILES = (0.1, 0.5, 0.9)
QUANTILE_COLUMNS = (C.P10, C.P50, C.P90)
#: The period of a forecast row: day, week or month.
GRAIN = "grain"

_RUN_DATE = Col(C.RUN_DATE, "date", False, "The day the table is built for; only data before its midnight (UTC) is used.")

ITEM_DAILY_SALES = TableSpec(
    name="item_daily_sales",
    layer="gold",
    columns=(
        Col(C.ITEM_ID, "string", False, "Product."),
        Col(
            C.SALE_DATE,
            "date",
            False,
            "Day of the sales (UTC), from the item's first day with net units > 0 to run_date - 1.",
        ),
        Col(
            C.UNITS,
            "long",
            False,
            "Units placed that day (guests included) that no cancellation known before run_date took back; 0 on a day without sales.",
        ),
        Col(C.REVENUE, "double", False, "Revenue of those units (units kept x unit price); 0 on a day without sales."),
        Col(
            C.AVG_PRICE,
            "double",
            True,
            "Revenue / units on a day with sales; otherwise the last earlier day's (never null: the first day has sales).",
        ),
        Col(
            C.ON_PROMOTION,
            "boolean",
            False,
            "A product version with on_promotion true was in effect at some time that day; false without one.",
        ),
        Col(
            C.STOCK_OUT,
            "boolean",
            True,
            "End-of-day on_hand was 0 (latest ingested snapshot); null when inventory has no row for the day.",
        ),
        Col(C.DAY_OF_WEEK, "int", False, "1 = Monday .. 7 = Sunday."),
        Col(C.DAY_OF_MONTH, "int", False, "1..31."),
        Col(C.WEEK_OF_YEAR, "int", False, "ISO week, 1..53."),
        Col(C.MONTH, "int", False, "1..12."),
        Col(C.IS_WEEKEND, "boolean", False, "Saturday or Sunday."),
        Col(C.DAYS_SINCE_FIRST_SALE, "int", False, "0 on the item's first day with a sale."),
        _RUN_DATE,
    ),
    keys=(C.ITEM_ID, C.SALE_DATE, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "Daily sales per item known before run_date: zero-filled from the item's first sale, cancellations netted, "
        "with price, promotion, stock-out and calendar features."
    ),
)

FORECASTS = TableSpec(
    name="forecasts",
    layer="serving",
    columns=(
        Col(C.ITEM_ID, "string", False, "Product."),
        Col(
            C.FORECAST_DATE,
            "date",
            False,
            "First day of the period forecast (the day; a week's Monday; a month's first day); the first row's period holds run_date.",
        ),
        Col(C.HORIZON_DAY, "int", False, "The period's number: 1 for the one holding run_date, 2 for the next, ..."),
        Col(GRAIN, "string", True, "The period: day, week or month (null in rows written before grains: day)."),
        Col(C.MEAN, "double", False, "Expected units of the period (revenue with forecasting.target revenue): the point forecast."),
        Col(C.P10, "double", False, "10th percentile of the period's units (calibrated)."),
        Col(C.P50, "double", False, "Median of the period's units."),
        Col(C.P90, "double", False, "90th percentile of the period's units (calibrated)."),
        Col(C.MODEL_NAME, "string", False, "Model family of the registered version."),
        Col(C.MODEL_VERSION, "string", False, "Registered model version (MLflow) that forecast."),
        Col(C.RUN_DATE, "date", False, "Sales before this day were used."),
        Col(C.SCORED_AT, "timestamp", False, "When the forecast was written, UTC."),
    ),
    keys=(C.ITEM_ID, C.FORECAST_DATE, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description="Demand forecasts per item and period (day, week or month) with P10/P50/P90, one commit per run date.",
)

REPLENISHMENT_PLAN = TableSpec(
    name="replenishment_plan",
    layer="serving",
    columns=(
        Col(C.ITEM_ID, "string", False, "Product."),
        Col(C.SNAPSHOT_DATE, "date", True, "Day of the inventory position used (null: no inventory known)."),
        Col(
            C.NO_INVENTORY, "boolean", True, "True: no stock on hand was known for the item, so it is planned as if none were (on hand 0)."
        ),  # fmt: skip
        Col(C.ON_HAND, "long", False, "Units in stock at that snapshot (0 when unknown)."),
        Col(C.ON_ORDER, "long", False, "Units ordered, not yet received."),
        Col(C.LEAD_TIME_DAYS, "int", False, "Supplier lead time used, days."),
        Col(C.DEMAND_OVER_LEAD_TIME, "double", False, "Forecast units over the lead time plus review period."),
        Col(C.SAFETY_STOCK, "double", False, "z(service level) x sigma of demand over that period."),
        Col(C.REORDER_POINT, "double", False, "demand_over_lead_time + safety_stock."),
        Col(C.ORDER_QUANTITY, "long", False, "Units to order now: reorder point minus stock position, rounded up; 0 if none."),
        Col(C.STOCKOUT_RISK, "double", False, "Chance that demand over the lead time exceeds on hand + on order."),
        Col(C.SERVICE_LEVEL, "double", False, "Target cycle service level the safety stock is sized for."),
        Col(C.MODEL_VERSION, "string", False, "Registered forecaster version the plan comes from."),
        Col(C.RUN_DATE, "date", False, "Sales and inventory before this day were used."),
        Col(C.SCORED_AT, "timestamp", False, "When the plan was written, UTC."),
    ),
    keys=(C.ITEM_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description="What to reorder per item, from the forecasts and the inventory position, one commit per run date.",
)

SPECS = (ITEM_DAILY_SALES, FORECASTS, REPLENISHMENT_PLAN)
TASK_FORECASTING = "forecasting"
