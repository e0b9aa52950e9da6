"""gold.ad_features and gold.ad_items on hand-made impressions: point in time, smoothing, labels and maturity."""

from __future__ import annotations

import datetime as dt

import pytest

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.features import Smoothing, ad_inputs, compute_ad_features
from shoplake.ingest.bronze import BRONZE
from shoplake.ingest.landing import AD_EVENTS, EVENTS, PRODUCTS

UTC = dt.timezone.utc
D = dt.date(2024, 3, 11)
HISTORY_DAYS, MATURITY_DAYS = 10, 2
SMOOTH = Smoothing(ctr_prior=0.1, ctr_strength=10.0, cvr_prior=0.5, cvr_strength=2.0)
BANDS = (5.0, 20.0, 50.0)
INGESTED = dt.datetime(2024, 3, 10, 23, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, second, tzinfo=UTC)


def frame(spark, source: str, rows: list[dict]):
    spec = BRONZE[source]
    lineage = {C.SOURCE_FILE: f"{source}.jsonl", C.ROW_NUMBER: 1, C.INGESTED_AT: INGESTED}
    return spark.createDataFrame([tuple({**lineage, **r}.get(n) for n in spec.column_names) for r in rows], spec.spark_schema())


_seq = iter(range(1, 10_000))


def ad(imp: str, kind: str, ts: dt.datetime, item="i1", campaign="c1", placement="search_top", user="u1", **extra) -> dict:
    row = {
        C.AD_EVENT_ID: f"a{next(_seq)}", C.IMPRESSION_ID: imp, C.EVENT_TYPE: kind, C.USER_ID: user, C.ITEM_ID: item,
        C.CAMPAIGN_ID: campaign, C.PLACEMENT: placement, C.POSITION: 2, C.PROPENSITY: 0.25,
        C.COST: 0.5 if kind == "click" else 0.0, C.EVENT_TS: ts, C.RUN_DATE: ts.date(),
    }  # fmt: skip
    return {**row, **extra}


def shown(imp: str, ts: dt.datetime, clicked: bool = False, converted: bool = False, **kw) -> list[dict]:
    rows = [ad(imp, "impression", ts, **kw)]
    if clicked:
        rows.append(ad(imp, "click", ts + dt.timedelta(seconds=5), **kw))
    if converted:
        rows.append(ad(imp, "conversion", ts + dt.timedelta(minutes=10), **kw))
    return rows


def product(item: str, ts: dt.datetime, price: float, category: str = "kitchen", title: str = "Pan") -> dict:
    return {C.ITEM_ID: item, C.TITLE: title, C.DESCRIPTION: "Non-stick pan.", C.CATEGORY: category, C.PRICE: price,
            C.UPDATED_AT: ts, C.RUN_DATE: ts.date()}  # fmt: skip


def event(user: str, item: str, ts: dt.datetime, kind: str = "view") -> dict:
    return {C.EVENT_ID: f"e{next(_seq)}", C.USER_ID: user, C.EVENT_TYPE: kind, C.ITEM_ID: item, C.EVENT_TS: ts, C.RUN_DATE: ts.date()}


def build(spark, ads, products=None, events=None, run_date=D):
    inputs = ad_inputs(
        frame(spark, AD_EVENTS.name, ads),
        None if products is None else frame(spark, PRODUCTS.name, products),
        None if events is None else frame(spark, EVENTS.name, events),
        run_date, HISTORY_DAYS,
    )  # fmt: skip
    features, items = compute_ad_features(inputs, MATURITY_DAYS, SMOOTH, BANDS)
    assert features.columns == S.AD_FEATURES.column_names and items.columns == S.AD_ITEMS.column_names
    assert [f.dataType for f in features.schema.fields] == [f.dataType for f in S.AD_FEATURES.spark_schema().fields]
    return {r[C.IMPRESSION_ID]: r.asDict() for r in features.collect()}, {r[C.ITEM_ID]: r.asDict() for r in items.collect()}


def ctr(clicks: float, imps: float) -> float:
    return (clicks + SMOOTH.ctr_strength * SMOOTH.ctr_prior) / (imps + SMOOTH.ctr_strength)


def cvr(conversions: float, clicks: float) -> float:
    return (conversions + SMOOTH.cvr_strength * SMOOTH.cvr_prior) / (clicks + SMOOTH.cvr_strength)


def test_historic_rates_count_only_what_happened_strictly_before_the_impression(spark):
    ads = [
        *shown("m1", at(3, 9), clicked=True, converted=True),
        *shown("m2", at(3, 10), clicked=True),
        *shown("m3", at(3, 11)),
        # m4 at the very second of m5: neither sees the other; m5's own click is not its history.
        *shown("m4", at(4, 12), clicked=True),
        *shown("m5", at(4, 12), clicked=True, converted=True),
        *shown("m6", at(4, 12, 0, 3)),  # before m4's and m5's clicks (5 s after they were shown)
        *shown("m7", at(5, 8), campaign="c2", placement="email", item="i2"),
    ]
    rows, _ = build(spark, ads)
    assert rows["m1"][S.ITEM_CTR] == pytest.approx(ctr(0, 0)) and rows["m1"][S.ITEM_IMPRESSIONS] == 0
    assert rows["m2"][S.ITEM_CTR] == pytest.approx(ctr(1, 1)) and rows["m2"][S.ITEM_CVR] == pytest.approx(cvr(1, 1))
    assert rows["m3"][S.ITEM_CTR] == pytest.approx(ctr(2, 2)) and rows["m3"][S.ITEM_CVR] == pytest.approx(cvr(1, 2))
    for imp in ("m4", "m5"):
        assert rows[imp][S.ITEM_IMPRESSIONS] == 3 and rows[imp][S.ITEM_CTR] == pytest.approx(ctr(2, 3))
        assert rows[imp][S.USER_AD_IMPRESSIONS] == 3 and rows[imp][S.USER_CTR] == pytest.approx(ctr(2, 3))
    assert rows["m6"][S.ITEM_IMPRESSIONS] == 5 and rows["m6"][S.ITEM_CTR] == pytest.approx(ctr(2, 5))
    assert rows["m6"][S.CAMPAIGN_CTR] == pytest.approx(ctr(2, 5)) and rows["m6"][S.PLACEMENT_CTR] == pytest.approx(ctr(2, 5))
    # Another item, campaign and placement: nothing of theirs before; the same viewer: 6 impressions, 4 clicks.
    m7 = rows["m7"]
    assert m7[S.ITEM_CTR] == m7[S.CAMPAIGN_CTR] == m7[S.PLACEMENT_CTR] == m7[S.PLACEMENT_ITEM_CTR] == pytest.approx(ctr(0, 0))
    assert m7[S.PLACEMENT_CVR] == pytest.approx(cvr(0, 0))
    assert m7[S.USER_AD_IMPRESSIONS] == 6 and m7[S.USER_CTR] == pytest.approx(ctr(4, 6))


def test_an_unknown_viewer_gets_the_prior_and_no_history(spark):
    ads = [*shown("m1", at(3, 9), clicked=True, user=None), *shown("m2", at(3, 10), user=None)]
    events = [event("u1", "i1", at(3, 8))]
    rows, _ = build(spark, ads, events=events)
    assert rows["m2"][S.USER_AD_IMPRESSIONS] == 0 and rows["m2"][S.USER_CTR] == pytest.approx(SMOOTH.ctr_prior)
    assert rows["m2"][S.USER_EVENTS] == 0 and rows["m2"][S.ITEM_CTR] == pytest.approx(ctr(1, 1))


def test_labels_click_from_the_impression_and_conversion_only_once_matured(spark):
    midnight = dt.datetime(2024, 3, 11, tzinfo=UTC)
    matured_until = midnight - dt.timedelta(days=MATURITY_DAYS)
    ads = [
        *shown("old_converted", at(5, 9), clicked=True, converted=True),
        *shown("old_clicked", at(5, 10), clicked=True),
        *shown("old_shown", at(5, 11)),
        *shown("edge", matured_until),  # exactly maturity_days old: matured
        *shown("young", matured_until + dt.timedelta(seconds=1), clicked=True, converted=True),
    ]
    rows, _ = build(spark, ads)
    assert {k: (r[S.CLICK], r[C.MATURED], r[S.CONVERSION]) for k, r in rows.items()} == {
        "old_converted": (1, True, 1), "old_clicked": (1, True, 0), "old_shown": (0, True, 0),
        "edge": (0, True, 0), "young": (1, False, None),
    }  # fmt: skip
    assert rows["old_clicked"][C.COST] == 0.5 and rows["old_shown"][C.COST] == 0.0


def test_the_snapshot_holds_the_history_window_and_nothing_landed_or_shown_from_the_run_date_on(spark):
    start = dt.datetime(2024, 3, 1, tzinfo=UTC)
    late_click = ad("m2", "click", at(11, 0, 0, 1))
    ads = [
        *shown("before_window", start - dt.timedelta(seconds=1), clicked=True),
        *shown("first", start),
        *shown("m2", at(10, 23, 59, 59)),
        late_click,
        *shown("on_run_date", at(11, 1)),
        # Shown before D but landed on D: the nightly run of D has not seen it yet.
        *[{**r, C.RUN_DATE: D} for r in shown("landed_late", at(10, 12))],
    ]
    rows, items = build(spark, ads)
    assert set(rows) == {"first", "m2"}
    assert rows["m2"][S.CLICK] == 0  # its click came after D's midnight
    assert rows["m2"][S.ITEM_IMPRESSIONS] == 1 and rows["first"][S.ITEM_CTR] == pytest.approx(ctr(0, 0))
    assert set(items) == {"i1"}


def test_viewer_affinity_item_views_price_and_slot_are_as_known_before_the_impression(spark):
    products = [
        product("i1", at(1, 0), 4.0),
        product("i1", at(4, 0), 30.0),  # a price change the impression of day 3 must not see
        product("i2", at(1, 0), 80.0, category="garden", title="Rake"),
    ]
    events = [
        event("u1", "i1", at(2, 9)),
        event("u1", "i1", at(2, 10), "purchase"),
        event("u1", "i2", at(2, 11)),
        event("u1", "i1", at(3, 9, 30), "search"),  # searches are no interest in an item
        event("u2", "i1", at(3, 9, 30)),
        event("u1", "i1", at(3, 10)),  # the impression's very second: not before it
    ]
    ads = [*shown("m1", at(3, 10), item="i1"), *shown("m2", at(5, 7), item="i1"), *shown("m3", at(5, 8), item="i2")]
    rows, items = build(spark, ads, products, events)
    m1, m2, m3 = rows["m1"], rows["m2"], rows["m3"]
    assert m1[S.USER_EVENTS] == 3 and m1[S.USER_CATEGORY_AFFINITY] == pytest.approx((2 + 1) / (3 + 10))
    assert m1[S.ITEM_VIEWS] == 3 and m1[C.PRICE] == 4.0 and m1[C.PRICE_BAND] == 0 and m1[C.CATEGORY] == "kitchen"
    assert m2[S.USER_EVENTS] == 4 and m2[S.ITEM_VIEWS] == 4 and m2[C.PRICE] == 30.0 and m2[C.PRICE_BAND] == 2
    assert m3[S.USER_CATEGORY_AFFINITY] == pytest.approx((1 + 1) / (4 + 10)) and m3[C.PRICE_BAND] == 3
    assert (m1[S.HOUR], m2[S.HOUR], m1[C.POSITION], m1[C.PROPENSITY], m1[S.PROPENSITY_LOGGED]) == (10, 7, 2, 0.25, True)
    assert items["i1"][C.PRICE] == 30.0 and items["i1"][S.AD_TEXT] == "Pan. Non-stick pan." and items["i2"][C.PRICE_BAND] == 3


def test_a_log_without_propensities_gets_the_ads_share_of_its_placement(spark):
    ads = [
        *shown("m1", at(3, 9), propensity=None, position=None),
        *shown("m2", at(3, 10), propensity=None),
        *shown("m3", at(3, 11), item="i2", propensity=None),
        *shown("m4", at(3, 12), item="i2", placement="email", propensity=None),
    ]
    rows, _ = build(spark, ads)
    assert rows["m1"][C.PROPENSITY] == pytest.approx(2 / 3) and rows["m3"][C.PROPENSITY] == pytest.approx(1 / 3)
    assert rows["m4"][C.PROPENSITY] == 1.0 and not rows["m1"][S.PROPENSITY_LOGGED] and rows["m1"][C.POSITION] == 1
