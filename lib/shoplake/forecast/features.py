"""Daily sales per item for demand forecasting: the rows of ``gold.item_daily_sales``.

A pure Spark transform (no I/O). Built for a run date ``D``, it uses only what was
known before D's midnight, UTC: bronze rows of landing days (``run_date``) before D,
order lines and product versions timestamped before D's midnight, inventory
snapshots of days before D. Days are UTC calendar days.

Rules of :func:`compute_item_daily_sales`:

* **Sales.** Placed order lines, guests included (demand is demand, whoever buys).
  Cancellations are netted with the LIFO netting of the recommendation features
  (:func:`shoplake.features.orders.net_cancellations`) by units, keyed on
  (user, item) for customers and (order, item) for guests: the synthetic shop repeats
  a guest's cancelled line under its order id, so it matches; an Online Retail guest
  cancellation has its own ``C`` invoice and no customer, so it matches nothing and
  is ignored. A line keeps the units not cancelled (12 placed, 6 cancelled later: 6
  sold), counted on the day the line was placed, with revenue = kept units x unit
  price. Only cancellations before D's midnight count. Returns are not netted: the
  sale happened.
* **Days.** One row per item and day from the item's first day with net units > 0 up
  to D - 1 inclusive; units and revenue are 0 on a day without sales. An item whose
  every unit was cancelled has no rows.
* **Price.** ``avg_price`` is revenue / units on a day with units, else the last
  earlier day's (the first day always has units, so it is never null).
* **Promotion.** Each ``bronze.products`` row is a version of the item in effect from
  its ``updated_at`` until the next version. A day is on promotion when the version in
  effect at the day's start, or any version taking effect during the day, has
  ``on_promotion`` true. Null ``on_promotion``, no product row, no products: false.
* **Stock-out.** ``bronze.inventory`` holds end-of-day positions: ``stock_out`` is
  true when the item's ``on_hand`` at the end of that day is 0, false when it is
  positive, null when there is no snapshot (or no inventory at all, as in Online
  Retail). A snapshot ingested twice counts once, the latest ingested.
* **Calendar.** From ``sale_date``: ISO day of week (1 = Monday) and week, day of
  month, month, weekend flag, and days since the item's first day (0 on it).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.features.orders import KEPT_UNITS, net_cancellations
from shoplake.features.pit import MICROS_PER_DAY, landed_before, run_midnight
from shoplake.forecast.schemas import ITEM_DAILY_SALES
from shoplake.ingest.landing import CANCELLED, PLACED

# Working columns, dropped before the transform returns.
_GUEST_ORDER = "_guest_order"
_SOLD = "_sold"
_TAKINGS = "_takings"
_FIRST_DAY = "_first_day"
_SOLD_ON = "_sold_on"
_UNTIL = "_until"
_FROM_DAY = "_from_day"
_TO_DAY = "_to_day"
_NEXT_US = "_next_us"
_PROMO = "_promo"
_LATEST = "_latest"


def _utc_day(ts: Column) -> Column:
    """Days since 1970-01-01 of a timestamp's UTC date, whatever the session time zone."""
    return F.floor(F.unix_micros(ts) / F.lit(MICROS_PER_DAY)).cast("int")


def _unix_day(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def _daily_sales(orders_df: DataFrame, run_date: dt.date) -> DataFrame:
    """``item_id, sale_date, _sold, _takings`` for every item and day with net units > 0."""
    end = run_midnight(run_date)
    lines = (
        landed_before(orders_df, run_date)
        .where(F.col(C.STATUS).isin(PLACED, CANCELLED) & (F.col(C.ORDER_TS) < F.lit(end)))
        .select(C.ORDER_ID, C.LINE_NUMBER, C.USER_ID, C.ITEM_ID, C.QUANTITY, C.UNIT_PRICE, C.ORDER_TS, C.STATUS)
        # Customers are netted per (user, item) as in the interactions; guests per (order, item).
        .withColumn(_GUEST_ORDER, F.when(F.col(C.USER_ID).isNull(), F.col(C.ORDER_ID)))
    )
    kept = net_cancellations(lines, keys=(C.USER_ID, _GUEST_ORDER, C.ITEM_ID)).where(F.col(KEPT_UNITS) > 0)
    return kept.groupBy(C.ITEM_ID, F.date_from_unix_date(_utc_day(F.col(C.ORDER_TS))).alias(C.SALE_DATE)).agg(
        F.sum(KEPT_UNITS).alias(_SOLD),
        F.sum(F.col(KEPT_UNITS) * F.col(C.UNIT_PRICE)).alias(_TAKINGS),
    )


def _promotion_days(products_df: DataFrame, run_date: dt.date) -> DataFrame:
    """``item_id, sale_date, _promo`` (always true) for the days up to D - 1 on promotion."""
    end = run_midnight(run_date)
    versions = (
        landed_before(products_df, run_date)
        .where(F.col(C.UPDATED_AT) < F.lit(end))
        .select(C.ITEM_ID, C.UPDATED_AT, F.coalesce(F.col(C.ON_PROMOTION), F.lit(False)).alias(_PROMO))
        .distinct()
    )
    # A version is in effect from its updated_at until the next version's (exclusive),
    # so it touches the days from its own to the one holding the last microsecond before
    # the next; a version superseded at the same instant still touches its own day.
    per_item = Window.partitionBy(C.ITEM_ID).orderBy(C.UPDATED_AT, _PROMO)
    last_day = F.lit(_unix_day(run_date) - 1)
    intervals = (
        versions.withColumn(_NEXT_US, F.lead(F.unix_micros(F.col(C.UPDATED_AT))).over(per_item))
        .where(F.col(_PROMO))
        .select(
            C.ITEM_ID,
            _utc_day(F.col(C.UPDATED_AT)).alias(_FROM_DAY),
            F.least(
                F.greatest(
                    _utc_day(F.col(C.UPDATED_AT)),
                    F.coalesce(F.floor((F.col(_NEXT_US) - F.lit(1)) / F.lit(MICROS_PER_DAY)).cast("int"), last_day),
                ),
                last_day,
            ).alias(_TO_DAY),
        )
        .where(F.col(_FROM_DAY) <= F.col(_TO_DAY))
    )
    return (
        intervals.select(C.ITEM_ID, F.explode(F.sequence(F.col(_FROM_DAY), F.col(_TO_DAY))).alias(_FROM_DAY))
        .select(C.ITEM_ID, F.date_from_unix_date(F.col(_FROM_DAY)).alias(C.SALE_DATE), F.lit(True).alias(_PROMO))
        .distinct()
    )


def _stock_outs(inventory_df: DataFrame, run_date: dt.date) -> DataFrame:
    """``item_id, sale_date, stock_out`` from the end-of-day snapshots of days before D."""
    # The latest ingested copy of a snapshot wins; the record number breaks a tie within one file.
    order = [name for name in (C.INGESTED_AT, C.RUN_DATE, C.ROW_NUMBER) if name in inventory_df.columns]
    latest = F.struct(*(F.col(name) for name in order)) if order else F.lit(0)
    return (
        landed_before(inventory_df, run_date)
        .where(F.col(C.SNAPSHOT_DATE) < F.lit(run_date))
        .groupBy(C.ITEM_ID, F.col(C.SNAPSHOT_DATE).alias(C.SALE_DATE))
        .agg(F.max_by(F.col(C.ON_HAND), latest).alias(_LATEST))
        .select(C.ITEM_ID, C.SALE_DATE, (F.col(_LATEST) == 0).alias(C.STOCK_OUT))
    )


def compute_item_daily_sales(
    orders_df: DataFrame,
    products_df: DataFrame | None,
    inventory_df: DataFrame | None,
    run_date: dt.date,
) -> DataFrame:
    """The rows of ``gold.item_daily_sales`` for ``run_date``: one per item and day, zeros filled.

    The rules (netting, zero fill, price, promotion, stock-out, calendar) are in the
    module docstring.

    Args:
        orders_df: Order lines with ``order_id, line_number, user_id, item_id,
            quantity, unit_price, order_ts, status`` (``bronze.orders``; its
            ``run_date`` landing column, when present, is honoured).
        products_df: Product versions with ``item_id, on_promotion, updated_at``
            (``bronze.products``), or None; without it, or without an
            ``on_promotion`` column, no day is on promotion.
        inventory_df: End-of-day positions with ``snapshot_date, item_id, on_hand``
            (``bronze.inventory``; ``_ingested_at`` picks among copies), or None;
            without it ``stock_out`` is null.
        run_date: Day the table is built for; its last sale day is the day before.

    Returns:
        Exactly the columns of :data:`shoplake.forecast.schemas.ITEM_DAILY_SALES`, in its order.
    """
    last_day = run_date - dt.timedelta(days=1)
    # Each day with sales stands for itself and the days without sales after it, up to
    # the item's next sale day or D - 1: exploding those runs zero-fills the history
    # and carries the last price forward without a join or a second window.
    in_order = Window.partitionBy(C.ITEM_ID).orderBy(C.SALE_DATE)
    runs = _daily_sales(orders_df, run_date).select(
        C.ITEM_ID,
        F.col(C.SALE_DATE).alias(_SOLD_ON),
        _SOLD,
        _TAKINGS,
        F.first(C.SALE_DATE).over(in_order).alias(_FIRST_DAY),
        F.coalesce(F.date_sub(F.lead(C.SALE_DATE).over(in_order), 1), F.lit(last_day)).alias(_UNTIL),
    )
    rows = runs.withColumn(C.SALE_DATE, F.explode(F.sequence(F.col(_SOLD_ON), F.col(_UNTIL))))

    if products_df is not None and C.ON_PROMOTION in products_df.columns:
        promo = _promotion_days(products_df, run_date)
        rows = rows.join(promo, [C.ITEM_ID, C.SALE_DATE], "left")
    else:
        rows = rows.withColumn(_PROMO, F.lit(None).cast("boolean"))
    if inventory_df is not None:
        rows = rows.join(_stock_outs(inventory_df, run_date), [C.ITEM_ID, C.SALE_DATE], "left")
    else:
        rows = rows.withColumn(C.STOCK_OUT, F.lit(None).cast("boolean"))

    sale_day = F.col(C.SALE_DATE) == F.col(_SOLD_ON)
    day_of_week = (F.weekday(F.col(C.SALE_DATE)) + F.lit(1)).cast("int")  # weekday(): 0 = Monday
    columns = {
        C.ITEM_ID: F.col(C.ITEM_ID),
        C.SALE_DATE: F.col(C.SALE_DATE),
        C.UNITS: F.when(sale_day, F.col(_SOLD)).otherwise(F.lit(0).cast("long")),
        C.REVENUE: F.when(sale_day, F.col(_TAKINGS)).otherwise(F.lit(0.0)).cast("double"),
        C.AVG_PRICE: (F.col(_TAKINGS) / F.col(_SOLD)).cast("double"),
        C.ON_PROMOTION: F.coalesce(F.col(_PROMO), F.lit(False)),
        C.STOCK_OUT: F.col(C.STOCK_OUT),
        C.DAY_OF_WEEK: day_of_week,
        C.DAY_OF_MONTH: F.dayofmonth(F.col(C.SALE_DATE)).cast("int"),
        C.WEEK_OF_YEAR: F.weekofyear(F.col(C.SALE_DATE)).cast("int"),  # ISO 8601 weeks
        C.MONTH: F.month(F.col(C.SALE_DATE)).cast("int"),
        C.IS_WEEKEND: day_of_week >= F.lit(6),
        C.DAYS_SINCE_FIRST_SALE: F.datediff(F.col(C.SALE_DATE), F.col(_FIRST_DAY)).cast("int"),
        C.RUN_DATE: F.lit(run_date),
    }
    return rows.select(*(columns[name].alias(name) for name in ITEM_DAILY_SALES.column_names))
