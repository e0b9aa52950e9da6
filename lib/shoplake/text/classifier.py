"""Text classifiers: the pretrained encoder fine-tuned with a classification head, and two baselines.

Every classifier answers the same two questions, so the support and categorization
runs can train, compare, register and serve any of them:

* ``predict_proba(texts)``: class probabilities, shape ``(n, len(labels))``;
* ``embed(texts)``: L2-normalised vectors whose dot product says how alike two texts
  are (answers are retrieved by it).

The families:

* ``fine_tuned`` (:class:`shoplake.text.fine_tune.FineTunedClassifier`): the text
  encoder fine-tuned with a linear head on Ray Train (:mod:`shoplake.text.fine_tune`).
* ``tfidf_lr`` (:class:`TfidfClassifier`): TF-IDF of word 1-2-grams and character
  2-5-grams, then logistic regression. ``embed`` is the TF-IDF vector.
* ``frozen_lr`` (:class:`FrozenEncoderClassifier`): logistic regression on the
  pretrained encoder's sentence embeddings, the encoder left as it is.

On disk a classifier is a folder with ``classifier.json`` (kind, labels, settings)
and the family's files; :func:`shoplake.text.bundle.load_classifier` reads any of them.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from shoplake.text.encoder import encode_texts

FINE_TUNED, TFIDF_LR, FROZEN_LR = "fine_tuned", "tfidf_lr", "frozen_lr"
KINDS = (TFIDF_LR, FROZEN_LR, FINE_TUNED)
CLASSIFIER_FILE = "classifier.json"
ENCODER_DIR = "encoder"
HEAD_FILE = "head.pt"
SKLEARN_FILE = "model.pkl"
SETTINGS_FILE = "settings.json"
#: Batches whose rows are sorted by length together when training (:func:`epoch_batches`).
BUCKET_BATCHES = 50


class TextClassifier(Protocol):
    """What the text runs, scoring and serving use of a classifier."""

    kind: ClassVar[str]
    labels: tuple[str, ...]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_and_embed(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Both at once, from one pass over the texts."""
        ...

    def save(self, folder: str | Path) -> Path: ...


def label_index(labels: Sequence[str], values: Sequence[str]) -> np.ndarray:
    """Positions of ``values`` in ``labels``.

    Raises:
        ValueError: A value is not a label (the first few are named).
    """
    where = {label: n for n, label in enumerate(labels)}
    unknown = sorted({v for v in values if v not in where})
    if unknown:
        raise ValueError(f"{len(unknown)} values are not labels of the classifier: {unknown[:5]}")
    return np.asarray([where[v] for v in values], dtype=np.int64)


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------


def _logistic(c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


def _proba(model, n_labels: int, X) -> np.ndarray:
    """Probabilities over all labels (a label without training rows gets 0)."""
    out = np.zeros((X.shape[0], n_labels), dtype=np.float32)
    out[:, model.classes_] = model.predict_proba(X)
    return out


class _SklearnClassifier:
    kind: ClassVar[str]

    def __init__(self, labels: Sequence[str], model, settings: dict):
        self.labels, self.model, self.settings = tuple(labels), model, dict(settings)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / SKLEARN_FILE, "wb") as fh:
            pickle.dump(self.model, fh)
        _write_kind(folder, self, self.settings)
        return folder

    @classmethod
    def load(cls, folder: str | Path):
        folder = Path(folder)
        doc = json.loads((folder / CLASSIFIER_FILE).read_text())
        with open(folder / SKLEARN_FILE, "rb") as fh:
            model = pickle.load(fh)  # noqa: S301 - a file this class wrote into the model bundle
        return cls(doc["labels"], model, doc.get("settings", {}))


class TfidfClassifier(_SklearnClassifier):
    """TF-IDF (word 1-2-grams and character 2-5-grams) and logistic regression."""

    kind: ClassVar[str] = TFIDF_LR

    @classmethod
    def train(
        cls, texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str], c: float = 10.0, seed: int = 0
    ) -> TfidfClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion, Pipeline

        features = FeatureUnion([
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, lowercase=True)),
        ])  # fmt: skip
        model = Pipeline([("tfidf", features), ("lr", _logistic(c, seed))])
        model.fit(list(texts), label_index(label_names, labels))
        return cls(label_names, model, {"c": c})

    def predict_and_embed(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.preprocessing import normalize

        features = self.model.named_steps["tfidf"].transform(list(texts))
        proba = _proba(self.model.named_steps["lr"], len(self.labels), features)
        return proba, normalize(features).toarray().astype(np.float32)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_and_embed(texts)[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_and_embed(texts)[1]


class FrozenEncoderClassifier(_SklearnClassifier):
    """Logistic regression on the pretrained encoder's sentence embeddings."""

    kind: ClassVar[str] = FROZEN_LR

    @classmethod
    def train(
        cls, cfg_text_encoder, texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str], c: float = 10.0, seed: int = 0
    ) -> FrozenEncoderClassifier:
        settings = {
            "c": c,
            "model_path": cfg_text_encoder.model_path,
            "max_length": cfg_text_encoder.max_length,
            "batch_size": cfg_text_encoder.batch_size,
        }
        model = _logistic(c, seed).fit(encode_texts(list(texts), cfg_text_encoder), label_index(label_names, labels))
        return cls(label_names, model, settings)

    def _encoder_cfg(self):
        from types import SimpleNamespace

        return SimpleNamespace(**{k: self.settings[k] for k in ("model_path", "max_length", "batch_size")})

    def predict_and_embed(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        emb = self.embed(texts)
        return _proba(self.model, len(self.labels), emb), emb

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_and_embed(texts)[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return encode_texts(list(texts), self._encoder_cfg())


# ---------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------


def _write_kind(folder: Path, classifier, settings: dict | None = None) -> None:
    doc = {"kind": classifier.kind, "labels": list(classifier.labels), "settings": settings or {}}
    (folder / CLASSIFIER_FILE).write_text(json.dumps(doc, indent=2))
