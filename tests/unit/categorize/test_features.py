"""The Python text rules of the serving endpoints give what the Spark tables hold."""

from __future__ import annotations

import datetime as dt

import pytest

from shoplake import columns as C
from shoplake.categorize.features import compute_product_text, product_text_str
from shoplake.ingest.bronze import BRONZE
from shoplake.text.features import normalise_str

D = dt.date(2024, 3, 31)
UPDATED = dt.datetime(2024, 3, 20, 12, tzinfo=dt.timezone.utc)

# (title, description) as a catalogue may send them.
CASES = {
    "title-only": ("Chef knife", None),
    "described": ("Chef knife", "Forged steel, 20 cm"),
    "repeated": ("Chef knife", "Chef knife"),
    "repeated-after-normalising": ("  Chef\tknife ", "Chef knife\n"),
    "blank-description": ("Chef knife", " \t "),
    "unicode-spaces": ("Chef\u00a0knife\u2003XL", "Forged\u2028steel\u3000and\u202fwood"),
    "ascii-separators": ("Chef\x1cknife", "steel\x1f blade"),
    "differs-in-case": ("Chef knife", "CHEF KNIFE"),
}


def test_product_text_str_agrees_with_gold_product_text(spark):
    spec = BRONZE["products"]
    rows = [
        {C.ITEM_ID: item, C.TITLE: title, C.DESCRIPTION: description, C.CATEGORY: "kitchen", C.BRAND: None, C.PRICE: 9.5,
         C.ON_PROMOTION: False, C.UPDATED_AT: UPDATED, C.SOURCE_FILE: "products.csv", C.ROW_NUMBER: 1,
         C.INGESTED_AT: UPDATED, C.RUN_DATE: UPDATED.date()}
        for item, (title, description) in CASES.items()
    ]  # fmt: skip
    frame = spark.createDataFrame([tuple(r.get(name) for name in spec.column_names) for r in rows], spec.spark_schema())
    gold = {r[C.ITEM_ID]: r for r in compute_product_text(frame, D).collect()}
    assert set(gold) == set(CASES)
    for item, (title, description) in CASES.items():
        assert product_text_str(title, description) == gold[item][C.TEXT], item
        assert normalise_str(title) == gold[item][C.TITLE], item
        assert normalise_str(description) == gold[item][C.DESCRIPTION], item


def test_normalise_str_and_blank_titles():
    assert normalise_str(None) is None and normalise_str(" \u00a0\n") is None
    assert normalise_str(" a \r\n b ") == "a b"
    with pytest.raises(ValueError, match="title"):
        product_text_str("  ", "a description")
