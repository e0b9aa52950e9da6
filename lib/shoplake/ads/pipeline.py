"""What the ads use case declares: tables, the feature node, the training, scoring and planning steps, the endpoint, the report."""

from __future__ import annotations

import datetime as dt

from shoplake.ads import schemas
from shoplake.ads.features import Smoothing, ad_inputs, compute_ad_features
from shoplake.ads.schemas import AD_FEATURES, AD_ITEMS, AD_PLAN, AD_SCORES, AD_STATE, AD_VIEWERS
from shoplake.ads.state import compute_ad_state
from shoplake.features.pit import run_midnight
from shoplake.features.run import FeatureNode
from shoplake.ingest.landing import AD_EVENTS, EVENTS, PRODUCTS
from shoplake.pipeline import Step, StepContext
from shoplake.usecases import UseCase


def _features(ctx, day: dt.date) -> dict:
    ads = ctx.cfg.ads
    # Ad and clickstream events land on the day they happened, so older landing days hold nothing of the window.
    earliest = (run_midnight(day) - dt.timedelta(days=ads.history_days)).date()
    ad_events, products = ctx.landed_between(AD_EVENTS.name, earliest, day), ctx.landed_before(PRODUCTS.name, day)
    events, smoothing, bands = ctx.landed_between(EVENTS.name, earliest, day), Smoothing.of(ads), ctx.cfg.features.price_bands
    # The four tables share the snapshot's frames: cached, their writes compute them once.
    inputs = ad_inputs(ad_events, products, events, day, ads.history_days, keep=ctx.persist)
    features, items = compute_ad_features(inputs, ads.maturity_days, smoothing, bands)
    state, viewers = compute_ad_state(inputs, smoothing, bands)
    return {AD_FEATURES.full_name: features, AD_ITEMS.full_name: items, AD_STATE.full_name: state, AD_VIEWERS.full_name: viewers}


FEATURES = FeatureNode(
    name="ads",
    outputs=(AD_FEATURES, AD_ITEMS, AD_STATE, AD_VIEWERS),
    compute=_features,
    required=(AD_EVENTS.name,),
    optional={
        PRODUCTS.name: "ad items have no category, price or text",
        EVENTS.name: "viewers and items have no clickstream history",
    },
    skipped_because="they are built from ad events",
)


def _train(ctx: StepContext) -> None:
    """Train and register the ad models; a shop too young to train gets a warning instead of a failed night."""
    from shoplake.ads.train import TooFewImpressionsError, run_ads
    from shoplake.ray_runtime import init_ray

    init_ray(ctx.cfg)
    update = ctx.bar("ad models", len(ctx.cfg.ads.models) * 2 + 4)
    try:
        result = run_ads(ctx.cfg, ctx.lake, ctx.run_date, on_step=lambda text: update(f"ad models: {text}"))
    except TooFewImpressionsError as exc:
        update("ad models: not trained", done=True)
        ctx.warn(f"ad models not trained for {ctx.run_date}: {exc}")
        return
    update(f"ad models: champion {result.champion} v{result.model_version} registered", done=True)
    if result.versus:
        other, diff = result.versus
        ctx.say(f"ads: test conversion log-loss, {result.champion} minus {other}: {diff} (95 % interval)")


def _score(ctx: StepContext) -> None:
    """Score the state of the run date, with the model registered earlier if this night trained none."""
    from shoplake.ads.score import score_ads
    from shoplake.registry import NoServingModel

    update = ctx.bar("scoring serving.ad_scores", 1)
    try:
        scored = score_ads(ctx.cfg, ctx.lake, ctx.run_date)
    except NoServingModel as exc:
        update("ad scores: none written", done=True)
        ctx.warn(f"no ad scores for {ctx.run_date}: {exc}")
        return
    ranked = f"ranked by the plan of {scored.plan_run_date}" if scored.plan_run_date else "no plan, ranked by expected value"
    update(f"ad scores: {scored.viewers:,} viewers x {scored.ads:,} ads in {scored.placements} placements ({scored.rows:,} rows, "
           f"{ranked})", done=True)  # fmt: skip


def _plan(ctx: StepContext) -> None:
    """Plan the run date's ads and judge the plan; a shop without a registered model gets a warning instead of a failed night."""
    from shoplake.ads.planning import plan_ads
    from shoplake.ads.policy import InfeasiblePlanError
    from shoplake.registry import NoServingModel

    update = ctx.bar("planning serving.ad_plan", 1)
    try:
        result = plan_ads(ctx.cfg, ctx.lake, ctx.run_date)
    except (NoServingModel, InfeasiblePlanError) as exc:
        update("ad plan: none written", done=True)
        ctx.warn(f"no ad plan for {ctx.run_date}: {exc}")
        return
    spend = sum(result.spend().values())
    update(f"ad plan: {len(result.market.traffic):,} viewer x placement contexts, spend {spend:.2f} a day", done=True)
    if result.judgement is not None:
        e = result.judgement.estimates
        ctx.say(f"ads plan, value minus cost per test slot: logged {e.logged.value:.4f}, IPS {e.ips}, DR {e.dr}; margin over the "
                f"logged policy, DR {e.dr_margin}: {e.dr_margin.verdict()} (95 % intervals)")  # fmt: skip


STEPS = (
    Step(
        "train-ads", "ray", "shoplake.ads.commands:train", ("ray_apps/train.py", "ads"),
        "train, compare, calibrate and register the ad click and conversion models (ray_apps/train.py ads)", after=("features",),
        inputs=(AD_FEATURES.full_name, AD_ITEMS.full_name), outputs=("ops.model_metrics",), nightly=_train,
        skip_unless=AD_FEATURES.full_name,
    ),
    Step(
        "plan-ads", "ray", "shoplake.ads.commands:plan", ("ray_apps/plan.py", "ads"),
        "plan each campaign's ads per viewer and placement within its budget into serving.ad_plan, judged off-policy "
        "(ray_apps/plan.py ads)", after=("train-ads",), inputs=(AD_FEATURES.full_name, AD_ITEMS.full_name),
        outputs=(AD_PLAN.full_name, "ops.model_metrics"), nightly=_plan, skip_unless=AD_FEATURES.full_name,
    ),
    # The scores rank the ads as the run date's plan weighs them, so they follow it.
    Step(
        "score-ads", "ray", "shoplake.ads.commands:score", ("ray_apps/score.py", "ads"),
        "ad scores of every viewer, ad and placement, ranked as the run date's plan weighs them, into serving.ad_scores "
        "(ray_apps/score.py ads)", after=("train-ads", "plan-ads"),
        inputs=(AD_STATE.full_name, AD_VIEWERS.full_name, AD_ITEMS.full_name, AD_PLAN.full_name), outputs=(AD_SCORES.full_name,),
        nightly=_score, skip_unless=AD_STATE.full_name,
    ),
)  # fmt: skip


def _holder(cfg, lake, check_every_s: float):
    from shoplake.ads.serve import AdRanker

    return AdRanker(cfg, lake, check_every_s)


def _metrics_table(rows: list[dict], cfg):
    from shoplake.ads.report import ads_metrics_table

    return ads_metrics_table(rows)


USE_CASE = UseCase(
    name="ads", order=60, tables=schemas.SPECS, feature_nodes=(FEATURES,), steps=STEPS, metrics_task=schemas.TASK_ADS,
    metrics_table=_metrics_table, routes="shoplake.ads.routes:router", holder=_holder, health_key="ads", config_section="ads",
)  # fmt: skip
