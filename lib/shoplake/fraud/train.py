"""The fraud run: time-split matured payments, train and compare the models, register the champion.

For a run date D the run reads D's partition of ``gold.txn_features`` and keeps the
matured payments (a label that is final, see :mod:`shoplake.fraud.schemas`), with the
built-in features and those of the shop's own payment fields
(:func:`~shoplake.fraud.declarations.configured_features`). With ``fraud.feature_table``
the rows come from the shop's own labelled table instead, or gain its features by
payment id (:mod:`shoplake.fraud.feature_table`; :func:`~shoplake.fraud.dataset.training_data`). Ordered by
payment time they are split on day boundaries into training (oldest), validation and
test (newest) (:func:`~shoplake.fraud.dataset.time_split`), so every model is judged on payments made after
everything it learnt from. From the lake the driver makes that cut from per-day counts and loads
only the validation and test splits; the gradient-boosted trees' workers read the training split
as Ray Dataset shards, and the training rows come into the driver only for the tabular network and
the settings searches (:mod:`shoplake.fraud.splits`).

Every model of ``fraud.models`` is scored side by side: the rules baseline (amount and
velocity thresholds), gradient-boosted trees (XGBoost on Ray Train) and the tabular
network (PyTorch on Ray Train). Each model gets its review threshold from the
expected cost on validation (:func:`~shoplake.fraud.metrics.cost_threshold`)
and its decline threshold from the validation precision
(:func:`~shoplake.fraud.metrics.decline_threshold`). The champion is the
model with the best validation PR-AUC, the rules included; it is saved as a
:class:`~shoplake.fraud.bundle.FraudBundle` with its thresholds, registered in MLflow
with both models' metrics, and every model's validation and test metrics go to
``ops.model_metrics`` (task ``fraud``). A precision-recall picture of the test split
is written beside the bundle.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.config import Config
from shoplake.evaluation import TEST, VALIDATION, Interval, best_other, bootstrap_statistic
from shoplake.fraud import metrics as M
from shoplake.fraud.dataset import Split, TooFewLabelsError
from shoplake.fraud.declarations import payment_extras
from shoplake.fraud.feature_table import ALONE, KEY, SOURCE_TABLE
from shoplake.fraud.models.base import GBT, RULES, RULES_AMOUNT_FEATURE, RULES_VELOCITY_FEATURES, TABULAR_NN
from shoplake.fraud.schemas import TASK_FRAUD, TXN_FEATURES
from shoplake.train.model_metrics import MODEL_METRICS, write_model_metrics

log = logging.getLogger(__name__)

TRAINED = (GBT, TABULAR_NN)
#: The bounds of the PR-AUC's bootstrap interval, beside the metrics of each split.
PR_AUC_LOW, PR_AUC_HIGH = f"{M.PR_AUC}_low", f"{M.PR_AUC}_high"


def rules_missing(feature_names: Sequence[str]) -> list[str]:
    """The features the rules baseline needs that ``feature_names`` lack."""
    return [n for n in (RULES_AMOUNT_FEATURE, *RULES_VELOCITY_FEATURES) if n not in feature_names]


@dataclass
class ModelEvaluation:
    """One model's scores and metrics on validation and test, and its thresholds from validation."""

    model: str
    review_threshold: float
    decline_threshold: float
    metrics: dict[str, dict[str, float]]
    test_scores: np.ndarray
    fitted: object | None = None
    seconds: float = 0.0


@dataclass
class FraudResult:
    """What a fraud run produced."""

    run_date: dt.date
    evaluations: dict[str, ModelEvaluation]
    champion: str
    bundle_path: str
    model_version: str | None
    mlflow_run_id: str | None
    metrics_version: int
    #: Per split (train, validation, test): payments, frauds, first payment day.
    splits: dict[str, tuple[int, int, dt.date]] = field(default_factory=dict)
    chart_path: str | None = None
    #: The test split the evaluations' ``test_scores`` are aligned with.
    test: Split | None = None
    #: The best other model of validation and the champion's test PR-AUC minus its, with the interval.
    versus: tuple[str, Interval] | None = None

    def pr_auc(self, model: str, split: str = TEST) -> float:
        return self.evaluations[model].metrics[split][M.PR_AUC]

    def versus_line(self) -> str | None:
        """The champion against the best other model of validation (the rules included), on test."""
        if self.versus is None:
            return None
        other, diff = self.versus
        return (f"test PR-AUC: {self.champion} {self.pr_auc(self.champion):.4f} vs {other} {self.pr_auc(other):.4f}, "
                f"difference {diff} (95 % interval): {diff.verdict()}")  # fmt: skip


def _pr_auc_interval(cfg: Config, y: np.ndarray, scores: np.ndarray) -> Interval:
    ev = cfg.evaluation
    return bootstrap_statistic(M.average_precision, y, scores, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)


def _evaluate(cfg: Config, model: str, valid_scores: np.ndarray, test_scores: np.ndarray, valid: Split, test: Split) -> ModelEvaluation:
    fc = cfg.fraud
    review, _ = M.cost_threshold(valid.y, valid_scores, valid.amounts, fc.review_cost, fc.chargeback_fee)
    decline = M.decline_threshold(valid.y, valid_scores, fc.decline_precision, review)
    metrics = {
        split.name: M.evaluate(
            split.y,
            scores,
            split.days,
            split.amounts,
            review_threshold=review,
            capacity=fc.review_capacity_per_day,
            review_cost=fc.review_cost,
            chargeback_fee=fc.chargeback_fee,
        )  # fmt: skip
        for split, scores in ((valid, valid_scores), (test, test_scores))
    }
    for split, scores in ((valid, valid_scores), (test, test_scores)):
        interval = _pr_auc_interval(cfg, split.y, scores)
        metrics[split.name].update({PR_AUC_LOW: interval.low, PR_AUC_HIGH: interval.high})
    return ModelEvaluation(model, float(review), float(decline), metrics, test_scores)


def metrics_rows(result: FraudResult, mlflow_run_id: str | None, evaluated_at: dt.datetime) -> pa.Table:
    """The ``ops.model_metrics`` rows of a fraud run: every model, both held-out splits, every metric."""
    rows = []
    for model, ev in result.evaluations.items():
        for name, figures in ev.metrics.items():
            payments, _, first_day = result.splits[name]
            extra = {"review_threshold": ev.review_threshold, "decline_threshold": ev.decline_threshold}
            for metric, value in {**figures, **extra}.items():
                value = float(value)
                rows.append({
                    C.RUN_DATE: result.run_date, C.TASK: TASK_FRAUD, C.CUTOFF_DATE: first_day, C.MODEL_NAME: model,
                    C.MLFLOW_RUN_ID: mlflow_run_id, C.SLICE: name, C.METRIC: metric,
                    C.VALUE: None if not np.isfinite(value) else value, C.N_EVALUATED: payments,
                    C.EVALUATED_AT: evaluated_at,
                })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=MODEL_METRICS.arrow_schema())


def _champion(evaluations: dict[str, ModelEvaluation]) -> str:
    """The model with the best validation PR-AUC, the rules baseline included (ties go to the first listed)."""
    return max(evaluations, key=lambda m: np.nan_to_num(evaluations[m].metrics[VALIDATION][M.PR_AUC], nan=-1.0))


def _versus(cfg: Config, evaluations: dict[str, ModelEvaluation], champion: str, test: Split) -> tuple[str, Interval] | None:
    """The best other model of validation and the paired difference of test PR-AUC, champion minus it."""
    scores = {m: ev.metrics[VALIDATION][M.PR_AUC] for m, ev in evaluations.items()}
    other = best_other(scores, champion)
    if other is None:
        return None
    ev = cfg.evaluation

    def difference(y, a, b) -> float:
        return M.average_precision(y, a) - M.average_precision(y, b)

    a, b = evaluations[champion].test_scores, evaluations[other].test_scores
    return other, bootstrap_statistic(difference, test.y, a, b, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)


def run_fraud(
    cfg: Config,
    lake,
    run_date: dt.date | None = None,
    *,
    name: str | None = None,
    register: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> FraudResult:
    """Train, compare and register the fraud models on ``run_date``'s matured payments.

    Args:
        cfg: ``fraud`` (split shares, models, costs, capacity, registry name, the shop's
            own feature table), ``landing.extra_fields`` (the shop's own payment
            fields), ``ray``, ``training``.
        lake: The lake with ``gold.txn_features`` of ``run_date`` (not read with a
            ``fraud.feature_table`` in ``alone`` mode).
        run_date: Default the latest partition (``alone``: the day after the table's newest payment).
        name: Prefix of the run's folders (default ``fraud_<run_date>_<UTC time>``).
        register: Log the champion to MLflow and point the serving alias at it.
        on_step: Called with a short description as each step starts.

    Raises:
        MissingTxnFeaturesError: No features for the run date.
        TooFewLabelsError: Too few matured payments or fraud labels to train and validate.
        shoplake.fraud.feature_table.FeatureTableError: ``fraud.feature_table`` cannot be read as configured.
    """
    from shoplake.fraud.bundle import FraudBundle
    from shoplake.fraud.chart import write_pr_chart
    from shoplake.fraud.models.base import RulesModel
    from shoplake.fraud.models.gbt import train_gbt_datasets
    from shoplake.fraud.models.tabular import train_tabular_nn
    from shoplake.fraud.splits import fraud_splits
    from shoplake.fraud.tuning import search_settings, searched_space

    fc = cfg.fraud
    step = on_step or (lambda text: log.info("%s", text))
    step(f"reading {KEY if fc.feature_table is not None and fc.feature_table.mode == ALONE else TXN_FEATURES.full_name}")
    data = fraud_splits(cfg, lake, run_date)
    run_date, names, valid, test = data.run_date, data.feature_names, data.valid, data.test
    log.info(
        "fraud for %s from %s, %d features: %s", run_date, data.what, len(names),
        ", ".join(f"{s} {n:,} payments from {first} ({f} fraud)" for s, (n, f, first) in data.sizes.items()),
    )  # fmt: skip
    name = name or f"fraud_{run_date.isoformat()}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
    evaluations: dict[str, ModelEvaluation] = {}
    searches: dict[str, dict] = {}
    for model in fc.models:
        if model == RULES and rules_missing(names):
            log.warning("rules baseline skipped: %s has no %s", data.what, ", ".join(rules_missing(names)))
            continue
        step(f"{model}: training" if model in TRAINED else f"{model}: scoring")
        started = dt.datetime.now(dt.timezone.utc)
        fitted = None
        if model == RULES:
            fitted = RulesModel(names, fc.rules_amount, fc.rules_velocity_1h)
        else:
            model_cfg, searched = cfg, None
            if searched_space(cfg, model):
                train = data.train
                model_cfg, searched = search_settings(cfg, model, train.X, train.y, valid.X, valid.y, names, f"{name}_{model}_search")
            if searched is not None:
                step(f"{model}: {searched.summary()}")
                searches[model] = {"settings": searched.best.settings, "trials": len(searched.trials),
                                   "stopped_early": searched.stopped_early, "best_valid_pr_auc": searched.best.best_score}  # fmt: skip
            if model == GBT:
                fitted = train_gbt_datasets(model_cfg, data.datasets(model_cfg), f"{name}_{model}", feature_names=names)
            else:
                train = data.train
                fitted = train_tabular_nn(model_cfg, train.X, train.y, valid.X, valid.y, f"{name}_{model}", feature_names=names)
        ev = _evaluate(cfg, model, fitted.predict(valid.X), fitted.predict(test.X), valid, test)
        ev.fitted, ev.seconds = fitted, (dt.datetime.now(dt.timezone.utc) - started).total_seconds()
        evaluations[model] = ev
        log.info("%s: %s", model, {s: {k: round(v, 4) for k, v in f.items()} for s, f in ev.metrics.items()})

    if not evaluations:
        raise TooFewLabelsError(f"no model of fraud.models ({', '.join(fc.models)}) can read the features of {data.what}")
    champion = _champion(evaluations)
    best = evaluations[champion]
    versus = _versus(cfg, evaluations, champion, test)
    step(f"champion {champion}: saving the bundle")
    table_versions = data.table_versions
    flat = {f"{model}.{s}.{metric}": value for model, ev in evaluations.items()
            for s, figures in ev.metrics.items() for metric, value in figures.items()}  # fmt: skip
    bundle = FraudBundle(
        best.fitted, list(names), best.review_threshold, best.decline_threshold,
        {"model_name": champion, "run_date": run_date.isoformat(), "table_versions": table_versions,
         "feature_source": data.source, "extra_fields": [f.name for f in payment_extras(cfg)] if data.source != SOURCE_TABLE else [],
         "feature_table": data.table, "searched_settings": searches,
         "metrics": {k: v for k, v in flat.items() if np.isfinite(v)}},
    )  # fmt: skip
    run_folder = Path(cfg.runs_dir, "fraud", name)
    bundle_path = bundle.save(run_folder / "bundle")
    curves, points = {}, {}
    for model, ev in evaluations.items():
        precision, recall, _ = M.pr_curve(test.y, ev.test_scores)
        curves[f"{model} (PR-AUC {ev.metrics[TEST][M.PR_AUC]:.3f})"] = (precision, recall)
        reviewed = ev.test_scores >= ev.review_threshold
        if reviewed.any() and test.frauds:
            points[f"{model} review"] = (float(test.y[reviewed].mean()), float(test.y[reviewed].sum() / test.frauds))
    chart = write_pr_chart(
        run_folder, curves, f"Fraud precision-recall on the test split ({len(test.y):,} payments, {test.frauds} fraud)",
        subtitle=f"payments from {test.first_day} to {dt.date.fromisoformat(str(test.days.max()))}; champion: {champion}; "
        "dots: each model's review threshold",
        points=points, fraud_rate=float(test.y.mean()),
    )  # fmt: skip

    model_version = run_id = None
    if register:
        from shoplake.registry import log_model

        step(f"registering {champion} in MLflow")
        params = {"champion": champion, "models": ",".join(fc.models), "review_threshold": best.review_threshold,
                  "decline_threshold": best.decline_threshold, "feature_source": data.source, "features": len(names),
                  **fc.model_dump(exclude={"models", "fraud_reason_codes", "feature_table"})}  # fmt: skip
        info = log_model(
            cfg, bundle_path, model_name=champion, params=params,
            metrics={k: v for k, v in flat.items() if np.isfinite(v)}, table_versions=table_versions,
            run_date=run_date, set_serving=True, run_name=name, registered_model=fc.registered_model,
            extra_artifacts={"pr_curve": str(chart)},
        )  # fmt: skip
        model_version, run_id = info.version, info.run_id

    step("writing ops.model_metrics")
    result = FraudResult(
        run_date=run_date, evaluations=evaluations, champion=champion, bundle_path=str(bundle_path),
        model_version=model_version, mlflow_run_id=run_id, metrics_version=-1,
        splits=dict(data.sizes), chart_path=str(chart), test=test,
        versus=versus,
    )  # fmt: skip
    if versus is not None:
        log.info("%s", result.versus_line())
    rows_out = metrics_rows(result, run_id, dt.datetime.now(dt.timezone.utc))
    result.metrics_version = write_model_metrics(cfg, lake, rows_out, TASK_FRAUD, run_date).version
    return result
