"""The recommendation run's champion: chosen on validation, compared on test with the next of validation."""

from __future__ import annotations

import numpy as np
import pytest

from shoplake.evaluation import TEST, VALIDATION
from shoplake.recommend.evaluate import ALL, SliceMetrics
from shoplake.recommend.train import _champion


def window(per_user: dict[str, list[float]]) -> dict:
    return {m: {ALL: SliceMetrics({"ndcg@10": float(np.mean(v))}, len(v), np.array(v))} for m, v in per_user.items()}


def test_validation_chooses_and_test_only_reports(cfg):
    evaluated = {
        VALIDATION: window({"popularity": [0.3, 0.4, 0.5], "mf": [0.1, 0.1, 0.1], "sasrec": [0.2, 0.2, 0.2]}),
        TEST: window({"popularity": [0.2, 0.3, 0.4, 0.3], "mf": [0.9, 0.9, 0.8, 0.9], "sasrec": [0.1, 0.1, 0.2, 0.0]}),
    }
    champion, (other, diff), margins = _champion(cfg, evaluated)
    assert champion == "popularity"  # mf is far better on test, and that must not matter
    assert margins["popularity"].value == 0.0 and margins["mf"].verdict() == "loss"
    assert other == "sasrec"  # the next on validation, not the best on test
    assert diff.value == pytest.approx(0.3 - 0.1) and diff.excludes_zero() and diff.verdict() == "win"


def test_no_validation_serves_the_configured_model(cfg):
    champion, versus, margins = _champion(cfg, {VALIDATION: {}, TEST: window({"popularity": [0.1], "mf": [0.2]})})
    assert champion == cfg.recommender.main_model and versus is None and margins == {}
