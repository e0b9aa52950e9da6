"""The feature job end to end: a tiny synthetic shop and a few Online Retail days, ingested, then built."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pytest

from shoplake.datagen.synthetic import ShopParams, generate_shop
from shoplake.features.run import OUTPUTS, build_features
from shoplake.ingest.run import date_range, ingest
from shoplake.schemas import columns as C
from shoplake.schemas.landing import EVENTS, ORDERS, PRODUCTS
from shoplake.schemas.recsys import (
    CANCELLED,
    INTERACTIONS,
    ITEM_FEATURES,
    PLACED,
    PURCHASE,
    SOURCE_ORDERS,
    USER_FEATURES,
    USER_ITEM_MATRIX,
)

RETAIL = Path(__file__).resolve().parents[3] / "shared" / "data" / "online-retail" / "by-day"

# Busy enough for cancellations inside ten days, small enough for seconds of Spark.
SHOP = ShopParams(days=10, users=30, items=20, seed=5, sessions_per_user_day=0.5, cancel_rate=0.15)
START = SHOP.start
EARLY, LATE = START + dt.timedelta(days=2), START + dt.timedelta(days=SHOP.days)


def midnight(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def table(lake, spec, day: dt.date | None = None) -> pd.DataFrame:
    """A table (or one run date of it) in pandas, timestamps as UTC."""
    frame = lake.to_arrow(spec).to_pandas()
    if day is not None:
        frame = frame[frame[C.RUN_DATE] == day]
    return frame.reset_index(drop=True)


def sorted_rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(frame.astype(str).itertuples(index=False, name=None))


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
    inter = table(lake, INTERACTIONS, day)
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


def test_synthetic_shop_features_two_run_dates_then_a_rerun(cfg, lake):
    generate_shop(cfg.landing.root, SHOP)
    ingest(cfg, lake, date_range(START, LATE - dt.timedelta(days=1)), [ORDERS.name, EVENTS.name, PRODUCTS.name])

    results = build_features(cfg, lake, [LATE, EARLY])
    assert [r.table for r in results] == [s.full_name for s in OUTPUTS]
    assert all(r.version == 0 and r.rows > 0 for r in results)
    for day in (EARLY, LATE):
        check_snapshot(lake, cfg, day)
    # Two days in, part of the catalogue has not been touched yet: cold items are there with popularity 0.
    early_items = table(lake, ITEM_FEATURES, EARLY)
    assert (early_items[C.POPULARITY] == 0).any()
    # Cancellations happened, and by the late date some have netted purchases out.
    orders = table(lake, f"bronze.{ORDERS.name}")
    placed_with_user = orders[(orders[C.STATUS] == PLACED) & orders[C.USER_ID].notna()]
    assert len(expected_purchases(orders, LATE)) < len(placed_with_user.drop_duplicates([C.USER_ID, C.ITEM_ID, C.ORDER_TS]))

    # Re-running a date replaces its partitions: the same rows in a new version, the other date untouched.
    before = {s.full_name: (sorted_rows(table(lake, s, LATE)), sorted_rows(table(lake, s, EARLY))) for s in OUTPUTS}
    again = build_features(cfg, lake, [LATE])
    assert [(r.table, r.version) for r in again] == [(s.full_name, 1) for s in OUTPUTS]
    for spec in OUTPUTS:
        after = (sorted_rows(table(lake, spec, LATE)), sorted_rows(table(lake, spec, EARLY)))
        assert after == before[spec.full_name], spec.full_name


@pytest.mark.skipif(not RETAIL.is_dir(), reason=f"the public Online Retail files are read in place from {RETAIL}, outside the repository, and this checkout has none")
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

    inter = table(lake, INTERACTIONS, day)
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
