"""Validation of a shop's own fields: typed like the contract's, bad values quarantined with a reason naming the field."""

from __future__ import annotations

from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.ingest.landing import CATEGORY, FEATURE, PAYMENTS, ExtraField, with_extra_fields
from shoplake.ingest.validate import compute_validated, split_valid

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
    names = [*CONTRACT.field_names, "_corrupt", C.SOURCE_FILE]
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
