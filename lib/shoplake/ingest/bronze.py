"""Bronze and quarantine tables: landing data typed, with lineage, one partition per run date."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.ingest.landing import SOURCES, LandingSource, configured_source
from shoplake.lake.spec import Col, TableSpec

if TYPE_CHECKING:
    from shoplake.config import Config

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
