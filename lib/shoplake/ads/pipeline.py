"""What the ads use case declares to the platform: tables and the feature node."""

from __future__ import annotations

import datetime as dt

from shoplake.ads import schemas
from shoplake.ads.features import Smoothing, compute_ad_features
from shoplake.ads.schemas import AD_FEATURES, AD_ITEMS
from shoplake.features.pit import run_midnight
from shoplake.features.run import FeatureNode
from shoplake.ingest.landing import AD_EVENTS, EVENTS, PRODUCTS
from shoplake.usecases import UseCase


def _features(ctx, day: dt.date) -> dict:
    ads = ctx.cfg.ads
    # Ad and clickstream events land on the day they happened, so older landing days hold nothing of the window.
    earliest = (run_midnight(day) - dt.timedelta(days=ads.history_days)).date()
    features, items = compute_ad_features(
        ctx.landed_between(AD_EVENTS.name, earliest, day),
        ctx.landed_before(PRODUCTS.name, day),
        ctx.landed_between(EVENTS.name, earliest, day),
        day,
        ads.history_days,
        ads.maturity_days,
        Smoothing.of(ads),
        ctx.cfg.features.price_bands,
    )
    return {AD_FEATURES.full_name: features, AD_ITEMS.full_name: items}


FEATURES = FeatureNode(
    name="ads",
    outputs=(AD_FEATURES, AD_ITEMS),
    compute=_features,
    required=(AD_EVENTS.name,),
    optional={
        PRODUCTS.name: "ad items have no category, price or text",
        EVENTS.name: "viewers and items have no clickstream history",
    },
    skipped_because="they are built from ad events",
)

USE_CASE = UseCase(
    name="ads", order=60, tables=schemas.SPECS, feature_nodes=(FEATURES,), metrics_task=schemas.TASK_ADS,
)  # fmt: skip
