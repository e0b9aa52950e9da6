"""The TF-IDF baseline's regularisation chosen on the validation split (Ray Tune, :mod:`shoplake.train.tune`).

``fine_tuning.baseline_search`` names the values of ``fine_tuning.baseline_c`` to try;
each trial fits TF-IDF and logistic regression on the training texts and reports the
validation macro-F1; the best ``baseline_c`` is then fitted for the run. Test takes
no part.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from shoplake.config import Config
from shoplake.text import metrics as M
from shoplake.train.tune import SearchResult, search, with_settings

SECTION = "fine_tuning"


def _tfidf_trial(settings: dict, data: dict) -> Iterator[float]:
    from shoplake.text.classifier import TfidfClassifier

    cfg = with_settings(data["cfg"], SECTION, settings)
    classifier = TfidfClassifier.train(data["texts"], data["labels"], data["label_names"], cfg.fine_tuning.baseline_c, cfg.training.seed)
    predicted = np.asarray(classifier.labels)[classifier.predict_proba(data["valid_texts"]).argmax(axis=1)]
    yield M.macro_f1(np.asarray(data["valid_labels"]), predicted)


def search_baseline_c(
    cfg: Config, texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str], valid_texts: Sequence[str],
    valid_labels: Sequence[str], name: str,
) -> tuple[Config, SearchResult | None]:  # fmt: skip
    """``cfg`` with the TF-IDF baseline's best ``baseline_c`` on validation, and the search (None without one)."""
    space = cfg.fine_tuning.baseline_search
    if not space:
        return cfg, None
    data = {"cfg": cfg, "texts": list(texts), "labels": list(labels), "label_names": tuple(label_names),
            "valid_texts": list(valid_texts), "valid_labels": list(valid_labels)}  # fmt: skip
    result = search(cfg, name, _tfidf_trial, space, metric="macro-F1", mode="max", max_iterations=1, data=data)
    return with_settings(cfg, SECTION, result.best.settings), result
