"""Row and null counts per run date and column, computed with Ray Data.

:func:`count_batch` is pure (one Arrow batch in, partial counts out) and runs in Ray
tasks; the driver adds up the partial counts. The result has the shape of
``ops.table_profiles``.
"""

from __future__ import annotations

import datetime as dt
import functools

import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.lake.spec import Col, TableSpec

_PARTIAL = pa.schema([(C.RUN_DATE, pa.date32()), (C.COLUMN_NAME, pa.string()), (C.ROWS, pa.int64()), (C.NULLS, pa.int64())])


def count_batch(batch: pa.Table, columns: list[str]) -> pa.Table:
    """Rows and nulls per run date and column within one batch.

    Args:
        batch: Rows of a table; grouped by ``run_date`` when it has that column.
        columns: Columns to count nulls of.

    Returns:
        One row per (run date, column) present in the batch.
    """
    if C.RUN_DATE in batch.column_names:
        dates = batch[C.RUN_DATE].unique().to_pylist()
        groups = [(d, batch.filter(pc.equal(batch[C.RUN_DATE], pa.scalar(d, pa.date32())))) for d in dates]
    else:
        groups = [(None, batch)]
    rows = []
    for day, part in groups:
        for name in columns:
            rows.append({C.RUN_DATE: day, C.COLUMN_NAME: name, C.ROWS: part.num_rows, C.NULLS: part[name].null_count})
    return pa.Table.from_pylist(rows, schema=_PARTIAL)


def profile_dataset(ds, spec: TableSpec, version: int, cpus_per_task: float = 0.5) -> pa.Table:
    """Profile a Ray Dataset holding one table's rows.

    Tasks count each batch; only those partial counts (a few rows per batch) reach the
    driver, where they are added up.

    Args:
        ds: The table's rows (``Lake.ray_read``).
        spec: The table's spec (its columns are profiled).
        version: The Delta version read, recorded with the profile.
        cpus_per_task: CPUs per Ray task (fractional on small nodes).

    Returns:
        An Arrow table with the columns of ``ops.table_profiles``.
    """
    columns = [c for c in spec.column_names if c != C.RUN_DATE]
    partial = ds.map_batches(functools.partial(count_batch, columns=columns), batch_format="pyarrow", num_cpus=cpus_per_task)
    parts = [pa.table(block) for block in partial.iter_batches(batch_format="pyarrow", batch_size=None)]
    counts = pa.concat_tables(parts) if parts else _PARTIAL.empty_table()
    totals = counts.group_by([C.RUN_DATE, C.COLUMN_NAME]).aggregate([(C.ROWS, "sum"), (C.NULLS, "sum")])
    n = totals.num_rows
    profiled_at = dt.datetime.now(dt.timezone.utc)
    return pa.table(
        {
            C.TABLE_NAME: pa.array([spec.full_name] * n, pa.string()),
            C.TABLE_VERSION: pa.array([version] * n, pa.int64()),
            C.RUN_DATE: totals[C.RUN_DATE],
            C.COLUMN_NAME: totals[C.COLUMN_NAME],
            C.ROWS: totals[f"{C.ROWS}_sum"],
            C.NULLS: totals[f"{C.NULLS}_sum"],
            C.PROFILED_AT: pa.array([profiled_at] * n, pa.timestamp("us", tz="UTC")),
        }
    ).sort_by([(C.RUN_DATE, "ascending"), (C.COLUMN_NAME, "ascending")])


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


def profile_tables(cfg, lake, specs: list[TableSpec], on_table=None) -> list:
    """Profile each table's latest version into ``ops.table_profiles`` (one commit per table, replacing its rows).

    Args:
        cfg: Configuration (``ray.cpus_per_data_task``).
        lake: The lake.
        specs: The tables to profile; each must exist.
        on_table: Called with each table's write result.

    Raises:
        LookupError: A table does not exist.
    """
    from shoplake.ray_runtime import init_ray

    ray = init_ray(cfg)
    results = []
    for spec in specs:
        version = lake.version(spec)
        if version is None:
            raise LookupError(f"table {spec.full_name} does not exist in {cfg.lake.root}")
        profile = profile_dataset(lake.ray_read(spec, version=version), spec, version, cfg.ray.cpus_per_data_task)
        result = lake.ray_write(ray.data.from_arrow(profile), TABLE_PROFILES, mode="replace", partitions={C.TABLE_NAME: [spec.full_name]})
        results.append(result)
        if on_table is not None:
            on_table(result)
    return results
