"""What every fraud model shares: the model protocol, the model input of table rows and its checks, and the rules baseline.

* **rules** (:func:`rules_scores`): the hand-written baseline as a continuous score,
  ``max(amount / amount_limit, max over user/card/device/ip of count_1h / velocity_limit)``;
  a score of at least 1 means a rule fires.

The trained models are in :mod:`shoplake.fraud.models.gbt` and
:mod:`shoplake.fraud.models.tabular`; :class:`shoplake.fraud.bundle.FraudBundle` holds one for serving.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from shoplake import columns as C
from shoplake.fraud.declarations import ENTITIES, FEATURE_NAMES

if TYPE_CHECKING:
    import pyarrow as pa

RULES, GBT, TABULAR_NN = "rules", "gbt", "tabular_nn"
#: Trained model families.
MODEL_KINDS = (GBT, TABULAR_NN)

#: The feature the rules baseline compares with ``fraud.rules_amount``.
RULES_AMOUNT_FEATURE = "amount"
#: The velocity features the rules baseline compares with ``fraud.rules_velocity_1h``.
RULES_VELOCITY_FEATURES = tuple(f"{prefix}_count_1h" for prefix, _ in ENTITIES)

#: Feature kinds that are non-negative and heavy-tailed: the network reads them through a signed log1p.
LOG_KINDS = frozenset({"window_count", "window_amount", "window_distinct", "user_history"})
#: ``payment`` features (by :attr:`Feature.of`) that are heavy-tailed as well.
LOG_PAYMENT_VALUES = frozenset({C.AMOUNT, C.N_LINES, C.N_UNITS})

GBT_MODEL_FILE = "gbt.ubj"
GBT_INFO_FILE = "gbt.json"
NN_WEIGHTS_FILE = "tabular_nn.pt"
NN_SETTINGS_FILE = "tabular_nn.json"
RULES_FILE = "rules.json"

#: Boosting rounds without a better validation PR-AUC before training stops.
EARLY_STOPPING_ROUNDS = 30
#: Steps of the integrated gradients behind :meth:`TabularNNModel.contributions`.
IG_STEPS = 16


class FeatureMismatchError(ValueError):
    """A model or bundle was trained on other features than the ones it is given."""


def _matrix(X, n_features: int) -> np.ndarray:
    """``X`` as a float64 ``(n, n_features)`` array; a 1-D ``X`` is one row."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"expected a matrix of {n_features} feature columns, got shape {X.shape}")
    return X


def _labels(y, n_rows: int, what: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(y) != n_rows:
        raise ValueError(f"{what}: {len(y)} labels for {n_rows} rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{what}: labels must be 0 or 1")
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"{what}: needs both fraud (1) and legitimate (0) payments, got {int(y.sum())} fraud of {len(y)}")
    return y


def feature_matrix(rows: pa.Table, feature_names: Sequence[str] = FEATURE_NAMES, what: str = "gold.txn_features") -> np.ndarray:
    """The model input of ``rows``: the ``feature_names`` columns as a float64 matrix.

    Args:
        rows: Rows with a column per feature.
        feature_names: The model's inputs, in order.
        what: Where the rows come from, for the error.

    Raises:
        FeatureMismatchError: A feature has no column in ``rows``, or is null in some
            (a table built before a shop's own field was declared).
    """
    names = list(feature_names)
    missing = [n for n in names if n not in rows.column_names]
    if missing:
        raise FeatureMismatchError(
            f"{what} has no column for the feature(s) {', '.join(missing)} the model reads: the features were built, or the "
            "model trained, under another configuration (landing.extra_fields.payments, fraud.feature_table); build the "
            "features again or retrain"
        )
    if not rows.num_rows:
        return np.zeros((0, len(names)))
    X = np.column_stack([rows[name].to_numpy(zero_copy_only=False).astype(np.float64) for name in names])
    empty = [n for j, n in enumerate(names) if np.isnan(X[:, j]).any()]
    if empty:
        raise FeatureMismatchError(
            f"{what}: the feature(s) {', '.join(empty)} are null in some rows, which were built before the field was "
            "declared; build the features of those run dates again"
        )
    return X


def labels(rows: pa.Table) -> np.ndarray:
    """The rows' fraud labels as int64 (the rows are matured: no label is null)."""
    return rows[C.LABEL].to_numpy(zero_copy_only=False).astype(np.int64) if rows.num_rows else np.zeros(0, np.int64)


def _mismatch(expected: Sequence[str], got: Sequence[str]) -> str:
    expected, got = list(expected), list(got)
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra}")
    if not parts:
        first = next(i for i, (a, b) in enumerate(zip(expected, got)) if a != b)
        parts.append(f"same names in another order (position {first}: {got[first]!r} where {expected[first]!r} was trained)")
    return "; ".join(parts)


# ---------------------------------------------------------------------------
# Rules baseline


def rules_scores(X: np.ndarray, feature_names: Sequence[str], amount_limit: float, velocity_limit: int) -> np.ndarray:
    """The rules baseline as a continuous score; at least 1 where a rule fires.

    ``max(amount / amount_limit, max over user/card/device/ip of count_1h / velocity_limit)``,
    with the features looked up by name.

    Args:
        X: Features, shape ``(n, len(feature_names))``.
        feature_names: Names of ``X``'s columns; must include ``amount`` and the
            ``*_count_1h`` features of :data:`RULES_VELOCITY_FEATURES`.
        amount_limit: Amount at which the amount rule fires (``fraud.rules_amount``).
        velocity_limit: Earlier payments within 1 h at which a velocity rule fires
            (``fraud.rules_velocity_1h``).

    Returns:
        float64 scores, shape ``(n,)``.

    Raises:
        ValueError: A needed feature is missing or a limit is not positive.
    """
    if amount_limit <= 0 or velocity_limit <= 0:
        raise ValueError(f"rule limits must be positive, got amount {amount_limit}, velocity {velocity_limit}")
    names = list(feature_names)
    X = _matrix(X, len(names))
    column = {name: i for i, name in enumerate(names)}
    missing = [n for n in (RULES_AMOUNT_FEATURE, *RULES_VELOCITY_FEATURES) if n not in column]
    if missing:
        raise ValueError(f"the rules baseline needs the features {missing}")
    score = X[:, column[RULES_AMOUNT_FEATURE]] / float(amount_limit)
    for name in RULES_VELOCITY_FEATURES:
        score = np.maximum(score, X[:, column[name]] / float(velocity_limit))
    return score


class RulesModel:
    """The rules baseline as a servable model: what the bundle serves when the rules win on validation.

    Its score is :func:`rules_scores` (at least 1 where a rule fires), and a feature's
    contribution is its own ratio to its limit (0 for the features no rule reads).
    """

    kind: ClassVar[str] = RULES

    def __init__(self, feature_names: Sequence[str], amount_limit: float, velocity_limit: int):
        self.feature_names = tuple(feature_names)
        self.amount_limit, self.velocity_limit = float(amount_limit), int(velocity_limit)
        rules_scores(np.zeros((0, len(self.feature_names))), self.feature_names, self.amount_limit, self.velocity_limit)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return rules_scores(X, self.feature_names, self.amount_limit, self.velocity_limit)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        X = _matrix(X, len(self.feature_names))
        out = np.zeros_like(X)
        for j, name in enumerate(self.feature_names):
            if name == RULES_AMOUNT_FEATURE:
                out[:, j] = X[:, j] / self.amount_limit
            elif name in RULES_VELOCITY_FEATURES:
                out[:, j] = X[:, j] / self.velocity_limit
        return out

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"kind": self.kind, "feature_names": list(self.feature_names), "amount_limit": self.amount_limit,
               "velocity_limit": self.velocity_limit}  # fmt: skip
        (folder / RULES_FILE).write_text(json.dumps(doc, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RulesModel:
        doc = json.loads((Path(folder) / RULES_FILE).read_text())
        return cls(doc["feature_names"], doc["amount_limit"], doc["velocity_limit"])


# ---------------------------------------------------------------------------
# Models


class FraudModel(Protocol):
    """A trained fraud model as :class:`FraudBundle` uses it."""

    kind: ClassVar[str]
    feature_names: tuple[str, ...]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities, shape ``(n,)``."""
        ...

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the log-odds, shape ``(n, n_features)``."""
        ...

    def save(self, folder: str | Path) -> Path: ...

    @classmethod
    def load(cls, folder: str | Path) -> FraudModel: ...


def _json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and non-finite floats as ``"inf"``/``"-inf"``/``"nan"``."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _from_json_number(value: Any) -> Any:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return value
