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

MODEL_METRICS = TableSpec(
    name="model_metrics",
    layer="ops",
    columns=(
        Col(C.RUN_DATE, "date", False, "Features date of the run: interactions before it were used."),
        Col(C.CUTOFF_DATE, "date", False, "Start of the held-out days: models trained on interactions before it."),
        Col(C.MODEL_NAME, "string", False, "Model family: popularity, cooccurrence, mf or sasrec."),
        Col(C.MLFLOW_RUN_ID, "string", True, "MLflow run of the recommendation run (null when not logged)."),
        Col(C.SLICE, "string", False, "Users and items measured: 'all', or 'cold_items' (held-out items without training interactions)."),
        Col(C.METRIC, "string", False, "ndcg@10, recall@20, hr@10, mrr, coverage@10, ..."),
        Col(C.VALUE, "double", True, "The metric's value (null when no user qualifies for the slice)."),
        Col(C.N_EVAL_USERS, "long", False, "Users with held-out items in the slice, over whom the metric is a mean."),
        Col(C.EVALUATED_AT, "timestamp", False, "When the run evaluated, UTC."),
    ),
    keys=(C.RUN_DATE, C.MODEL_NAME, C.SLICE, C.METRIC),
    partition_by=(C.RUN_DATE,),
    description="Holdout evaluation of every recommender side by side: full-catalogue ranking metrics per run date.",
)

SPECS = (TABLE_PROFILES, MODEL_METRICS)
