"""Fraud metrics and thresholds against numbers worked out by hand, and against scikit-learn and brute force on random data."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from shoplake.fraud.metrics import (
    METRICS,
    average_precision,
    cost_threshold,
    decline_threshold,
    evaluate,
    pr_curve,
    precision_at_capacity,
    recall_at_fpr,
    roc_auc,
)

# No ties: 2 frauds, 3 legitimate payments.
Y = np.array([1, 0, 1, 0, 0])
S = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
# Ties: scores 0.5 {fraud, legit}, 0.3 {fraud, legit, legit}, 0.1 {fraud}.
YT = np.array([1, 0, 1, 0, 0, 1])
ST = np.array([0.5, 0.5, 0.3, 0.3, 0.3, 0.1])


def test_average_precision_without_ties():
    # t=0.9: P 1/1, R 1/2; t=0.8: P 1/2, R 1/2; t=0.7: P 2/3, R 1.
    # AP = (1/2 - 0) * 1 + (1/2 - 1/2) * 1/2 + (1 - 1/2) * 2/3 = 1/2 + 1/3 = 5/6.
    assert average_precision(Y, S) == pytest.approx(5 / 6, abs=1e-15)


def test_average_precision_groups_ties():
    # t=0.5: 1 of 2 fraud, R 1/3; t=0.3: 2 of 5, R 2/3; t=0.1: 3 of 6, R 1.
    # AP = 1/3 * 1/2 + 1/3 * 2/5 + 1/3 * 1/2 = 1.4 / 3 = 7/15, whatever the order inside a tie.
    assert average_precision(YT, ST) == pytest.approx(7 / 15, abs=1e-15)
    flipped = [1, 0, 2, 4, 3, 5][::-1]
    assert average_precision(YT[flipped], ST[flipped]) == pytest.approx(7 / 15, abs=1e-15)


def test_roc_auc_counts_ties_half():
    # Fraud 0.9 beats 0.8, 0.6, 0.1; fraud 0.7 beats 0.6, 0.1: 5 of 2 * 3 pairs.
    assert roc_auc(Y, S) == pytest.approx(5 / 6, abs=1e-15)
    # Fraud 0.5: a tie (1/2) and 2 wins; fraud 0.3: a loss and 2 ties (1); fraud 0.1: 0. (2.5 + 1) / 9 = 7/18.
    assert roc_auc(YT, ST) == pytest.approx(7 / 18, abs=1e-15)


def test_recall_at_fpr_never_splits_a_tie():
    # 3 legitimate payments: a false positive rate of 0 allows t=0.9 (R 1/2); 1/3 allows t=0.7 (R 1).
    assert recall_at_fpr(Y, S, 0.0) == 0.5
    assert recall_at_fpr(Y, S, 0.01) == 0.5
    assert recall_at_fpr(Y, S, 1 / 3) == 1.0
    # The top tie holds a legitimate payment: nothing has FPR 0; at 1/3, t=0.5 gives R 1/3 (t=0.3 has FPR 1).
    assert recall_at_fpr(YT, ST, 0.0) == 0.0
    assert recall_at_fpr(YT, ST, 1 / 3) == pytest.approx(1 / 3)
    assert recall_at_fpr(YT, ST, 1.0) == 1.0


def test_precision_at_capacity_per_day_with_input_order_tie_break():
    y = np.array([1, 0, 0, 0, 1, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.2, 0.5, 0.5, 0.1, 0.3, 0.95])
    days = np.array([1, 1, 1, 2, 2, 2, 3, 1])
    # Capacity 1: day 1 -> 0.95 (legit); day 2 -> 0.5 tie, the earlier (index 3, legit); day 3 -> 0.3 (legit): 0/3.
    assert precision_at_capacity(y, s, days, 1) == 0.0
    # Capacity 2: day 1 -> 0.95, 0.9 (1 fraud); day 2 -> both 0.5 (1 fraud); day 3 -> its only payment: 2/5.
    assert precision_at_capacity(y, s, days, 2) == pytest.approx(2 / 5)
    # Capacity 3: day 1 -> 0.95, 0.9, 0.8; day 2 all three (2 frauds); day 3 one: 3/7.
    assert precision_at_capacity(y, s, days, 3) == pytest.approx(3 / 7)
    # Dates work as days, and their order in the input does not matter.
    as_dates = [dt.date(2024, 3, d) for d in days]
    assert precision_at_capacity(y, s, as_dates, 2) == pytest.approx(2 / 5)


def test_pr_curve_one_point_per_distinct_score():
    precision, recall, thresholds = pr_curve(YT, ST)
    np.testing.assert_allclose(precision, [1 / 2, 2 / 5, 3 / 6])
    np.testing.assert_allclose(recall, [1 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(thresholds, [0.5, 0.3, 0.1])


def test_cost_threshold_picks_the_cheapest_candidate():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.6, 0.4, 0.2])
    amounts = np.array([100.0, 50.0, 10.0, 30.0])
    # Review cost 5, fee 15. inf: missed (100 + 15) + (10 + 15) = 140; 0.9: 5 + 25 = 30; 0.6: 10 + 25 = 35;
    # 0.4: 15 + 0 = 15; 0.2: 20.
    assert cost_threshold(y, s, amounts, 5.0, 15.0) == (0.4, 15.0)
    # Reviews dearer than any loss: review nothing, pay 140.
    assert cost_threshold(y, s, amounts, 1000.0, 15.0) == (math.inf, 140.0)


def test_cost_threshold_prefers_the_higher_threshold_on_a_tie():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.6, 0.4, 0.2])
    amounts = np.array([100.0, 50.0, 5.0, 30.0])
    # Review cost 10, fee 15. 0.9: 10 + (5 + 15) = 30; 0.6: 20 + 20 = 40; 0.4: 30 + 0 = 30; 0.2: 40; inf: 135.
    assert cost_threshold(y, s, amounts, 10.0, 15.0) == (0.9, 30.0)


def test_cost_threshold_reviews_tied_scores_together():
    y = np.array([0, 1, 0])
    s = np.array([0.5, 0.5, 0.1])
    amounts = np.array([10.0, 12.0, 10.0])
    # 0.5 reviews both tied payments: 2 * 4 = 8 < 12 + 3 = 15 (inf); 0.1: 12.
    assert cost_threshold(y, s, amounts, 4.0, 3.0) == (0.5, 8.0)


def test_decline_threshold_is_the_lowest_qualifying_score():
    # Precision by threshold: 0.9 -> 1, 0.8 -> 1/2, 0.7 -> 2/3, 0.6 -> 1/2, 0.1 -> 2/5.
    assert decline_threshold(Y, S, 0.6, -math.inf) == 0.7
    assert decline_threshold(Y, S, 0.6, 0.7) == 0.7  # at_least is inclusive
    assert decline_threshold(Y, S, 0.6, 0.75) == 0.9
    assert decline_threshold(Y, S, 1.0, 0.95) == math.inf
    # Precision need not fall steadily: 0.5 -> 1/2, 0.3 -> 2/5, 0.1 -> 1/2, so the lowest is 0.1 ...
    assert decline_threshold(YT, ST, 0.5, -math.inf) == 0.1
    # ... unless at_least rules it out.
    assert decline_threshold(YT, ST, 0.5, 0.2) == 0.5
    assert decline_threshold(YT, ST, 0.6, -math.inf) == math.inf


def test_evaluate_by_hand():
    days = [1, 1, 2, 2, 2]
    amounts = [100.0, 50.0, 10.0, 30.0, 20.0]
    out = evaluate(Y, S, days, amounts, review_threshold=0.75, capacity=1, review_cost=5.0, chargeback_fee=15.0)
    assert tuple(out) == METRICS
    expected = {
        "pr_auc": 5 / 6,
        "roc_auc": 5 / 6,
        "recall@1%fpr": 1 / 2,  # only t=0.9 has no false positive
        "precision@capacity": 1.0,  # day 1 reviews 0.9, day 2 reviews 0.7: both frauds
        "fraud_rate": 2 / 5,
        "review_rate": 2 / 5,  # 0.9 and 0.8
        "recall@review": 1 / 2,
        "cost_per_payment": (2 * 5 + (10 + 15)) / 5,  # two reviews, the fraud at 0.7 missed
        "frauds": 2.0,
        "payments": 5.0,
    }
    assert out == pytest.approx(expected)
    nothing = evaluate(Y, S, days, amounts, review_threshold=math.inf, capacity=1, review_cost=5.0, chargeback_fee=15.0)
    assert nothing["review_rate"] == 0.0 and nothing["cost_per_payment"] == pytest.approx((115 + 25) / 5)


def test_missing_class_gives_nan():
    y0, s = np.zeros(4, dtype=int), np.array([0.1, 0.4, 0.4, 0.9])
    assert math.isnan(average_precision(y0, s))
    assert math.isnan(roc_auc(y0, s))
    assert math.isnan(recall_at_fpr(y0, s))
    assert np.isnan(pr_curve(y0, s)[1]).all()
    out = evaluate(y0, s, [1, 1, 1, 1], [1.0] * 4, review_threshold=0.5, capacity=2, review_cost=1.0, chargeback_fee=1.0)
    assert math.isnan(out["pr_auc"]) and math.isnan(out["recall@review"]) and out["frauds"] == 0.0
    y1 = np.ones(4, dtype=int)
    assert math.isnan(roc_auc(y1, s)) and math.isnan(recall_at_fpr(y1, s))
    assert average_precision(y1, s) == 1.0
    # Without frauds, no decline threshold reaches any precision; reviewing costs more than nothing.
    assert decline_threshold(y0, s, 0.5, -math.inf) == math.inf
    assert cost_threshold(y0, s, [1.0] * 4, 1.0, 1.0) == (math.inf, 0.0)


def test_any_real_scores_and_boolean_labels():
    # A rules baseline's count of rules hit: integers outside [0, 1], heavily tied.
    y = np.array([True, False, True, False, False, True, False])
    s = np.array([3, 0, 1, 1, 0, 3, -2])
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: average_precision([1, 0, 1], [0.1, 0.2]), "differ in length"),
        (lambda: roc_auc([1, 2, 0], [0.1, 0.2, 0.3]), "0 \\(legitimate\\) or 1 \\(fraud\\), found \\[2\\]"),
        (lambda: roc_auc([1.0, math.nan], [0.1, 0.2]), "0 \\(legitimate\\) or 1"),
        (lambda: average_precision([], []), "no payments"),
        (lambda: average_precision([1, 0], [0.3, math.nan]), "finite"),
        (lambda: average_precision([[1, 0]], [[0.3, 0.1]]), "1-D"),
        (lambda: recall_at_fpr([1, 0], [0.3, 0.1], 1.5), "max_fpr"),
        (lambda: precision_at_capacity([1, 0], [0.3, 0.1], [1, 1], 0), "capacity"),
        (lambda: precision_at_capacity([1, 0], [0.3, 0.1], [1], 2), "days must be 1-D with one value per payment"),
        (lambda: cost_threshold([1, 0], [0.3, 0.1], [5.0], 1.0, 1.0), "amounts"),
        (lambda: cost_threshold([1, 0], [0.3, 0.1], [5.0, 1.0], -1.0, 1.0), "review_cost"),
        (lambda: decline_threshold([1, 0], [0.3, 0.1], 0.0, 0.0), "min_precision"),
        (lambda: evaluate([1, 0], [0.3, 0.1], [1, 1], [1.0, 2.0], review_threshold=math.nan, capacity=1, review_cost=1.0, chargeback_fee=1.0), "review_threshold"),
    ],
)  # fmt: skip
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture(scope="module")
def payments():
    """5,000 payments, about 2 % fraud, scores rounded so that many tie."""
    rng = np.random.default_rng(20240301)
    n = 5000
    y = (rng.random(n) < 0.02).astype(np.int64)
    s = np.round(1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 3))), 2)
    days = rng.integers(0, 30, n)
    amounts = np.round(rng.lognormal(3.5, 1.0, n), 2)
    return y, s, days, amounts


def test_matches_scikit_learn(payments):
    y, s, _, _ = payments
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    unrounded = s + np.random.default_rng(1).normal(scale=1e-3, size=len(s))
    assert average_precision(y, unrounded) == pytest.approx(average_precision_score(y, unrounded), abs=1e-12)
    assert roc_auc(y, unrounded) == pytest.approx(roc_auc_score(y, unrounded), abs=1e-12)


def test_recall_at_fpr_matches_brute_force(payments):
    y, s, _, _ = payments
    negatives, positives = (y == 0).sum(), y.sum()
    for max_fpr in (0.0, 0.001, 0.01, 0.1):
        best = 0.0
        for t in np.unique(s):
            flagged = s >= t
            if (flagged & (y == 0)).sum() / negatives <= max_fpr:
                best = max(best, (flagged & (y == 1)).sum() / positives)
        assert recall_at_fpr(y, s, max_fpr) == pytest.approx(best, abs=1e-15)


def test_cost_threshold_matches_brute_force(payments):
    y, s, _, amounts = payments
    for review_cost, fee in ((5.0, 15.0), (1.0, 0.0), (40.0, 15.0)):
        best_t, best_cost = math.inf, float(amounts[y == 1].sum() + fee * y.sum())
        for t in np.unique(s)[::-1]:  # highest first: a later candidate must be strictly cheaper
            reviewed = s >= t
            cost = review_cost * reviewed.sum() + (amounts[(y == 1) & ~reviewed] + fee).sum()
            if cost < best_cost - 1e-6:
                best_t, best_cost = float(t), float(cost)
        t, cost = cost_threshold(y, s, amounts, review_cost, fee)
        assert t == best_t
        assert cost == pytest.approx(best_cost, rel=1e-12)


def test_decline_threshold_matches_brute_force(payments):
    y, s, _, _ = payments
    for min_precision, at_least in ((0.3, -math.inf), (0.3, 0.2), (0.5, 0.1), (0.15, 0.0), (0.99, 0.0)):
        qualifying = [t for t in np.unique(s) if t >= at_least and y[s >= t].mean() >= min_precision]
        assert decline_threshold(y, s, min_precision, at_least) == (min(qualifying) if qualifying else math.inf)


def test_precision_at_capacity_matches_a_per_day_loop(payments):
    y, s, days, _ = payments
    for capacity in (1, 5, 20, 500):
        frauds = reviewed = 0
        for day in np.unique(days):
            rows = sorted(np.flatnonzero(days == day), key=lambda i: (-s[i], i))[:capacity]
            frauds += int(y[rows].sum())
            reviewed += len(rows)
        assert precision_at_capacity(y, s, days, capacity) == pytest.approx(frauds / reviewed, abs=1e-15)


def test_pr_curve_matches_scikit_learn(payments):
    from sklearn.metrics import precision_recall_curve

    y, s, _, _ = payments
    precision, recall, thresholds = pr_curve(y, s)
    sk_precision, sk_recall, sk_thresholds = precision_recall_curve(y, s)
    # scikit-learn: thresholds ascending, stopping at full recall, plus a final (precision 1, recall 0).
    k = len(sk_thresholds)
    np.testing.assert_array_equal(thresholds[:k], sk_thresholds[::-1])
    np.testing.assert_allclose(precision[:k], sk_precision[:-1][::-1], atol=1e-15)
    np.testing.assert_allclose(recall[:k], sk_recall[:-1][::-1], atol=1e-15)
    assert (recall[k - 1 :] == 1).all()
