"""Operational tables: what the platform records about its own data and models."""

from __future__ import annotations

from shoplake.schemas import columns as C
from shoplake.schemas.spec import Col, TableSpec

TABLE_PROFILES = TableSpec(
    name="table_profiles",
    layer="ops",
    columns=(
        Col(C.TABLE_NAME, "string", False, "Profiled table, <layer>.<name>."),
        Col(C.TABLE_VERSION, "long", False, "Delta version that was profiled."),
        Col(C.RUN_DATE, "date", True, "Run date of the rows (null for tables without one)."),
        Col(C.COLUMN_NAME, "string", False, "Column of the profiled table."),
        Col(C.ROWS, "long", False, "Rows of that run date."),
        Col(C.NULLS, "long", False, "Rows where the column is null."),
        Col(C.PROFILED_AT, "timestamp", False, "When the profile was computed, UTC."),
    ),
    keys=(C.TABLE_NAME, C.RUN_DATE, C.COLUMN_NAME),
    partition_by=(C.TABLE_NAME,),
    description="Row and null counts per table, run date and column, for data-quality checks.",
)

SPECS = (TABLE_PROFILES,)
