"""What recommendations declare to the platform: tables, feature nodes and the metrics report."""

from __future__ import annotations

import datetime as dt

from shoplake.features.run import FeatureNode
from shoplake.ingest.landing import EVENTS, ORDERS, PRODUCTS
from shoplake.pipeline import Step, StepContext
from shoplake.recommend import schemas
from shoplake.recommend.features import (
    INTERACTION_HISTORY,
    compute_item_features,
    compute_user_features,
    compute_user_item_matrix,
)
from shoplake.recommend.schemas import INTERACTIONS, ITEM_FEATURES, USER_FEATURES, USER_ITEM_MATRIX
from shoplake.usecases import UseCase


def _features(ctx, day: dt.date) -> dict:
    feats = ctx.cfg.features
    interactions = ctx.persist(ctx.history(INTERACTIONS).as_of(day, ctx.cfg))
    items = ctx.persist(compute_item_features(ctx.landed_before(PRODUCTS.name, day), interactions, day, feats.price_bands))
    return {
        USER_ITEM_MATRIX.full_name: compute_user_item_matrix(interactions, day, feats.event_weights, feats.half_life_days),
        ITEM_FEATURES.full_name: items,
        USER_FEATURES.full_name: compute_user_features(interactions, items, day, feats.event_weights, feats.half_life_days),
    }


FEATURES = FeatureNode(
    name="recommend",
    outputs=(INTERACTIONS, USER_ITEM_MATRIX, ITEM_FEATURES, USER_FEATURES),
    compute=_features,
    histories=(INTERACTION_HISTORY,),
    any_of=(EVENTS.name, ORDERS.name),
    optional={
        EVENTS.name: "interactions come from orders only",
        ORDERS.name: "interactions come from the clickstream only",
        PRODUCTS.name: "item features have no text, category or price",
    },
    skipped_because="they are built from events or orders",
)


def _train(ctx: StepContext) -> None:
    from shoplake.ray_runtime import init_ray
    from shoplake.recommend.train import run_recommendation

    init_ray(ctx.cfg)
    update = ctx.bar("recommenders", len(ctx.cfg.recommender.models) * 4 + 4)
    result = run_recommendation(ctx.cfg, ctx.lake, ctx.run_date, on_step=lambda text: update(f"recommenders: {text}"))
    update(f"recommenders: {result.champion} v{result.model_version} registered (champion)", done=True)
    if result.versus_line():
        ctx.say(result.versus_line())


def _score(ctx: StepContext) -> None:
    from shoplake.recommend.score import score_recommendations

    update = ctx.bar("scoring serving.recommendations", 1)
    scored = score_recommendations(ctx.cfg, ctx.lake, ctx.run_date)
    update(f"scoring: {scored.rows:,} recommendations for {scored.users:,} users", done=True)


STEPS = (
    Step(
        "train-recommender", "ray", "shoplake.recommend.commands:train", ("ray_apps/train.py", "recommend"),
        "train, evaluate and register the recommenders (ray_apps/train.py recommend)", after=("features",),
        inputs=("gold.user_item_matrix", "gold.item_features", "gold.user_features", "silver.interactions"),
        outputs=("ops.model_metrics",), nightly=_train,
    ),
    Step(
        "score-recommendations", "ray", "shoplake.recommend.commands:score", ("ray_apps/score.py", "recommend"),
        "top-k of every user into serving.recommendations (ray_apps/score.py recommend)", after=("train-recommender",),
        inputs=("gold.user_item_matrix",), outputs=("serving.recommendations",), nightly=_score,
    ),
)  # fmt: skip


def _holder(cfg, lake, check_every_s: float):
    from shoplake.recommend.serve import RecommenderModel

    return RecommenderModel(cfg, check_every_s)


def _metrics_table(rows: list[dict], cfg):
    from shoplake.recommend.report import metrics_table

    return metrics_table(rows, cfg.recommender.main_model)  # named only when the run had no validation window


USE_CASE = UseCase(
    name="recommend", order=10, tables=schemas.SPECS, feature_nodes=(FEATURES,), steps=STEPS, metrics_task=schemas.TASK_RECOMMENDATION,
    metrics_table=_metrics_table, routes="shoplake.recommend.routes:router", holder=_holder, health_key="model",
    config_section="recommender",
)  # fmt: skip
