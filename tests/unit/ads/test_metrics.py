"""Click and conversion metrics against hand-computed values and scikit-learn; calibration on planted probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from shoplake.ads import metrics as M


def test_metrics_match_hand_computed_values_and_scikit_learn():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert M.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p)) == pytest.approx(8 / 9)
    assert M.log_loss(y, p) == pytest.approx(log_loss(y, p))
    assert M.row_log_loss(y, p).mean() == pytest.approx(log_loss(y, p))
    # Entropy of a rate of 1/2 is ln 2.
    assert M.normalized_entropy(y, p) == pytest.approx(log_loss(y, p) / math.log(2))
    # Two groups of three by predicted probability: (0.1, 0.2, 0.35) with one click, (0.4, 0.8, 0.9) with two.
    low, high = abs((0.1 + 0.2 + 0.35) / 3 - 1 / 3), abs((0.4 + 0.8 + 0.9) / 3 - 2 / 3)
    assert M.expected_calibration_error(y, p, bins=2) == pytest.approx((low + high) / 2)
    # Ties keep their order: groups (0, 0), (1, 1), (0, 1) against 0.5 err by 0.5, 0.5 and 0.
    assert M.expected_calibration_error(y, np.full(6, 0.5), bins=3) == pytest.approx(1 / 3)


def test_one_class_gives_nan_where_a_metric_is_undefined():
    y, p = np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4])
    assert math.isnan(M.roc_auc(y, p)) and math.isnan(M.normalized_entropy(y, p))
    assert M.log_loss(y, p) == pytest.approx(log_loss(y, p, labels=[0, 1]))


def planted(n: int = 40_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = 1 / (1 + np.exp(-rng.normal(-3.0, 1.0, n)))
    y = (rng.random(n) < truth).astype(float)
    return truth, y


@pytest.mark.parametrize("kind", [M.ISOTONIC, M.TEMPERATURE])
def test_calibration_on_validation_recovers_planted_probabilities(kind):
    truth, y = planted()
    # Overconfident scores with the true ranking: the logit doubled.
    raw = 1 / (1 + np.exp(-2 * M.logit(truth)))
    half = len(y) // 2
    cal = M.fit_calibrator(y[:half], raw[:half], kind)
    fixed = cal(raw[half:])
    assert M.expected_calibration_error(y[half:], raw[half:]) > 0.015
    assert M.expected_calibration_error(y[half:], fixed) < 0.006
    assert np.abs(fixed - truth[half:]).mean() < 0.35 * np.abs(raw[half:] - truth[half:]).mean()
    assert M.roc_auc(y[half:], fixed) == pytest.approx(M.roc_auc(y[half:], raw[half:]), abs=0.01)
    again = M.Calibrator.from_dict(cal.to_dict())
    assert np.allclose(again(raw[:50]), cal(raw[:50]))
    if kind == M.TEMPERATURE:
        assert cal.temperature == pytest.approx(2.0, rel=0.1)


def test_cross_fitted_calibration_never_sees_its_own_labels():
    truth, y = planted(2_000, seed=1)
    groups = np.arange(len(y)) % 2
    folded = M.cross_fitted(y, truth, M.ISOTONIC, groups)
    other = M.fit_calibrator(y[groups == 1], truth[groups == 1], M.ISOTONIC)
    assert np.allclose(folded[groups == 0], other(truth[groups == 0]))
    assert M.fit_calibrator(y, truth, M.NONE)(truth[:5]) == pytest.approx(truth[:5])
    with pytest.raises(ValueError, match="unknown calibration"):
        M.fit_calibrator(y, truth, "platt")
