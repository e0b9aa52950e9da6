"""Reading and writing ``ops.model_metrics``, the evaluations of every task side by side.

The table is partitioned by run date, and the recommendation and forecasting runs
of a day both write into that day's partition. A run replaces only its own task's
rows: :func:`write_model_metrics` rewrites the partition with the other tasks' rows
kept, in one commit.

Lakes written before the table had a ``task`` column (and named ``n_evaluated``
``n_eval_users``) hold recommendation metrics only; the first write rewrites the
whole table in the current layout, those rows marked ``recommendation``, in the
same single commit.
"""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa
import pyarrow.compute as pc

from shoplake.config import Config
from shoplake.lake import Lake, WriteResult
from shoplake.schemas import columns as C
from shoplake.schemas.ops import MODEL_METRICS, TASK_RECOMMENDATION, TASKS

log = logging.getLogger(__name__)

#: Column names of the layout before ``task`` existed, and what they are now.
_RENAMED = {"n_eval_users": C.N_EVALUATED}


def _current_layout(table: pa.Table) -> pa.Table:
    """Rows of any layout the table has had, in the spec's schema."""
    table = table.rename_columns([_RENAMED.get(n, n) for n in table.column_names])
    if C.TASK not in table.column_names:
        table = table.append_column(C.TASK, pa.array([TASK_RECOMMENDATION] * table.num_rows, pa.string()))
    return table.select(MODEL_METRICS.column_names).cast(MODEL_METRICS.arrow_schema())


def _is_current(lake: Lake) -> bool:
    from deltalake import DeltaTable

    names = [f.name for f in DeltaTable(lake.uri(MODEL_METRICS), storage_options=lake.storage_options).schema().fields]
    return C.TASK in names and all(old not in names for old in _RENAMED)


def read_model_metrics(lake: Lake, run_date: dt.date | None = None, task: str | None = None) -> pa.Table:
    """Rows of ``ops.model_metrics`` (one run date and task, or all), in the current layout; empty if none."""
    if not lake.exists(MODEL_METRICS):
        return MODEL_METRICS.arrow_schema().empty_table()
    rows = _current_layout(lake.to_arrow(MODEL_METRICS, run_date=run_date))
    if task is not None:
        rows = rows.filter(pc.equal(rows[C.TASK], task))
    return rows


def write_model_metrics(cfg: Config, lake: Lake, rows: pa.Table, task: str, run_date: dt.date) -> WriteResult:
    """Replace the ``task`` rows of ``run_date`` in ``ops.model_metrics`` with ``rows``, in one commit.

    Args:
        cfg: Configuration (Ray, for the write).
        lake: The lake.
        rows: The new rows, in the spec's schema; every one of ``task`` and ``run_date``.
        task: One of :data:`shoplake.schemas.ops.TASKS`.
        run_date: The run date of the rows.

    Raises:
        ValueError: An unknown task, or a row of another task or run date.
    """
    import ray.data

    from shoplake.ray_runtime import init_ray

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    rows = rows.select(MODEL_METRICS.column_names).cast(MODEL_METRICS.arrow_schema())
    stray = [r for r in rows.select([C.TASK, C.RUN_DATE]).to_pylist() if r[C.TASK] != task or r[C.RUN_DATE] != run_date]
    if stray:
        raise ValueError(f"{MODEL_METRICS.full_name}: {len(stray)} row(s) are not of task {task!r} and run date {run_date}, e.g. {stray[0]}")

    migrate = lake.exists(MODEL_METRICS) and not _is_current(lake)
    kept = read_model_metrics(lake, None if migrate else run_date)
    if kept.num_rows:
        mine = pc.and_(pc.equal(kept[C.TASK], task), pc.equal(kept[C.RUN_DATE], pa.scalar(run_date, pa.date32())))
        kept = kept.filter(pc.invert(mine))
    table = pa.concat_tables([kept, rows])
    init_ray(cfg)
    ds = ray.data.from_arrow(table)
    if migrate:
        log.info("%s: rewriting the table with a %s column (%d rows kept)", MODEL_METRICS.full_name, C.TASK, kept.num_rows)
        return lake.ray_write(ds, MODEL_METRICS, mode="overwrite")
    return lake.ray_write(ds, MODEL_METRICS, mode="replace", run_dates=[run_date])


__all__ = ["read_model_metrics", "write_model_metrics"]
