"""silver.transactions on hand-made bronze rows: snapshot bounds, dedupe, baskets, chargebacks and labels."""

from __future__ import annotations

import datetime as dt

import pytest

from shoplake import columns as C
from shoplake.fraud.schemas import TRANSACTIONS
from shoplake.fraud.transactions import compute_transactions
from shoplake.ingest.bronze import BRONZE
from shoplake.ingest.landing import CANCELLED, CHARGEBACKS, ORDERS, PAYMENTS, PLACED, RETURNED

UTC = dt.timezone.utc
D = dt.date(2024, 3, 31)
MIDNIGHT = dt.datetime(2024, 3, 31, tzinfo=UTC)
HISTORY_DAYS, MATURITY_DAYS = 60, 30
MATURED_UNTIL = MIDNIGHT - dt.timedelta(days=MATURITY_DAYS)  # 2024-03-01 00:00
US = dt.timedelta(microseconds=1)
FRAUD_CODES = ("fraud", "stolen_card")
INGESTED = dt.datetime(2024, 3, 30, 23, 0, tzinfo=UTC)


def at(text: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(hour), tzinfo=UTC)


def landed(ts: dt.datetime) -> dt.date:
    """The landing day of a row: the day it happened."""
    return ts.astimezone(UTC).date()


def frame(spark, source: str, rows: list[dict]):
    """A bronze-like frame of ``rows`` (landing fields plus lineage) in the bronze spec's schema."""
    spec = BRONZE[source]
    lineage = {C.SOURCE_FILE: f"{source}.csv", C.ROW_NUMBER: 1, C.INGESTED_AT: INGESTED}
    full = [{**lineage, **row} for row in rows]
    return spark.createDataFrame([tuple(r.get(name) for name in spec.column_names) for r in full], spec.spark_schema())


def pay(pid: str, ts: dt.datetime, amount: float = 25.0, order: str | None = None, **extra) -> dict:
    row = {
        C.PAYMENT_ID: pid, C.ORDER_ID: order or f"o-{pid}", C.USER_ID: "u1", C.AMOUNT: amount, C.CURRENCY: "EUR",
        C.PAYMENT_METHOD: "card", C.CARD_ID: "c1", C.DEVICE_ID: "d1", C.IP_ADDRESS: "10.0.0.1",
        C.BILLING_COUNTRY: "DE", C.SHIPPING_COUNTRY: "DE", C.PAYMENT_TS: ts, C.RUN_DATE: landed(ts),
    }  # fmt: skip
    return {**row, **extra}


def chargeback(cid: str, pid: str, reason: str | None, ts: dt.datetime, **extra) -> dict:
    row = {C.CHARGEBACK_ID: cid, C.PAYMENT_ID: pid, C.REASON_CODE: reason, C.AMOUNT: 25.0, C.CHARGEBACK_TS: ts}
    return {**row, C.RUN_DATE: landed(ts), **extra}


def line(order: str, number: int, quantity: int, ts: dt.datetime, status: str = PLACED, **extra) -> dict:
    row = {
        C.ORDER_ID: order, C.LINE_NUMBER: number, C.USER_ID: "u1", C.ITEM_ID: f"i{number}", C.QUANTITY: quantity,
        C.UNIT_PRICE: 5.0, C.ORDER_TS: ts, C.STATUS: status, C.COUNTRY: "DE",
    }  # fmt: skip
    return {**row, C.RUN_DATE: landed(ts), **extra}


def build(spark, payments, orders=None, chargebacks=None, codes=FRAUD_CODES):
    out = compute_transactions(
        frame(spark, PAYMENTS.name, payments),
        None if orders is None else frame(spark, ORDERS.name, orders),
        None if chargebacks is None else frame(spark, CHARGEBACKS.name, chargebacks),
        D,
        HISTORY_DAYS,
        MATURITY_DAYS,
        codes,
    )
    assert out.columns == TRANSACTIONS.column_names
    assert [f.dataType for f in out.schema.fields] == [f.dataType for f in TRANSACTIONS.spark_schema().fields]
    return {r[C.PAYMENT_ID]: r.asDict() for r in out.collect()}


def test_labels_follow_maturity_and_the_chargebacks_known_before_the_run_date(spark):
    payments = [
        pay("fraud", at("2024-02-20")),
        pay("not_received", at("2024-02-21")),
        pay("clean", at("2024-02-22")),
        pay("young_fraud", at("2024-03-20")),
        pay("reported_late", at("2024-02-10")),
        pay("two_disputes", at("2024-02-11")),
        pay("stolen", at("2024-02-12")),
        pay("matured_exactly", MATURED_UNTIL),
        pay("one_us_short", MATURED_UNTIL + US),
    ]
    chargebacks = [
        chargeback("cb1", "fraud", "fraud", at("2024-03-10")),
        chargeback("cb2", "not_received", "not_received", at("2024-03-05")),
        chargeback("cb3", "young_fraud", "fraud", at("2024-03-25")),
        # Reported at D's midnight: not known to D's snapshot. Reported before it but landed on D: neither.
        chargeback("cb4", "reported_late", "fraud", MIDNIGHT, **{C.RUN_DATE: D - dt.timedelta(days=1)}),
        chargeback("cb5", "reported_late", "fraud", at("2024-03-30", 23), **{C.RUN_DATE: D}),
        # The first chargeback gives time and reason; a later fraud one still makes the label 1.
        chargeback("cb7", "two_disputes", "fraud", at("2024-03-12")),
        chargeback("cb6", "two_disputes", "not_received", at("2024-03-02")),
        chargeback("cb8", "stolen", "stolen_card", at("2024-03-03")),
        chargeback("cb9", "matured_exactly", "fraud", at("2024-03-20")),
        chargeback("cb10", "one_us_short", "fraud", at("2024-03-21")),
    ]
    rows = build(spark, payments, chargebacks=chargebacks)

    def outcome(pid):
        r = rows[pid]
        return r[C.MATURED], r[C.LABEL], r[C.REASON_CODE], r[C.CHARGEBACK_TS] and r[C.CHARGEBACK_TS].astimezone(UTC)

    assert outcome("fraud") == (True, 1, "fraud", at("2024-03-10"))
    assert outcome("not_received") == (True, 0, "not_received", at("2024-03-05"))
    assert outcome("clean") == (True, 0, None, None)
    # Too young for a final label, even with a fraud chargeback: unlabelled, not legitimate.
    assert outcome("young_fraud") == (False, None, "fraud", at("2024-03-25"))
    assert outcome("reported_late") == (True, 0, None, None)
    assert outcome("two_disputes") == (True, 1, "not_received", at("2024-03-02"))
    assert outcome("stolen") == (True, 1, "stolen_card", at("2024-03-03"))
    assert outcome("matured_exactly")[:2] == (True, 1)
    assert outcome("one_us_short")[:2] == (False, None)
    assert all(r[C.RUN_DATE] == D for r in rows.values())


def test_the_snapshot_holds_payments_known_before_the_run_date_within_the_history(spark):
    start = MIDNIGHT - dt.timedelta(days=HISTORY_DAYS)
    payments = [
        pay("first_in", start),
        pay("too_old", start - US),
        pay("last_in", MIDNIGHT - US),
        pay("at_midnight", MIDNIGHT, **{C.RUN_DATE: D - dt.timedelta(days=1)}),
        pay("landed_on_d", at("2024-03-30", 22), **{C.RUN_DATE: D}),
        pay("landed_after_d", at("2024-03-30", 23), **{C.RUN_DATE: D + dt.timedelta(days=1)}),
    ]
    rows = build(spark, payments)
    assert set(rows) == {"first_in", "last_in"}
    # Without chargebacks a matured payment is legitimate, and without orders its basket is empty.
    assert rows["first_in"][C.LABEL] == 0 and rows["last_in"][C.LABEL] is None
    assert rows["first_in"][C.N_LINES] == 0 and rows["first_in"][C.N_UNITS] == 0
    assert rows["first_in"][C.CHARGEBACK_TS] is None


def test_a_reingested_payment_counts_once_as_its_latest_copy(spark):
    ts = at("2024-03-20")
    payments = [
        pay("p1", ts, 10.0, **{C.INGESTED_AT: INGESTED - dt.timedelta(days=9), C.ROW_NUMBER: 4}),
        pay("p1", ts, 12.0, **{C.INGESTED_AT: INGESTED, C.SOURCE_FILE: "payments-again.csv", C.ROW_NUMBER: 1}),
        pay("p2", ts, 7.0),
    ]
    chargebacks = [
        chargeback("cb1", "p1", "fraud", at("2024-03-22")),
        chargeback("cb1", "p1", "fraud", at("2024-03-22"), **{C.INGESTED_AT: INGESTED - dt.timedelta(days=1)}),
    ]
    rows = build(spark, payments, chargebacks=chargebacks)
    assert sorted(rows) == ["p1", "p2"]
    assert rows["p1"][C.AMOUNT] == 12.0 and rows["p1"][C.REASON_CODE] == "fraud"


def test_baskets_count_the_placed_lines_of_the_order(spark):
    ts = at("2024-03-20")
    orders = [
        line("o1", 1, 2, ts - dt.timedelta(minutes=1)),
        line("o1", 1, 2, ts - dt.timedelta(minutes=1), **{C.INGESTED_AT: INGESTED - dt.timedelta(days=5)}),  # re-ingested
        line("o1", 2, 3, ts - dt.timedelta(minutes=1)),
        line("o1", 2, 3, at("2024-03-21"), CANCELLED),
        line("o1", 2, 1, at("2024-03-25"), RETURNED),
        line("o1", 3, 9, ts - dt.timedelta(minutes=1), **{C.RUN_DATE: D}),  # landed on D: unknown to D
        line("o2", 1, 4, ts - dt.timedelta(minutes=2)),
    ]
    payments = [pay("p1", ts, order="o1"), pay("p2", ts, order="o2"), pay("p3", ts, order="o-unknown")]
    rows = build(spark, payments, orders=orders)
    baskets = {pid: (r[C.N_LINES], r[C.N_UNITS]) for pid, r in rows.items()}
    assert baskets == {"p1": (2, 5), "p2": (1, 4), "p3": (0, 0)}


def test_no_fraud_reason_codes_make_every_matured_payment_legitimate(spark):
    rows = build(
        spark,
        [pay("p1", at("2024-02-20"))],
        chargebacks=[chargeback("cb1", "p1", "fraud", at("2024-03-01"))],
        codes=(),
    )
    assert rows["p1"][C.LABEL] == 0 and rows["p1"][C.REASON_CODE] == "fraud"


def test_history_and_maturity_must_be_positive(spark):
    with pytest.raises(ValueError, match="history_days"):
        compute_transactions(frame(spark, PAYMENTS.name, []), None, None, D, 0, MATURITY_DAYS, FRAUD_CODES)
