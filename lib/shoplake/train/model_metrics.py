"""``ops.model_metrics``: every model's evaluation side by side, written and read by every use case's run."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.config import Config
from shoplake.lake.spec import Col, TableSpec

if TYPE_CHECKING:
    from shoplake.lake import Lake, WriteResult

#: Tables written before the task column existed held recommendation rows only.
_FIRST_TASK = "recommendation"
_TASK_NAME = re.compile(r"[a-z][a-z_]*")

MODEL_METRICS = TableSpec(
    name="model_metrics",
    layer="ops",
    columns=(
        Col(C.RUN_DATE, "date", False, "Features date of the run: data before it was used."),
        Col(C.TASK, "string", False, "The use case whose run evaluated: recommendation, forecasting, fraud, support, categorization, ..."),
        Col(
            C.CUTOFF_DATE,
            "date",
            False,
            "Start of the held-out days: models trained on data before it (a forecasting backtest's origin).",
        ),
        Col(C.MODEL_NAME, "string", False, "Model family: popularity, mf, sasrec, seasonal_naive, quantile_net, ..."),
        Col(C.MLFLOW_RUN_ID, "string", True, "MLflow run of the evaluating run (null when not logged)."),
        Col(
            C.SLICE,
            "string",
            False,
            "What was measured: 'all', or 'cold_items' (recommendation: held-out items without training interactions); "
            "'validation' or 'test' (fraud: the time-ordered splits of matured payments).",
        ),
        Col(
            C.METRIC,
            "string",
            False,
            "ndcg@10, recall@20, mrr, ... (recommendation); mase, rmsse, wrmsse, bias, ... (forecasting); "
            "pr_auc, roc_auc, recall@1%fpr, ... (fraud).",
        ),
        Col(C.VALUE, "double", True, "The metric's value (null when nothing qualifies for the slice)."),
        Col(C.N_EVALUATED, "long", False, "Users (recommendation), items (forecasting) or payments (fraud) the metric is computed over."),
        Col(C.EVALUATED_AT, "timestamp", False, "When the run evaluated, UTC."),
    ),
    keys=(C.RUN_DATE, C.TASK, C.CUTOFF_DATE, C.MODEL_NAME, C.SLICE, C.METRIC),
    partition_by=(C.RUN_DATE,),
    description=(
        "Evaluation of every model side by side per run date and task: holdout ranking metrics of the recommenders, "
        "rolling-origin backtests of the forecasters, held-out matured payments of the fraud models."
    ),
)

SPECS = (MODEL_METRICS,)

log = logging.getLogger(__name__)

#: Column names of the layout before ``task`` existed, and what they are now.
_RENAMED = {"n_eval_users": C.N_EVALUATED}


def _current_layout(table: pa.Table) -> pa.Table:
    """Rows of any layout the table has had, in the spec's schema."""
    table = table.rename_columns([_RENAMED.get(n, n) for n in table.column_names])
    if C.TASK not in table.column_names:
        table = table.append_column(C.TASK, pa.array([_FIRST_TASK] * table.num_rows, pa.string()))
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
        task: The use case's task name (lower case, e.g. ``fraud``).
        run_date: The run date of the rows.

    Raises:
        ValueError: An unknown task, or a row of another task or run date.
    """
    import ray.data

    from shoplake.ray_runtime import init_ray

    if not _TASK_NAME.fullmatch(task):
        raise ValueError(f"bad task name {task!r}: use lower-case letters and underscores")
    rows = rows.select(MODEL_METRICS.column_names).cast(MODEL_METRICS.arrow_schema())
    stray = [r for r in rows.select([C.TASK, C.RUN_DATE]).to_pylist() if r[C.TASK] != task or r[C.RUN_DATE] != run_date]
    if stray:
        raise ValueError(
            f"{MODEL_METRICS.full_name}: {len(stray)} row(s) are not of task {task!r} and run date {run_date}, e.g. {stray[0]}"
        )

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
