"""What product categorization declares to the platform: tables, the feature node and the metrics report."""

from __future__ import annotations

import datetime as dt

from shoplake.categorize import schemas
from shoplake.categorize.features import compute_product_text
from shoplake.categorize.schemas import PRODUCT_TEXT
from shoplake.features.run import FeatureNode
from shoplake.ingest.landing import PRODUCTS
from shoplake.pipeline import Step, StepContext
from shoplake.usecases import UseCase


def _features(ctx, day: dt.date) -> dict:
    return {PRODUCT_TEXT.full_name: compute_product_text(ctx.landed_before(PRODUCTS.name, day), day)}


FEATURES = FeatureNode(
    name="categorize", outputs=(PRODUCT_TEXT,), compute=_features, required=(PRODUCTS.name,), skipped_because="it is built from products"
)


def _train(ctx: StepContext) -> None:
    """Fine-tune, compare and register the category models; too few labels get a warning instead of a failed night."""
    from shoplake.categorize.train import run_categorization
    from shoplake.ray_runtime import init_ray
    from shoplake.text.run import TooFewTextsError

    init_ray(ctx.cfg)
    update = ctx.bar("categorization models", 2 * len(ctx.cfg.categorization.models) + 5)
    try:
        result = run_categorization(ctx.cfg, ctx.lake, ctx.run_date, on_step=lambda text: update(f"categorization models: {text}"))
    except TooFewTextsError as exc:
        update("categorization models: not trained", done=True)
        ctx.warn(f"categorization models not trained for {ctx.run_date}: {exc}")
        return
    update(f"categorization models: champion {result.champion} v{result.model_version} registered", done=True)
    if result.choice:
        ctx.say(result.choice)
    for warning in result.warnings:
        ctx.warn(warning)


def _score(ctx: StepContext) -> None:
    """Every product's predicted category, with the model registered earlier if this night trained none."""
    from shoplake.categorize.score import score_categories
    from shoplake.registry import NoServingModel

    update = ctx.bar("scoring serving.product_categories", 1)
    try:
        scored = score_categories(ctx.cfg, ctx.lake, ctx.run_date)
    except NoServingModel as exc:
        update("product categories: none written", done=True)
        ctx.warn(f"no product categories for {ctx.run_date}: {exc}")
        return
    update(f"product categories: {scored.rows:,} products, {scored.flagged:,} flagged", done=True)


STEPS = (
    Step(
        "train-categorizer", "ray", "shoplake.categorize.commands:train", ("ray_apps/train.py", "categorize"),
        "fine-tune, compare and register the product category models (ray_apps/train.py categorize)", after=("features",),
        inputs=(PRODUCT_TEXT.full_name,), outputs=("ops.model_metrics",), nightly=_train, skip_unless=PRODUCT_TEXT.full_name,
    ),
    Step(
        "score-categories", "ray", "shoplake.categorize.commands:score", ("ray_apps/score.py", "categorize"),
        "every product's predicted category into serving.product_categories (ray_apps/score.py categorize)",
        after=("train-categorizer",), inputs=(PRODUCT_TEXT.full_name,), outputs=("serving.product_categories",), nightly=_score,
        skip_unless=PRODUCT_TEXT.full_name,
    ),
)  # fmt: skip


def _holder(cfg, lake, check_every_s: float):
    from shoplake.categorize.serve import Categorizer

    return Categorizer(cfg, check_every_s)


def _metrics_table(rows: list[dict], cfg):
    from shoplake.text.report import text_metrics_table

    return text_metrics_table(rows, schemas.TASK_CATEGORIZATION)


USE_CASE = UseCase(
    name="categorize", order=50, tables=schemas.SPECS, feature_nodes=(FEATURES,), steps=STEPS, metrics_task=schemas.TASK_CATEGORIZATION,
    metrics_table=_metrics_table, routes="shoplake.categorize.routes:router", holder=_holder, health_key="categorization",
    config_section="categorization",
)  # fmt: skip
