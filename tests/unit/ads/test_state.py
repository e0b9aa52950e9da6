"""gold.ad_state and gold.ad_viewers on hand-made rows: exactly what gold.ad_features gives an impression at D's midnight.

The reference is gold.ad_features itself: probe impressions of every viewer, ad and
placement shown at D's very midnight (landed on D), featurised by the run of D + 1.
Every other row lies inside both runs' windows, so the probes see what the state of D
should hold. The state is built with late rows besides (before its window, at or after
midnight, landed on D), which it must ignore and the probes' run never gets.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.data import CATEGORICAL, from_rows
from shoplake.ads.features import Smoothing, ad_inputs, compute_ad_features
from shoplake.ads.scoring import AdState
from shoplake.ads.state import compute_ad_state
from shoplake.ingest.bronze import BRONZE
from shoplake.ingest.landing import AD_EVENTS, EVENTS, PRODUCTS

UTC = dt.timezone.utc
D = dt.date(2024, 3, 11)
MIDNIGHT = dt.datetime(2024, 3, 11, tzinfo=UTC)
HISTORY_DAYS = 10
SMOOTH = Smoothing(ctr_prior=0.03, ctr_strength=20.0, cvr_prior=0.2, cvr_strength=5.0)
BANDS = (5.0, 20.0, 50.0)
_seq = itertools.count(1)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=UTC)


def frame(spark, source: str, rows: list[dict]):
    spec = BRONZE[source]
    lineage = {C.SOURCE_FILE: f"{source}.jsonl", C.ROW_NUMBER: 1, C.INGESTED_AT: at(10, 23)}
    return spark.createDataFrame([tuple({**lineage, **r}.get(n) for n in spec.column_names) for r in rows], spec.spark_schema())


def shown(imp, ts, item, campaign, placement, user, clicked=False, converted=False, cost=0.5, landed=None) -> list[dict]:
    def row(kind, when):
        return {C.AD_EVENT_ID: f"a{next(_seq)}", C.IMPRESSION_ID: imp, C.EVENT_TYPE: kind, C.USER_ID: user, C.ITEM_ID: item,
                C.CAMPAIGN_ID: campaign, C.PLACEMENT: placement, C.POSITION: 2, C.PROPENSITY: 0.2,
                C.COST: cost if kind == "click" else 0.0, C.EVENT_TS: when, C.RUN_DATE: landed or when.date()}  # fmt: skip

    rows = [row("impression", ts)]
    if clicked:
        rows.append(row("click", ts + dt.timedelta(seconds=5)))
    if converted:
        rows.append(row("conversion", ts + dt.timedelta(hours=1)))
    return rows


def product(item, ts, price, category, landed=None) -> dict:
    return {C.ITEM_ID: item, C.TITLE: item.upper(), C.DESCRIPTION: "An item.", C.CATEGORY: category, C.PRICE: price,
            C.UPDATED_AT: ts, C.RUN_DATE: landed or ts.date()}  # fmt: skip


def event(user, item, ts, kind="view", landed=None) -> dict:
    return {C.EVENT_ID: f"e{next(_seq)}", C.USER_ID: user, C.EVENT_TYPE: kind, C.ITEM_ID: item, C.EVENT_TS: ts,
            C.RUN_DATE: landed or ts.date()}  # fmt: skip


# Everything lies in [D - 9 days, D): inside the window of D and of D + 1.
ADS = [
    *shown("m1", at(2, 9), "i1", "c1", "search_top", "u1", clicked=True, converted=True, cost=0.4),
    *shown("m2", at(3, 10), "i1", "c1", "email", "u1", clicked=True, cost=0.6),
    *shown("m3", at(4, 11), "i2", "c1", "search_top", "u2"),
    *shown("m4", at(5, 12), "i3", "c2", "search_top", None, clicked=True, cost=1.0),
    *shown("m5", at(6, 8), "i4", "c3", "email", "u2", clicked=True, converted=True, cost=0.3),
    *shown("m6", at(7, 8), "i1", "c3", "search_top", "u2"),  # i1 is advertised by two campaigns
    *shown("m7", at(8, 8), "i2", "c1", "email", "u1"),
    *shown("m8", at(10, 23, 59), "i3", "c2", "email", "u1", clicked=True, converted=True),  # converts after midnight
]
PRODUCTS_ROWS = [
    product("i1", at(2, 0), 4.0, "kitchen"),
    product("i1", at(5, 0), 30.0, "kitchen"),  # a price change
    product("i2", at(2, 0), 80.0, "garden"),
    product("i3", at(2, 0), 12.0, "toys"),
    product("i3", at(6, 0), None, None),  # the latest row lists no category or price: the latest known ones hold
]
EVENTS_ROWS = [
    event("u1", "i1", at(2, 8)),
    event("u1", "i2", at(3, 8), "purchase"),
    event("u1", "i3", at(4, 8)),  # i3's latest row has no category: the event is in none
    event("u1", "i1", at(4, 9), "search"),  # not interest
    event("u3", "i2", at(5, 8)),  # u3 has events and no ad impressions
    event("u2", "i1", at(6, 8)),  # anyone's event counts for the item
]
#: Rows the state of D must not see: before the window, at or after midnight, or landed on D.
LATE = [
    *shown("old", at(1, 0) - dt.timedelta(minutes=1), "i1", "c1", "email", "u1", clicked=True),
    *shown("late", MIDNIGHT, "i2", "c1", "email", "u1", clicked=True),
    *shown("landed_late", at(9, 9), "i2", "c1", "email", "u2", landed=D),
]
LATE_PRODUCTS = [product("i2", MIDNIGHT, 5.0, "kitchen"), product("i1", at(9, 0), 1.0, "toys", landed=D)]
LATE_EVENTS = [event("u1", "i2", MIDNIGHT), event("u2", "i2", at(9, 0), landed=D), event("u4", "i2", at(1, 0) - dt.timedelta(hours=1))]


@pytest.fixture(scope="module")
def midnight(spark):
    """The state of D from every row, the late ones among them: ``(state frame, viewers frame, state rows, viewer rows)``."""
    inputs = ad_inputs(
        frame(spark, AD_EVENTS.name, ADS + LATE), frame(spark, PRODUCTS.name, PRODUCTS_ROWS + LATE_PRODUCTS),
        frame(spark, EVENTS.name, EVENTS_ROWS + LATE_EVENTS), D, HISTORY_DAYS,
    )  # fmt: skip
    state, viewers = compute_ad_state(inputs, SMOOTH, BANDS)
    assert state.columns == S.AD_STATE.column_names and viewers.columns == S.AD_VIEWERS.column_names
    assert [f.dataType for f in state.schema.fields] == [f.dataType for f in S.AD_STATE.spark_schema().fields]
    assert [f.dataType for f in viewers.schema.fields] == [f.dataType for f in S.AD_VIEWERS.spark_schema().fields]
    state, viewers = state.cache(), viewers.cache()
    yield state, viewers, state.toArrow(), viewers.toArrow()
    state.unpersist()
    viewers.unpersist()


def test_the_state_is_what_ad_features_gives_an_impression_at_midnight(spark, midnight):
    _, _, state_rows, viewer_rows = midnight
    state = AdState(state_rows, viewer_rows, {}, D)
    assert sorted(state.placements) == ["email", "search_top"]
    assert [(i, c) for i, c in zip(state.placements["email"].items, state.placements["email"].campaigns)] == [
        ("i1", "c1"), ("i1", "c3"), ("i2", "c1"), ("i3", "c2"), ("i4", "c3"),
    ]  # fmt: skip
    assert set(state.viewer_index) == {"u1", "u2", "u3"}
    probes, where = [], {}
    for user, placement, (item, campaign) in itertools.product(
        ["u1", "u2", "u3", None, "stranger"],
        ["email", "search_top"],
        [("i1", "c1"), ("i1", "c3"), ("i2", "c1"), ("i3", "c2"), ("i4", "c3")],
    ):
        imp = f"probe-{len(where)}"
        where[imp] = (user, placement, item, campaign)
        probes += [{**r, C.POSITION: None} for r in shown(imp, MIDNIGHT, item, campaign, placement, user)]
    inputs = ad_inputs(
        frame(spark, AD_EVENTS.name, ADS + probes), frame(spark, PRODUCTS.name, PRODUCTS_ROWS), frame(spark, EVENTS.name, EVENTS_ROWS),
        D + dt.timedelta(days=1), HISTORY_DAYS,
    )  # fmt: skip
    features, _ = compute_ad_features(inputs, 2, SMOOTH, BANDS)
    expected = from_rows(features.where(features[C.IMPRESSION_ID].startswith("probe-")).toArrow(), {}, 1)
    assert len(expected) == len(where)
    for k, imp in enumerate(expected.ids):
        user, placement, item, campaign = where[imp]
        got = state.data(state.viewer(user), placement)
        row = next(r for r in state.placements[placement].index[item] if state.placements[placement].campaigns[r] == campaign)
        assert got.num[row] == pytest.approx(expected.num[k], rel=1e-12, abs=1e-15), (imp, user, placement, item, campaign)
        assert {n: got.cats[n][row] for n in CATEGORICAL} == {n: expected.cats[n][k] for n in CATEGORICAL}


def test_rates_cost_per_click_and_viewer_history_at_midnight(midnight):
    _, _, state_rows, viewer_rows = midnight
    rows = {(r[C.PLACEMENT], r[C.ITEM_ID], r[C.CAMPAIGN_ID]): r for r in state_rows.to_pylist()}
    i3 = rows[("email", "i3", "c2")]
    # i3: two impressions, two clicks (m8's a minute before midnight), one conversion before midnight, none after.
    assert i3[S.ITEM_IMPRESSIONS] == 2 and i3[S.ITEM_CTR] == pytest.approx((2 + 0.6) / (2 + 20))
    assert i3[S.ITEM_CVR] == pytest.approx((0 + 1.0) / (2 + 5)) and i3[C.CATEGORY] == "toys" and i3[C.PRICE] == 12.0
    assert i3[S.CPC] == pytest.approx(0.75)  # c2: clicks charged 1.0 and 0.5
    assert rows[("email", "i4", "c3")][C.PRICE] == 0.0 and rows[("email", "i4", "c3")][C.PRICE_BAND] == -1
    assert rows[("search_top", "i1", "c1")][C.PRICE] == 30.0 and rows[("search_top", "i1", "c1")][S.ITEM_VIEWS] == 2
    # c3's ads were shown, c3's click was charged 0.3; an ad never shown in a placement has no impressions of it there.
    assert rows[("email", "i1", "c3")][S.CPC] == pytest.approx(0.3)
    assert rows[("search_top", "i4", "c3")][S.PLACEMENT_ITEM_CTR] == pytest.approx(0.03)
    assert rows[("email", "i4", "c3")][S.PLACEMENT_ITEM_CTR] == pytest.approx((1 + 0.6) / (1 + 20))
    viewers = {r[C.USER_ID]: r for r in viewer_rows.to_pylist()}
    assert viewers[None] == {C.USER_ID: None, S.USER_AD_IMPRESSIONS: 0.0, S.USER_CTR: 0.03, S.USER_EVENTS: 0.0, S.CATEGORIES: [],
                             S.CATEGORY_EVENTS: [], C.RUN_DATE: D}  # fmt: skip
    u1 = viewers["u1"]
    assert (u1[S.USER_AD_IMPRESSIONS], u1[S.USER_EVENTS], u1[S.CATEGORIES], u1[S.CATEGORY_EVENTS]) == (
        4.0, 3.0, ["garden", "kitchen"], [1.0, 1.0],
    )  # fmt: skip
    assert u1[S.USER_CTR] == pytest.approx((3 + 0.6) / (4 + 20))
    assert viewers["u3"][S.USER_AD_IMPRESSIONS] == 0.0 and viewers["u3"][S.USER_EVENTS] == 1.0


def test_the_state_tables_go_through_the_lake(midnight, lake):
    state, viewers, _, _ = midnight
    with lake.batch() as batch:
        batch.write(state, S.AD_STATE, mode="replace", run_dates=[D])
        batch.write(viewers, S.AD_VIEWERS, mode="replace", run_dates=[D])
    state_rows, viewer_rows = lake.to_arrow(S.AD_STATE, run_date=D), lake.to_arrow(S.AD_VIEWERS, run_date=D)
    assert state_rows.num_rows == 2 * 5 and viewer_rows.num_rows == 4
    ads = AdState(state_rows, viewer_rows, {}, D)
    u1 = ads.data(ads.viewer("u1"), "email")
    row = ads.placements["email"].index["i2"][0]
    assert u1.num[row, list(S.NUMERIC_FEATURES).index(S.USER_CATEGORY_AFFINITY)] == pytest.approx((1 + 1) / (3 + 10))
