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

#: Values of ``ops.model_metrics.task``: the run that evaluated.
TASK_RECOMMENDATION = "recommendation"
TASK_FORECASTING = "forecasting"
TASK_FRAUD = "fraud"
TASK_SUPPORT = "support"
TASK_CATEGORIZATION = "categorization"
TASKS = (TASK_RECOMMENDATION, TASK_FORECASTING, TASK_FRAUD, TASK_SUPPORT, TASK_CATEGORIZATION)

MODEL_METRICS = TableSpec(
    name="model_metrics",
    layer="ops",
    columns=(
        Col(C.RUN_DATE, "date", False, "Features date of the run: data before it was used."),
        Col(C.TASK, "string", False, f"The run that evaluated: {', '.join(TASKS)}."),
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
        Col(C.METRIC, "string", False, "ndcg@10, recall@20, mrr, ... (recommendation); mase, rmsse, wrmsse, bias, ... (forecasting); "
            "pr_auc, roc_auc, recall@1%fpr, ... (fraud)."),
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

SPECS = (TABLE_PROFILES, MODEL_METRICS)
