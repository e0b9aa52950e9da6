"""Validation: a shop's own fields typed like the contract's, damaged records and repeated keys quarantined with a reason."""

from __future__ import annotations

from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.ingest.landing import CATEGORY, FEATURE, PAYMENTS, ExtraField, with_extra_fields
from shoplake.ingest.validate import DROPPED, QUARANTINED, compute_deduplicated, compute_validated, split_valid

CONTRACT = with_extra_fields(
    PAYMENTS,
    (
        ExtraField("risk_score", "double", FEATURE, min=0, max=1),
        ExtraField("trusted", "boolean", FEATURE),
        ExtraField("channel", "string", CATEGORY, required=True, values=("web", "app")),
    ),
)
GOOD = {
    C.PAYMENT_ID: "p1", C.ORDER_ID: "o1", C.USER_ID: "u1", C.AMOUNT: "10.5", C.CARD_ID: "c1",
    C.PAYMENT_TS: "2024-02-01T10:00:00Z", "risk_score": "0.25", "trusted": "yes", "channel": "web",
}  # fmt: skip


def _rows(spark, records: list[dict]):
    names = [*CONTRACT.field_names, "_corrupt", "_damage", C.SOURCE_FILE]
    data = [tuple({**r, C.SOURCE_FILE: "payments/2024-02-01.csv"}.get(n) for n in names) for r in records]
    return spark.createDataFrame(data, ", ".join(f"`{n}` string" for n in names))


def test_extra_fields_are_typed_and_bad_values_quarantined_naming_the_field(spark):
    records = [
        GOOD,
        {**GOOD, C.PAYMENT_ID: "p2", "risk_score": "high"},
        {**GOOD, C.PAYMENT_ID: "p3", "risk_score": "1.5"},
        {**GOOD, C.PAYMENT_ID: "p4", "channel": None},
        {**GOOD, C.PAYMENT_ID: "p5", "channel": "fax", "trusted": "maybe"},
        {**GOOD, C.PAYMENT_ID: "p6", "risk_score": None, "trusted": None},
    ]
    validated = compute_validated(_rows(spark, records), CONTRACT)
    good, bad = split_valid(validated)
    kept = {r[C.PAYMENT_ID]: r for r in good.collect()}
    assert set(kept) == {"p1", "p6"}
    assert (kept["p1"]["risk_score"], kept["p1"]["trusted"], kept["p1"]["channel"]) == (0.25, True, "web")
    assert (kept["p6"]["risk_score"], kept["p6"]["trusted"]) == (None, None)  # optional: empty is fine
    assert dict(good.select("risk_score", "trusted").dtypes) == {"risk_score": "double", "trusted": "boolean"}
    reasons = {r[C.PAYMENT_ID]: r[C.REASON] for r in bad.select(C.PAYMENT_ID, C.REASON).collect()}
    assert reasons["p2"] == "risk_score: not a double ('high')"
    assert reasons["p3"] == "risk_score: must be <= 1"
    assert reasons["p4"] == "channel: missing"
    assert "trusted: not a boolean ('maybe')" in reasons["p5"] and "channel: unknown value, expected one of web, app" in reasons["p5"]
    # The raw record keeps the shop's own fields as they arrived.
    raw = bad.where(F.col(C.PAYMENT_ID) == "p2").select(C.RAW_RECORD).first()[0]
    assert '"risk_score":"high"' in raw


def _lined(spark, records: list[dict]):
    """Rows as the reader gives them: a record number each (in order), a run date."""
    names = [*CONTRACT.field_names, "_corrupt", "_damage", C.SOURCE_FILE]
    data = [(*({**r, C.SOURCE_FILE: "file:/landing/payments/2024-02-01.csv"}.get(n) for n in names), i) for i, r in enumerate(records, 1)]
    df = spark.createDataFrame(data, ", ".join([*(f"`{n}` string" for n in names), f"{C.ROW_NUMBER} long"]))
    return df.withColumn(C.RUN_DATE, F.to_date(F.lit("2024-02-01")))


def test_a_damaged_record_is_quarantined_with_the_readers_reason_first(spark):
    records = [
        {**GOOD, "_damage": "record: cut short, the file ends inside it (no line break after the last record)", "channel": "w"},
        {**GOOD, "_damage": "country: not valid UTF-8", "channel": "w"},
        {C.PAYMENT_ID: None, "_corrupt": '{"payment_id": "p9",', "_damage": "record: malformed, cannot be parsed"},
    ]
    _, bad = split_valid(compute_validated(_rows(spark, records), CONTRACT))
    reasons = sorted(r[C.REASON] for r in bad.collect())
    # Damage to the whole record is its only reason; a damaged field comes with the other fields' reasons.
    assert reasons == [
        "country: not valid UTF-8; channel: unknown value, expected one of web, app",
        "record: cut short, the file ends inside it (no line break after the last record)",
        "record: malformed, cannot be parsed",
    ]


def test_a_key_repeated_in_a_day_is_dropped_when_exact_and_quarantined_when_its_values_differ(spark):
    records = [GOOD, {**GOOD, C.PAYMENT_ID: "p2"}, dict(GOOD), {**GOOD, C.AMOUNT: "99.0"}, {**GOOD, "risk_score": "lots"}]
    validated = compute_validated(_lined(spark, records), CONTRACT)
    dropped = compute_deduplicated(validated, CONTRACT, "drop")
    good, bad = split_valid(dropped)
    assert sorted((r[C.PAYMENT_ID], r[C.ROW_NUMBER]) for r in good.collect()) == [("p1", 1), ("p2", 2)]
    reasons = {r[C.ROW_NUMBER]: r[C.REASON] for r in bad.collect()}
    assert reasons == {
        4: "duplicate key payment_id=p1: payments/2024-02-01.csv record 1 has it with other values",
        5: "risk_score: not a double ('lots')",  # an invalid row is no repeat: it never reaches bronze
    }
    assert dropped.where(F.col("_duplicate") == DROPPED).select(C.ROW_NUMBER).collect()[0][0] == 3

    good, bad = split_valid(compute_deduplicated(validated, CONTRACT, "quarantine"))
    assert good.count() == 2
    repeats = {r[C.ROW_NUMBER]: r[C.REASON] for r in bad.where(F.col("_duplicate") == QUARANTINED).collect()}
    assert repeats[3] == "duplicate: repeats payments/2024-02-01.csv record 1 (same key payment_id=p1 and values)"
    assert repeats[4].startswith("duplicate key payment_id=p1")
