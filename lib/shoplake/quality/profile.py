"""Row and null counts per run date and column, computed with Ray Data.

:func:`count_batch` is pure (one Arrow batch in, partial counts out); Ray adds the
partial counts of all batches up. The result has the shape of ``ops.table_profiles``.
"""

from __future__ import annotations

import datetime as dt
import functools

import pyarrow as pa
import pyarrow.compute as pc

from shoplake.schemas import columns as C
from shoplake.schemas.ops import TABLE_PROFILES
from shoplake.schemas.spec import TableSpec

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


def _finish(batch: pa.Table, table_name: str, version: int, profiled_at: dt.datetime) -> pa.Table:
    n = batch.num_rows
    return pa.table(
        {
            C.TABLE_NAME: pa.array([table_name] * n, pa.string()),
            C.TABLE_VERSION: pa.array([version] * n, pa.int64()),
            C.RUN_DATE: batch[C.RUN_DATE],
            C.COLUMN_NAME: batch[C.COLUMN_NAME],
            C.ROWS: batch[f"sum({C.ROWS})"].cast(pa.int64()),
            C.NULLS: batch[f"sum({C.NULLS})"].cast(pa.int64()),
            C.PROFILED_AT: pa.array([profiled_at] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def profile_dataset(ds, spec: TableSpec, version: int, cpus_per_task: float = 0.5):
    """Profile a Ray Dataset holding one table's rows.

    Args:
        ds: The table's rows (``Lake.ray_read``).
        spec: The table's spec (its columns are profiled).
        version: The Delta version read, recorded with the profile.
        cpus_per_task: CPUs per Ray task (fractional on small nodes).

    Returns:
        A Ray Dataset with the columns of ``ops.table_profiles``.
    """
    from ray.data.aggregate import Sum

    columns = [c for c in spec.column_names if c != C.RUN_DATE]
    partial = ds.map_batches(functools.partial(count_batch, columns=columns), batch_format="pyarrow", num_cpus=cpus_per_task)
    totals = partial.groupby([C.RUN_DATE, C.COLUMN_NAME]).aggregate(Sum(C.ROWS), Sum(C.NULLS))
    finish = functools.partial(_finish, table_name=spec.full_name, version=version, profiled_at=dt.datetime.now(dt.timezone.utc))
    return totals.map_batches(finish, batch_format="pyarrow", num_cpus=cpus_per_task)


__all__ = ["TABLE_PROFILES", "count_batch", "profile_dataset"]
