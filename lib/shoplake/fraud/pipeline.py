"""What fraud detection declares to the platform: tables, the feature node and the metrics report."""

from __future__ import annotations

import datetime as dt

from shoplake.features.pit import run_midnight
from shoplake.features.run import FeatureNode
from shoplake.fraud import schemas
from shoplake.fraud.declarations import configured_features
from shoplake.fraud.features import compute_txn_features
from shoplake.fraud.schemas import TRANSACTIONS, TXN_FEATURES, configured_specs
from shoplake.fraud.transactions import compute_transactions
from shoplake.ingest.landing import CHARGEBACKS, ORDERS, PAYMENTS
from shoplake.pipeline import Step, StepContext
from shoplake.usecases import UseCase


def _features(ctx, day: dt.date) -> dict:
    fraud = ctx.cfg.fraud
    transactions_spec, _ = configured_specs(ctx.cfg)
    # A payment or its chargeback lands on the day it happened or later, so
    # older landing days hold nothing of the history window.
    earliest = (run_midnight(day) - dt.timedelta(days=fraud.history_days)).date()
    transactions = ctx.persist(
        compute_transactions(
            ctx.landed_between(PAYMENTS.name, earliest, day),
            ctx.landed_before(ORDERS.name, day),
            ctx.landed_between(CHARGEBACKS.name, earliest, day),
            day,
            fraud.history_days,
            fraud.maturity_days,
            fraud.fraud_reason_codes,
            transactions_spec,
        )
    )
    features = compute_txn_features(transactions, configured_features(ctx.cfg))
    return {TRANSACTIONS.full_name: transactions, TXN_FEATURES.full_name: features}


FEATURES = FeatureNode(
    name="fraud",
    outputs=(TRANSACTIONS, TXN_FEATURES),
    compute=_features,
    required=(PAYMENTS.name,),
    optional={
        ORDERS.name: "payments have no basket lines or units",
        CHARGEBACKS.name: "no payment has a chargeback: matured ones are labelled 0",
    },
    skipped_because="they are built from payments",
    configured_outputs=configured_specs,
)


def _train(ctx: StepContext) -> None:
    """Train and register the fraud models; a shop too young to train gets a warning instead of a failed night."""
    from shoplake.fraud.dataset import TooFewLabelsError
    from shoplake.fraud.train import run_fraud
    from shoplake.ray_runtime import init_ray

    init_ray(ctx.cfg)
    update = ctx.bar("fraud models", len(ctx.cfg.fraud.models) + 4)
    try:
        result = run_fraud(ctx.cfg, ctx.lake, ctx.run_date, on_step=lambda text: update(f"fraud models: {text}"))
    except TooFewLabelsError as exc:
        update("fraud models: not trained", done=True)
        ctx.warn(f"fraud models not trained for {ctx.run_date}: {exc}")
        return
    update(f"fraud models: champion {result.champion} v{result.model_version} registered", done=True)
    if result.versus_line():
        ctx.say(result.versus_line())
    ctx.say(f"fraud precision-recall curves on the test split: {result.chart_path}")


def _score(ctx: StepContext) -> None:
    """Score the last day's payments, with the model registered earlier if this night trained none."""
    from shoplake.fraud.score import score_fraud
    from shoplake.registry import NoServingModel

    update = ctx.bar("scoring serving.fraud_scores", 1)
    try:
        scored = score_fraud(ctx.cfg, ctx.lake, ctx.run_date)
    except NoServingModel as exc:
        update("fraud scores: none written", done=True)
        ctx.warn(f"no fraud scores for {ctx.run_date}: {exc}")
        return
    decided = ", ".join(f"{n:,} {d}" for d, n in scored.decisions.items())
    update(f"fraud scores: {scored.rows:,} payments of {ctx.run_date - dt.timedelta(days=1)} ({decided})", done=True)


STEPS = (
    Step(
        "train-fraud", "ray", "shoplake.fraud.commands:train", ("ray_apps/train.py", "fraud"),
        "train, compare and register the fraud models (ray_apps/train.py fraud)", after=("features",),
        inputs=(TXN_FEATURES.full_name,), outputs=("ops.model_metrics",), nightly=_train, skip_unless=TXN_FEATURES.full_name,
    ),
    Step(
        "score-fraud", "ray", "shoplake.fraud.commands:score", ("ray_apps/score.py", "fraud"),
        "fraud scores of the last day's payments into serving.fraud_scores (ray_apps/score.py fraud)", after=("train-fraud",),
        inputs=(TXN_FEATURES.full_name,), outputs=("serving.fraud_scores",), nightly=_score, skip_unless=TXN_FEATURES.full_name,
    ),
)  # fmt: skip


def _holder(cfg, lake, check_every_s: float):
    from shoplake.fraud.serve import FraudScorer

    return FraudScorer(cfg, lake, check_every_s)


def _metrics_table(rows: list[dict], cfg):
    from shoplake.fraud.report import fraud_metrics_table

    return fraud_metrics_table(rows)


USE_CASE = UseCase(
    name="fraud", order=30, tables=schemas.SPECS, feature_nodes=(FEATURES,), steps=STEPS, metrics_task=schemas.TASK_FRAUD,
    metrics_table=_metrics_table, routes="shoplake.fraud.routes:router", holder=_holder, health_key="fraud",
    config_section="fraud",
)  # fmt: skip
