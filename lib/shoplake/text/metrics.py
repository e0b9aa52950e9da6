"""Metrics of the text classifiers: accuracy and macro-F1 (scikit-learn), and the quality of the hand-off to a person.

Hand-off. A support message is answered when the classifier's top intent has a
probability of at least the threshold, else a person takes it. The threshold is
chosen on validation (:func:`handoff_threshold`): the lowest one that hands
``min_handoff`` of the out-of-scope messages to a person, so that as many in-scope
messages as possible are answered, but never above the highest one that still
answers ``min_answered`` of the in-scope messages. :func:`handoff_metrics`
then measures, on any split, the share of in-scope messages answered, how many of
those answers have the right intent, and the share of out-of-scope messages (intents
held out of training) handed to a person.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

ACCURACY = "accuracy"
MACRO_F1 = "macro_f1"
ANSWERED_IN_SCOPE = "answered_in_scope"
ANSWERED_ACCURACY = "answered_accuracy"
HANDOFF_OUT_OF_SCOPE = "handoff_out_of_scope"
HANDOFF_THRESHOLD = "handoff_threshold"


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of rows predicted right (NaN for no rows)."""
    return float(skm.accuracy_score(y_true, y_pred)) if len(y_true) else math.nan


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over every class that is true or predicted somewhere (NaN for no rows).

    A class predicted but never true has F1 0 and counts, as does a true class never
    predicted: both are mistakes a shop sees.
    """
    if not len(y_true):
        return math.nan
    labels = np.union1d(np.asarray(y_true), np.asarray(y_pred))
    return float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0.0))


def handoff_threshold(
    confidences: np.ndarray, min_answered: float, out_of_scope: np.ndarray | None = None, min_handoff: float | None = None
) -> float:
    """The hand-off threshold for in-scope ``confidences`` (and out-of-scope ones, when there are).

    Without out-of-scope confidences: the highest threshold that answers at least
    ``min_answered`` of the in-scope messages. With them: the lowest threshold that
    hands at least ``min_handoff`` of the out-of-scope messages to a person (just
    above the confidence of the last one it must hand off), capped at that highest
    threshold, so the answer rate never falls below ``min_answered``.

    Raises:
        ValueError: No in-scope confidences, or a share outside (0, 1].
    """
    conf = np.sort(np.asarray(confidences, dtype=np.float64))[::-1]
    if not len(conf):
        raise ValueError("no in-scope messages to choose a hand-off threshold on")
    for name, share in (("min_answered", min_answered), ("min_handoff", min_handoff)):
        if share is not None and not 0 < share <= 1:
            raise ValueError(f"{name} must be in (0, 1], got {share}")
    highest = float(conf[math.ceil(min_answered * len(conf) - 1e-9) - 1])
    oos = np.sort(np.asarray(out_of_scope if out_of_scope is not None else [], dtype=np.float64))
    if not len(oos) or min_handoff is None:
        return highest
    needed = float(oos[math.ceil(min_handoff * len(oos) - 1e-9) - 1])
    return min(float(np.nextafter(needed, np.inf)), highest)


def handoff_metrics(
    in_scope_confidences: np.ndarray, in_scope_correct: np.ndarray, out_of_scope_confidences: np.ndarray, threshold: float
) -> dict[str, float]:
    """Share of in-scope messages answered, accuracy of those answers, share of out-of-scope ones handed off.

    A share over no messages is NaN.
    """
    answered = np.asarray(in_scope_confidences) >= threshold
    correct = np.asarray(in_scope_correct, dtype=bool)
    oos = np.asarray(out_of_scope_confidences)
    return {
        ANSWERED_IN_SCOPE: float(answered.mean()) if len(answered) else math.nan,
        ANSWERED_ACCURACY: float(correct[answered].mean()) if answered.any() else math.nan,
        HANDOFF_OUT_OF_SCOPE: float((oos < threshold).mean()) if len(oos) else math.nan,
    }
