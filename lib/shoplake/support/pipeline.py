"""What customer service declares to the platform: tables, the feature node and the metrics report."""

from __future__ import annotations

import datetime as dt

from shoplake.features.run import FeatureNode
from shoplake.ingest.landing import SUPPORT_TICKETS as TICKETS
from shoplake.pipeline import Step, StepContext
from shoplake.support import schemas
from shoplake.support.features import compute_support_tickets, compute_support_training
from shoplake.support.schemas import SUPPORT_TICKETS, SUPPORT_TRAINING
from shoplake.usecases import UseCase


def _features(ctx, day: dt.date) -> dict:
    tickets = ctx.persist(compute_support_tickets(ctx.landed_before(TICKETS.name, day), day))
    return {SUPPORT_TICKETS.full_name: tickets, SUPPORT_TRAINING.full_name: compute_support_training(tickets)}


FEATURES = FeatureNode(
    name="support",
    outputs=(SUPPORT_TICKETS, SUPPORT_TRAINING),
    compute=_features,
    required=(TICKETS.name,),
    skipped_because="they are built from support tickets",
)


def _train(ctx: StepContext) -> None:
    """Fine-tune, compare and register the intent models; too few labels get a warning instead of a failed night."""
    from shoplake.ray_runtime import init_ray
    from shoplake.support.train import run_support
    from shoplake.text.run import TooFewTextsError

    init_ray(ctx.cfg)
    update = ctx.bar("support models", 2 * len(ctx.cfg.support.models) + 5)
    try:
        result = run_support(ctx.cfg, ctx.lake, ctx.run_date, on_step=lambda text: update(f"support models: {text}"))
    except TooFewTextsError as exc:
        update("support models: not trained", done=True)
        ctx.warn(f"support models not trained for {ctx.run_date}: {exc}")
        return
    update(f"support models: champion {result.champion} v{result.model_version} registered", done=True)
    if result.choice:
        ctx.say(result.choice)
    for warning in result.warnings:
        ctx.warn(warning)


STEPS = (
    Step(
        "train-support", "ray", "shoplake.support.commands:train", ("ray_apps/train.py", "support"),
        "fine-tune, compare and register the support intent models (ray_apps/train.py support)", after=("features",),
        inputs=(SUPPORT_TRAINING.full_name,), outputs=("ops.model_metrics",), nightly=_train, skip_unless=SUPPORT_TRAINING.full_name,
    ),
)  # fmt: skip


def _holder(cfg, lake, check_every_s: float):
    from shoplake.support.serve import SupportReplier

    return SupportReplier(cfg, check_every_s)


def _metrics_table(rows: list[dict], cfg):
    from shoplake.text.report import text_metrics_table

    return text_metrics_table(rows, schemas.TASK_SUPPORT)


USE_CASE = UseCase(
    name="support", order=40, tables=schemas.SPECS, feature_nodes=(FEATURES,), steps=STEPS, metrics_task=schemas.TASK_SUPPORT,
    metrics_table=_metrics_table, routes="shoplake.support.routes:router", holder=_holder, health_key="support",
    config_section="support",
)  # fmt: skip
