"""The feature job end to end: a tiny synthetic shop and a few Online Retail days, ingested, then built."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from shoplake import columns as C
from shoplake.ads.pipeline import FEATURES as ADS_NODE
from shoplake.categorize.pipeline import FEATURES as CATEGORIZE_NODE
from shoplake.categorize.schemas import PRODUCT_TEXT
from shoplake.datagen.synthetic import GROUND_TRUTH_FILE, ShopParams, generate_shop
from shoplake.features.history import read_as_of
from shoplake.features.run import build_features, feature_outputs
from shoplake.forecast.schemas import ITEM_DAILY_SALES
from shoplake.fraud.declarations import FEATURE_NAMES
from shoplake.fraud.online import OnlineFeatures
from shoplake.fraud.pipeline import FEATURES as FRAUD_NODE
from shoplake.fraud.schemas import TRANSACTIONS, TXN_FEATURES
from shoplake.ingest.landing import (
    AD_EVENTS,
    CANCELLED,
    CHARGEBACKS,
    EVENTS,
    INVENTORY,
    ORDERS,
    PAYMENTS,
    PLACED,
    PRODUCTS,
    SUPPORT_TICKETS,
)
from shoplake.ingest.run import date_range, ingest
from shoplake.lake import Lake
from shoplake.recommend.features import INTERACTION_HISTORY
from shoplake.recommend.schemas import INTERACTIONS, ITEM_FEATURES, PURCHASE, SOURCE_ORDERS, USER_FEATURES, USER_ITEM_MATRIX
from shoplake.support.pipeline import FEATURES as SUPPORT_NODE
from shoplake.support.schemas import SUPPORT_TICKETS as SILVER_TICKETS
from shoplake.support.schemas import SUPPORT_TRAINING
from shoplake.text.splits import SPLITS

RETAIL = Path(__file__).resolve().parents[3] / "shared" / "data" / "online-retail" / "by-day"

# Busy enough for cancellations inside ten days, small enough for seconds of Spark. More support
# tickets than the default (a few dozen instead of one); they come from their own random stream.
SHOP = ShopParams(days=10, users=30, items=20, seed=5, sessions_per_user_day=0.5, cancel_rate=0.15, tickets_per_order=1.0)
START = SHOP.start
EARLY, LATE = START + dt.timedelta(days=2), START + dt.timedelta(days=SHOP.days)
# A week: the generator plants each fraud pattern by day 3; chargebacks come within days.
FRAUD_SHOP = dataclasses.replace(SHOP, days=7, chargeback_delay_days=(1, 3))
FRAUD_DAY = START + dt.timedelta(days=FRAUD_SHOP.days)
#: What a shop without payments gets.
OUTPUTS = feature_outputs()
FRAUD_OUTPUTS, SUPPORT_OUTPUTS, PRODUCT_OUTPUTS = FRAUD_NODE.outputs, SUPPORT_NODE.outputs, CATEGORIZE_NODE.outputs
ADS_OUTPUTS = ADS_NODE.outputs
WITHOUT_PAYMENTS = [spec for spec in OUTPUTS if spec not in FRAUD_OUTPUTS]


def midnight(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def table(lake, spec, day: dt.date | None = None) -> pd.DataFrame:
    """A table (or one run date of it; the whole of a history table) in pandas, timestamps as UTC."""
    frame = lake.to_arrow(spec).to_pandas()
    if day is not None and C.RUN_DATE in frame.columns:
        frame = frame[frame[C.RUN_DATE] == day]
    return frame.reset_index(drop=True)


def interactions(lake, cfg, day: dt.date) -> pd.DataFrame:
    """The run date's snapshot of silver.interactions."""
    return read_as_of(lake, INTERACTION_HISTORY, day, cfg.features.lookback_days).to_pandas()


def sorted_rows(frame: pd.DataFrame) -> list[tuple]:
    # Sums of doubles may differ in the last bits with the order Spark adds them in.
    return sorted(frame.round(9).astype(str).itertuples(index=False, name=None))


def expected_purchases(orders: pd.DataFrame, day: dt.date) -> set[tuple]:
    """Placed lines known before ``day`` minus those whose cancellation (same order and line) is known too."""
    known = orders[(orders[C.ORDER_TS] < midnight(day)) & orders[C.USER_ID].notna()]
    placed = known[known[C.STATUS] == PLACED]
    cancelled = set(known.loc[known[C.STATUS] == CANCELLED, [C.ORDER_ID, C.LINE_NUMBER]].itertuples(index=False, name=None))
    kept = placed[[(o, n) not in cancelled for o, n in zip(placed[C.ORDER_ID], placed[C.LINE_NUMBER], strict=True)]]
    return set(kept[[C.USER_ID, C.ITEM_ID, C.ORDER_TS]].itertuples(index=False, name=None))


def check_snapshot(lake, cfg, day: dt.date) -> None:
    """Invariants of one run date's partition of the four tables."""
    feats = cfg.features
    inter = interactions(lake, cfg, day)
    assert len(inter) and inter[C.EVENT_TS].max() < midnight(day)
    assert inter[C.EVENT_TS].min() >= midnight(day) - pd.Timedelta(days=feats.lookback_days)
    assert not inter.duplicated([C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_TS]).any()

    # Every purchase event of the synthetic shop records an order line: purchases come from orders only,
    # net of the cancellations known before the run date.
    bought = inter[inter[C.EVENT_TYPE] == PURCHASE]
    assert set(bought[C.SOURCE]) <= {SOURCE_ORDERS}
    orders = table(lake, f"bronze.{ORDERS.name}")
    assert set(bought[[C.USER_ID, C.ITEM_ID, C.EVENT_TS]].itertuples(index=False, name=None)) == expected_purchases(orders, day)

    # The matrix recomputed here from the silver rows: same pairs, counts and weights.
    age = (midnight(day) - inter[C.EVENT_TS]) / pd.Timedelta(days=1)
    inter["w"] = inter[C.EVENT_TYPE].map(feats.event_weights) * 0.5 ** (age / feats.half_life_days)
    expected = inter.groupby([C.USER_ID, C.ITEM_ID])["w"].sum()
    matrix = table(lake, USER_ITEM_MATRIX, day).set_index([C.USER_ID, C.ITEM_ID])
    assert len(matrix) == len(expected)
    assert matrix[C.WEIGHT].sort_index().to_numpy() == pytest.approx(expected.sort_index().to_numpy(), rel=1e-9)
    assert matrix[[C.N_VIEWS, C.N_CLICKS, C.N_CARTS, C.N_PURCHASES]].to_numpy().sum() == len(inter)

    # Items: the catalogue as of the run date (cold items with popularity 0) plus interacted items.
    products = table(lake, f"bronze.{PRODUCTS.name}")
    catalogue = set(products.loc[products[C.UPDATED_AT] < midnight(day), C.ITEM_ID])
    items = table(lake, ITEM_FEATURES, day).set_index(C.ITEM_ID)
    assert set(items.index) == catalogue | set(inter[C.ITEM_ID])
    recent = inter[inter[C.EVENT_TS] >= midnight(day) - pd.Timedelta(days=30)].groupby(C.ITEM_ID)[C.USER_ID].nunique()
    assert items[C.POPULARITY].to_dict() == recent.reindex(items.index, fill_value=0).to_dict()
    assert items[C.TEXT].notna().all() and items[C.PRICE_BAND].notna().all()

    users = table(lake, USER_FEATURES, day).set_index(C.USER_ID)
    assert set(users.index) == set(inter[C.USER_ID])
    assert users[C.N_INTERACTIONS].sum() == len(inter) and (users[C.DAYS_SINCE_LAST_INTERACTION] > 0).all()


def expected_daily_sales(orders: pd.DataFrame, day: dt.date) -> dict[tuple, tuple[int, float]]:
    """(item, sale date) -> (units, revenue) kept by a plain stack per buyer and item, days with units only.

    A customer buys as the user, a guest as the order; a cancellation takes units off
    the top of its stack (the latest placed first), a return takes nothing.
    """
    known = orders[(orders[C.ORDER_TS] < midnight(day)) & (orders[C.RUN_DATE] < day) & orders[C.STATUS].isin([PLACED, CANCELLED])]
    known = known.assign(is_cancel=known[C.STATUS] == CANCELLED).sort_values([C.ORDER_TS, "is_cancel", C.ORDER_ID, C.LINE_NUMBER])
    stacks: dict[tuple, list[list]] = defaultdict(list)
    for row in known.itertuples(index=False):
        buyer = row.user_id if pd.notna(row.user_id) else ("guest order", row.order_id)
        stack = stacks[buyer, row.item_id]
        if not row.is_cancel:
            stack.append([int(row.quantity), row.order_ts.date(), float(row.unit_price)])
            continue
        left = int(row.quantity)
        while left and stack:
            taken = min(left, stack[-1][0])
            stack[-1][0] -= taken
            left -= taken
            if stack[-1][0] == 0:
                stack.pop()
    units: dict[tuple, int] = defaultdict(int)
    revenue: dict[tuple, float] = defaultdict(float)
    for (_, item), stack in stacks.items():
        for kept, sale_date, price in stack:
            units[item, sale_date] += kept
            revenue[item, sale_date] += kept * price
    return {key: (units[key], revenue[key]) for key in units if units[key] > 0}


def expected_promotion(products: pd.DataFrame, day: dt.date, item: str, sale_date: dt.date) -> bool:
    """Whether a version with on_promotion true is in effect at some instant of ``sale_date``."""
    known = (products[C.UPDATED_AT] < midnight(day)) & (products[C.RUN_DATE] < day) & (products[C.ITEM_ID] == item)
    versions = products[known].sort_values(C.UPDATED_AT)
    starts = versions[C.UPDATED_AT].tolist()
    ends = starts[1:] + [None]
    begin = midnight(sale_date)
    end = begin + pd.Timedelta(days=1)
    promoted = [value is not None and bool(value) for value in versions[C.ON_PROMOTION].astype(object).tolist()]
    return any(
        promo and start < end and (start >= begin or stop is None or stop > begin)
        for promo, start, stop in zip(promoted, starts, ends, strict=True)
    )


def check_daily_sales(lake, day: dt.date) -> pd.DataFrame:
    """Invariants of one run date's ``gold.item_daily_sales`` partition against bronze, recomputed in pandas."""
    schema = lake.to_arrow(ITEM_DAILY_SALES, run_date=day).schema
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in ITEM_DAILY_SALES.arrow_schema()]
    sales = table(lake, ITEM_DAILY_SALES, day)
    assert len(sales) and not sales.duplicated([C.ITEM_ID, C.SALE_DATE]).any()

    # Every item runs without a gap from its first sale to the day before the run date.
    last = day - dt.timedelta(days=1)
    span = sales.groupby(C.ITEM_ID)[C.SALE_DATE].agg(["min", "max", "count"])
    assert (span["max"] == last).all()
    assert (span["count"] == [(hi - lo).days + 1 for lo, hi in zip(span["min"], span["max"], strict=True)]).all()
    first = sales[C.ITEM_ID].map(span["min"])
    since = [(d - f).days for d, f in zip(sales[C.SALE_DATE], first, strict=True)]
    assert (sales[C.DAYS_SINCE_FIRST_SALE] == since).all()

    # Net units and revenue per item and day, as a plain stack simulation over the bronze order lines.
    expected = expected_daily_sales(table(lake, f"bronze.{ORDERS.name}"), day)
    sold = sales[sales[C.UNITS] > 0]
    assert {(i, d): u for i, d, u in zip(sold[C.ITEM_ID], sold[C.SALE_DATE], sold[C.UNITS], strict=True)} == {
        key: units for key, (units, _) in expected.items()
    }
    assert sold[C.REVENUE].to_numpy() == pytest.approx(
        [expected[i, d][1] for i, d in zip(sold[C.ITEM_ID], sold[C.SALE_DATE], strict=True)], rel=1e-9
    )
    assert (sales.loc[sales[C.UNITS] == 0, C.REVENUE] == 0).all()
    assert span["min"].to_dict() == {item: min(d for i, d in expected if i == item) for item in span.index}
    assert sales[C.AVG_PRICE].notna().all()
    assert (sales[C.RUN_DATE] == day).all()

    products = table(lake, f"bronze.{PRODUCTS.name}")
    keys = zip(sales[C.ITEM_ID], sales[C.SALE_DATE], strict=True)
    assert sales[C.ON_PROMOTION].tolist() == [expected_promotion(products, day, i, d) for i, d in keys]
    return sales


def check_text_tables(lake, day: dt.date) -> None:
    """One run date of the support and product text tables against bronze: spec schema, rows, splits."""
    for spec in (SILVER_TICKETS, SUPPORT_TRAINING, PRODUCT_TEXT):
        schema = lake.to_arrow(spec, run_date=day).schema
        assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in spec.arrow_schema()], spec.full_name

    bronze = table(lake, f"bronze.{SUPPORT_TICKETS.name}")
    known = bronze[(bronze[C.CREATED_TS] < midnight(day)) & (bronze[C.RUN_DATE] < day)]
    tickets = table(lake, SILVER_TICKETS, day)
    assert len(tickets) and not tickets[C.TICKET_ID].duplicated().any()
    assert set(tickets[C.TICKET_ID]) == set(known[C.TICKET_ID])
    assert set(tickets[C.SPLIT]) <= set(SPLITS)
    assert (tickets[C.TEXT] == tickets[C.TEXT].str.split().str.join(" ")).all()
    training = table(lake, SUPPORT_TRAINING, day)
    assert sorted(training[C.TICKET_ID]) == sorted(tickets.loc[tickets[C.INTENT].notna(), C.TICKET_ID])
    assert len(training) < len(tickets) and training[C.RESOLUTION].notna().all()

    products = table(lake, f"bronze.{PRODUCTS.name}")
    texts = table(lake, PRODUCT_TEXT, day)
    assert sorted(texts[C.ITEM_ID]) == sorted(set(products.loc[products[C.UPDATED_AT] < midnight(day), C.ITEM_ID]))
    assert texts[C.CATEGORY].notna().all() and set(texts[C.SPLIT]) <= set(SPLITS)
    assert all(text.startswith(title) for text, title in zip(texts[C.TEXT], texts[C.TITLE], strict=True))


@pytest.mark.slow  # every feature node on two dates and a re-run, about 4 minutes; each node's rules have unit tests, the history and re-run test_interaction_history
def test_synthetic_shop_features_two_run_dates_then_a_rerun(cfg, lake):
    generate_shop(cfg.landing.root, SHOP)
    sources = [ORDERS.name, EVENTS.name, PRODUCTS.name, INVENTORY.name, SUPPORT_TICKETS.name, AD_EVENTS.name]
    ingest(cfg, lake, date_range(START, LATE - dt.timedelta(days=1)), sources)

    results = build_features(cfg, lake, [LATE, EARLY])
    assert [r.table for r in results] == [s.full_name for s in WITHOUT_PAYMENTS]
    assert all(r.version == 0 and r.rows > 0 for r in results)
    for day in (EARLY, LATE):
        check_snapshot(lake, cfg, day)
        check_text_tables(lake, day)
        sales = check_daily_sales(lake, day)
        # The shop snapshots every catalogued item at the end of each day, landing that day.
        inventory = table(lake, f"bronze.{INVENTORY.name}")
        snapshots = zip(inventory[C.ITEM_ID], inventory[C.SNAPSHOT_DATE], inventory[C.ON_HAND], strict=True)
        on_hand = {(item, snapshot_date): units for item, snapshot_date, units in snapshots}
        keys = zip(sales[C.ITEM_ID], sales[C.SALE_DATE], strict=True)
        assert sales[C.STOCK_OUT].tolist() == [None if key not in on_hand else bool(on_hand[key] == 0) for key in keys]
    # By the late date the shop's data exercise the zero fill, a promotion and stock-outs.
    late = table(lake, ITEM_DAILY_SALES, LATE)
    assert (late[C.UNITS] == 0).any() and late[C.ON_PROMOTION].any() and late[C.STOCK_OUT].eq(True).any()
    # Two days in, part of the catalogue has not been touched yet: cold items are there with popularity 0.
    early_items = table(lake, ITEM_FEATURES, EARLY)
    assert (early_items[C.POPULARITY] == 0).any()
    # Cancellations happened, and by the late date some have netted purchases out.
    orders = table(lake, f"bronze.{ORDERS.name}")
    placed_with_user = orders[(orders[C.STATUS] == PLACED) & orders[C.USER_ID].notna()]
    assert len(expected_purchases(orders, LATE)) < len(placed_with_user.drop_duplicates([C.USER_ID, C.ITEM_ID, C.ORDER_TS]))

    # silver.interactions holds each interaction once; a purchase netted out by a later cancellation is
    # closed on the night its cancellation was first known, and stays in the early snapshot.
    stored = table(lake, INTERACTIONS)
    assert not stored.duplicated([C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_TS]).any()
    assert set(stored[C.KNOWN_FROM]) == {EARLY, LATE} and set(stored[C.KNOWN_UNTIL].dropna()) <= {LATE}
    assert set(stored.loc[stored[C.KNOWN_UNTIL].notna(), C.SOURCE]) <= {SOURCE_ORDERS}

    # Re-running a date replaces its partitions: the same rows in a new version, the other date untouched.
    before = {s.full_name: (sorted_rows(table(lake, s, LATE)), sorted_rows(table(lake, s, EARLY))) for s in WITHOUT_PAYMENTS}
    again = build_features(cfg, lake, [LATE])
    assert [(r.table, r.version) for r in again] == [(s.full_name, 1) for s in WITHOUT_PAYMENTS]
    for spec in WITHOUT_PAYMENTS:
        after = (sorted_rows(table(lake, spec, LATE)), sorted_rows(table(lake, spec, EARLY)))
        assert after == before[spec.full_name], spec.full_name


def test_a_clickstream_only_shop_gets_no_daily_sales(cfg, lake, caplog):
    generate_shop(cfg.landing.root, SHOP)
    ingest(cfg, lake, date_range(START, EARLY - dt.timedelta(days=1)), [EVENTS.name, PRODUCTS.name])

    with caplog.at_level(logging.INFO, logger="shoplake.features.run"):
        results = build_features(cfg, lake, [EARLY])
    assert [r.table for r in results] == [
        s.full_name for s in WITHOUT_PAYMENTS if s is not ITEM_DAILY_SALES and s not in SUPPORT_OUTPUTS + ADS_OUTPUTS
    ]
    assert f"{ITEM_DAILY_SALES.full_name} is skipped" in caplog.text
    assert " and ".join(s.full_name for s in SUPPORT_OUTPUTS) + " are skipped" in caplog.text
    assert f"{TRANSACTIONS.full_name} and {TXN_FEATURES.full_name} are skipped" in caplog.text
    assert not lake.exists(ITEM_DAILY_SALES)


@pytest.mark.skipif(
    not RETAIL.is_dir(),
    reason=f"the public Online Retail files are read in place from {RETAIL}, outside the repository, and this checkout has none",
)
def test_online_retail_has_only_orders_and_products(cfg, lake, caplog):
    from shoplake.datagen.online_retail import import_online_retail

    report = import_online_retail(RETAIL, cfg.landing.root, limit_days=3)
    first, last = dt.date.fromisoformat(report["first_day"]), dt.date.fromisoformat(report["last_day"])
    ingest(cfg, lake, date_range(first, last), [ORDERS.name, PRODUCTS.name])
    day = last + dt.timedelta(days=1)

    with caplog.at_level(logging.WARNING, logger="shoplake.features.run"):
        results = build_features(cfg, lake, [day])
    assert "bronze.events does not exist" in caplog.text
    assert all(r.rows > 0 for r in results)

    assert [r.table for r in results] == [s.full_name for s in WITHOUT_PAYMENTS if s not in SUPPORT_OUTPUTS + ADS_OUTPUTS]
    assert "bronze.inventory does not exist" in caplog.text
    assert not lake.exists(TRANSACTIONS) and not lake.exists(TXN_FEATURES)

    inter = interactions(lake, cfg, day)
    assert set(inter[C.EVENT_TYPE]) == {PURCHASE} and set(inter[C.SOURCE]) == {SOURCE_ORDERS}
    orders = table(lake, f"bronze.{ORDERS.name}")
    customers = orders[orders[C.USER_ID].notna()]
    assert set(inter[C.USER_ID]) <= set(customers[C.USER_ID])  # guest lines are left out
    # Customers x stock codes, net of cancellations: fewer purchases than distinct placed lines.
    placed = customers[customers[C.STATUS] == PLACED].drop_duplicates([C.USER_ID, C.ITEM_ID, C.ORDER_TS])
    assert (customers[C.STATUS] == CANCELLED).any() and len(inter) <= len(placed)
    items = table(lake, ITEM_FEATURES, day)
    assert set(items[C.ITEM_ID]) == set(table(lake, f"bronze.{PRODUCTS.name}")[C.ITEM_ID])
    # Online Retail's description repeats the title: the encoder gets it once.
    assert (items[C.TEXT] == items[C.TITLE]).all()
    assert len(table(lake, USER_FEATURES, day)) == inter[C.USER_ID].nunique()

    # Daily sales count guests too; without inventory the stock-out is unknown, and no item is promoted.
    sales = check_daily_sales(lake, day)
    assert orders[C.USER_ID].isna().any() and sales[C.STOCK_OUT].isna().all() and not sales[C.ON_PROMOTION].any()
    guests = orders[orders[C.USER_ID].isna() & (orders[C.STATUS] == PLACED)]
    assert set(guests[C.ITEM_ID]) - set(inter[C.ITEM_ID]) <= set(sales[C.ITEM_ID])


def test_a_shop_with_payments_gets_its_fraud_tables(make_cfg, spark, caplog):
    # A short maturity, so that some payments of the week carry a final label.
    cfg = make_cfg("lake.engine=delta-rs", "fraud.maturity_days=2")
    lake = Lake(cfg, spark)
    generate_shop(cfg.landing.root, FRAUD_SHOP)
    ingest(cfg, lake, date_range(START, FRAUD_DAY - dt.timedelta(days=1)), [ORDERS.name, PAYMENTS.name, CHARGEBACKS.name])

    with caplog.at_level(logging.WARNING, logger="shoplake.features.run"):
        results = build_features(cfg, lake, [FRAUD_DAY])
    assert [r.table for r in results] == [s.full_name for s in OUTPUTS if s not in SUPPORT_OUTPUTS + PRODUCT_OUTPUTS + ADS_OUTPUTS]
    assert "bronze.chargebacks does not exist" not in caplog.text
    for spec in FRAUD_OUTPUTS:
        assert lake.run_dates(spec) == [FRAUD_DAY], spec.full_name
        schema = lake.to_arrow(spec, run_date=FRAUD_DAY).schema
        assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in spec.arrow_schema()], spec.full_name

    # Every payment made before the run date, once, and one feature row per transaction.
    payments = table(lake, f"bronze.{PAYMENTS.name}")
    transactions = table(lake, TRANSACTIONS, FRAUD_DAY)
    features = table(lake, TXN_FEATURES, FRAUD_DAY)
    assert not transactions[C.PAYMENT_ID].duplicated().any()
    assert set(transactions[C.PAYMENT_ID]) == set(payments.loc[payments[C.PAYMENT_TS] < midnight(FRAUD_DAY), C.PAYMENT_ID])
    assert sorted(features[C.PAYMENT_ID]) == sorted(transactions[C.PAYMENT_ID])
    assert features[list(FEATURE_NAMES)].notna().all().all()
    assert (transactions[C.N_LINES] > 0).all() and (transactions[C.N_UNITS] >= transactions[C.N_LINES]).all()

    # The planted fraud: bursts on one device, so more earlier payments of the device within the hour.
    truth = json.loads((Path(cfg.landing.root) / GROUND_TRUTH_FILE).read_text())["fraud"]
    fraud_ids = {pid for incident in truth["incidents"] for pid in incident["payment_ids"]}
    is_fraud = features[C.PAYMENT_ID].isin(fraud_ids)
    assert is_fraud.sum() == len(fraud_ids & set(features[C.PAYMENT_ID])) > 0
    by_truth = features.groupby(is_fraud)[["device_count_1h", "device_cards_24h", "shipping_differs"]].mean()
    assert (by_truth.loc[True] > by_truth.loc[False]).all(), by_truth

    # Labels: final after maturity, 1 only for planted fraud charged back before the run date.
    labelled = transactions[transactions[C.MATURED]]
    assert transactions.loc[~transactions[C.MATURED], C.LABEL].isna().all()
    assert labelled[C.LABEL].notna().all() and (labelled[C.LABEL] == 1).any()
    assert set(labelled.loc[labelled[C.LABEL] == 1, C.PAYMENT_ID]) <= fraud_ids

    # The online engine, fed the same payments in time order, gives the stored features.
    stored = features.set_index(C.PAYMENT_ID)[list(FEATURE_NAMES)]
    state = OnlineFeatures()
    for row in sorted(lake.to_arrow(TRANSACTIONS, run_date=FRAUD_DAY).to_pylist(), key=lambda r: r[C.PAYMENT_TS]):
        assert state.vector(row) == pytest.approx(stored.loc[row[C.PAYMENT_ID]].tolist(), rel=1e-9, abs=1e-9)
        state.add(row)
