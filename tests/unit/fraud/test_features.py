"""Transaction features on hand-made payments: window bounds, user history, first-seen flags, online/Spark parity."""

from __future__ import annotations

import datetime as dt
import math
import time

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.fraud.declarations import FEATURE_NAMES, FEATURES, MAX_HOURS_SINCE_PREV, Feature
from shoplake.fraud.features import compute_txn_features
from shoplake.fraud.online import OnlineFeatures
from shoplake.fraud.schemas import TRANSACTIONS, TXN_FEATURES

UTC = dt.timezone.utc
D = dt.date(2024, 3, 10)  # the hand-made snapshot
D_RANDOM = dt.date(2024, 3, 11)  # the random one: same user, card and device names, another run date
T0 = dt.datetime(2024, 3, 9, 12, 0, tzinfo=UTC)
US = dt.timedelta(microseconds=1)
HOUR = dt.timedelta(hours=1)


def payment(pid, user, amount, card, device, ip, billing, shipping, ts, n_lines=1, n_units=1, run_date=D) -> dict:
    """One ``silver.transactions`` row (unmatured, no chargeback)."""
    return {
        C.PAYMENT_ID: pid, C.ORDER_ID: f"o-{pid}", C.USER_ID: user, C.PAYMENT_TS: ts, C.AMOUNT: amount,
        C.CURRENCY: "EUR", C.PAYMENT_METHOD: "card", C.CARD_ID: card, C.DEVICE_ID: device, C.IP_ADDRESS: ip,
        C.BILLING_COUNTRY: billing, C.SHIPPING_COUNTRY: shipping, C.N_LINES: n_lines, C.N_UNITS: n_units,
        C.CHARGEBACK_TS: None, C.REASON_CODE: None, C.MATURED: False, C.LABEL: None, C.RUN_DATE: run_date,
    }  # fmt: skip


# In time order. Device d1 and IP ip1 are shared between users; p2 and p3 share a microsecond,
# so do p5 and p6; p0 is 1 h + 1 us before p2, p1 exactly 1 h before it.
HAND = [
    payment("pA", "u1", 50.0, "c1", "d1", "ip1", "DE", "DE", T0 - dt.timedelta(days=2), n_lines=3, n_units=5),
    payment("p0", "u3", 100.0, "c4", "d1", "ip2", "US", "US", T0 - HOUR - US),
    payment("p1", "u1", 10.0, "c1", "d1", "ip1", "DE", "DE", T0 - HOUR),
    payment("p2", "u1", 20.0, "c1", "d1", "ip1", "DE", "DE", T0),
    payment("p3", "u2", 40.0, "c2", "d1", "ip1", "DE", "FR", T0),
    payment("p4", "u1", 30.0, "c3", None, "ip1", "DE", None, T0 + dt.timedelta(minutes=30, seconds=36)),
    payment("p5", "u2", 5.0, "c2", "d1", None, "FR", "ES", T0 + HOUR),
    payment("p6", "u2", 7.0, "c2", "d1", None, "FR", "ES", T0 + HOUR),
]

# Worked out by hand from the table above.
EXPECTED = {
    "pA": {
        "user_count_7d": 0, "device_count_7d": 0, "device_cards_24h": 0, "user_prior_payments": 0,
        "user_age_days": 0, "amount_to_user_mean": 1, "hours_since_user_prev": MAX_HOURS_SINCE_PREV,
        "new_device_for_user": 1, "new_ip_for_user": 1, "new_card_for_user": 1, "new_shipping_country_for_user": 1,
        "amount": 50, "n_lines": 3, "n_units": 5, "hour_of_day": 12, "shipping_differs": 0,
    },
    "p0": {
        "device_count_1h": 0, "device_count_24h": 0, "device_count_7d": 1, "device_amount_7d": 50,
        "device_cards_24h": 0, "ip_count_7d": 0, "user_prior_payments": 0, "new_device_for_user": 1,
        "hour_of_day": 10 + 59 / 60 + 59 / 3600,
    },
    "p1": {
        "device_count_1h": 1, "device_amount_1h": 100, "device_count_24h": 1, "device_count_7d": 2,
        "device_amount_7d": 150, "device_cards_24h": 1, "user_count_1h": 0, "user_count_24h": 0,
        "user_count_7d": 1, "user_amount_7d": 50, "user_prior_payments": 1, "user_age_days": 47 / 24,
        "amount_to_user_mean": 0.2, "hours_since_user_prev": 47, "new_device_for_user": 0, "new_card_for_user": 0,
        "hour_of_day": 11,
    },
    "p2": {
        # p1 exactly 1 h earlier is in the 1 h window, p0 (1 h + 1 us) is not; p3 (same microsecond) is out.
        "device_count_1h": 1, "device_amount_1h": 10, "device_count_24h": 2, "device_amount_24h": 110,
        "device_count_7d": 3, "device_amount_7d": 160, "device_cards_24h": 2,
        "user_count_1h": 1, "user_amount_1h": 10, "user_count_24h": 1, "user_count_7d": 2, "user_amount_7d": 60,
        "card_count_1h": 1, "card_count_7d": 2, "ip_count_1h": 1, "ip_amount_1h": 10, "ip_count_7d": 2,
        "ip_cards_24h": 1, "user_prior_payments": 2, "user_age_days": 2, "amount_to_user_mean": 20 / 30,
        "hours_since_user_prev": 1, "new_device_for_user": 0, "new_ip_for_user": 0, "new_card_for_user": 0,
        "new_shipping_country_for_user": 0, "shipping_differs": 0, "hour_of_day": 12,
    },
    "p3": {
        "device_count_1h": 1, "device_amount_1h": 10, "device_count_24h": 2, "device_amount_24h": 110,
        "device_count_7d": 3, "device_amount_7d": 160, "device_cards_24h": 2, "ip_count_1h": 1,
        "card_count_7d": 0, "user_count_7d": 0, "user_prior_payments": 0, "amount_to_user_mean": 1,
        "hours_since_user_prev": MAX_HOURS_SINCE_PREV, "new_device_for_user": 1, "new_ip_for_user": 1,
        "new_card_for_user": 1, "new_shipping_country_for_user": 1, "shipping_differs": 1,
    },
    "p4": {
        # No device: every device feature is 0, and so is the new-device flag; no shipping country either.
        "device_count_1h": 0, "device_amount_1h": 0, "device_count_24h": 0, "device_count_7d": 0,
        "device_amount_7d": 0, "device_cards_24h": 0, "new_device_for_user": 0,
        "new_shipping_country_for_user": 0, "shipping_differs": 0,
        "ip_count_1h": 2, "ip_amount_1h": 60, "ip_count_24h": 3, "ip_count_7d": 4, "ip_amount_7d": 120,
        "ip_cards_24h": 2, "user_count_1h": 1, "user_amount_1h": 20, "user_count_24h": 2, "user_amount_24h": 30,
        "user_count_7d": 3, "user_amount_7d": 80, "user_prior_payments": 3, "user_age_days": 48.51 / 24,
        "amount_to_user_mean": 30 / (80 / 3), "hours_since_user_prev": 0.51, "new_card_for_user": 1,
        "new_ip_for_user": 0, "hour_of_day": 12 + 30 / 60 + 36 / 3600,
    },
    "p5": {
        # p2 and p3, exactly 1 h earlier, are in; p4 has no device; p6 shares the microsecond.
        "device_count_1h": 2, "device_amount_1h": 60, "device_count_24h": 4, "device_amount_24h": 170,
        "device_count_7d": 5, "device_amount_7d": 220, "device_cards_24h": 3, "card_count_1h": 1,
        "card_amount_1h": 40, "ip_count_1h": 0, "ip_count_7d": 0, "ip_cards_24h": 0, "new_ip_for_user": 0,
        "user_prior_payments": 1, "user_age_days": 1 / 24, "amount_to_user_mean": 5 / 40,
        "hours_since_user_prev": 1, "new_device_for_user": 0, "new_card_for_user": 0,
        "new_shipping_country_for_user": 1, "shipping_differs": 1, "hour_of_day": 13,
    },
    "p6": {
        "device_count_1h": 2, "device_count_7d": 5, "device_cards_24h": 3, "user_count_1h": 1, "user_amount_1h": 40,
        "user_prior_payments": 1, "amount_to_user_mean": 7 / 40, "new_shipping_country_for_user": 1,
        "new_card_for_user": 0, "amount": 7,
    },
}  # fmt: skip


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def mismatches(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> list[tuple]:
    """(payment, feature, got, wanted) for every value of ``want`` that ``got`` does not match to 1e-9."""
    return [
        (pid, name, got[pid][name], value)
        for pid, values in want.items()
        for name, value in values.items()
        if not close(got[pid][name], value)
    ]


def arrow(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TRANSACTIONS.arrow_schema())


def spark_frame(spark, rows: list[dict]):
    schema = TRANSACTIONS.spark_schema()
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)


def spark_values(spark, rows: list[dict], features=FEATURES) -> dict[tuple, dict[str, float]]:
    """(run date, payment id) -> feature values from :func:`compute_txn_features`."""
    out = compute_txn_features(spark_frame(spark, rows), features).collect()
    return {(r[C.RUN_DATE], r[C.PAYMENT_ID]): {f.name: r[f.name] for f in features} for r in out}


def maybe(rng: np.random.Generator, values: list[str], p_null: float) -> str | None:
    """One of ``values`` at random, or None with probability ``p_null``."""
    return None if rng.random() < p_null else values[rng.integers(len(values))]


def random_payments(n: int = 300, seed: int = 11, run_date: dt.date = D_RANDOM) -> list[dict]:
    """``n`` payments over 10 days on a 30-minute grid (ties and exact window bounds), entities shared."""
    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(run_date - dt.timedelta(days=10), dt.time(), tzinfo=UTC)
    slots = rng.integers(0, 10 * 48, n)
    rows = []
    for k in range(n):
        ts = start + dt.timedelta(minutes=30 * int(slots[k]))
        if rng.random() < 0.1:  # a few off the grid, to the microsecond
            ts += dt.timedelta(microseconds=int(rng.integers(1, 1_800_000_000)))
        rows.append(
            payment(
                f"r{k:03d}", f"u{rng.integers(12)}", float(np.round(rng.uniform(1, 500), 2)),
                f"c{rng.integers(15)}", maybe(rng, [f"d{i}" for i in range(8)], 0.15),
                maybe(rng, [f"ip{i}" for i in range(6)], 0.15), maybe(rng, ["DE", "FR", "NL"], 0.1),
                maybe(rng, ["DE", "FR", "NL", "US"], 0.1), ts,
                int(rng.integers(0, 5)), int(rng.integers(0, 9)), run_date,
            )
        )  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def random_rows() -> list[dict]:
    return random_payments()


@pytest.fixture(scope="module")
def spark_all(spark, random_rows) -> dict[tuple, dict[str, float]]:
    """Spark's features of the hand-made and the random payments, two run dates in one frame."""
    return spark_values(spark, HAND + random_rows)


# ---------------------------------------------------------------- Spark on the hand-made payments


def test_the_features_table_has_the_specs_columns(spark):
    out = compute_txn_features(spark_frame(spark, HAND))
    assert out.columns == TXN_FEATURES.column_names
    types = {f.name: f.dataType.simpleString() for f in out.schema.fields}
    assert all(types[name] == "double" for name in FEATURE_NAMES)
    assert out.count() == len(HAND)


def test_spark_features_of_hand_made_payments(spark_all):
    got = {pid: values for (day, pid), values in spark_all.items() if day == D}
    assert set(got) == {r[C.PAYMENT_ID] for r in HAND}
    # Another snapshot with the same user, card and device names does not leak in.
    assert mismatches(got, EXPECTED) == []
    assert all(value is not None for values in spark_all.values() for value in values.values())


# ---------------------------------------------------------------- online engine


def test_online_features_of_hand_made_payments_one_at_a_time():
    state = OnlineFeatures()
    got = {}
    for row in HAND:
        got[row[C.PAYMENT_ID]] = state.features(row)
        assert state.add(row)
    assert mismatches(got, EXPECTED) == []
    assert len(state) == len(HAND)
    # Adding a payment again changes nothing; scoring it again gives what it got before.
    assert not state.add(HAND[3])
    assert len(state) == len(HAND)
    assert state.features(HAND[3]) == got["p2"]
    assert state.vector(HAND[3]) == [got["p2"][name] for name in FEATURE_NAMES]


def test_online_payment_fields_may_be_missing_and_times_carry_any_offset():
    state = OnlineFeatures.from_transactions(arrow(HAND))
    paris = dt.timezone(dt.timedelta(hours=1))
    bare = {C.PAYMENT_ID: "x", C.USER_ID: "u9", C.AMOUNT: 12.5, C.CARD_ID: "c1", C.PAYMENT_TS: T0.astimezone(paris)}
    values = state.features(bare)
    assert values["hour_of_day"] == 12 and values["n_lines"] == 0 and values["shipping_differs"] == 0
    assert values["card_count_1h"] == 1 and values["device_count_1h"] == 0 and values["new_device_for_user"] == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        state.features({**bare, C.PAYMENT_TS: T0.replace(tzinfo=None)})


def test_from_transactions_refuses_mixed_snapshots(random_rows):
    with pytest.raises(ValueError, match="one run date"):
        OnlineFeatures.from_transactions(arrow(HAND + random_rows[:5]))


# ---------------------------------------------------------------- online / Spark parity


def in_time_order(rows: list[dict], **kwargs) -> tuple[dict[str, dict[str, float]], OnlineFeatures]:
    """The state built from the earlier half, then the later half scored and added one by one."""
    ordered = sorted(rows, key=lambda r: r[C.PAYMENT_TS])
    half = len(ordered) // 2
    state = OnlineFeatures.from_transactions(arrow(ordered[:half]), **kwargs)
    got = {}
    for row in ordered[half:]:
        got[row[C.PAYMENT_ID]] = state.features(row)
        state.add(row)
    return got, state


@pytest.mark.parametrize("rows", ["hand", "random"])
def test_online_equals_spark_in_time_order(rows, random_rows, spark_all):
    data, day = (HAND, D) if rows == "hand" else (random_rows, D_RANDOM)
    got, state = in_time_order(data)
    want = {pid: spark_all[day, pid] for pid in got}
    assert mismatches(got, want) == []
    if rows == "random":
        # Ten days of payments; the window history keeps the longest window plus a day of lateness.
        cutoff = max(r[C.PAYMENT_TS] for r in data) - dt.timedelta(days=8)
        entities = (C.USER_ID, C.CARD_ID, C.DEVICE_ID, C.IP_ADDRESS)
        kept = sum(r[e] is not None for r in data if r[C.PAYMENT_TS] >= cutoff for e in entities)
        assert len(state) == len(data) and state.window_entries() == kept
        assert kept < sum(r[e] is not None for r in data for e in entities)


@pytest.mark.parametrize("seed", [0, 1])
def test_online_equals_spark_in_any_arrival_order(seed, random_rows, spark_all):
    data = HAND + random_rows
    rng = np.random.default_rng(seed)
    states = {D: OnlineFeatures(late_s=None), D_RANDOM: OnlineFeatures(late_s=None)}
    for k in rng.permutation(len(data)):
        states[data[k][C.RUN_DATE]].add(data[k])
    got = {(r[C.RUN_DATE], r[C.PAYMENT_ID]): states[r[C.RUN_DATE]].features(r) for r in data}
    assert mismatches(got, spark_all) == []


def test_a_late_payment_within_late_s_is_scored_exactly(random_rows, spark_all):
    ordered = sorted(random_rows, key=lambda r: r[C.PAYMENT_TS])
    # Hold back payments of the last day but one and add them after the last day's.
    cut = ordered[-1][C.PAYMENT_TS] - dt.timedelta(hours=20)
    late = [r for r in ordered if cut - dt.timedelta(hours=4) <= r[C.PAYMENT_TS] < cut]
    state = OnlineFeatures()
    for row in ordered:
        if row not in late:
            state.add(row)
    got = {}
    for row in late:
        got[row[C.PAYMENT_ID]] = state.features(row)
        state.add(row)
    assert late and mismatches(got, {pid: spark_all[D_RANDOM, pid] for pid in got}) == []


def test_a_new_feature_of_an_existing_kind_needs_no_engine_change(spark, random_rows):
    extra = (
        Feature("card_count_2h", "window_count", "Earlier payments of the card in 2 h.", C.CARD_ID, 7_200),
        Feature("user_amount_30m", "window_amount", "Amount of the user in 30 min.", C.USER_ID, 1_800),
        Feature("user_devices_7d", "window_distinct", "Distinct devices of the user in 7 days.", C.USER_ID, 604_800, C.DEVICE_ID),
        Feature("new_billing_country_for_user", "first_seen", "New billing country.", of=C.BILLING_COUNTRY),
        Feature("units_again", "payment", "Units.", of=C.N_UNITS),
    )
    features = (*FEATURES, *extra)
    want = {pid: values for (_, pid), values in spark_values(spark, random_rows, features).items()}
    ordered = sorted(random_rows, key=lambda r: r[C.PAYMENT_TS])
    state = OnlineFeatures(features)
    got = {}
    for row in ordered:
        got[row[C.PAYMENT_ID]] = state.features(row)
        state.add(row)
    assert mismatches(got, want) == []
    assert any(values["user_devices_7d"] > 1 for values in got.values())


def test_online_engine_takes_well_under_a_millisecond_per_payment(random_rows):
    rows = sorted(random_payments(n=3_000, seed=5), key=lambda r: r[C.PAYMENT_TS])
    state = OnlineFeatures.from_transactions(arrow(rows[:2_000]))
    start = time.perf_counter()
    for row in rows[2_000:]:
        state.vector(row)
        state.add(row)
    per_payment = (time.perf_counter() - start) / 1_000
    assert per_payment < 0.5e-3, f"{per_payment * 1e3:.3f} ms per payment"


# ---------------------------------------------------------------- the shop's own payment fields

OWN_FIELDS = (
    "landing.extra_fields={payments: [{name: risk, type: double, role: feature}, {name: trusted, type: boolean, role: feature}, "
    "{name: channel, type: string, role: category}, {name: terminal, type: string, role: id}]}"
)


def test_the_shops_own_fields_are_features_both_engines_compute_alike(spark, random_rows):
    from shoplake.config import load_config
    from shoplake.fraud.declarations import configured_features
    from shoplake.fraud.schemas import configured_specs

    cfg = load_config("local", [OWN_FIELDS])
    features = configured_features(cfg)
    transactions, gold = configured_specs(cfg)
    assert [f.name for f in features[len(FEATURES) :]] == ["risk", "trusted", "new_channel_for_user"]
    assert "terminal" not in transactions.column_names and "terminal" not in gold.column_names
    rng = np.random.default_rng(4)
    rows = [
        {**r, "risk": None if k % 9 == 0 else float(np.round(rng.uniform(0, 1), 3)), "trusted": None if k % 7 == 0 else bool(k % 2),
         "channel": None if k % 5 == 0 else ["web", "app", "phone"][k % 3]}
        for k, r in enumerate(random_rows)
    ]  # fmt: skip
    frame = spark.createDataFrame([tuple(r.get(c) for c in transactions.column_names) for r in rows], transactions.spark_schema())
    out = compute_txn_features(frame, features)
    assert set(out.columns) == set(gold.column_names)
    want = {r[C.PAYMENT_ID]: {f.name: r[f.name] for f in features} for r in out.collect()}
    # The payment's own values, a null read as 0 and a flag as 1 or 0; a category new for the user is 1.
    for r in rows:
        assert want[r[C.PAYMENT_ID]]["risk"] == (r["risk"] or 0.0)
        assert want[r[C.PAYMENT_ID]]["trusted"] == float(bool(r["trusted"]))
    assert {v["new_channel_for_user"] for v in want.values()} == {0.0, 1.0}
    # The state holds every payment (all window history kept); each one's features count only those strictly before it.
    state = OnlineFeatures.from_transactions(pa.Table.from_pylist(rows, schema=transactions.arrow_schema()), features, late_s=None)
    got = {r[C.PAYMENT_ID]: state.features(r) for r in reversed(rows)}
    assert mismatches(got, want) == []
