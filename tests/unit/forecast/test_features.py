"""Daily item sales on hand-made DataFrames: zero fill, netting, no leakage, promotions, stock-outs, calendar."""

from __future__ import annotations

import datetime as dt

import pytest

from shoplake import columns as C
from shoplake.forecast.features import compute_item_daily_sales
from shoplake.forecast.schemas import ITEM_DAILY_SALES
from shoplake.ingest.landing import CANCELLED, PLACED, RETURNED

D = dt.date(2024, 1, 8)  # a Monday; the last sale day is Sunday 2024-01-07
UTC = dt.timezone.utc
MIDNIGHT = dt.datetime(2024, 1, 8, tzinfo=UTC)
LANDED = dt.date(2024, 1, 7)  # a landing day before D: known to D's run

ORDERS_DDL = (
    f"{C.ORDER_ID} string, {C.LINE_NUMBER} int, {C.USER_ID} string, {C.ITEM_ID} string, {C.QUANTITY} int, "
    f"{C.UNIT_PRICE} double, {C.ORDER_TS} timestamp, {C.STATUS} string, {C.RUN_DATE} date"
)
PRODUCTS_DDL = f"{C.ITEM_ID} string, {C.ON_PROMOTION} boolean, {C.UPDATED_AT} timestamp, {C.RUN_DATE} date"
INVENTORY_DDL = f"{C.SNAPSHOT_DATE} date, {C.ITEM_ID} string, {C.ON_HAND} int, {C.INGESTED_AT} timestamp, {C.RUN_DATE} date"


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def at(text: str, hour: int = 12, minute: int = 0, second: int = 0) -> dt.datetime:
    """An instant on a UTC day, noon unless told."""
    return dt.datetime.combine(day(text), dt.time(hour, minute, second), tzinfo=UTC)


def line(order, user, item, quantity, price, ts, status=PLACED, landed=LANDED, number=1):
    return (order, number, user, item, quantity, price, ts, status, landed)


def orders(spark, *rows):
    return spark.createDataFrame(list(rows), ORDERS_DDL)


def products(spark, *rows):
    return spark.createDataFrame([(item, promo, ts, landed) for item, promo, ts, landed in rows], PRODUCTS_DDL)


def inventory(spark, *rows):
    return spark.createDataFrame(list(rows), INVENTORY_DDL)


def by_day(df, item: str) -> dict[dt.date, object]:
    """The rows of one item keyed by sale date."""
    return {r[C.SALE_DATE]: r for r in df.where(f"{C.ITEM_ID} = '{item}'").collect()}


def column(rows: dict[dt.date, object], name: str) -> list:
    return [rows[d][name] for d in sorted(rows)]


def dates(first: str, last: str) -> list[dt.date]:
    start, end = day(first), day(last)
    return [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]


# ---------------------------------------------------------------- zero fill, price, calendar, schema


def test_days_are_zero_filled_from_the_first_sale_with_forward_filled_price(spark):
    data = orders(
        spark,
        line("o1", "u1", "A", 2, 5.0, at("2024-01-02", 10)),
        line("o2", "u2", "A", 3, 4.0, at("2024-01-02", 15)),  # same day: 5 units, 22.0 revenue, 4.4 each
        line("o3", None, "A", 1, 6.0, at("2024-01-05")),  # a guest's purchase is a sale too
    )
    out = compute_item_daily_sales(data, None, None, D)

    assert out.columns == ITEM_DAILY_SALES.column_names
    expected_types = {f.name: f.dataType for f in ITEM_DAILY_SALES.spark_schema()}
    assert {f.name: f.dataType for f in out.schema.fields} == expected_types

    rows = by_day(out, "A")
    assert sorted(rows) == dates("2024-01-02", "2024-01-07")
    assert column(rows, C.UNITS) == [5, 0, 0, 1, 0, 0]
    assert column(rows, C.REVENUE) == pytest.approx([22.0, 0.0, 0.0, 6.0, 0.0, 0.0])
    assert column(rows, C.AVG_PRICE) == pytest.approx([4.4, 4.4, 4.4, 6.0, 6.0, 6.0])
    assert column(rows, C.DAYS_SINCE_FIRST_SALE) == [0, 1, 2, 3, 4, 5]
    assert set(column(rows, C.RUN_DATE)) == {D}
    # Neither products nor inventory: never on promotion, stock-out unknown.
    assert set(column(rows, C.ON_PROMOTION)) == {False} and set(column(rows, C.STOCK_OUT)) == {None}


def test_calendar_columns_of_known_dates(spark):
    data = orders(spark, line("o1", "u1", "B", 1, 1.0, at("2023-12-31")))
    rows = by_day(compute_item_daily_sales(data, None, None, D), "B")
    assert sorted(rows) == dates("2023-12-31", "2024-01-07")

    def calendar(text):
        r = rows[day(text)]
        return r[C.DAY_OF_WEEK], r[C.DAY_OF_MONTH], r[C.WEEK_OF_YEAR], r[C.MONTH], r[C.IS_WEEKEND]

    assert calendar("2023-12-31") == (7, 31, 52, 12, True)  # a Sunday, the last day of ISO week 2023-W52
    assert calendar("2024-01-01") == (1, 1, 1, 1, False)  # a Monday, ISO week 1
    assert calendar("2024-01-05") == (5, 5, 1, 1, False)  # Friday
    assert calendar("2024-01-06") == (6, 6, 1, 1, True)  # Saturday
    assert calendar("2024-01-07") == (7, 7, 1, 1, True)  # Sunday
    assert rows[day("2024-01-07")][C.DAYS_SINCE_FIRST_SALE] == 7


# ---------------------------------------------------------------- cancellations


def test_cancellations_are_netted_by_units_on_the_day_of_the_sale(spark):
    data = orders(
        spark,
        # Half the units cancelled: the sale day keeps 6 of 12. A return is not netted.
        line("o1", "u1", "N1", 12, 2.5, at("2024-01-02")),
        line("o1", "u1", "N1", 6, 2.5, at("2024-01-03"), CANCELLED),
        line("o1", "u1", "N1", 2, 2.5, at("2024-01-04"), RETURNED),
        # Fully cancelled: the item's first day is its next sale, not the cancelled one.
        line("o2", "u1", "N2", 4, 3.0, at("2024-01-02")),
        line("o2", "u1", "N2", 4, 3.0, at("2024-01-04"), CANCELLED),
        line("o3", "u1", "N2", 1, 3.0, at("2024-01-05")),
        # Guests: the synthetic shop's cancellation repeats the order id and nets that order only;
        # Online Retail's own C-invoice without a customer, and a customer who never bought, net nothing.
        line("g1", None, "N3", 3, 1.0, at("2024-01-02", 9)),
        line("g2", None, "N3", 2, 1.0, at("2024-01-02", 10)),
        line("g1", None, "N3", 3, 1.0, at("2024-01-03"), CANCELLED),
        line("C9", None, "N3", 5, 1.0, at("2024-01-04"), CANCELLED),
        line("o9", "u9", "N3", 5, 1.0, at("2024-01-04"), CANCELLED),
        # A cancellation at D's midnight is not known yet: the sale stands.
        line("o4", "u2", "N4", 5, 2.0, at("2024-01-06")),
        line("o4", "u2", "N4", 5, 2.0, MIDNIGHT, CANCELLED, landed=D),
        # LIFO across lines: cancelling 4 takes the 3 of the later line and 1 of the earlier.
        line("o5", "u3", "N5", 2, 10.0, at("2024-01-02")),
        line("o6", "u3", "N5", 3, 8.0, at("2024-01-03")),
        line("o7", "u3", "N5", 4, 8.0, at("2024-01-04"), CANCELLED),
    )
    out = compute_item_daily_sales(data, None, None, D)

    n1 = by_day(out, "N1")
    assert column(n1, C.UNITS) == [6, 0, 0, 0, 0, 0] and n1[day("2024-01-02")][C.REVENUE] == pytest.approx(15.0)
    n2 = by_day(out, "N2")
    assert sorted(n2) == dates("2024-01-05", "2024-01-07") and column(n2, C.UNITS) == [1, 0, 0]
    n3 = by_day(out, "N3")
    assert column(n3, C.UNITS) == [2, 0, 0, 0, 0, 0] and n3[day("2024-01-02")][C.REVENUE] == pytest.approx(2.0)
    n4 = by_day(out, "N4")
    assert column(n4, C.UNITS) == [5, 0]
    n5 = by_day(out, "N5")
    assert column(n5, C.UNITS) == [1, 0, 0, 0, 0, 0]
    assert column(n5, C.AVG_PRICE)[:2] == pytest.approx([10.0, 10.0])

    # The day after the cancellation of N4 is known, N4 has no unit left and no row.
    next_day = compute_item_daily_sales(data, None, None, D + dt.timedelta(days=1))
    assert next_day.where(f"{C.ITEM_ID} = 'N4'").count() == 0


def test_nothing_at_or_after_the_run_dates_midnight_leaks_in(spark):
    data = orders(
        spark,
        line("o1", "u1", "L1", 1, 1.0, at("2024-01-05")),
        line("o2", "u1", "L1", 7, 1.0, MIDNIGHT),  # at D 00:00:00: excluded
        line("o3", "u1", "L1", 2, 1.0, at("2024-01-07", 23, 59, 59)),  # the last second before: a sale
        line("o4", "u1", "L2", 3, 1.0, at("2024-01-06"), landed=D),  # landed on D: not known to D's run
        line("o5", "u1", "L2", 3, 1.0, at("2024-01-06"), landed=D + dt.timedelta(days=3)),
    )
    out = compute_item_daily_sales(data, None, None, D)
    assert {r[C.ITEM_ID] for r in out.collect()} == {"L1"}
    l1 = by_day(out, "L1")
    assert sorted(l1) == dates("2024-01-05", "2024-01-07")
    assert column(l1, C.UNITS) == [1, 0, 2]


# ---------------------------------------------------------------- promotions


def test_a_day_is_on_promotion_when_a_promoted_version_is_in_effect_at_some_time_of_it(spark):
    items = ("P1", "P2", "P3", "P4", "P5")
    data = orders(spark, *(line(f"o{i}", "u1", item, 1, 1.0, at("2024-01-01")) for i, item in enumerate(items)))
    catalogue = products(
        spark,
        ("P1", False, at("2023-12-20", 0), day("2023-12-20")),
        ("P1", True, at("2024-01-02", 15), day("2024-01-02")),  # starts mid-day: that day is on promotion
        ("P1", False, at("2024-01-04", 0), day("2024-01-04")),  # ends at midnight: the 4th is not
        ("P1", True, at("2024-01-05", 23), day("2024-01-05")),  # a night's promotion: the 5th and the 6th
        ("P1", False, at("2024-01-06", 1), day("2024-01-06")),
        ("P2", True, at("2023-12-01"), day("2023-12-01")),  # open-ended: every day up to D - 1
        ("P3", None, at("2023-12-01"), day("2023-12-01")),  # unknown: not on promotion
        ("P4", False, at("2023-12-01"), day("2023-12-01")),
        ("P4", True, MIDNIGHT, D),  # takes effect at D's midnight: not yet
        ("P4", True, at("2024-01-03"), D),  # landed on D: not known to D's run
        # P5 has no product row.
    )
    out = compute_item_daily_sales(data, catalogue, None, D)

    promo = {item: column(by_day(out, item), C.ON_PROMOTION) for item in items}
    assert promo["P1"] == [False, True, True, False, True, True, False]
    assert promo["P2"] == [True] * 7
    assert promo["P3"] == promo["P4"] == promo["P5"] == [False] * 7

    without = compute_item_daily_sales(data, None, None, D)
    assert {r[C.ON_PROMOTION] for r in without.collect()} == {False}


# ---------------------------------------------------------------- stock-outs


def test_stock_out_from_the_latest_ingested_end_of_day_snapshot(spark):
    data = orders(spark, line("o1", "u1", "S1", 1, 1.0, at("2024-01-04")), line("o2", "u1", "S2", 1, 1.0, at("2024-01-06")))
    first, again = at("2024-01-06", 1), at("2024-01-07", 1)
    stock = inventory(
        spark,
        (day("2024-01-04"), "S1", 0, first, day("2024-01-05")),  # sold out at the end of the 4th
        (day("2024-01-05"), "S1", 2, first, day("2024-01-06")),
        (day("2024-01-06"), "S1", 0, first, day("2024-01-06")),  # ingested twice: the later copy says 4
        (day("2024-01-06"), "S1", 4, again, day("2024-01-06")),
        (day("2024-01-07"), "S1", 0, again, D),  # landed on D: unknown to D's run
        (day("2024-01-08"), "S1", 0, again, day("2024-01-07")),  # the run date itself is not a sale day
        (day("2024-01-06"), "S2", 3, first, day("2024-01-06")),
    )
    out = compute_item_daily_sales(data, None, stock, D)

    s1 = by_day(out, "S1")
    assert sorted(s1) == dates("2024-01-04", "2024-01-07")
    assert column(s1, C.STOCK_OUT) == [True, False, False, None]
    assert column(by_day(out, "S2"), C.STOCK_OUT) == [False, None]
    assert {r[C.STOCK_OUT] for r in compute_item_daily_sales(data, None, None, D).collect()} == {None}


def test_imported_amounts_reach_daily_revenue_unrounded(spark, tmp_path):
    """`import sales --value-kind amount`: a weight or revenue per day lands as one unit at that price, so
    gold revenue holds it exactly, ready for forecasting.target revenue."""
    import pyarrow.parquet as pq

    from shoplake.datagen.generic import import_sales

    src = tmp_path / "kilos.csv"
    src.write_text("store,day,kg\ns1,2024-01-05,12.375\ns1,2024-01-06,0\ns1,2024-01-07,0.125\n")
    import_sales(src, tmp_path / "landing", series="store", date="day", value="kg", value_kind="amount")
    landed = pq.read_table(tmp_path / "landing" / "orders" / "2024-01-05_2024-01-07.parquet").to_pylist()
    rows = [line(o[C.ORDER_ID], None, o[C.ITEM_ID], o[C.QUANTITY], o[C.UNIT_PRICE], o[C.ORDER_TS]) for o in landed]
    sales = by_day(compute_item_daily_sales(orders(spark, *rows), None, None, D), "s1")
    assert column(sales, C.REVENUE) == [12.375, 0.0, 0.125]
    assert column(sales, C.UNITS) == [1, 0, 1]
