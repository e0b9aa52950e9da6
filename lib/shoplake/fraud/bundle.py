"""The servable fraud bundle: a trained model with its decision thresholds.

On disk a :class:`FraudBundle` is a folder: ``bundle.json`` (kind, feature names,
thresholds, run date, metrics, metadata) beside the model's own files
(``gbt.ubj`` + ``gbt.json``, ``tabular_nn.pt`` + ``tabular_nn.json``, or ``rules.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoplake.bundle import BUNDLE_FILE
from shoplake.fraud.declarations import FEATURE_NAMES
from shoplake.fraud.models.base import (
    GBT,
    RULES,
    TABULAR_NN,
    FeatureMismatchError,
    RulesModel,
    _from_json_number,
    _json_safe,
    _mismatch,
)
from shoplake.fraud.models.gbt import GBTModel
from shoplake.fraud.models.tabular import TabularNNModel
from shoplake.fraud.schemas import APPROVE, DECLINE, REVIEW

# ---------------------------------------------------------------------------
# Bundle


MODEL_CLASSES: dict[str, type] = {RULES: RulesModel, GBT: GBTModel, TABULAR_NN: TabularNNModel}


@dataclass
class FraudBundle:
    """A trained fraud model with its decision thresholds: the unit that is registered, scored and served.

    A payment scoring below ``review_threshold`` is approved, one in
    ``[review_threshold, decline_threshold)`` goes to review, one at or above
    ``decline_threshold`` is declined. ``+inf`` switches a level off.

    Attributes:
        model: A :class:`GBTModel`, :class:`TabularNNModel` or :class:`RulesModel`.
        feature_names: The model's input columns, in order.
        review_threshold: Lowest score sent to review.
        decline_threshold: Lowest score declined (not below ``review_threshold``).
        metadata: ``run_date`` (ISO) and ``metrics`` (name to number) of the training
            run, plus anything JSON-able (model name, table versions).
    """

    model: Any
    feature_names: Sequence[str]
    review_threshold: float
    decline_threshold: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if getattr(self.model, "kind", None) not in MODEL_CLASSES:
            raise ValueError(f"a fraud bundle holds one of {', '.join(MODEL_CLASSES)}, got {type(self.model).__name__}")
        self.feature_names = tuple(self.feature_names)
        if tuple(self.model.feature_names) != self.feature_names:
            raise FeatureMismatchError(
                f"the model was trained on other features: {_mismatch(self.model.feature_names, self.feature_names)}"
            )
        self.review_threshold, self.decline_threshold = float(self.review_threshold), float(self.decline_threshold)
        if math.isnan(self.review_threshold) or math.isnan(self.decline_threshold):
            raise ValueError("thresholds must not be NaN")
        if self.decline_threshold < self.review_threshold:
            raise ValueError(f"decline threshold {self.decline_threshold} lies below the review threshold {self.review_threshold}")
        self.metadata = dict(self.metadata or {})

    @property
    def kind(self) -> str:
        return self.model.kind

    def score(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities of the rows of ``X`` (columns in :attr:`feature_names` order)."""
        return self.model.predict(X)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """``approve`` / ``review`` / ``decline`` for each score.

        Raises:
            ValueError: A score is NaN (no decision can be read from it).
        """
        scores = np.asarray(scores, dtype=np.float64)
        if np.isnan(scores).any():
            raise ValueError("cannot decide on a NaN score")
        return np.where(scores >= self.decline_threshold, DECLINE, np.where(scores >= self.review_threshold, REVIEW, APPROVE))

    def reasons(self, X: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        """Per row, the ``k`` features that pushed its score up most, strongest first.

        Each reason is ``(feature name, contribution to the log-odds)``; only
        positive contributions count, so a row may have fewer than ``k``.
        """
        contributions = self.model.contributions(X)
        out = []
        for row in contributions:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([(self.feature_names[j], float(row[j])) for j in top if row[j] > 0])
        return out

    def check_features(self, feature_names: Sequence[str] = FEATURE_NAMES) -> None:
        """Make sure the bundle reads the features it is about to be given.

        Raises:
            FeatureMismatchError: ``feature_names`` differ from the bundle's (names or order).
        """
        if tuple(feature_names) != self.feature_names:
            raise FeatureMismatchError(
                f"the fraud bundle ({self.kind}, run date {self.metadata.get('run_date')}) was trained on other "
                f"features than the current ones: {_mismatch(self.feature_names, feature_names)}; retrain it"
            )

    def save(self, folder: str | Path) -> Path:
        """Write the model's files and ``bundle.json`` into ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder)
        rest = {k: v for k, v in self.metadata.items() if k not in ("run_date", "metrics")}
        doc = {
            "kind": self.kind,
            "feature_names": list(self.feature_names),
            "thresholds": {"review": self.review_threshold, "decline": self.decline_threshold},
            "run_date": self.metadata.get("run_date"),
            "metrics": self.metadata.get("metrics", {}),
            "metadata": rest,
        }
        (folder / BUNDLE_FILE).write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> FraudBundle:
        """Read a bundle written by :meth:`save`.

        Raises:
            FileNotFoundError: ``folder`` holds no bundle.
            ValueError: The bundle holds no fraud model.
        """
        folder = Path(folder)
        if not (folder / BUNDLE_FILE).is_file():
            raise FileNotFoundError(f"no fraud bundle in {folder} ({BUNDLE_FILE} missing)")
        doc = json.loads((folder / BUNDLE_FILE).read_text())
        if doc.get("kind") not in MODEL_CLASSES:
            raise ValueError(f"{folder} holds a {doc.get('kind')!r} bundle, not a fraud model ({', '.join(MODEL_CLASSES)})")
        model = MODEL_CLASSES[doc["kind"]].load(folder)
        thresholds = doc["thresholds"]
        metadata = dict(doc.get("metadata", {}))
        if doc.get("run_date") is not None:
            metadata["run_date"] = doc["run_date"]
        metadata["metrics"] = {k: _from_json_number(v) for k, v in doc.get("metrics", {}).items()}
        return cls(model, doc["feature_names"], float(thresholds["review"]), float(thresholds["decline"]), metadata)
