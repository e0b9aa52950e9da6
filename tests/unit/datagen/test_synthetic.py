"""The synthetic shop writes the landing contract and plants structure a test can find."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from landing_reading import DAY, bag_of_words_accuracy, day_of, read_landing_file, read_source, seconds, violations
from shoplake import columns as C
from shoplake.datagen.landing_writer import landing_path
from shoplake.datagen.shop.common import CHEAP_PRICE_LIMIT, FRAUD_PATTERNS, GROUND_TRUTH_FILE, INTENTS, SOURCE_FORMATS, ShopParams
from shoplake.datagen.synthetic import generate_shop
from shoplake.ingest import landing as L

# Dense enough for statistics on every planted effect, small enough to run in seconds.
PARAMS = ShopParams(
    days=28,
    users=80,
    items=48,
    seed=11,
    sessions_per_user_day=2.0,
    tickets_per_order=0.5,
    fraud_rate=0.05,
    friendly_fraud_rate=0.01,
    stockout_rate=0.08,
    promo_rate=0.01,
)
TINY = ShopParams(days=6, users=25, items=24, seed=3, sessions_per_user_day=1.0)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    calls = []
    summary = generate_shop(root, PARAMS, progress=lambda done, total: calls.append((done, total)))
    truth = json.loads((root / GROUND_TRUTH_FILE).read_text())
    return root, truth, summary, calls


@pytest.fixture(scope="module")
def data(shop):
    root = shop[0]
    return {source: read_source(root, source, PARAMS) for source in SOURCE_FORMATS}


# ------------------------------------------------------------------ layout and contract


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_shop(a, TINY)
    generate_shop(b, TINY)
    generate_shop(c, dataclasses.replace(TINY, seed=TINY.seed + 1))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert any((a / rel).read_bytes() != (c / rel).read_bytes() for rel in files_a)


def test_every_source_and_day_has_a_file_and_no_stray_files(shop):
    root, truth, summary, calls = shop
    expected = {
        landing_path(root, source, PARAMS.start + dt.timedelta(days=d), fmt)
        for source, fmt in SOURCE_FORMATS.items()
        for d in range(PARAMS.days)
    }
    written = {p for p in root.rglob("*") if p.is_file() and p.name != GROUND_TRUTH_FILE}
    assert written == expected
    assert set(SOURCE_FORMATS) == set(L.SOURCES)
    assert {fmt for fmt in SOURCE_FORMATS.values()} == {"csv", "jsonl", "parquet"}
    assert summary["files"] == len(expected)
    assert calls == [(d + 1, PARAMS.days) for d in range(PARAMS.days)]


def test_files_conform_to_the_contract(shop, data):
    root, truth, summary, _ = shop
    for source in SOURCE_FORMATS:
        for d in range(PARAMS.days):
            path = landing_path(root, source, PARAMS.start + dt.timedelta(days=d), SOURCE_FORMATS[source])
            frame = read_landing_file(path, source)
            if len(frame):
                assert list(frame.columns) == L.get_source(source).field_names, path
        frame = data[source]
        assert len(frame) == summary["rows"][source] > 0, source
        assert not violations(source, frame).any(), (source, frame[violations(source, frame)].head())
        keys = list(L.get_source(source).keys)
        assert not frame.duplicated(keys).any(), source
    assert truth["bad_rows"]["rows"] == []


def test_timestamps_are_utc_and_fall_on_their_file_day(data):
    ts_field = {
        L.ORDERS.name: C.ORDER_TS,
        L.EVENTS.name: C.EVENT_TS,
        L.PRODUCTS.name: C.UPDATED_AT,
        L.PAYMENTS.name: C.PAYMENT_TS,
        L.CHARGEBACKS.name: C.CHARGEBACK_TS,
        L.AD_EVENTS.name: C.EVENT_TS,
        L.SUPPORT_TICKETS.name: C.CREATED_TS,
    }
    for source, name in ts_field.items():
        frame = data[source]
        assert frame[name].str.endswith("Z").all(), source
        assert (day_of(frame[name]) == frame[DAY]).all(), source
    inv = data[L.INVENTORY.name]
    assert (inv[C.SNAPSHOT_DATE] == inv[DAY]).all()


# ------------------------------------------------------------------ catalogue


def test_catalogue_first_day_changes_later_and_cold_items(shop, data):
    _, truth, _, _ = shop
    products = data[L.PRODUCTS.name]
    first = PARAMS.start.isoformat()
    launch = {i: facts["launch_date"] for i, facts in truth["items"].items()}
    day0 = {i for i, d in launch.items() if d == first}
    assert set(products.loc[products[DAY] == first, C.ITEM_ID]) == day0
    cold = {i for i, d in launch.items() if d > first}
    assert cold, "some items launch later"
    first_seen = products.groupby(C.ITEM_ID)[DAY].min()
    for item in cold:
        assert first_seen[item] == launch[item]
    events = data[L.EVENTS.name].dropna(subset=[C.ITEM_ID])
    ev_launch = events[C.ITEM_ID].map(launch)
    assert (events[DAY] >= ev_launch).all()
    # Later rows are only launches, promotion starts/ends and price changes.
    promo_days = {(p["item_id"], p["start"]) for p in truth["promotions"]}
    promo_ends = {(p["item_id"], (dt.date.fromisoformat(p["end"]) + dt.timedelta(days=1)).isoformat()) for p in truth["promotions"]}
    changes = {(c["item_id"], c["date"]) for c in truth["price_changes"]}
    later = products[products[DAY] > first]
    for item, day in zip(later[C.ITEM_ID], later[DAY]):
        assert (item, day) in promo_days | promo_ends | changes or launch[item] == day
    assert truth["promotions"] and truth["price_changes"]


def test_titles_and_descriptions_carry_the_category(tmp_path):
    # A wide catalogue over a single day: enough titles per category to learn from.
    params = ShopParams(days=1, users=5, items=400, seed=5)
    generate_shop(tmp_path, params)
    products = read_source(tmp_path, L.PRODUCTS.name, params)
    assert len(products) == params.items
    labels = products[C.CATEGORY].tolist()
    assert bag_of_words_accuracy(products[C.TITLE].tolist(), labels) > 0.8
    assert bag_of_words_accuracy(products[C.DESCRIPTION].tolist(), labels) > 0.8


def test_promotions_raise_demand_and_lower_the_price(shop, data):
    _, truth, _, _ = shop
    views = data[L.EVENTS.name]
    views = views[views[C.EVENT_TYPE] == "view"]
    per_day = views.groupby([C.ITEM_ID, DAY]).size()
    promo, normal = [], []
    for p in truth["promotions"]:
        start, end = p["start"], p["end"]
        launch = truth["items"][p["item_id"]]["launch_date"]
        for d in range(PARAMS.days):
            day = (PARAMS.start + dt.timedelta(days=d)).isoformat()
            if day < launch:
                continue
            count = per_day.get((p["item_id"], day), 0)
            (promo if start <= day <= end else normal).append(count)
    assert np.mean(promo) > 1.5 * np.mean(normal)
    products = data[L.PRODUCTS.name]
    on_promo = products[products[C.ON_PROMOTION] == "true"]
    assert len(on_promo) > 0


# ------------------------------------------------------------------ behaviour


def test_purchases_concentrate_on_favourite_categories(shop, data):
    _, truth, _, _ = shop
    n_cat = len(truth["categories"])
    category = {i: f["category"] for i, f in truth["items"].items()}
    lines = data[L.ORDERS.name]
    lines = lines[(lines[C.STATUS] == "placed") & lines[C.USER_ID].isin(truth["users"])]
    shares = []
    for user, group in lines.groupby(C.USER_ID):
        if len(group) >= 3:
            top = truth["users"][user]["favourite_categories"][0]
            shares.append((group[C.ITEM_ID].map(category) == top).mean())
    assert len(shares) >= 20
    assert np.mean(shares) > 3.0 / n_cat
    views = data[L.EVENTS.name]
    views = views[(views[C.EVENT_TYPE] == "view") & views[C.USER_ID].isin(truth["users"])]
    fav = views[C.USER_ID].map({u: set(f["favourite_categories"]) for u, f in truth["users"].items()})
    in_fav = [category[i] in f for i, f in zip(views[C.ITEM_ID], fav)]
    mean_favs = np.mean([len(f["favourite_categories"]) for f in truth["users"].values()])
    assert np.mean(in_fav) > 2.0 * mean_favs / n_cat


def test_weekend_uplift_matches_weekly_multipliers(shop, data):
    _, truth, _, _ = shop
    lines = data[L.ORDERS.name]
    placed = lines[lines[C.STATUS] == "placed"].drop_duplicates(C.ORDER_ID)
    per_day = (
        placed.groupby(DAY).size().reindex([(PARAMS.start + dt.timedelta(days=d)).isoformat() for d in range(PARAMS.days)], fill_value=0)
    )
    weekend = np.array([dt.date.fromisoformat(d).weekday() >= 5 for d in per_day.index])
    weekly = np.array(truth["seasonality"]["weekly_multipliers"])
    expected = np.sign(weekly[5:].mean() - weekly[:5].mean())
    observed = per_day[weekend].mean() - per_day[~weekend].mean()
    assert expected > 0
    assert np.sign(observed) == expected
    assert per_day[weekend].mean() > 1.05 * per_day[~weekend].mean()


def test_purchase_events_match_placed_order_lines(data):
    events = data[L.EVENTS.name]
    purchases = events[events[C.EVENT_TYPE] == "purchase"]
    lines = data[L.ORDERS.name]
    placed = lines[lines[C.STATUS] == "placed"]
    key = [C.USER_ID, C.ITEM_ID]
    assert collections.Counter(map(tuple, purchases[key].assign(ts=purchases[C.EVENT_TS]).values)) == collections.Counter(
        map(tuple, placed[key].assign(ts=placed[C.ORDER_TS]).values)
    )
    # Funnel: every purchased (session, item) was added to the cart before.
    carts = events[events[C.EVENT_TYPE] == "add_to_cart"]
    cart_keys = set(zip(carts[C.SESSION_ID], carts[C.ITEM_ID]))
    assert all(k in cart_keys for k in zip(purchases[C.SESSION_ID], purchases[C.ITEM_ID]))
    counts = events[C.EVENT_TYPE].value_counts()
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0


def test_cancellations_and_returns_follow_placed_lines(data):
    lines = data[L.ORDERS.name]
    placed = lines[lines[C.STATUS] == "placed"].set_index([C.ORDER_ID, C.LINE_NUMBER])
    later = lines[lines[C.STATUS] != "placed"]
    assert set(later[C.STATUS]) == {"cancelled", "returned"}
    for _, row in later.iterrows():
        original = placed.loc[(row[C.ORDER_ID], row[C.LINE_NUMBER])]
        assert original[C.ITEM_ID] == row[C.ITEM_ID]
        assert original[DAY] < row[DAY]


def test_search_events_have_a_query_and_no_item(data):
    events = data[L.EVENTS.name]
    search = events[events[C.EVENT_TYPE] == "search"]
    assert len(search) > 0
    assert search[C.ITEM_ID].isna().all()
    assert (search[C.QUERY].fillna("").str.strip() != "").all()
    assert events.loc[events[C.EVENT_TYPE] != "search", C.QUERY].isna().all()


def test_no_orders_of_an_item_during_its_stockout(shop, data):
    _, truth, _, _ = shop
    assert any(s["planted"] for s in truth["stockouts"])
    assert truth["supply_disruptions"]
    lines = data[L.ORDERS.name]
    sold = set(zip(lines.loc[lines[C.STATUS] == "placed", C.ITEM_ID], lines.loc[lines[C.STATUS] == "placed", DAY]))
    inv = data[L.INVENTORY.name].set_index([C.ITEM_ID, DAY])
    for s in truth["stockouts"]:
        for day in s["days"]:
            assert (s["item_id"], day) not in sold
            assert inv.loc[(s["item_id"], day), C.ON_HAND] == "0"
    for d in truth["supply_disruptions"]:
        window = [s for s in truth["stockouts"] if s["item_id"] == d["item_id"] and s["start"] == d["start"]]
        assert window and window[0]["end"] >= d["end"]


def test_inventory_has_a_row_per_launched_item_and_day_and_replenishes(shop, data):
    _, truth, _, _ = shop
    inv = data[L.INVENTORY.name]
    for d in range(PARAMS.days):
        day = (PARAMS.start + dt.timedelta(days=d)).isoformat()
        launched = {i for i, f in truth["items"].items() if f["launch_date"] <= day}
        assert set(inv.loc[inv[DAY] == day, C.ITEM_ID]) == launched
    on_hand = inv.assign(on_hand=pd.to_numeric(inv[C.ON_HAND])).pivot(index=DAY, columns=C.ITEM_ID, values="on_hand")
    assert (on_hand.diff() > 0).to_numpy().sum() > 0, "deliveries raise stock"
    assert (pd.to_numeric(inv[C.ON_ORDER]) > 0).any()


def test_fraud_ground_truth_matches_payments(shop, data):
    _, truth, _, _ = shop
    payments = data[L.PAYMENTS.name].set_index(C.PAYMENT_ID)
    fraud = truth["fraud"]
    for pattern in FRAUD_PATTERNS:
        assert fraud[pattern], pattern
        assert set(fraud[pattern]) <= set(payments.index), pattern
    assert set(payments[C.ORDER_ID]) == set(data[L.ORDERS.name][C.ORDER_ID])
    # One payment per order, for the order's total.
    lines = data[L.ORDERS.name]
    placed = lines[lines[C.STATUS] == "placed"]
    totals = (pd.to_numeric(placed[C.QUANTITY]) * pd.to_numeric(placed[C.UNIT_PRICE])).groupby(placed[C.ORDER_ID]).sum()
    assert payments[C.ORDER_ID].is_unique
    np.testing.assert_allclose(pd.to_numeric(payments[C.AMOUNT]).to_numpy(), totals.reindex(payments[C.ORDER_ID]).to_numpy(), atol=0.011)

    legit = payments.drop(index=[p for pat in FRAUD_PATTERNS for p in fraud[pat]])
    for incident in fraud["incidents"]:
        rows = payments.loc[incident["payment_ids"]]
        span = seconds(rows[C.PAYMENT_TS]).max() - seconds(rows[C.PAYMENT_TS]).min()
        if incident["pattern"] == "stolen_card_burst":
            assert rows[C.CARD_ID].nunique() == 1 and span <= 3600
            assert (rows[C.SHIPPING_COUNTRY] != rows[C.BILLING_COUNTRY]).all()
            assert not set(rows[C.CARD_ID]) & set(legit[C.CARD_ID])
        elif incident["pattern"] == "account_takeover":
            user = incident["user_id"]
            assert (rows[C.USER_ID] == user).all()
            own = legit[legit[C.USER_ID] == user]
            assert not set(rows[C.DEVICE_ID]) & set(own[C.DEVICE_ID])
            assert not set(rows[C.IP_ADDRESS]) & set(own[C.IP_ADDRESS])
            assert (rows[C.SHIPPING_COUNTRY] != rows[C.BILLING_COUNTRY]).all()
        else:
            assert (pd.to_numeric(rows[C.AMOUNT]) < CHEAP_PRICE_LIMIT).all()
            assert rows[C.DEVICE_ID].nunique() == 1 and rows[C.IP_ADDRESS].nunique() == 1
            assert rows[C.CARD_ID].nunique() == len(rows) and span <= 900
    fraud_amount = pd.to_numeric(payments.loc[fraud["stolen_card_burst"] + fraud["account_takeover"], C.AMOUNT])
    assert fraud_amount.median() > pd.to_numeric(legit[C.AMOUNT]).median()


def test_chargebacks_reference_payments_and_arrive_later(shop, data):
    _, truth, _, _ = shop
    payments = data[L.PAYMENTS.name].set_index(C.PAYMENT_ID)
    cbs = data[L.CHARGEBACKS.name]
    assert len(cbs) > 0
    assert set(cbs[C.PAYMENT_ID]) <= set(payments.index)
    paid = pd.to_datetime(payments.loc[cbs[C.PAYMENT_ID], C.PAYMENT_TS].to_numpy(), utc=True)
    arrived = pd.to_datetime(cbs[C.CHARGEBACK_TS].to_numpy(), utc=True)
    assert (arrived > paid).all()
    lo, hi = truth["fraud"]["chargeback_delay_days"]
    delay_days = (arrived.normalize() - paid.normalize()).days
    assert ((delay_days >= lo) & (delay_days <= hi)).all()
    gt = truth["fraud"]["chargebacks"]
    assert {c["chargeback_id"] for c in gt if c["written"]} == set(cbs[C.CHARGEBACK_ID])
    assert any(not c["written"] for c in gt), "some chargebacks arrive after the period"
    last = (PARAMS.start + dt.timedelta(days=PARAMS.days - 1)).isoformat()
    assert all((c["arrival_date"] > last) != c["written"] for c in gt)
    fraud_ids = {p for pat in FRAUD_PATTERNS for p in truth["fraud"][pat]}
    for c in gt:
        assert (c["reason_code"] == "fraud") == (c["payment_id"] in fraud_ids)
    assert set(truth["fraud"]["friendly_fraud"]) == {c["payment_id"] for c in gt if c["reason_code"] == "not_received"}
    assert truth["fraud"]["friendly_fraud"], "legitimate payments get a few chargebacks too"
    assert fraud_ids == {c["payment_id"] for c in gt if c["reason_code"] == "fraud"}


def test_legit_payments_use_stable_cards_and_devices(shop, data):
    _, truth, _, _ = shop
    payments = data[L.PAYMENTS.name]
    fraud_ids = {p for pat in FRAUD_PATTERNS for p in truth["fraud"][pat]}
    legit = payments[~payments[C.PAYMENT_ID].isin(fraud_ids)]
    per_user = legit.groupby(C.USER_ID)[[C.CARD_ID, C.DEVICE_ID]].nunique()
    assert (per_user[C.CARD_ID] == 1).mean() > 0.8
    assert (per_user[C.DEVICE_ID] == 1).mean() > 0.7
    assert (legit[C.BILLING_COUNTRY] == legit[C.SHIPPING_COUNTRY]).mean() > 0.9


def test_ad_ctr_is_higher_for_affinity_matches(shop, data):
    _, truth, _, _ = shop
    ads = data[L.AD_EVENTS.name]
    imps = ads[(ads[C.EVENT_TYPE] == "impression") & ads[C.USER_ID].notna()]
    clicked = set(ads.loc[ads[C.EVENT_TYPE] == "click", C.IMPRESSION_ID])
    category = {i: f["category"] for i, f in truth["items"].items()}
    favs = {u: set(f["favourite_categories"]) for u, f in truth["users"].items()}
    match = np.array([category[i] in favs[u] for u, i in zip(imps[C.USER_ID], imps[C.ITEM_ID])])
    click = imps[C.IMPRESSION_ID].isin(clicked).to_numpy()
    assert match.sum() > 100 and (~match).sum() > 100
    assert click[match].mean() > 1.5 * click[~match].mean()
    ctr = pd.Series(click).groupby(imps[C.PLACEMENT].to_numpy()).mean()
    base = truth["ads"]["ctr_by_placement"]
    assert ctr.idxmax() == max(base, key=base.get)
    assert ctr["search_top"] > ctr["home_banner"]
    costs = pd.to_numeric(ads[C.COST])
    assert (costs[ads[C.EVENT_TYPE] == "click"] > 0).all()
    assert (costs[ads[C.EVENT_TYPE] != "click"] == 0).all()
    assert set(ads.loc[ads[C.EVENT_TYPE] == "conversion", C.IMPRESSION_ID]) <= clicked


def test_support_ticket_text_depends_on_intent(data):
    tickets = data[L.SUPPORT_TICKETS.name]
    labelled = tickets[tickets[C.INTENT].notna()]
    assert tickets[C.INTENT].isna().any(), "some tickets have no intent label"
    assert set(labelled[C.INTENT]) <= set(INTENTS)
    assert labelled[C.INTENT].nunique() == len(INTENTS)
    assert len(labelled) >= 100
    accuracy = bag_of_words_accuracy(labelled[C.TEXT].tolist(), labelled[C.INTENT].tolist())
    assert accuracy > 0.8
    assert labelled[C.RESOLUTION].notna().all()
    orders = set(data[L.ORDERS.name][C.ORDER_ID])
    refs = tickets[C.ORDER_ID].dropna()
    assert len(refs) > 0 and set(refs) <= orders


# ------------------------------------------------------------------ bad rows and params


def test_bad_rows_break_the_contract_and_are_counted(tmp_path):
    params = dataclasses.replace(TINY, bad_rows=0.05)
    generate_shop(tmp_path, params)
    truth = json.loads((tmp_path / GROUND_TRUTH_FILE).read_text())
    bad = truth["bad_rows"]
    assert sum(bad["counts"].values()) == len(bad["rows"]) > 0
    for source in SOURCE_FORMATS:
        frame = read_source(tmp_path, source, params)
        mask = violations(source, frame)
        assert mask.sum() == bad["counts"][source], source
        # The ground truth names the file and the row (0-based, after the header) of every bad row.
        found = set()
        for day, group in frame.groupby(DAY, sort=False):
            for pos in np.flatnonzero(mask[group.index].to_numpy()):
                found.add((day, int(pos)))
        assert found == {(r["date"], r["row"]) for r in bad["rows"] if r["source"] == source}, source
    clean = dataclasses.replace(TINY)
    generate_shop(tmp_path / "clean", clean)
    # Turning bad rows on leaves the good rows as they were.
    for source in SOURCE_FORMATS:
        with_bad = read_source(tmp_path, source, params)
        without = read_source(tmp_path / "clean", source, clean)
        good = with_bad[~violations(source, with_bad)].reset_index(drop=True)
        pd.testing.assert_frame_equal(good, without)


@pytest.mark.parametrize(
    "change",
    [
        {"days": 0},
        {"categories": 1},
        {"items": 3},
        {"fraud_rate": 1.0},
        {"bad_rows": -0.1},
        {"weekly": (1.0, 1.0)},
        {"chargeback_delay_days": (5, 2)},
    ],
)
def test_invalid_params_are_rejected(change):
    with pytest.raises(ValueError):
        dataclasses.replace(ShopParams(), **change)


def test_vocabularies_come_from_the_package_data_as_immutable_tables():
    from importlib import resources

    from shoplake.datagen.shop import vocab

    files = {p.name for p in resources.files("shoplake.datagen").joinpath("vocab").iterdir()}
    assert {"categories.json", "ticket_templates.json", "resolutions.json"} <= files
    assert len(vocab.CATEGORY_NAMES) == 12 and vocab.CATEGORY_NAMES[0] == "kitchen"
    kitchen = vocab._VOCAB["kitchen"]
    assert isinstance(kitchen["nouns"], tuple) and "frying pan" in kitchen["nouns"]
    assert set(vocab._TICKET_TEMPLATES) == set(INTENTS)
