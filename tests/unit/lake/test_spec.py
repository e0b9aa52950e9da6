"""Table specs and the landing contract."""

from __future__ import annotations

import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.ingest.landing import SOURCES
from shoplake.lake.catalog import all_specs, get_spec
from shoplake.lake.spec import Col, TableSpec


def test_spec_converts_to_arrow_and_spark_with_nullability():
    spec = TableSpec("t", "gold", (Col("id", "long", False), Col("emb", "array<float>"), Col("ts", "timestamp")))
    arrow = spec.arrow_schema()
    assert arrow.field("id").type == pa.int64() and not arrow.field("id").nullable
    assert arrow.field("emb").type == pa.list_(pa.float32())
    assert arrow.field("ts").type == pa.timestamp("us", tz="UTC")
    spark = spec.spark_schema()
    assert spark["id"].nullable is False
    assert spark["emb"].dataType.simpleString() == "array<float>"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"columns": (Col("a", "long"), Col("a", "long"))}, "duplicate columns"),
        ({"columns": (Col("a", "long"),), "keys": ("b",)}, "key columns"),
        ({"columns": (Col("a", "long"),), "layer": "platinum"}, "unknown layer"),
    ],
)
def test_bad_specs_are_refused(kwargs, message):
    args = {"name": "t", "layer": "gold", **kwargs}
    with pytest.raises(ValueError, match=message):
        TableSpec(**args)


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match="unknown type 'varchar'"):
        Col("a", "varchar")


def test_every_landing_source_has_bronze_and_quarantine_tables():
    names = {s.full_name for s in all_specs()}
    for source in SOURCES:
        bronze = get_spec(f"bronze.{source}")
        assert f"quarantine.{source}" in names
        assert bronze.partition_by == (C.RUN_DATE,)
        assert {C.SOURCE_FILE, C.ROW_NUMBER, C.INGESTED_AT, C.RUN_DATE} <= set(bronze.column_names)
        # Required landing fields are non-nullable in bronze; keys are required fields.
        for key in bronze.keys:
            assert not bronze.column(key).nullable, f"{bronze.full_name}.{key}"


def test_landing_checks_refer_to_fields():
    for source in SOURCES.values():
        for check in source.checks:
            assert check.field in source.field_names
