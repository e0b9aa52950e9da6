"""Recommendation feature transforms on hand-made DataFrames: exact weights, no leakage, dedup, netting."""

from __future__ import annotations

import datetime as dt

import pytest

from shoplake import columns as C
from shoplake.ingest.landing import CANCELLED, PLACED, RETURNED
from shoplake.recommend.features import compute_interactions, compute_item_features, compute_user_features, compute_user_item_matrix
from shoplake.recommend.schemas import ADD_TO_CART, CLICK, PURCHASE, SEARCH, SOURCE_EVENTS, SOURCE_ORDERS, VIEW

D = dt.date(2024, 3, 1)
UTC = dt.timezone.utc
MIDNIGHT = dt.datetime(2024, 3, 1, tzinfo=UTC)
WEIGHTS = {VIEW: 1.0, CLICK: 2.0, ADD_TO_CART: 4.0, PURCHASE: 8.0}
HALF_LIFE = 30.0
BANDS = [5.0, 20.0, 50.0, 100.0]

EVENTS_DDL = f"{C.EVENT_ID} string, {C.USER_ID} string, {C.EVENT_TYPE} string, {C.ITEM_ID} string, {C.EVENT_TS} timestamp"
ORDERS_DDL = (
    f"{C.ORDER_ID} string, {C.LINE_NUMBER} int, {C.USER_ID} string, {C.ITEM_ID} string, "
    f"{C.QUANTITY} int, {C.ORDER_TS} timestamp, {C.STATUS} string"
)
PRODUCTS_DDL = (
    f"{C.ITEM_ID} string, {C.TITLE} string, {C.DESCRIPTION} string, {C.CATEGORY} string, "
    f"{C.BRAND} string, {C.PRICE} double, {C.UPDATED_AT} timestamp"
)
INTERACTIONS_DDL = f"{C.USER_ID} string, {C.ITEM_ID} string, {C.EVENT_TYPE} string, {C.EVENT_TS} timestamp"


def before(days: float = 0, **delta) -> dt.datetime:
    """The instant ``days`` (and/or hours, seconds...) before the run date's midnight, UTC."""
    return MIDNIGHT - dt.timedelta(days=days, **delta)


def utc(value: dt.datetime) -> dt.datetime:
    # Spark hands back naive local times; astimezone reads them as local and converts.
    return value.astimezone(UTC)


def events(spark, *rows):
    return spark.createDataFrame([(f"e{i}", *r) for i, r in enumerate(rows)], EVENTS_DDL)


def orders(spark, *rows):
    return spark.createDataFrame(list(rows), ORDERS_DDL)


def interactions(spark, *rows):
    return spark.createDataFrame(list(rows), INTERACTIONS_DDL)


def keyed(df, *key):
    return {tuple(r[k] for k in key): r for r in df.collect()}


def purchases(df) -> list[tuple[str, str, dt.datetime, str]]:
    rows = df.where(f"{C.EVENT_TYPE} = '{PURCHASE}'").collect()
    return sorted((r[C.USER_ID], r[C.ITEM_ID], utc(r[C.EVENT_TS]), r[C.SOURCE]) for r in rows)


# ---------------------------------------------------------------- weights and decay


def test_weights_and_time_decay_are_exact(spark):
    data = interactions(
        spark,
        ("u1", "i1", PURCHASE, before(30)),  # one half-life: 8 * 0.5
        ("u1", "i1", VIEW, before(15)),  # half a half-life: 1 * 2 ** -0.5
        ("u1", "i1", SEARCH, before(1)),  # not an interaction type with a weight: counts nothing
        ("u1", "i2", CLICK, before(hours=12)),  # 2 * 0.5 ** (0.5 / 30)
        ("u1", "i2", ADD_TO_CART, before(60)),  # two half-lives: 4 * 0.25
        ("u2", "i1", VIEW, before(0, seconds=1)),  # a second old: 0.5 ** (1 / 86400 / 30)
    )
    matrix = keyed(compute_user_item_matrix(data, D, WEIGHTS, HALF_LIFE), C.USER_ID, C.ITEM_ID)

    assert matrix["u1", "i1"][C.WEIGHT] == pytest.approx(4.0 + 2**-0.5, rel=1e-12)
    assert matrix["u1", "i2"][C.WEIGHT] == pytest.approx(2 * 0.5 ** (0.5 / 30) + 1.0, rel=1e-12)
    assert matrix["u2", "i1"][C.WEIGHT] == pytest.approx(0.5 ** (1 / 86_400 / 30), rel=1e-12)
    u1i1 = matrix["u1", "i1"]
    assert (u1i1[C.N_VIEWS], u1i1[C.N_CLICKS], u1i1[C.N_CARTS], u1i1[C.N_PURCHASES]) == (1, 0, 0, 1)
    assert utc(u1i1[C.LAST_INTERACTION_TS]) == before(1)
    assert (matrix["u1", "i2"][C.N_CLICKS], matrix["u1", "i2"][C.N_CARTS]) == (1, 1)
    assert {r[C.RUN_DATE] for r in matrix.values()} == {D}

    # A type left out of the weights weighs nothing but is still counted.
    only_purchases = keyed(compute_user_item_matrix(data, D, {PURCHASE: 8.0}, HALF_LIFE), C.USER_ID, C.ITEM_ID)
    assert only_purchases["u1", "i1"][C.WEIGHT] == pytest.approx(4.0, rel=1e-12)
    assert only_purchases["u1", "i2"][C.WEIGHT] == 0.0 and only_purchases["u1", "i2"][C.N_CLICKS] == 1


# ---------------------------------------------------------------- point in time


def test_nothing_at_or_after_the_run_dates_midnight_is_used(spark):
    ev = events(
        spark,
        ("u1", VIEW, "i1", before(0, seconds=1)),  # the last second before: kept
        ("u1", VIEW, "i1", MIDNIGHT),  # the run date's midnight: excluded
        ("u1", CLICK, "i2", MIDNIGHT + dt.timedelta(days=2)),
        ("u1", VIEW, "i3", before(10)),  # exactly at the start of a 10-day lookback: kept
        ("u1", VIEW, "i4", before(10, seconds=1)),  # one second older: excluded
        ("u1", SEARCH, None, before(1)),
    )
    od = orders(
        spark,
        ("o1", 1, "u2", "i1", 1, MIDNIGHT, PLACED),
        ("o2", 1, "u2", "i2", 1, before(2), PLACED),
    )
    result = compute_interactions(ev, od, D, lookback_days=10).collect()
    got = sorted((r[C.USER_ID], r[C.ITEM_ID], r[C.EVENT_TYPE], utc(r[C.EVENT_TS])) for r in result)
    assert got == [
        ("u1", "i1", VIEW, before(0, seconds=1)),
        ("u1", "i3", VIEW, before(10)),
        ("u2", "i2", PURCHASE, before(2)),
    ]
    assert {r[C.RUN_DATE] for r in result} == {D}

    # The gold transforms guard too: a future row handed to them changes nothing.
    leaky = interactions(spark, ("u1", "i1", VIEW, before(1)), ("u1", "i1", PURCHASE, MIDNIGHT))
    matrix = compute_user_item_matrix(leaky, D, WEIGHTS, HALF_LIFE).first()
    assert matrix[C.N_PURCHASES] == 0 and matrix[C.WEIGHT] == pytest.approx(0.5 ** (1 / 30), rel=1e-12)
    users = compute_user_features(leaky, compute_item_features(None, leaky, D, BANDS), D, WEIGHTS, HALF_LIFE).first()
    assert users[C.N_INTERACTIONS] == 1 and users[C.DAYS_SINCE_LAST_INTERACTION] == pytest.approx(1.0)


def test_product_rows_after_the_run_date_are_not_used(spark):
    products = spark.createDataFrame(
        [
            ("i1", "Old lamp", "Warm light", "home", "Lux", 10.0, before(10)),
            ("i1", "New lamp", "Brighter", "home", "Lux", 99.0, MIDNIGHT),  # takes effect on the run date
            ("i2", "Future kettle", None, "kitchen", None, 30.0, MIDNIGHT + dt.timedelta(hours=1)),
        ],
        PRODUCTS_DDL,
    )
    items = keyed(compute_item_features(products, interactions(spark), D, BANDS), C.ITEM_ID)
    assert set(items) == {("i1",)}
    assert items["i1",][C.TITLE] == "Old lamp" and items["i1",][C.PRICE] == 10.0 and items["i1",][C.PRICE_BAND] == 1


# ---------------------------------------------------------------- dedup and netting


def test_duplicates_count_once_and_a_purchase_is_recorded_once(spark):
    t = before(3)
    ev = events(
        spark,
        ("u1", VIEW, "i1", t),
        ("u1", VIEW, "i1", t),  # same event twice (e.g. a re-sent tracking call): one view
        ("u1", VIEW, "i1", t + dt.timedelta(seconds=1)),  # another second: another view
        ("u1", PURCHASE, "i1", t),  # the clickstream's record of order o1's line
        ("u1", PURCHASE, "i2", t + dt.timedelta(seconds=30)),  # o1's second line, logged 30 s off
        ("u1", PURCHASE, "i3", t + dt.timedelta(minutes=5)),  # no order line near it: a purchase of its own
        ("u2", PURCHASE, "i1", t),  # no orders for u2 at all (clickstream-only purchase)
    )
    od = orders(
        spark,
        ("o1", 1, "u1", "i1", 1, t, PLACED),
        ("o1", 2, "u1", "i2", 2, t, PLACED),
        ("o2", 1, "u1", "i3", 1, t, PLACED),
        # Online Retail keeps exact duplicate lines under distinct line numbers: one purchase.
        ("o3", 1, "u3", "i9", 1, t, PLACED),
        ("o3", 2, "u3", "i9", 1, t, PLACED),
    )
    result = compute_interactions(ev, od, D, lookback_days=30)
    assert result.where(f"{C.EVENT_TYPE} = '{VIEW}'").count() == 2
    assert purchases(result) == [
        ("u1", "i1", t, SOURCE_ORDERS),
        ("u1", "i2", t, SOURCE_ORDERS),
        ("u1", "i3", t, SOURCE_ORDERS),
        ("u1", "i3", t + dt.timedelta(minutes=5), SOURCE_EVENTS),
        ("u2", "i1", t, SOURCE_EVENTS),
        ("u3", "i9", t, SOURCE_ORDERS),
    ]
    assert result.count() == result.dropDuplicates([C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_TS]).count()


def test_cancellations_net_out_purchases(spark):
    t = before(20)
    day = dt.timedelta(days=1)
    od = orders(
        spark,
        # Synthetic shop: the cancellation repeats the line under its order id.
        ("o1", 1, "u1", "i1", 1, t, PLACED),
        ("o1", 1, "u1", "i1", 1, t + day, CANCELLED),
        # Online Retail: the cancellation has its own C-number; all units cancelled.
        ("536001", 1, "u2", "i2", 12, t, PLACED),
        ("C536050", 3, "u2", "i2", 12, t + day, CANCELLED),
        # Half the units cancelled: still a purchase.
        ("536002", 1, "u2", "i3", 12, t, PLACED),
        ("C536051", 1, "u2", "i3", 6, t + day, CANCELLED),
        # Latest first: of two purchases, the later one goes.
        ("536003", 1, "u3", "i4", 1, t, PLACED),
        ("536004", 1, "u3", "i4", 1, t + day, PLACED),
        ("C536052", 1, "u3", "i4", 1, t + 2 * day, CANCELLED),
        # A cancellation with nothing before it (its sale predates the data) cancels nothing later.
        ("C536053", 1, "u4", "i5", 1, t, CANCELLED),
        ("536005", 1, "u4", "i5", 1, t + day, PLACED),
        # Cancelled on the run date: not known yet, still a purchase in this snapshot.
        ("o6", 1, "u5", "i6", 1, t, PLACED),
        ("o6", 1, "u5", "i6", 1, MIDNIGHT, CANCELLED),
        # A return is not a cancellation; a guest line has no one to attribute it to.
        ("o7", 1, "u6", "i7", 1, t, PLACED),
        ("o7", 1, "u6", "i7", 1, t + day, RETURNED),
        ("o8", 1, None, "i8", 1, t, PLACED),
    )
    # The clickstream's purchase event of the cancelled line goes with it.
    ev = events(spark, ("u1", PURCHASE, "i1", t), ("u1", VIEW, "i1", t - dt.timedelta(minutes=1)))
    result = compute_interactions(ev, od, D, lookback_days=30)
    assert purchases(result) == [
        ("u2", "i3", t, SOURCE_ORDERS),
        ("u3", "i4", t, SOURCE_ORDERS),
        ("u4", "i5", t + day, SOURCE_ORDERS),
        ("u5", "i6", t, SOURCE_ORDERS),
        ("u6", "i7", t, SOURCE_ORDERS),
    ]
    assert result.where(f"{C.USER_ID} = 'u1'").collect()[0][C.EVENT_TYPE] == VIEW

    # The day after the cancellation is known, u5's purchase is gone from the snapshot.
    later = compute_interactions(ev, od, D + dt.timedelta(days=1), lookback_days=30)
    assert ("u5", "i6") not in {(u, i) for u, i, _, _ in purchases(later)}


def test_a_source_may_be_missing_but_not_both(spark):
    od = orders(spark, ("o1", 1, "u1", "i1", 1, before(1), PLACED))
    assert purchases(compute_interactions(None, od, D, 30)) == [("u1", "i1", before(1), SOURCE_ORDERS)]
    ev = events(spark, ("u1", PURCHASE, "i1", before(1)))
    assert purchases(compute_interactions(ev, None, D, 30)) == [("u1", "i1", before(1), SOURCE_EVENTS)]
    with pytest.raises(ValueError, match="needs events, orders or both"):
        compute_interactions(None, None, D, 30)


# ---------------------------------------------------------------- item and user features


def test_item_features_cover_the_catalogue_with_cold_items_and_bands(spark):
    products = spark.createDataFrame(
        [
            ("i1", "Lamp", "Warm light", "home", "Lux", 5.0, before(40)),
            ("i2", "Kettle", "Kettle", "kitchen", None, 5.01, before(5)),  # Online Retail repeats the title
            ("i3", "Sofa", None, "home", None, 150.0, before(5)),
            ("i4", "Mug", "", "kitchen", None, 7.0, before(9)),
            ("i4", "Mug v2", "  ", "kitchen", None, None, before(2)),  # price left empty: the last known holds
            ("i5", "Nothing yet", "Cold item", None, None, None, before(1)),
        ],
        PRODUCTS_DDL,
    )
    data = interactions(
        spark,
        ("u1", "i1", VIEW, before(3)),
        ("u1", "i1", PURCHASE, before(2)),
        ("u2", "i1", VIEW, before(29)),
        ("u3", "i1", VIEW, before(31)),  # outside the 30-day popularity window
        ("u3", "i1", PURCHASE, before(45)),  # first interaction, before the product row
        ("u1", "i9", VIEW, before(1)),  # no product row
    )
    items = keyed(compute_item_features(products, data, D, BANDS), C.ITEM_ID)
    assert set(items) == {("i1",), ("i2",), ("i3",), ("i4",), ("i5",), ("i9",)}

    i1 = items["i1",]
    assert (i1[C.TEXT], i1[C.PRICE_BAND], i1[C.POPULARITY], i1[C.N_PURCHASES_30D]) == ("Lamp. Warm light", 0, 2, 1)
    assert utc(i1[C.FIRST_SEEN_TS]) == before(45)
    assert (items["i2",][C.TEXT], items["i2",][C.PRICE_BAND]) == ("Kettle", 1)
    assert (items["i3",][C.TEXT], items["i3",][C.PRICE_BAND]) == ("Sofa", 4)
    i4 = items["i4",]
    assert (i4[C.TITLE], i4[C.TEXT], i4[C.PRICE], i4[C.PRICE_BAND]) == ("Mug v2", "Mug v2", 7.0, 1)
    assert utc(i4[C.FIRST_SEEN_TS]) == before(9)
    cold = items["i5",]
    assert (cold[C.POPULARITY], cold[C.N_PURCHASES_30D], cold[C.PRICE], cold[C.PRICE_BAND]) == (0, 0, None, None)
    unknown = items["i9",]
    assert (unknown[C.TITLE], unknown[C.TEXT], unknown[C.POPULARITY]) == (None, None, 1)
    assert utc(unknown[C.FIRST_SEEN_TS]) == before(1)

    with pytest.raises(ValueError, match="strictly increasing"):
        compute_item_features(products, data, D, [20.0, 5.0])


def test_user_features(spark):
    products = spark.createDataFrame(
        [
            ("b1", "Novel", None, "books", None, 10.0, before(90)),
            ("b2", "Atlas", None, "books", None, 30.0, before(90)),
            ("t1", "Kite", None, "toys", None, 20.0, before(90)),
            ("x1", "Mystery", None, None, None, None, before(90)),
        ],
        PRODUCTS_DDL,
    )
    data = interactions(
        spark,
        # Two old book views weigh 2 * 0.5 ** 3 = 0.25; one recent toy view weighs ~1: toys win.
        ("u1", "b1", VIEW, before(90)),
        ("u1", "b2", VIEW, before(90)),
        ("u1", "t1", VIEW, before(1)),
        ("u1", "b1", PURCHASE, before(60)),
        ("u1", "b2", PURCHASE, before(0, hours=6)),
        ("u2", "x1", VIEW, before(2)),  # only an uncategorised, unpriced item
        ("u3", "t1", VIEW, before(5)),  # a tie between toys and books: alphabetical
        ("u3", "b1", VIEW, before(5)),
    )
    items = compute_item_features(products, data, D, BANDS)
    # A later snapshot's prices must not leak into this run date's features.
    future = items.withColumn(C.PRICE, items[C.PRICE] * 100).withColumn(C.RUN_DATE, items[C.RUN_DATE] + 1)
    users = keyed(compute_user_features(data, items.unionByName(future), D, WEIGHTS, HALF_LIFE), C.USER_ID)

    u1 = users["u1",]
    # The purchases (8 * 0.25 + 8 * ~1) tip books back: 0.25 + 2 + 7.9 > 0.98.
    assert u1[C.FAVOURITE_CATEGORY] == "books"
    assert (u1[C.N_INTERACTIONS], u1[C.N_PURCHASES], u1[C.N_DISTINCT_ITEMS]) == (5, 2, 3)
    assert u1[C.AVG_PURCHASE_PRICE] == pytest.approx(20.0)
    assert utc(u1[C.FIRST_INTERACTION_TS]) == before(90) and utc(u1[C.LAST_INTERACTION_TS]) == before(0, hours=6)
    assert u1[C.DAYS_SINCE_LAST_INTERACTION] == pytest.approx(0.25, rel=1e-12)
    u2 = users["u2",]
    assert (u2[C.FAVOURITE_CATEGORY], u2[C.AVG_PURCHASE_PRICE], u2[C.DAYS_SINCE_LAST_INTERACTION]) == (None, None, 2.0)
    assert users["u3",][C.FAVOURITE_CATEGORY] == "books"

    views_only = data.where(f"{C.EVENT_TYPE} = '{VIEW}'")
    favourite = compute_user_features(views_only, items, D, WEIGHTS, HALF_LIFE).where(f"{C.USER_ID} = 'u1'").first()
    assert favourite[C.FAVOURITE_CATEGORY] == "toys"
