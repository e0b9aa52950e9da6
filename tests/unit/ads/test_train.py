"""The ads run's pieces: the time split, per-placement metrics, the champion and the metrics rows."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from shoplake import columns as C
from shoplake.ads import metrics as M
from shoplake.ads.bundle import Scores
from shoplake.ads.data import CATEGORICAL, NUMERIC, AdData
from shoplake.ads.train import (
    AdsResult,
    ModelEvaluation,
    TooFewImpressionsError,
    champion_of,
    metrics_rows,
    split_metrics,
    time_split,
)
from shoplake.evaluation import TEST, TRAIN, VALIDATION, Interval
from shoplake.train.model_metrics import MODEL_METRICS

DAY0 = dt.date(2024, 1, 1)


def impressions(days: list[int], click: list[int], conversion: list[int], placement: list[str] | None = None) -> AdData:
    n = len(days)
    placement = np.array(placement or ["search_top"] * n, dtype=object)
    cats = {name: np.array(["x"] * n, dtype=object) for name in CATEGORICAL}
    cats[C.PLACEMENT] = placement
    return AdData(cats, np.zeros((n, len(NUMERIC))), np.zeros((n, 2), np.float32), np.array(click, float), np.array(conversion, float),
                  placement.copy(), np.array([DAY0 + dt.timedelta(days=d) for d in days]), np.array([f"m{k}" for k in range(n)]))  # fmt: skip


def test_the_time_split_keeps_whole_days_and_puts_the_newest_in_test():
    days = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    data = impressions(days, [1] * 10, [1, 0] * 5)
    train, valid, test = time_split(data, 0.2, 0.2)
    assert [list(s.day) for s in (train, valid, test)] == [
        [DAY0 + dt.timedelta(days=d) for d in ds] for ds in ([0, 0, 1, 1, 2, 2], [3, 3], [4, 4])
    ]
    # Shares that end inside a day take the whole day.
    train, valid, test = time_split(data, 0.15, 0.15)
    assert (len(train), len(valid), len(test)) == (6, 2, 2)


def test_a_split_without_a_conversion_is_refused_with_the_counts():
    data = impressions([0, 0, 1, 1, 2, 2], [1] * 6, [1, 1, 1, 1, 0, 0])
    with pytest.raises(TooFewImpressionsError, match="the test split has 2 matured impressions, 2 clicks and 0 conversions"):
        time_split(data, 0.3, 0.3)


def test_metrics_cover_both_targets_overall_and_per_placement():
    data = impressions(
        [0] * 6, [1, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 1], ["email", "email", "email", "search_top", "search_top", "search_top"]
    )
    p_ctr = np.array([0.6, 0.2, 0.5, 0.1, 0.3, 0.7])
    p_ctcvr = np.array([0.3, 0.1, 0.2, 0.05, 0.1, 0.4])
    out = split_metrics(TEST, data, Scores(p_ctr, p_ctcvr / p_ctr, p_ctcvr), bins=2)
    assert set(out) == {TEST, "test/email", "test/search_top"}
    assert out[TEST]["click_roc_auc"] == pytest.approx(M.roc_auc(data.click, p_ctr))
    assert out[TEST]["conversion_log_loss"] == pytest.approx(M.log_loss(data.converted, p_ctcvr))
    email = data.placement == "email"
    assert out["test/email"]["conversion_ece"] == pytest.approx(M.expected_calibration_error(data.converted[email], p_ctcvr[email], 2))
    assert out["test/email"]["impressions"] == 3


def evaluation(name: str, valid_loss: float) -> ModelEvaluation:
    figures = {"conversion_log_loss": valid_loss, "click_roc_auc": math.nan, "impressions": 5.0}
    scores = Scores(np.zeros(1), np.zeros(1), np.zeros(1))
    return ModelEvaluation(name, None, scores, scores, {VALIDATION: figures, TEST: figures, "test/email": figures},
                           M.Calibrator(M.NONE), M.Calibrator(M.NONE))  # fmt: skip


def test_the_champion_has_the_lowest_validation_conversion_log_loss_and_rows_fit_the_table():
    evaluations = {
        "historic_ctr": evaluation("historic_ctr", 0.2),
        "gbt": evaluation("gbt", 0.1),
        "deep_ctr": evaluation("deep_ctr", math.nan),
    }
    assert champion_of(evaluations) == "gbt"
    splits = {TRAIN: (10, 2, 1, DAY0), VALIDATION: (5, 1, 1, DAY0 + dt.timedelta(days=3)), TEST: (5, 1, 1, DAY0 + dt.timedelta(days=4))}
    result = AdsResult(DAY0 + dt.timedelta(days=5), evaluations, "gbt", "b", None, None, -1, splits,
                       {"gbt": Interval(0.1, 0.05, 0.15)})  # fmt: skip
    rows = metrics_rows(result, None, dt.datetime(2024, 1, 6, tzinfo=dt.timezone.utc))
    assert rows.schema == MODEL_METRICS.arrow_schema()
    table = rows.to_pylist()
    assert {r[C.SLICE] for r in table} == {VALIDATION, TEST, "test/email"} and {r[C.TASK] for r in table} == {"ads"}
    assert {r[C.CUTOFF_DATE] for r in table if r[C.SLICE].startswith(TEST)} == {DAY0 + dt.timedelta(days=4)}
    low = [r for r in table if r[C.METRIC] == "conversion_log_loss_low"]
    assert len(low) == 1 and low[0][C.MODEL_NAME] == "gbt" and low[0][C.VALUE] == 0.05
    assert all(r[C.VALUE] is None for r in table if r[C.METRIC] == "click_roc_auc") and all(r[C.N_EVALUATED] == 5 for r in table)
