"""Click and conversion metrics, and the calibration of probabilities on the validation split.

* ROC-AUC and log-loss come from scikit-learn.
* Normalized entropy (He et al., 2014) is the log-loss divided by the entropy of the
  evaluated rows' own positive rate: below 1 the model knows more than that rate.
* Expected calibration error bins the rows into ``bins`` groups of equal size by
  predicted probability (ties kept together) and averages ``|mean predicted - observed
  rate|`` over the groups, weighted by their rows. Equal-size groups, because click and
  conversion probabilities crowd near 0 where equal-width bins would hold nearly all rows.

Calibrators map raw probabilities to calibrated ones: isotonic regression
(scikit-learn) or a temperature on the logit (one parameter, fitted by log-loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Probabilities are kept inside ``[EPS, 1 - EPS]`` before logs and logits.
EPS = 1e-6
ROC_AUC, LOG_LOSS, NE, ECE = "roc_auc", "log_loss", "normalized_entropy", "ece"
METRICS = (ROC_AUC, LOG_LOSS, NE, ECE)
ISOTONIC, TEMPERATURE, NONE = "isotonic", "temperature", "none"


def _clip(p) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)


def logit(p) -> np.ndarray:
    p = _clip(p)
    return np.log(p) - np.log1p(-p)


def roc_auc(y, p) -> float:
    """ROC-AUC; NaN when ``y`` holds one class only."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else math.nan


def log_loss(y, p) -> float:
    from sklearn.metrics import log_loss as sk_log_loss

    return float(sk_log_loss(np.asarray(y), _clip(p), labels=[0, 1])) if len(y) else math.nan


def row_log_loss(y, p) -> np.ndarray:
    """Each row's log-loss (their mean is :func:`log_loss`)."""
    y, p = np.asarray(y, dtype=np.float64), _clip(p)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def normalized_entropy(y, p) -> float:
    """Log-loss over the entropy of the rows' positive rate; NaN when they hold one class only."""
    y = np.asarray(y, dtype=np.float64)
    rate = y.mean() if len(y) else math.nan
    if not 0 < rate < 1:
        return math.nan
    return log_loss(y, p) / float(-(rate * math.log(rate) + (1 - rate) * math.log(1 - rate)))


def expected_calibration_error(y, p, bins: int = 10) -> float:
    """Mean ``|mean predicted - observed rate|`` over ``bins`` equal-size groups by predicted probability, weighted by rows."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if not len(y):
        return math.nan
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, len(y)))
    return float(sum(len(g) * abs(p[g].mean() - y[g].mean()) for g in groups) / len(y))


def evaluate(y, p, bins: int = 10) -> dict[str, float]:
    """Every metric of :data:`METRICS` of probabilities ``p`` against labels ``y``."""
    return {ROC_AUC: roc_auc(y, p), LOG_LOSS: log_loss(y, p), NE: normalized_entropy(y, p), ECE: expected_calibration_error(y, p, bins)}


@dataclass
class Calibrator:
    """A fitted map from raw to calibrated probabilities.

    Attributes:
        kind: ``isotonic``, ``temperature`` or ``none``.
        x: Isotonic: the thresholds' raw probabilities (increasing).
        y: Isotonic: the calibrated probability at each threshold.
        temperature: Temperature: the logit is divided by it.
    """

    kind: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    temperature: float = 1.0

    def __call__(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.kind == ISOTONIC:
            return np.interp(p, np.asarray(self.x), np.asarray(self.y))
        if self.kind == TEMPERATURE:
            return 1.0 / (1.0 + np.exp(-logit(p) / self.temperature))
        return p

    def to_dict(self) -> dict:
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y), "temperature": self.temperature}

    @classmethod
    def from_dict(cls, doc: dict) -> Calibrator:
        return cls(doc["kind"], tuple(doc.get("x", ())), tuple(doc.get("y", ())), float(doc.get("temperature", 1.0)))


def fit_calibrator(y, p, kind: str) -> Calibrator:
    """A calibrator of ``kind`` fitted on probabilities ``p`` and labels ``y`` (the validation split).

    Isotonic regression is scikit-learn's (increasing, clipped to the fitted range);
    the temperature minimises the log-loss of ``sigmoid(logit(p) / T)``.

    Raises:
        ValueError: An unknown kind.
    """
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if kind == NONE or not len(y):
        return Calibrator(NONE)
    if kind == ISOTONIC:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip").fit(p, y)
        return Calibrator(ISOTONIC, tuple(float(v) for v in iso.X_thresholds_), tuple(float(v) for v in iso.y_thresholds_))
    if kind == TEMPERATURE:
        from scipy.optimize import minimize_scalar

        z = logit(p)
        res = minimize_scalar(lambda log_t: log_loss(y, 1.0 / (1.0 + np.exp(-z / math.exp(log_t)))), bounds=(-3, 3), method="bounded")
        return Calibrator(TEMPERATURE, temperature=float(math.exp(res.x)))
    raise ValueError(f"unknown calibration {kind!r}; known: {ISOTONIC}, {TEMPERATURE}, {NONE}")


def cross_fitted(y, p, kind: str, groups: np.ndarray) -> np.ndarray:
    """Calibrated probabilities of the validation rows, each from a calibrator fitted on the other half of the days.

    ``groups`` (0 or 1 per row) splits the rows in two; the returned probabilities
    never saw their own labels, so a champion can be judged on calibrated validation
    figures without flattering the one whose calibrator memorised them.
    """
    y, p, groups = np.asarray(y), np.asarray(p, dtype=np.float64), np.asarray(groups)
    out = p.copy()
    for g in (0, 1):
        mine = groups == g
        if mine.any() and (~mine).any():
            out[mine] = fit_calibrator(y[~mine], p[~mine], kind)(p[mine])
    return out
