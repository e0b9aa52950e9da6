"""The entry points of fraud detection: ``train`` and ``score`` (``shoplake train-fraud``, ``shoplake score-fraud``)."""

from __future__ import annotations

import argparse
import datetime as dt

from shoplake import entry
from shoplake.entry import config_from_args

TRAIN_DOC = """Train, compare and register the fraud models (XGBoost and a PyTorch network on Ray Train).

Inputs:  gold.txn_features of --run-date D (default: the latest partition): point-in-time
         features of every payment before D with its label, the shop's own payment
         fields (landing.extra_fields.payments) among them; only matured payments
         (fraud.maturity_days old at D) are used. With fraud.feature_table: the shop's
         own labelled table instead (mode alone) or joined by payment id (mode join).
Outputs: the matured payments split by time into training, validation and test
         (fraud.validation_share, fraud.test_share; the newest are the test). Every model
         of fraud.models (rules baseline, gbt, tabular_nn) is scored on validation and
         test: PR-AUC, ROC-AUC, recall at 1 % FPR, precision at the daily review capacity,
         recall and cost at the review threshold chosen by expected cost on validation.
         They go to ops.model_metrics (task fraud, D's rows replaced) and are printed as a
         table. The champion (best validation PR-AUC of the trained models) is saved with
         its review and decline thresholds under <runs_dir>/fraud/<name>/bundle with a
         precision-recall picture (pr_curve.svg and .png), logged to MLflow with both models'
         metrics and registered as fraud.registered_model with the serving alias.
Parameters: --run-date, --name (run folder prefix), --no-register, --env, --set key=value
         (fraud.*, ray.num_workers).

    python ray_apps/train.py fraud --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train.py fraud --env cluster --set fraud.gbt_rounds=500
"""


def train_parser() -> argparse.ArgumentParser:
    return entry.train_parser(
        "train.py fraud", TRAIN_DOC, "features date (default: the latest in gold.txn_features)", "fraud_<run date>_<time>"
    )


def train(argv: list[str] | None = None) -> int:
    from shoplake.fraud.dataset import MissingTxnFeaturesError, TooFewLabelsError
    from shoplake.fraud.report import fraud_metrics_table
    from shoplake.fraud.train import metrics_rows, run_fraud

    cfg, console, result = entry.run_training(
        train_parser().parse_args(argv), "fraud", run_fraud, (MissingTxnFeaturesError, TooFewLabelsError)
    )
    if result is None:
        return 2
    console.print(fraud_metrics_table(metrics_rows(result, result.mlflow_run_id, dt.datetime.now(dt.timezone.utc))))
    for split, (payments, frauds, first_day) in result.splits.items():
        console.print(f"{split}: {payments:,} payments from {first_day}, {frauds:,} fraud")
    for model, ev in result.evaluations.items():
        console.print(
            f"{model}: {ev.seconds:.1f} s; review at score >= {ev.review_threshold:.4g}, decline at >= {ev.decline_threshold:.4g}"
        )
    if result.versus_line():
        console.print(result.versus_line())
    console.print(f"ops.model_metrics v{result.metrics_version}; bundle {result.bundle_path}; precision-recall picture {result.chart_path}")
    if result.model_version:
        console.print(f"registered {cfg.fraud.registered_model} version {result.model_version} ({result.champion}) "
                      f"as '{cfg.registry.serving_alias}' (MLflow run {result.mlflow_run_id})")  # fmt: skip
    return 0


SCORE_DOC = """Score the last day's payments with the serving fraud model (Ray Data).

Inputs:  the registered fraud model version that the alias registry.serving_alias
         names (or --model-version) of fraud.registered_model; gold.txn_features of the
         run date D, its rows of payments made on D - 1 (with fraud.feature_table: the
         table's rows of D - 1, or the lake's joined with its features).
Outputs: serving.fraud_scores: per payment the score, the decision (approve below the
         model's review threshold, decline at or above its decline threshold, review in
         between), the 3 features that raised the score most with their contributions,
         the model version, run date and scoring time; one Delta commit replacing D's
         partition. Prints one line.
Parameters: --run-date (default: the latest in gold.txn_features), --model-version,
         --env, --set key=value.

    python ray_apps/score.py fraud --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score.py fraud --env cluster
"""


def score_parser() -> argparse.ArgumentParser:
    return entry.score_parser("score.py fraud", SCORE_DOC, "features date; its previous day's payments are scored (default: the latest)")


def score(argv: list[str] | None = None) -> int:
    from shoplake.fraud.dataset import MissingTxnFeaturesError
    from shoplake.fraud.score import score_fraud
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import NoServingModel

    args = score_parser().parse_args(argv)
    cfg = config_from_args(args)
    init_ray(cfg)
    try:
        r = score_fraud(cfg, Lake(cfg), args.run_date, version=args.model_version)
    except (NoServingModel, MissingTxnFeaturesError) as exc:
        raise SystemExit(f"error: {exc}") from None
    decided = ", ".join(f"{n} {d}" for d, n in r.decisions.items())
    print(
        f"scored {r.rows} payments with {r.model_name} version {r.model_version} for {r.run_date} ({decided}) "
        f"-> serving.fraud_scores v{r.version}; {r.seconds:.1f} s"
    )
    return 0
