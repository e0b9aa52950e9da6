"""ops.model_metrics shared by two tasks: each run replaces only its own rows; an old-layout table is upgraded."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.forecast.schemas import TASK_FORECASTING
from shoplake.lake import Lake
from shoplake.recommend.schemas import TASK_RECOMMENDATION
from shoplake.train.model_metrics import MODEL_METRICS, read_model_metrics, write_model_metrics

D = dt.date(2024, 3, 15)
EARLIER = dt.date(2024, 3, 1)
NOW = dt.datetime(2024, 3, 15, 6, tzinfo=dt.timezone.utc)


def rows(task: str, run_date: dt.date, values: dict[str, float]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                C.RUN_DATE: run_date,
                C.TASK: task,
                C.CUTOFF_DATE: run_date - dt.timedelta(days=7),
                C.MODEL_NAME: model,
                C.MLFLOW_RUN_ID: None,
                C.SLICE: "all",
                C.METRIC: "m",
                C.VALUE: value,
                C.N_EVALUATED: 10,
                C.EVALUATED_AT: NOW,
            }  # fmt: skip
            for model, value in values.items()
        ],
        schema=MODEL_METRICS.arrow_schema(),
    )


def values_of(table: pa.Table) -> dict[tuple, float]:
    return {(r[C.RUN_DATE], r[C.TASK], r[C.MODEL_NAME]): r[C.VALUE] for r in table.to_pylist()}


def test_each_task_replaces_only_its_own_rows(cfg, ray_local):
    lake = Lake(cfg)
    write_model_metrics(cfg, lake, rows(TASK_RECOMMENDATION, D, {"mf": 0.1}), TASK_RECOMMENDATION, D)
    write_model_metrics(cfg, lake, rows(TASK_FORECASTING, D, {"ets": 0.9, "quantile_net": 0.8}), TASK_FORECASTING, D)
    write_model_metrics(cfg, lake, rows(TASK_FORECASTING, D, {"quantile_net": 0.7}), TASK_FORECASTING, D)
    assert values_of(read_model_metrics(lake, D)) == {
        (D, TASK_RECOMMENDATION, "mf"): 0.1,
        (D, TASK_FORECASTING, "quantile_net"): 0.7,  # the re-run's rows replace the earlier run's, ets included
    }
    assert values_of(read_model_metrics(lake, D, TASK_RECOMMENDATION)) == {(D, TASK_RECOMMENDATION, "mf"): 0.1}
    with pytest.raises(ValueError, match="not of task 'recommendation'"):
        write_model_metrics(cfg, lake, rows(TASK_FORECASTING, D, {"ets": 1.0}), TASK_RECOMMENDATION, D)


def test_a_table_without_the_task_column_is_upgraded_in_one_commit(cfg, ray_local):
    from deltalake import DeltaTable, write_deltalake

    lake = Lake(cfg)
    old = rows(TASK_RECOMMENDATION, EARLIER, {"mf": 0.2, "sasrec": 0.3}).drop_columns([C.TASK])
    old = old.rename_columns(["n_eval_users" if n == C.N_EVALUATED else n for n in old.column_names])
    write_deltalake(lake.uri(MODEL_METRICS), old, partition_by=[C.RUN_DATE])
    before = lake.version(MODEL_METRICS)

    write_model_metrics(cfg, lake, rows(TASK_FORECASTING, D, {"ets": 0.9}), TASK_FORECASTING, D)
    assert lake.version(MODEL_METRICS) == before + 1
    assert [f.name for f in DeltaTable(lake.uri(MODEL_METRICS)).schema().fields] == MODEL_METRICS.column_names
    assert values_of(read_model_metrics(lake)) == {
        (EARLIER, TASK_RECOMMENDATION, "mf"): 0.2,
        (EARLIER, TASK_RECOMMENDATION, "sasrec"): 0.3,
        (D, TASK_FORECASTING, "ets"): 0.9,
    }
    assert lake.run_dates(MODEL_METRICS) == [EARLIER, D]
