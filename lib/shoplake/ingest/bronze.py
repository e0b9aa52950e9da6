"""Bronze and quarantine tables: landing data typed, with lineage, one partition per run date."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.ingest.landing import SOURCES, LandingSource, configured_source
from shoplake.lake.spec import Col, TableSpec

if TYPE_CHECKING:
    from shoplake.config import Config
    from shoplake.lake import Lake

log = logging.getLogger(__name__)

LINEAGE = (
    Col(C.SOURCE_FILE, "string", False, "Landing file the row came from."),
    Col(C.ROW_NUMBER, "long", False, "1-based record number within that file."),
    Col(C.INGESTED_AT, "timestamp", False, "When ingest wrote the row, UTC."),
    Col(C.RUN_DATE, "date", False, "The landing day the row belongs to."),
)


def bronze_spec(source: LandingSource) -> TableSpec:
    """The bronze table of a landing source: its fields, typed, plus lineage."""
    return TableSpec(
        name=source.name,
        layer="bronze",
        columns=tuple(f.as_col() for f in source.fields) + LINEAGE,
        keys=source.keys,
        partition_by=(C.RUN_DATE,),
        description=f"Typed landing rows. {source.description}",
    )


def quarantine_spec(source: LandingSource) -> TableSpec:
    """The quarantine table of a landing source: rejected rows, raw, with the reason."""
    return TableSpec(
        name=source.name,
        layer="quarantine",
        columns=(
            Col(C.REASON, "string", False, "Every rule the row broke, as 'field: why'."),
            Col(C.RAW_RECORD, "string", False, "The row as it arrived, as a JSON object of strings."),
        )
        + LINEAGE,
        keys=(C.SOURCE_FILE, C.ROW_NUMBER),
        partition_by=(C.RUN_DATE,),
        description=f"Rows of landing source {source.name!r} that broke the contract.",
    )


BRONZE = {name: bronze_spec(src) for name, src in SOURCES.items()}
QUARANTINE = {name: quarantine_spec(src) for name, src in SOURCES.items()}
SPECS = tuple(BRONZE.values()) + tuple(QUARANTINE.values())


def configured_bronze(cfg: Config, name: str) -> TableSpec:
    """The bronze table of a landing source with the shop's own fields (``landing.extra_fields``) as columns.

    The catalog holds the contract's spec (:data:`BRONZE`); ingest writes, and the
    feature step reads, this one, so a declared field grows the table on the next
    ingest (older rows read it as null).
    """
    source = configured_source(cfg, name)
    return bronze_spec(source) if source.extra_fields else BRONZE[name]


def read_bronze(lake: Lake, cfg: Config, name: str):
    """``bronze.<name>`` as a Spark DataFrame with the columns of :func:`configured_bronze`.

    A field declared after the table was last written is not in it yet: it reads as
    null (with a warning) until the next ingest grows the table, whichever engine reads.
    """
    spec = configured_bronze(cfg, name)
    if spec is BRONZE[name]:
        return lake.read(spec)
    from deltalake import DeltaTable
    from pyspark.sql import functions as F

    from shoplake.lake.spec import spark_type

    have = {f.name for f in DeltaTable(lake.uri(spec), storage_options=lake.storage_options).schema().fields}
    missing = [c for c in spec.columns if c.name not in have]
    if not missing:
        return lake.read(spec)
    log.warning(
        "%s has no column for the declared field(s) %s yet: read as null until the next ingest",
        spec.full_name, ", ".join(c.name for c in missing),
    )  # fmt: skip
    df = lake.read(dataclasses.replace(spec, columns=tuple(c for c in spec.columns if c.name in have)))
    for c in missing:
        df = df.withColumn(c.name, F.lit(None).cast(spark_type(c.dtype)))
    return df.select(*spec.column_names)
