"""A trained text model packed for inference: the unit the support and categorization runs register.

A :class:`TextBundle` holds the champion classifier of a run
(:mod:`shoplake.text.classifier`) and what turns its probabilities into
answers: for support the hand-off threshold chosen on validation and the answers
retrieved by intent and similarity (any object with ``save`` and a ``load`` classmethod; its class is
recorded in ``bundle.json``);
for categorization the confidence above which a product's given category is flagged
when the model disagrees with it.

On disk a bundle is a folder: ``bundle.json`` (task, kind, labels, threshold,
metadata), ``classifier/`` and, for support, ``answers/``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoplake.bundle import BUNDLE_FILE
from shoplake.text.classifier import (
    CLASSIFIER_FILE,
    FINE_TUNED,
    FROZEN_LR,
    TFIDF_LR,
    FrozenEncoderClassifier,
    TextClassifier,
    TfidfClassifier,
)
from shoplake.text.fine_tune import FineTunedClassifier


def load_classifier(folder: str | Path) -> TextClassifier:
    """The classifier saved in ``folder``, whatever its family.

    Raises:
        FileNotFoundError: ``folder`` holds no ``classifier.json``.
        ValueError: The kind is unknown.
    """
    path = Path(folder) / CLASSIFIER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no text classifier ({CLASSIFIER_FILE} is missing)")
    families = {FINE_TUNED: FineTunedClassifier, TFIDF_LR: TfidfClassifier, FROZEN_LR: FrozenEncoderClassifier}
    kind = json.loads(path.read_text())["kind"]
    if kind not in families:
        raise ValueError(f"{path}: unknown classifier kind {kind!r}; known: {', '.join(families)}")
    return families[kind].load(folder)


CLASSIFIER_DIR = "classifier"
ANSWERS_DIR = "answers"
#: Key of ``bundle.json`` naming the class (``module:Name``) that loads ``answers/``.
ANSWERS_CLASS = "answers_class"
#: Bundles saved before the key existed hold the support answer store.
DEFAULT_ANSWERS_CLASS = "shoplake.support.answers:AnswerStore"
SUPPORT, CATEGORIZATION = "support", "categorization"


@dataclass
class Prediction:
    """Top label and confidence of each text, the full probabilities and, when asked for, the texts' embeddings."""

    labels: list[str]
    confidences: np.ndarray
    probabilities: np.ndarray
    names: tuple[str, ...] = ()
    embeddings: np.ndarray | None = None

    def top(self, row: int, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable labels of one text with their probabilities."""
        return [(self.names[j], float(self.probabilities[row, j])) for j in np.argsort(-self.probabilities[row], kind="stable")[:k]]


@dataclass
class TextBundle:
    """A text classifier with its task's decision settings.

    Attributes:
        task: ``support`` or ``categorization``.
        classifier: The trained classifier.
        threshold: Support: messages whose top intent is less probable than this go to a
            person. Categorization: a disagreement with the given category at least this
            probable is flagged.
        answers: Support only: the answer store (``None`` for categorization).
        info: Model name, run date, table versions, metrics, out-of-scope intents, ...
    """

    task: str
    classifier: TextClassifier
    threshold: float
    answers: Any = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in (SUPPORT, CATEGORIZATION):
            raise ValueError(f"unknown text task {self.task!r}; use {SUPPORT} or {CATEGORIZATION}")

    @property
    def kind(self) -> str:
        return self.classifier.kind

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classifier.labels)

    def predict(self, texts: Sequence[str], *, embed: bool = False) -> Prediction:
        """The most probable label of every text, its probability and all probabilities; with ``embed``, the embeddings too (one pass)."""
        texts = list(texts)
        if not texts:
            return Prediction([], np.zeros(0), np.zeros((0, len(self.labels)), np.float32), self.labels)
        emb = None
        if embed:
            proba, emb = self.classifier.predict_and_embed(texts)
        else:
            proba = self.classifier.predict_proba(texts)
        best = proba.argmax(axis=1)
        return Prediction([self.labels[j] for j in best], proba.max(axis=1), proba, self.labels, emb)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.classifier.save(folder / CLASSIFIER_DIR)
        doc = {"task": self.task, "kind": self.kind, "labels": list(self.labels), "threshold": self.threshold, "info": self.info}
        if self.answers is not None:
            self.answers.save(folder / ANSWERS_DIR)
            doc[ANSWERS_CLASS] = f"{type(self.answers).__module__}:{type(self.answers).__qualname__}"
        (folder / BUNDLE_FILE).write_text(json.dumps(doc, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path, task: str | None = None) -> TextBundle:
        """The bundle saved in ``folder``; with ``task``, it must be a bundle of that task.

        Raises:
            FileNotFoundError: ``folder`` holds no text bundle.
            ValueError: Not a text bundle, or one of another task.
        """
        folder = Path(folder)
        path = folder / BUNDLE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} holds no model bundle ({BUNDLE_FILE} is missing)")
        doc = json.loads(path.read_text())
        if doc.get("task") not in (SUPPORT, CATEGORIZATION):
            raise ValueError(f"{path} is not a text bundle (task {doc.get('task')!r})")
        if task is not None and doc["task"] != task:
            raise ValueError(f"{folder} holds a {doc['task']} model, not a {task} model")
        answers = None
        if (folder / ANSWERS_DIR).is_dir():
            module, _, name = doc.get(ANSWERS_CLASS, DEFAULT_ANSWERS_CLASS).partition(":")
            answers = getattr(importlib.import_module(module), name).load(folder / ANSWERS_DIR)
        return cls(doc["task"], load_classifier(folder / CLASSIFIER_DIR), float(doc["threshold"]), answers, doc.get("info", {}))
