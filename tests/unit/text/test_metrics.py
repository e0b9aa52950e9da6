"""Accuracy, macro-F1, the hand-off threshold and the splits of the text runs, on hand-made values."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.config import EvaluationConfig
from shoplake.text import metrics as M
from shoplake.text.run import TextEvaluation, TextTask, TooFewTextsError, _handoff_warnings, choose_champion, text_splits


def test_macro_f1_by_hand():
    y = np.array(["a", "a", "b", "b", "c"])
    p = np.array(["a", "b", "b", "b", "a"])
    # a: tp 1, predicted 2, true 2 -> 0.5; b: tp 2, predicted 3, true 2 -> 0.8; c: 0.
    assert M.macro_f1(y, p) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert M.accuracy(y, p) == pytest.approx(0.6)


def test_a_label_only_predicted_counts_against_macro_f1():
    assert M.macro_f1(np.array(["a", "a"]), np.array(["a", "z"])) == pytest.approx((2 / 3 + 0.0) / 2)
    assert math.isnan(M.macro_f1(np.array([]), np.array([])))


def test_the_threshold_is_the_highest_that_answers_the_share_asked():
    conf = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert M.handoff_threshold(conf, 0.9) == pytest.approx(0.3)  # 9 of 10 answered
    assert M.handoff_threshold(conf, 0.85) == pytest.approx(0.3)  # 8.5 -> 9 needed
    assert M.handoff_threshold(conf, 0.5) == pytest.approx(0.7)
    assert M.handoff_threshold(conf, 1.0) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no in-scope"):
        M.handoff_threshold(np.array([]), 0.9)


def test_with_out_of_scope_messages_the_threshold_is_the_lowest_that_hands_enough_of_them_off():
    conf = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    oos = np.array([0.2, 0.3, 0.4, 0.45, 0.55, 0.6, 0.65, 0.7, 0.75, 0.95])
    # 9 of 10 out-of-scope must go to a person: just above 0.75; 7 of 10 in-scope are then answered.
    t = M.handoff_threshold(conf, 0.5, oos, 0.9)
    assert 0.75 < t < 0.7500001
    figures = M.handoff_metrics(conf, np.ones(10, bool), oos, t)
    assert figures[M.HANDOFF_OUT_OF_SCOPE] == 0.9 and figures[M.ANSWERED_IN_SCOPE] == 0.7
    # The answer rate wins: 9 of 10 in-scope answered caps the threshold at 0.6.
    assert M.handoff_threshold(conf, 0.9, oos, 0.9) == pytest.approx(0.6)
    # Without out-of-scope messages (or without min_handoff), the answer rate alone decides.
    assert M.handoff_threshold(conf, 0.5, np.array([]), 0.9) == pytest.approx(0.95)
    assert M.handoff_threshold(conf, 0.5, oos) == pytest.approx(0.95)
    with pytest.raises(ValueError, match="min_handoff"):
        M.handoff_threshold(conf, 0.5, oos, 1.5)


def test_handoff_figures_by_hand():
    figures = M.handoff_metrics(
        np.array([0.9, 0.8, 0.4, 0.95]), np.array([True, False, True, True]), np.array([0.3, 0.85, 0.1]), threshold=0.5
    )
    assert figures == {M.ANSWERED_IN_SCOPE: 0.75, M.ANSWERED_ACCURACY: pytest.approx(2 / 3), M.HANDOFF_OUT_OF_SCOPE: pytest.approx(2 / 3)}
    assert math.isnan(M.handoff_metrics(np.array([0.9]), np.array([True]), np.array([]), 0.5)[M.HANDOFF_OUT_OF_SCOPE])


def _rows(spec: list[tuple[str, str | None, str]]) -> pa.Table:
    return pa.table({C.TEXT: [f"text {n}" for n in range(len(spec))], C.INTENT: [s[1] for s in spec], C.SPLIT: [s[2] for s in spec]})


def test_out_of_scope_intents_never_train_and_unknown_labels_are_out_of_scope():
    rows = _rows([
        ("", "cancel", "train"), ("", "track", "train"), ("", "complaint", "train"), ("", None, "train"),
        ("", "cancel", "validation"), ("", "complaint", "validation"), ("", "refund", "validation"),
        ("", "track", "test"), ("", "complaint", "test"),
    ])  # fmt: skip
    labels, splits = text_splits(rows, C.INTENT, ["complaint"])
    assert labels == ("cancel", "track")
    assert splits["train"].texts == ["text 0", "text 1"]
    assert splits["validation"].labels == ["cancel"] and splits["validation"].oos_texts == ["text 5", "text 6"]
    assert splits["test"].texts == ["text 7"] and splits["test"].oos_texts == ["text 8"]


def test_too_few_labels_or_an_empty_split_is_an_error():
    with pytest.raises(TooFewTextsError, match="1 label"):
        text_splits(_rows([("", "a", "train"), ("", "a", "validation"), ("", "a", "test")]), C.INTENT)
    with pytest.raises(TooFewTextsError, match="the test split"):
        text_splits(_rows([("", "a", "train"), ("", "b", "train"), ("", "a", "validation")]), C.INTENT)


def test_a_training_sample_is_random_but_repeatable():
    rows = _rows([("", "ab"[n % 2], "train") for n in range(20)] + [("", "a", "validation"), ("", "b", "test")])
    _, first = text_splits(rows, C.INTENT, max_train_rows=6, seed=3)
    _, again = text_splits(rows, C.INTENT, max_train_rows=6, seed=3)
    assert len(first["train"].texts) == 6 and first["train"].texts == again["train"].texts
    assert first["train"].texts != [f"text {n}" for n in range(6)]


def test_a_table_without_validation_rows_gets_them_from_train():
    rows = _rows([("", "ab"[n % 2], "train") for n in range(40)] + [("", "a", "test"), ("", "b", "test")])
    labels, splits = text_splits(rows, C.INTENT, seed=1)
    assert labels == ("a", "b")
    assert len(splits["validation"].texts) == 5 and len(splits["train"].texts) == 35
    assert set(splits["validation"].labels) == {"a", "b"}  # stratified by label
    assert not set(splits["validation"].texts) & set(splits["train"].texts)
    assert text_splits(rows, C.INTENT, seed=1)[1]["validation"].texts == splits["validation"].texts


def _evaluation(model: str, truth: np.ndarray, wrong: int, handed: float = 0.95, last: bool = False) -> TextEvaluation:
    """Right on every text but ``wrong`` of them: the first ones, or the ``last``."""
    predicted = truth.copy()
    where = slice(len(truth) - wrong, None) if last else slice(0, wrong)
    predicted[where] = np.where(truth[where] == "a", "b", "a")
    metrics = {"validation": {M.MACRO_F1: M.macro_f1(truth, predicted), M.HANDOFF_OUT_OF_SCOPE: handed}, "test": {}}
    return TextEvaluation(model, metrics, 0.5, None, 1.0, predicted={"validation": predicted})


def test_the_encoder_is_served_only_when_it_beats_the_cheaper_models_beyond_noise():
    cfg = EvaluationConfig()
    truth = np.array(["ab"[n % 2] for n in range(400)])
    close = {"tfidf_lr": _evaluation("tfidf_lr", truth, 40), "fine_tuned": _evaluation("fine_tuned", truth, 36, last=True)}
    champion, why = choose_champion(cfg, close, truth)
    assert champion == "tfidf_lr" and "fine_tuned's validation macro-F1" in why and "within noise" in why
    clear = {"tfidf_lr": _evaluation("tfidf_lr", truth, 120), "fine_tuned": _evaluation("fine_tuned", truth, 10)}
    assert choose_champion(cfg, clear, truth) == ("fine_tuned", "")
    # The cheapest model is the best: served, nothing to explain.
    assert choose_champion(cfg, {"tfidf_lr": clear["fine_tuned"], "frozen_lr": clear["tfidf_lr"]}, truth)[0] == "tfidf_lr"


def test_a_missed_handoff_target_is_a_warning():
    truth = np.array(["a", "b"] * 10)
    task = TextTask("support", "support", None, C.INTENT, None, min_answered=0.93, min_handoff=0.9)
    assert _handoff_warnings(task, _evaluation("tfidf_lr", truth, 0, handed=0.95)) == []
    (line,) = _handoff_warnings(task, _evaluation("tfidf_lr", truth, 0, handed=0.836))
    assert line.startswith("tfidf_lr hands 83.6% of the out-of-scope validation messages") and "min_handoff 90%" in line
    assert _handoff_warnings(TextTask("categorization", "c", None, C.CATEGORY, None), _evaluation("x", truth, 0, handed=0.1)) == []
