"""The text runs: support intents and product categories, every model side by side, the best registered.

Both runs read one run date's partition of a gold text table and use its stable
``split`` column: models learn from ``train``, the champion and the thresholds are
chosen on ``validation`` and the reported figures come from ``test``.

* **Support** (:func:`shoplake.support.train.run_support`, ``gold.support_training``): the intents of
  ``support.out_of_scope_intents`` are never trained on; their messages are the
  out-of-scope test of the hand-off. The hand-off threshold of each model is chosen on
  validation (:func:`~shoplake.text.metrics.handoff_threshold`). The bundle
  also carries the answers: the train split's in-scope messages with a resolution,
  embedded by the champion.
* **Categorization** (:func:`shoplake.categorize.train.run_categorization`, ``gold.product_text``): the products
  with a category; validation and test products of a category no training product
  has are left out (no model could name it).

Every model of ``<task>.models`` is trained on the same rows: TF-IDF + logistic
regression, logistic regression on the frozen encoder's embeddings, and the encoder
fine-tuned with a classification head on Ray Train. Their accuracy and macro-F1 (and
for support the hand-off figures) on validation and test go to ``ops.model_metrics``
(task ``support`` or ``categorization``). The champion (best validation macro-F1) is
saved as a :class:`~shoplake.text.bundle.TextBundle` and registered in MLflow.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.config import Config
from shoplake.evaluation import Interval, bootstrap_statistic
from shoplake.lake.spec import TableSpec
from shoplake.text import metrics as M
from shoplake.text.bundle import TextBundle
from shoplake.text.classifier import FROZEN_LR, KINDS, TFIDF_LR
from shoplake.text.splits import TEST, TRAIN, VALIDATION
from shoplake.train.model_metrics import MODEL_METRICS, write_model_metrics

log = logging.getLogger(__name__)

#: The bounds of macro-F1's bootstrap interval, beside the metrics of each split.
MACRO_F1_LOW, MACRO_F1_HIGH = f"{M.MACRO_F1}_low", f"{M.MACRO_F1}_high"
#: 1 on the validation rows of the model the run served, 0 on the others'.
SERVED = "served"


class MissingTextTableError(LookupError):
    """The gold text table has no partition for the run date."""


class TooFewTextsError(ValueError):
    """The labelled texts cannot train and evaluate a classifier (fewer than two labels, an empty split)."""


@dataclass
class TextSplit:
    """The texts of one split: in scope (a label the models know) and out of scope (support only)."""

    name: str
    texts: list[str]
    labels: list[str]
    oos_texts: list[str] = field(default_factory=list)


@dataclass
class TextEvaluation:
    """One model's figures per split, its hand-off threshold (support) and the trained classifier."""

    model: str
    metrics: dict[str, dict[str, float]]
    threshold: float
    classifier: object
    seconds: float
    #: Fine-tuning only: training examples per second over all epochs and workers.
    examples_per_s: float | None = None
    losses: list[float] = field(default_factory=list)
    #: The predicted label of every in-scope text, per held-out split (for the paired comparisons).
    predicted: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class TextResult:
    """What a text run produced."""

    task: str
    run_date: dt.date
    labels: tuple[str, ...]
    evaluations: dict[str, TextEvaluation]
    champion: str
    bundle_path: str
    model_version: str | None
    mlflow_run_id: str | None
    metrics_version: int
    #: Per split: in-scope texts and out-of-scope texts.
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Why the champion is served over the best model of validation, when it is not that one.
    choice: str = ""
    #: What the run could not meet (the hand-off target, say), one line each.
    warnings: list[str] = field(default_factory=list)
    #: The true label of every in-scope text, per held-out split (aligned with ``predicted``).
    truth: dict[str, np.ndarray] = field(default_factory=dict)


def load_partition(lake, spec: TableSpec, run_date: dt.date | None) -> tuple[pa.Table, dt.date, int]:
    """``run_date``'s partition of a text table (default the latest), with the table's version.

    Raises:
        MissingTextTableError: No such partition.
    """
    dates = lake.run_dates(spec)
    if not dates:
        raise MissingTextTableError(f"{spec.full_name} does not exist or is empty in {lake.root}: build the features first")
    run_date = run_date or max(dates)
    if run_date not in dates:
        raise MissingTextTableError(f"{spec.full_name} has no run date {run_date} in {lake.root}")
    version = lake.version(spec)
    rows = lake.to_arrow(spec, run_date=run_date).sort_by([(spec.keys[0], "ascending")])
    return rows, run_date, version


def _column(rows: pa.Table, name: str) -> np.ndarray:
    return rows[name].to_numpy(zero_copy_only=False)


#: The share of the train rows that become validation when a table has none.
CARVED_VALIDATION_SHARE = 0.125


def carve_validation(splits: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """``splits`` with :data:`CARVED_VALIDATION_SHARE` of the train rows turned into validation.

    The sample is random (by ``seed``) and stratified by label where every label has
    two rows or more, so that a shop that gave only train and test still has a
    validation split to choose the champion and the thresholds on.
    """
    from sklearn.model_selection import train_test_split

    train = np.flatnonzero(splits == TRAIN)
    if len(train) < 2:
        return splits
    _, counts = np.unique(labels[train], return_counts=True)
    stratify = labels[train] if counts.min() >= 2 else None
    try:
        _, carved = train_test_split(train, test_size=CARVED_VALIDATION_SHARE, random_state=seed, stratify=stratify)
    except ValueError:  # more labels than validation rows: a plain random sample
        _, carved = train_test_split(train, test_size=CARVED_VALIDATION_SHARE, random_state=seed)
    out = splits.astype(object).copy()
    out[carved] = VALIDATION
    log.warning("no validation rows: %d of %d train rows carved out as validation", len(carved), len(train))
    return out


def text_splits(
    rows: pa.Table, label_column: str, out_of_scope: Sequence[str] = (), max_train_rows: int | None = None, seed: int = 0
) -> tuple[tuple[str, ...], dict[str, TextSplit]]:
    """The labels and the train, validation and test splits of labelled rows.

    Rows whose label is in ``out_of_scope`` never train; in validation and test they
    are the out-of-scope texts, and so are rows of a label no training row has. A
    table without validation rows gets them from train (:func:`carve_validation`).
    With ``max_train_rows``, a random sample (by ``seed``) of that many training rows
    is kept.

    Raises:
        TooFewTextsError: Fewer than two labels to learn, or an empty validation or test split.
    """
    rows = rows.filter(pc.is_valid(rows[label_column]))
    texts, labels, splits = _column(rows, C.TEXT), _column(rows, label_column), _column(rows, C.SPLIT)
    if not (splits == VALIDATION).any():
        splits = carve_validation(splits, labels, seed)
    excluded = np.isin(labels, list(out_of_scope))
    train = np.flatnonzero((splits == TRAIN) & ~excluded)
    if max_train_rows is not None and len(train) > max_train_rows:
        train = np.sort(np.random.default_rng(seed).choice(train, max_train_rows, replace=False))
    known = tuple(sorted(set(labels[train].tolist())))
    if len(known) < 2:
        raise TooFewTextsError(f"{len(train)} training texts with {len(known)} label(s): a classifier needs at least two labels")
    out = {TRAIN: TextSplit(TRAIN, texts[train].tolist(), labels[train].tolist())}
    for name in (VALIDATION, TEST):
        in_split = splits == name
        scope = in_split & np.isin(labels, known) & ~excluded
        out[name] = TextSplit(name, texts[scope].tolist(), labels[scope].tolist(), texts[in_split & ~scope].tolist())
        if not out[name].texts:
            raise TooFewTextsError(f"the {name} split has no texts of the {len(known)} trained labels: the table needs more labelled rows")
    return known, out


def _train(cfg: Config, model: str, splits: dict[str, TextSplit], labels: tuple[str, ...], name: str, typo_rate: float):
    from shoplake.text.classifier import FrozenEncoderClassifier, TfidfClassifier
    from shoplake.text.fine_tune import train_fine_tuned
    from shoplake.text.tuning import search_baseline_c

    split, valid = splits[TRAIN], splits[VALIDATION]
    if model == TFIDF_LR:
        cfg, searched = search_baseline_c(cfg, split.texts, split.labels, labels, valid.texts, valid.labels, f"{name}_{model}_search")
        if searched is not None:
            log.info("%s", searched.summary())
    c, seed = cfg.fine_tuning.baseline_c, cfg.training.seed
    if model == TFIDF_LR:
        return TfidfClassifier.train(split.texts, split.labels, labels, c, seed), None
    if model == FROZEN_LR:
        return FrozenEncoderClassifier.train(cfg.text_encoder, split.texts, split.labels, labels, c, seed), None
    return train_fine_tuned(cfg, split.texts, split.labels, labels, f"{name}_{model}", typo_rate=typo_rate)


def evaluate(
    classifier, splits: dict[str, TextSplit], min_answered: float | None, min_handoff: float | None = None, evaluation=None
) -> tuple[dict[str, dict[str, float]], float, dict[str, np.ndarray]]:
    """Accuracy and macro-F1 on validation and test; with ``min_answered`` also the hand-off figures.

    Macro-F1 carries its bootstrap interval over the texts (``macro_f1_low``,
    ``macro_f1_high``; settings from ``evaluation``, the ``evaluation`` config section).

    Returns:
        ``(metrics by split, threshold, predictions by split)``; the threshold is
        chosen on validation (:func:`~shoplake.text.metrics.handoff_threshold`; 0
        without ``min_answered``).
    """
    from shoplake.config import EvaluationConfig

    ev = evaluation or EvaluationConfig()
    scored = {}
    for name in (VALIDATION, TEST):
        s = splits[name]
        proba = classifier.predict_proba(s.texts)
        predicted = np.asarray(classifier.labels)[proba.argmax(axis=1)]
        oos_conf = classifier.predict_proba(s.oos_texts).max(axis=1) if s.oos_texts else np.zeros(0)
        scored[name] = (predicted, proba.max(axis=1), oos_conf)
    valid = scored[VALIDATION]
    threshold = M.handoff_threshold(valid[1], min_answered, valid[2], min_handoff) if min_answered is not None else 0.0
    metrics = {}
    for name, (predicted, conf, oos_conf) in scored.items():
        truth = np.asarray(splits[name].labels)
        f1 = bootstrap_statistic(M.macro_f1, truth, predicted, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)
        figures = {M.ACCURACY: M.accuracy(truth, predicted), M.MACRO_F1: f1.value, MACRO_F1_LOW: f1.low, MACRO_F1_HIGH: f1.high}
        if min_answered is not None:
            figures.update(M.handoff_metrics(conf, predicted == truth, oos_conf, threshold))
            figures[M.HANDOFF_THRESHOLD] = threshold
        metrics[name] = figures
    return metrics, threshold, {name: predicted for name, (predicted, _, _) in scored.items()}


def metrics_rows(result: TextResult, evaluated_at: dt.datetime) -> pa.Table:
    """The ``ops.model_metrics`` rows of a text run: every model, validation and test, every figure."""
    rows = []
    for model, ev in result.evaluations.items():
        for split, figures in ev.metrics.items():
            for metric, value in figures.items():
                rows.append({
                    C.RUN_DATE: result.run_date, C.TASK: result.task, C.CUTOFF_DATE: result.run_date, C.MODEL_NAME: model,
                    C.MLFLOW_RUN_ID: result.mlflow_run_id, C.SLICE: split, C.METRIC: metric,
                    C.VALUE: None if not np.isfinite(value) else float(value), C.N_EVALUATED: result.sizes[split][0],
                    C.EVALUATED_AT: evaluated_at,
                })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=MODEL_METRICS.arrow_schema())


def macro_f1_difference(truth: np.ndarray, a: np.ndarray, b: np.ndarray, evaluation) -> Interval:
    """Macro-F1 of predictions ``a`` minus that of ``b`` on the same texts, with its bootstrap interval."""
    ev = evaluation
    return bootstrap_statistic(lambda t, x, y: M.macro_f1(t, x) - M.macro_f1(t, y), truth, a, b,
                               draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)  # fmt: skip


def choose_champion(evaluation, evaluations: dict[str, TextEvaluation], valid_truth: np.ndarray) -> tuple[str, str]:
    """The model to serve, and why when it is not the best of validation.

    The best validation macro-F1 wins only when it beats every cheaper model (TF-IDF
    before the frozen encoder before fine-tuning) by more than noise: the bootstrap
    interval of the paired macro-F1 difference on the validation texts must exclude
    zero. Otherwise the cheapest model within noise of it is served. ``evaluation``
    is the ``evaluation`` config section (bootstrap draws, level, seed).
    """
    ev = evaluation
    cost = {kind: n for n, kind in enumerate(KINDS)}

    def f1(model: str) -> float:
        return np.nan_to_num(evaluations[model].metrics[VALIDATION][M.MACRO_F1], nan=-1.0)

    best = max(evaluations, key=f1)
    for cheaper in sorted((m for m in evaluations if cost.get(m, 99) < cost.get(best, 99)), key=lambda m: cost.get(m, 99)):
        a, b = evaluations[best].predicted.get(VALIDATION), evaluations[cheaper].predicted.get(VALIDATION)
        if a is None or b is None:
            continue
        diff = macro_f1_difference(valid_truth, a, b, ev)
        if diff.verdict() != "win":
            return cheaper, (f"{cheaper} is served: {best}'s validation macro-F1 {f1(best):.3f} against its {f1(cheaper):.3f} "
                             f"is within noise (difference {diff})")  # fmt: skip
    return best, ""


def _handoff_warnings(task: TextTask, champion: TextEvaluation) -> list[str]:
    """The hand-off targets the champion misses on validation, one line each."""
    if task.min_handoff is None:
        return []
    handed = champion.metrics[VALIDATION].get(M.HANDOFF_OUT_OF_SCOPE, math.nan)
    if math.isnan(handed) or handed >= task.min_handoff:
        return []
    return [
        f"{champion.model} hands {handed:.1%} of the out-of-scope validation messages to a person, short of "
        f"min_handoff {task.min_handoff:.0%}: a higher threshold would answer fewer than min_answered "
        f"{task.min_answered:.0%} of the in-scope ones; more labelled messages or a stronger model would close the gap"
    ]


@dataclass(frozen=True)
class TextTask:
    """What a use case's text run is about; :func:`run_text_task` does the rest.

    Attributes:
        name: The bundle's task (``support``, ``categorization``).
        metrics_task: Its ``task`` in ``ops.model_metrics``.
        spec: The gold table of labelled texts (``text``, ``split`` and the label column).
        label_column: The column to learn.
        settings: The use case's config section: ``models``, ``typo_rate``, ``registered_model``.
        out_of_scope: Labels never trained on; their texts are the out-of-scope test of the hand-off.
        max_train_rows: Train on a random sample of at most this many rows.
        min_answered: With a hand-off: the share of in-scope validation texts the threshold must still answer.
        min_handoff: With a hand-off: the share of out-of-scope validation texts it should hand off.
        fixed_threshold: Without a hand-off: the threshold the bundle carries.
        attach: Builds what the bundle carries besides the classifier (the answers), from the
            champion, the table's rows and the labels; ``None`` for nothing.
    """

    name: str
    metrics_task: str
    spec: TableSpec
    label_column: str
    settings: Any
    out_of_scope: tuple[str, ...] = ()
    max_train_rows: int | None = None
    min_answered: float | None = None
    min_handoff: float | None = None
    fixed_threshold: float = 0.0
    attach: Callable[[Any, pa.Table, tuple[str, ...]], Any] | None = None


def run_text_task(
    cfg: Config,
    lake,
    task: TextTask,
    run_date: dt.date | None,
    name: str | None,
    register: bool,
    on_step: Callable[[str], None] | None,
) -> TextResult:
    """Train every model of ``task.settings.models`` on one run date's texts, compare them and register the champion.

    Raises:
        MissingTextTableError: No partition of ``task.spec`` for the run date.
        TooFewTextsError: Too few labelled texts.
    """
    tc, spec = task.settings, task.spec
    step = on_step or (lambda text: log.info("%s", text))
    step(f"reading {spec.full_name}")
    rows, run_date, version = load_partition(lake, spec, run_date)
    labels, splits = text_splits(rows, task.label_column, task.out_of_scope, task.max_train_rows, cfg.training.seed)
    sizes = {s.name: (len(s.texts), len(s.oos_texts)) for s in splits.values()}
    log.info("%s for %s: %d labels; %s", task.name, run_date, len(labels), sizes)
    name = name or f"{task.name}_{run_date.isoformat()}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"

    evaluations: dict[str, TextEvaluation] = {}
    for model in tc.models:
        step(f"{model}: training on {len(splits[TRAIN].texts):,} texts")
        started = time.monotonic()
        classifier, fitted = _train(cfg, model, splits, labels, name, tc.typo_rate)
        trained_s = time.monotonic() - started
        step(f"{model}: evaluating")
        metrics, threshold, predicted = evaluate(classifier, splits, task.min_answered, task.min_handoff, cfg.evaluation)
        ev = TextEvaluation(model, metrics, threshold, classifier, time.monotonic() - started, predicted=predicted)
        if fitted is not None:
            ev.losses = fitted.losses
            examples = sum(h["examples"] for h in fitted.history)
            ev.examples_per_s = examples / max(sum(h["seconds"] for h in fitted.history), 1e-9)
        evaluations[model] = ev
        log.info("%s %s (trained in %.1f s): %s", task.name, model, trained_s, metrics)

    champion, choice = choose_champion(cfg.evaluation, evaluations, np.asarray(splits[VALIDATION].labels))
    best = evaluations[champion]
    for m, ev in evaluations.items():
        ev.metrics[VALIDATION][SERVED] = float(m == champion)
    warnings = _handoff_warnings(task, best)
    for line in [choice, *warnings]:
        if line:
            log.warning("%s: %s", task.name, line)
    flat = {f"{m}.{s}.{k}": v for m, ev in evaluations.items() for s, f in ev.metrics.items() for k, v in f.items() if np.isfinite(v)}
    for m, ev in evaluations.items():
        if ev.examples_per_s is not None:
            flat[f"{m}.train.examples_per_s"] = ev.examples_per_s
    table_versions = {f"{spec.full_name}@{run_date}": version}
    answers = None
    if task.attach is not None:
        step(f"{champion}: embedding the answers")
        answers = task.attach(best.classifier, rows, labels)
    threshold = best.threshold if task.min_answered is not None else task.fixed_threshold
    info = {"model_name": champion, "run_date": run_date.isoformat(), "table_versions": table_versions, "metrics": flat,
            "out_of_scope_intents": list(task.out_of_scope)}  # fmt: skip
    step(f"champion {champion}: saving the bundle")
    bundle_path = TextBundle(task.name, best.classifier, threshold, answers, info).save(Path(cfg.runs_dir, task.name, name, "bundle"))

    model_version = run_id = None
    if register:
        from shoplake.registry import log_model

        step(f"registering {champion} in MLflow")
        params = {"champion": champion, "labels": len(labels), "threshold": threshold, **tc.model_dump(),
                  "fine_tuning": cfg.fine_tuning.model_dump(), "text_encoder": cfg.text_encoder.model_dump()}  # fmt: skip
        info_v = log_model(
            cfg, bundle_path, model_name=champion, params=params, metrics=flat, table_versions=table_versions,
            run_date=run_date, set_serving=True, run_name=name, registered_model=tc.registered_model,
        )  # fmt: skip
        model_version, run_id = info_v.version, info_v.run_id

    step("writing ops.model_metrics")
    result = TextResult(
        task.name, run_date, labels, evaluations, champion, str(bundle_path), model_version, run_id, -1, sizes, choice, warnings,
        {name: np.asarray(splits[name].labels) for name in (VALIDATION, TEST)},
    )  # fmt: skip
    rows_out = metrics_rows(result, dt.datetime.now(dt.timezone.utc))
    result.metrics_version = write_model_metrics(cfg, lake, rows_out, task.metrics_task, run_date).version
    return result
