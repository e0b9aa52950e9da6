"""Fraud detection metrics and decision thresholds.

The standard ranking metrics (PR-AUC, ROC-AUC, the ROC and precision-recall curves)
come from scikit-learn; the shop's own rules (precision at the daily review capacity,
the cost of a review threshold, the decline threshold) are computed here with numpy.

``y`` holds the labels (1 fraud, 0 legitimate) and ``s`` the scores, higher meaning
more likely fraud. Scores are usually probabilities but any finite real numbers do
(a rules baseline's count of rules hit, say), and they may be heavily tied.

Conventions shared by every function:

* A *threshold* ``t`` flags every payment scored ``>= t``. Equal scores are never
  split: the candidate thresholds are the distinct scores, so that tied payments
  are always flagged together and the result does not depend on their order.
* Metrics that need a fraud (or a legitimate payment) that is not there are NaN
  rather than 0 or 1, so that a missing class is not mistaken for a good or a bad
  model.
* Everything is sorting and cumulative sums: a million payments take about a second.

:func:`evaluate` puts the figures of one model on one set of payments into one
dict, under the names of the module constants (:data:`METRICS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

PR_AUC = "pr_auc"
ROC_AUC = "roc_auc"
RECALL_AT_1PCT_FPR = "recall@1%fpr"
PRECISION_AT_CAPACITY = "precision@capacity"
FRAUD_RATE = "fraud_rate"
REVIEW_RATE = "review_rate"
RECALL_AT_REVIEW = "recall@review"
COST_PER_PAYMENT = "cost_per_payment"
FRAUDS = "frauds"
PAYMENTS = "payments"

# The names :func:`evaluate` returns, in this order.
METRICS = (
    PR_AUC,
    ROC_AUC,
    RECALL_AT_1PCT_FPR,
    PRECISION_AT_CAPACITY,
    FRAUD_RATE,
    REVIEW_RATE,
    RECALL_AT_REVIEW,
    COST_PER_PAYMENT,
    FRAUDS,
    PAYMENTS,
)

# Costs closer than this (relative to the costs at stake) count as equal, so that
# rounding in the cumulative sums cannot decide between two thresholds.
_COST_RTOL = 1e-9


def _labels_scores(y, s) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as int64 0/1 and ``s`` as float64, both 1-D and checked."""
    y, s = np.asarray(y), np.asarray(s)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if len(y) != len(s):
        raise ValueError(f"labels and scores differ in length: {len(y)} labels, {len(s)} scores")
    if len(y) == 0:
        raise ValueError("no payments: labels and scores are empty")
    if y.dtype != bool:
        if not (np.issubdtype(y.dtype, np.number) and np.isin(y, (0, 1)).all()):
            bad = y[~np.isin(y, (0, 1))][:3] if np.issubdtype(y.dtype, np.number) else y[:3]
            raise ValueError(f"labels must be 0 (legitimate) or 1 (fraud), found {bad.tolist()}")
    try:
        s = s.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scores must be numbers, got dtype {s.dtype}") from exc
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite, {int((~np.isfinite(s)).sum())} are NaN or infinite")
    return y.astype(np.int64), s


def _aligned(name: str, values, n: int) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n:
        raise ValueError(f"{name} must be 1-D with one value per payment: got shape {values.shape} for {n} payments")
    return values


def _amounts(amounts, n: int) -> np.ndarray:
    amounts = _aligned("amounts", amounts, n).astype(np.float64)
    if not np.isfinite(amounts).all():
        raise ValueError("amounts must be finite")
    return amounts


def _costs(review_cost: float, chargeback_fee: float) -> None:
    for name, value in (("review_cost", review_cost), ("chargeback_fee", chargeback_fee)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class _Ranking:
    """The payments by descending score, cut at each distinct score.

    Attributes:
        order: Payment indices by descending score (stable: ties in input order).
        ends: For each distinct score, the position in ``order`` of its last payment.
        thresholds: The distinct scores, descending.
        flagged: Payments scored ``>=`` each threshold.
        tp: Frauds scored ``>=`` each threshold.
        positives: Frauds in all.
    """

    order: np.ndarray
    ends: np.ndarray
    thresholds: np.ndarray
    flagged: np.ndarray
    tp: np.ndarray
    positives: int


def _rank(y: np.ndarray, s: np.ndarray) -> _Ranking:
    order = np.argsort(-s, kind="stable")
    ranked = s[order]
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1)
    tp = np.cumsum(y[order])
    return _Ranking(order, ends, ranked[ends], ends + 1, tp[ends], int(tp[-1]))


def average_precision(y, s) -> float:
    """PR-AUC as average precision: ``sum_k (R_k - R_{k-1}) * P_k``.

    ``k`` runs over the distinct scores, descending; ``P_k`` and ``R_k`` are the
    precision and recall of flagging every payment scored ``>=`` the k-th, and
    ``R_0 = 0``. Tied payments enter together, so a tie of frauds and legitimate
    payments counts at its mixed precision, whatever their order. This is the
    definition of scikit-learn's ``average_precision_score`` (no interpolation).

    Args:
        y: Labels, 1 fraud and 0 legitimate.
        s: Scores, higher meaning more likely fraud.

    Returns:
        Between 0 and 1 (the fraud rate is what random scores get on average);
        NaN when there is no fraud.
    """
    return _average_precision(*_labels_scores(y, s))


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    return float(skm.average_precision_score(y, s)) if y.any() else math.nan


def roc_auc(y, s) -> float:
    """Area under the ROC curve: the chance that a random fraud scores above a random legitimate payment.

    The Mann-Whitney statistic (scikit-learn's ``roc_auc_score``): a tie between a
    fraud and a legitimate payment counts 1/2.

    Args:
        y: Labels, 1 fraud and 0 legitimate.
        s: Scores, higher meaning more likely fraud.

    Returns:
        Between 0 and 1; NaN when the payments are all frauds or all legitimate.
    """
    return _roc_auc(*_labels_scores(y, s))


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.any()) and not bool(y.all())


def _roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, s)) if _both_classes(y) else math.nan


def recall_at_fpr(y, s, max_fpr: float = 0.01) -> float:
    """The highest recall of a threshold whose false-positive rate is at most ``max_fpr``.

    Args:
        y: Labels, 1 fraud and 0 legitimate.
        s: Scores, higher meaning more likely fraud.
        max_fpr: Largest share of legitimate payments that may be flagged, in [0, 1].

    Returns:
        The recall, 0 when even the highest score flags too many legitimate
        payments; NaN when the payments are all frauds or all legitimate.
    """
    if not 0 <= max_fpr <= 1:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr}")
    return _recall_at_fpr(*_labels_scores(y, s), max_fpr)


def _recall_at_fpr(y: np.ndarray, s: np.ndarray, max_fpr: float) -> float:
    if not _both_classes(y):
        return math.nan
    # One ROC point per distinct score (ties never split), after the point of flagging nothing.
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr].max())


def precision_at_capacity(y, s, days, capacity: int) -> float:
    """Precision of reviewing the ``capacity`` highest-scored payments of each day.

    A day with fewer payments has them all reviewed. Equal scores that straddle a
    day's cut go to the earlier payment in the input, so the figure is reproducible.

    Args:
        y: Labels, 1 fraud and 0 legitimate.
        s: Scores, higher meaning more likely fraud.
        days: Each payment's day (dates, datetime64, ints, strings: anything
            sortable), aligned with ``y``.
        capacity: Payments reviewed per day, at least 1.

    Returns:
        Frauds among all payments reviewed over all days, divided by the payments
        reviewed.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1 review a day, got {capacity}")
    y, s = _labels_scores(y, s)
    days = _aligned("days", days, len(y))
    _, day = np.unique(days, return_inverse=True)
    # By day, then descending score, then input order.
    order = np.lexsort((np.arange(len(y)), -s, day))
    day_sorted = day[order]
    first = np.flatnonzero(np.r_[True, day_sorted[1:] != day_sorted[:-1]])
    starts = np.repeat(first, np.diff(np.r_[first, len(order)]))
    reviewed = order[np.arange(len(order)) - starts < capacity]
    return float(y[reviewed].mean())


def pr_curve(y, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at each distinct score threshold, highest threshold first.

    Args:
        y: Labels, 1 fraud and 0 legitimate.
        s: Scores, higher meaning more likely fraud.

    Returns:
        ``(precision, recall, thresholds)``, one entry per distinct score:
        ``thresholds`` descending, ``recall`` rising to 1 (all NaN when there is
        no fraud).
    """
    y, s = _labels_scores(y, s)
    if not y.any():
        thresholds = np.unique(s)[::-1]
        return np.zeros(len(thresholds)), np.full(len(thresholds), np.nan), thresholds
    precision, recall, thresholds = skm.precision_recall_curve(y, s, drop_intermediate=False)
    # scikit-learn lists the thresholds rising and appends the point (precision 1, recall 0) of flagging nothing.
    return precision[-2::-1].copy(), recall[-2::-1].copy(), thresholds[::-1].copy()


def _review_costs(r: _Ranking, y: np.ndarray, amounts: np.ndarray, review_cost: float, chargeback_fee: float) -> np.ndarray:
    """Cost of reviewing nothing, then of each threshold of ``r`` (highest first)."""
    loss = y * (amounts + chargeback_fee)
    total = loss.sum()
    caught = np.cumsum(loss[r.order])[r.ends]
    return np.r_[total, review_cost * r.flagged + (total - caught)]


def _cost_at(y: np.ndarray, s: np.ndarray, amounts: np.ndarray, threshold: float, review_cost: float, chargeback_fee: float) -> float:
    reviewed = s >= threshold
    missed = (y == 1) & ~reviewed
    return float(review_cost * reviewed.sum() + (amounts[missed] + chargeback_fee).sum())


def cost_threshold(y, s, amounts, review_cost: float, chargeback_fee: float) -> tuple[float, float]:
    """The review threshold of least expected cost on these payments.

    Every payment scored ``>= t`` is reviewed at ``review_cost``; a reviewed fraud
    is caught and costs nothing more. A fraud scored below ``t`` goes through and
    costs its amount plus ``chargeback_fee``. The candidates are each distinct
    score and ``+inf`` (review nothing); among equal costs the higher threshold
    wins, since it reviews fewer payments.

    Args:
        y: Labels, 1 fraud and 0 legitimate (validation payments, not test ones).
        s: Scores, higher meaning more likely fraud.
        amounts: Each payment's amount, aligned with ``y``.
        review_cost: Cost of reviewing one payment, >= 0.
        chargeback_fee: Fee of a chargeback on top of the amount lost, >= 0.

    Returns:
        ``(threshold, cost)``: the threshold and the total cost over these payments.
    """
    _costs(review_cost, chargeback_fee)
    y, s = _labels_scores(y, s)
    amounts = _amounts(amounts, len(y))
    r = _rank(y, s)
    costs = _review_costs(r, y, amounts, review_cost, chargeback_fee)
    candidates = np.r_[math.inf, r.thresholds]
    scale = max(float(np.abs(costs).max()), 1.0)
    best = int(np.flatnonzero(costs <= costs.min() + _COST_RTOL * scale)[0])  # the first near-minimum: the highest threshold
    return float(candidates[best]), float(costs[best])


def decline_threshold(y, s, min_precision: float, at_least: float) -> float:
    """The lowest threshold, not below ``at_least``, whose precision reaches ``min_precision``.

    The candidates are the distinct scores ``>= at_least``; a candidate's precision
    is the share of frauds among the payments scored ``>=`` it. Precision need
    not fall steadily as the threshold falls, so the answer is the lowest
    candidate that qualifies, not the end of a run of qualifying ones.

    Args:
        y: Labels, 1 fraud and 0 legitimate (validation payments).
        s: Scores, higher meaning more likely fraud.
        min_precision: Precision required, in (0, 1].
        at_least: No threshold below this (the review threshold, typically: a
            declined payment is not also sent for review).

    Returns:
        The threshold, or ``+inf`` (decline nothing) when no candidate qualifies.
    """
    if not 0 < min_precision <= 1:
        raise ValueError(f"min_precision must be in (0, 1], got {min_precision}")
    if math.isnan(at_least):
        raise ValueError("at_least must be a number, got NaN")
    y, s = _labels_scores(y, s)
    r = _rank(y, s)
    ok = np.flatnonzero((r.thresholds >= at_least) & (r.tp / r.flagged >= min_precision))
    return float(r.thresholds[ok[-1]]) if len(ok) else math.inf


def evaluate(y, s, days, amounts, *, review_threshold: float, capacity: int, review_cost: float, chargeback_fee: float) -> dict[str, float]:
    """One model's figures on one set of payments.

    Args:
        y: Labels, 1 fraud and 0 legitimate.
        s: Scores, higher meaning more likely fraud.
        days: Each payment's day, for :func:`precision_at_capacity`.
        amounts: Each payment's amount, for the cost.
        review_threshold: Payments scored ``>=`` this are reviewed (``+inf``: none),
            usually :func:`cost_threshold`'s on validation payments.
        capacity: Reviews per day, for :func:`precision_at_capacity`.
        review_cost: Cost of reviewing one payment.
        chargeback_fee: Fee of a chargeback on top of the amount lost.

    Returns:
        Metric name (the constants of this module, in the order of
        :data:`METRICS`) to value: PR-AUC, ROC-AUC, recall at 1 % false-positive
        rate, precision at capacity, the fraud rate, the share of payments
        reviewed at ``review_threshold``, the share of frauds reviewed there
        (NaN without frauds), the cost per payment there under the cost model of
        :func:`cost_threshold`, and the counts of frauds and payments.
    """
    if math.isnan(review_threshold):
        raise ValueError("review_threshold must be a number, got NaN")
    _costs(review_cost, chargeback_fee)
    y, s = _labels_scores(y, s)
    amounts = _amounts(amounts, len(y))
    n, frauds = len(y), int(y.sum())
    reviewed = s >= review_threshold
    return {
        PR_AUC: _average_precision(y, s),
        ROC_AUC: _roc_auc(y, s),
        RECALL_AT_1PCT_FPR: _recall_at_fpr(y, s, 0.01),
        PRECISION_AT_CAPACITY: precision_at_capacity(y, s, days, capacity),
        FRAUD_RATE: frauds / n,
        REVIEW_RATE: float(reviewed.mean()),
        RECALL_AT_REVIEW: float(reviewed[y == 1].mean()) if frauds else math.nan,
        COST_PER_PAYMENT: _cost_at(y, s, amounts, review_threshold, review_cost, chargeback_fee) / n,
        FRAUDS: float(frauds),
        PAYMENTS: float(n),
    }
