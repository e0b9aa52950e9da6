"""The fraud run's time split, its ops.model_metrics rows and the CLI table, on hand-made rows."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.fraud.dataset import TooFewLabelsError, feature_matrix, split_days, time_split
from shoplake.fraud.declarations import FEATURE_NAMES
from shoplake.fraud.report import fraud_champion, fraud_metrics_table
from shoplake.fraud.schemas import TASK_FRAUD
from shoplake.fraud.train import FraudResult, ModelEvaluation, metrics_rows
from shoplake.train.model_metrics import MODEL_METRICS

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def rows(labels: list[int], days: list[int] | None = None) -> pa.Table:
    """One matured payment per label, a day apart unless ``days`` says on which day, oldest first;
    feature k of row i is i * 100 + k."""
    n = len(labels)
    days = list(range(n)) if days is None else days
    cols = {
        C.PAYMENT_ID: [f"p{i}" for i in range(n)],
        C.PAYMENT_TS: pa.array([T0 + dt.timedelta(days=d, minutes=i) for i, d in enumerate(days)], pa.timestamp("us", tz="UTC")),
        C.LABEL: pa.array(labels, pa.int32()),
    }
    cols.update({name: [float(i * 100 + k) for i in range(n)] for k, name in enumerate(FEATURE_NAMES)})
    cols[C.AMOUNT] = [float(10 + i) for i in range(n)]
    return pa.table(cols)


def test_time_split_keeps_time_order_and_shares():
    table = rows([0, 1, 0, 0, 0, 0, 1, 0, 0, 1])
    train, valid, test = time_split(table, 0.2, 0.2)
    assert [len(s.y) for s in (train, valid, test)] == [6, 2, 2]
    assert list(train.payment_ids) == [f"p{i}" for i in range(6)]
    assert list(valid.payment_ids) == ["p6", "p7"] and list(test.payment_ids) == ["p8", "p9"]
    assert (train.frauds, valid.frauds, test.frauds) == (1, 1, 1)
    assert (valid.first_day, test.first_day) == (dt.date(2024, 1, 7), dt.date(2024, 1, 9))
    assert list(test.amounts) == [18.0, 19.0]
    # Columns in FEATURE_NAMES order, whatever order the table has them in.
    assert train.X.shape == (6, len(FEATURE_NAMES)) and train.X[2, 3] == 203.0


def test_held_out_splits_reach_back_to_hold_their_share_of_fraud():
    # 20 payments, fraud at rows 1, 3 and 12. By payments alone the test would be rows 16-19
    # (no fraud) and validation rows 12-15; each split reaches back to its newest fraud instead.
    labels = [0] * 20
    for i in (1, 3, 12):
        labels[i] = 1
    train, valid, test = time_split(rows(labels), 0.2, 0.2)
    assert [len(s.y) for s in (train, valid, test)] == [3, 9, 8]
    assert (train.frauds, valid.frauds, test.frauds) == (1, 1, 1)


def test_a_day_is_never_cut_in_two():
    # Rows 7 and 8 are on the same day: the test split starts with the day's first payment.
    labels = [0, 1, 0, 0, 0, 1, 0, 0, 1, 0]
    train, valid, test = time_split(rows(labels, days=[0, 1, 2, 3, 4, 5, 6, 7, 7, 8]), 0.2, 0.2)
    assert list(test.payment_ids) == ["p7", "p8", "p9"]
    assert list(valid.payment_ids) == ["p5", "p6"] and len(train.y) == 5


def test_daily_counts_alone_give_the_same_cut():
    # The rows of test_a_day_is_never_cut_in_two, counted per day: what the run gets from a table it does not load.
    labels, days = [0, 1, 0, 0, 0, 1, 0, 0, 1, 0], [0, 1, 2, 3, 4, 5, 6, 7, 7, 8]
    train, valid, test = time_split(rows(labels, days=days), 0.2, 0.2)
    per_day = np.unique(days, return_counts=True)
    frauds = np.bincount(days, weights=labels)
    dates = [np.datetime64("2024-01-01") + int(d) for d in per_day[0]]
    cut = split_days(dates, per_day[1], frauds[per_day[0]].astype(int), 0.2, 0.2)
    assert (cut.valid_start, cut.test_start) == (valid.first_day, test.first_day)
    assert cut.sizes == {s.name: (len(s.y), s.frauds, s.first_day) for s in (train, valid, test)}
    assert cut.days("train") == (None, valid.first_day)


def test_time_split_refuses_a_split_without_fraud_or_without_rows():
    with pytest.raises(TooFewLabelsError, match="train split has no payments"):
        time_split(rows([1, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 0.2, 0.2)
    with pytest.raises(TooFewLabelsError, match="train split has 6 matured payments from 2024-01-01, no fraud label"):
        time_split(rows([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]), 0.2, 0.2)
    with pytest.raises(TooFewLabelsError, match="2 matured payments"):
        time_split(rows([1, 1]), 0.2, 0.2)


def test_feature_matrix_of_no_rows():
    assert feature_matrix(rows([]).slice(0, 0)).shape == (0, len(FEATURE_NAMES))


def _evaluation(model: str, valid_pr: float, test_pr: float) -> ModelEvaluation:
    metrics = {
        "validation": {"pr_auc": valid_pr, "roc_auc": 0.9},
        "test": {"pr_auc": test_pr, "roc_auc": float("nan")},
    }
    return ModelEvaluation(model, 0.4, math.inf, metrics, np.zeros(2))


def result() -> FraudResult:
    return FraudResult(
        run_date=dt.date(2024, 3, 1),
        evaluations={m: _evaluation(m, v, t) for m, v, t in (("rules", 0.3, 0.2), ("gbt", 0.7, 0.6), ("tabular_nn", 0.8, 0.5))},
        champion="tabular_nn", bundle_path="b", model_version="1", mlflow_run_id="r", metrics_version=0,
        splits={"train": (60, 3, dt.date(2024, 1, 1)), "validation": (20, 2, dt.date(2024, 2, 1)), "test": (20, 1, dt.date(2024, 2, 15))},
    )  # fmt: skip


def test_metrics_rows_cover_models_splits_and_thresholds():
    at = dt.datetime(2024, 3, 1, 3, tzinfo=dt.timezone.utc)
    table = metrics_rows(result(), "r", at)
    assert table.schema == MODEL_METRICS.arrow_schema()
    got = {(r[C.MODEL_NAME], r[C.SLICE], r[C.METRIC]): r for r in table.to_pylist()}
    assert len(got) == 3 * 2 * 4
    row = got[("gbt", "test", "pr_auc")]
    assert (row[C.VALUE], row[C.N_EVALUATED], row[C.CUTOFF_DATE], row[C.TASK]) == (0.6, 20, dt.date(2024, 2, 15), TASK_FRAUD)
    assert got[("gbt", "validation", "review_threshold")][C.VALUE] == 0.4
    # NaN and infinity are stored as null.
    assert got[("gbt", "test", "roc_auc")][C.VALUE] is None
    assert got[("rules", "validation", "decline_threshold")][C.VALUE] is None


def test_fraud_table_marks_the_champion_and_compares_it_with_the_rules():
    records = metrics_rows(result(), "r", dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)).to_pylist()
    assert fraud_champion(records) == "tabular_nn"
    table = fraud_metrics_table(records)
    assert table.row_count == 6
    assert table.caption == "champion tabular_nn: test PR-AUC 0.500 = 2.50x the rules baseline (0.200)"
    # Rows that carry the bootstrap interval show it.
    res = result()
    res.evaluations["tabular_nn"].metrics["test"].update(pr_auc_low=0.41, pr_auc_high=0.58)
    records = metrics_rows(res, "r", dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)).to_pylist()
    assert fraud_metrics_table(records).caption == (
        "champion tabular_nn: test PR-AUC 0.500, 95 % interval 0.410..0.580 = 2.50x the rules baseline (0.200)"
    )
    assert "2024-02-01" in table.title and "2024-02-15" in table.title


def test_the_rules_may_be_the_champion():
    res = result()
    res.evaluations["rules"].metrics["validation"]["pr_auc"] = 0.95
    records = metrics_rows(res, "r", dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)).to_pylist()
    assert fraud_champion(records) == "rules"
    # The caption then sets the rules against the best trained model of validation.
    assert fraud_metrics_table(records).caption == (
        "champion rules: test PR-AUC 0.200 = 0.40x tabular_nn, the best trained model on validation (0.500)"
    )


def test_feature_matrix_reads_the_listed_features_and_names_a_missing_or_null_one():
    from shoplake.fraud.models.base import FeatureMismatchError

    table = rows([0, 1, 0]).append_column("risk", pa.array([0.5, 0.9, 0.1]))
    X = feature_matrix(table, (*FEATURE_NAMES, "risk"))
    assert X.shape == (3, len(FEATURE_NAMES) + 1) and X[:, -1].tolist() == [0.5, 0.9, 0.1]
    with pytest.raises(FeatureMismatchError, match="gold.txn_features@x has no column for the feature\\(s\\) vendor"):
        feature_matrix(table, (*FEATURE_NAMES, "vendor"), "gold.txn_features@x")
    older = rows([0, 1, 0]).append_column("risk", pa.array([None, 0.9, 0.1], pa.float64()))
    with pytest.raises(FeatureMismatchError, match="the feature\\(s\\) risk are null in some rows"):
        feature_matrix(older, (*FEATURE_NAMES, "risk"))
