"""``gold.ad_state`` and ``gold.ad_viewers``: what an impression at D's midnight would see, split by ad and by viewer.

Pure Spark transforms (no I/O). The definitions are those of ``gold.ad_features``
(:mod:`shoplake.ads.features`) for an impression shown at exactly D's midnight: it sees
every ad event, clickstream event and product row of the snapshot (landed before D,
timestamped before D's midnight, ad and clickstream events from ``D - history_days``
on), and nothing at or after midnight.

* ``gold.ad_state``: every ad (item x campaign with impressions in the window) in every
  placement of the window's impressions, with the ad's side of the features: the
  smoothed rates of the item, campaign, placement and placement x item over every
  impression of the window (a click or conversion counts once its impression has one),
  the item's clickstream events, its category and price as the catalogue listed them
  last (the latest non-null of each), the price band; and the campaign's cost per click
  (what its clicked impressions were charged, on average; the mean over all campaigns
  for one without a click; 0 without any click).
* ``gold.ad_viewers``: every viewer with an ad impression or a clickstream event in the
  window, plus one row with a null ``user_id``, the unknown viewer: the viewer's ad
  impressions and smoothed click-through, clickstream events, and those events per
  category (each event placed in its item's category as listed last). A viewer's
  affinity to an ad is ``(events in the ad's category + 1) / (events + 10)``
  (:func:`category_affinity`), as in ``gold.ad_features``. A viewer not in the table
  has exactly the unknown viewer's features.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.features import AFFINITY_PSEUDO_EVENTS, AdInputs, Smoothing, conform
from shoplake.features.catalogue import price_band

_IMPS, _CLICKS, _CONVERSIONS, _COST = "_imps", "_clicks", "_conversions", "_cost"


def category_affinity(in_category, events):
    """``(in_category + 1) / (events + 10)``: a viewer's smoothed share of events in an ad's category (numpy or Spark)."""
    return (in_category + 1.0) / (events + AFFINITY_PSEUDO_EVENTS)


def _counted(df: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Per ``keys``: impressions, clicked impressions, converted impressions and click cost, as doubles."""
    return df.groupBy(*keys).agg(
        F.count(F.lit(1)).cast("double").alias(_IMPS),
        F.sum(_CLICKS).cast("double").alias(_CLICKS),
        F.sum(_CONVERSIONS).cast("double").alias(_CONVERSIONS),
        F.sum(_COST).cast("double").alias(_COST),
    )


def _listed(catalogue: DataFrame | None) -> DataFrame | None:
    """Per item the latest non-null category and the latest non-null price of the product rows before D."""
    if catalogue is None:
        return None
    last = {}
    for name in (C.CATEGORY, C.PRICE):
        last[name] = catalogue.where(F.col(name).isNotNull()).groupBy(C.ITEM_ID).agg(F.max_by(name, C.UPDATED_AT).alias(name))
    return last[C.CATEGORY].join(last[C.PRICE], C.ITEM_ID, "full")


def compute_ad_state(inputs: AdInputs, smoothing: Smoothing, price_bands: Sequence[float]) -> tuple[DataFrame, DataFrame]:
    """The rows of ``gold.ad_state`` and ``gold.ad_viewers`` for the run date of ``inputs`` (rules in the module docstring).

    Args:
        inputs: The snapshot of the run date (:func:`shoplake.ads.features.ad_inputs`).
        smoothing: Priors of the historic rates.
        price_bands: Upper bounds of the price bands (``features.price_bands``).

    Returns:
        ``(ad_state, ad_viewers)``, each exactly the columns of its spec.
    """
    shown = inputs.keep(
        inputs.impressions.select(C.IMPRESSION_ID, C.USER_ID, C.ITEM_ID, C.CAMPAIGN_ID, C.PLACEMENT)
        .join(inputs.clicks.select(C.IMPRESSION_ID, F.lit(1).alias(_CLICKS), F.col(C.COST).alias(_COST)), C.IMPRESSION_ID, "left")
        .join(inputs.conversions.select(C.IMPRESSION_ID, F.lit(1).alias(_CONVERSIONS)), C.IMPRESSION_ID, "left")
        .fillna({_CLICKS: 0, _CONVERSIONS: 0, _COST: 0.0})
    )
    run_date, interest = inputs.run_date, inputs.interest
    state = _ad_state(shown, inputs.catalogue, interest, run_date, smoothing, price_bands)
    return state, _viewers(shown, inputs.latest, interest, run_date, smoothing)


def _ad_state(shown, catalogue, interest, run_date, smoothing: Smoothing, price_bands) -> DataFrame:
    def rates(keys: Sequence[str], prefix: str) -> DataFrame:
        counts = _counted(shown, keys)
        ctr, cvr = smoothing.ctr(F.col(_CLICKS), F.col(_IMPS)), smoothing.cvr(F.col(_CONVERSIONS), F.col(_CLICKS))
        return counts.select(*keys, ctr.alias(f"{prefix}_ctr"), cvr.alias(f"{prefix}_cvr"))

    item = _counted(shown, [C.ITEM_ID]).select(
        C.ITEM_ID,
        F.col(_IMPS).alias(S.ITEM_IMPRESSIONS),
        smoothing.ctr(F.col(_CLICKS), F.col(_IMPS)).alias(S.ITEM_CTR),
        smoothing.cvr(F.col(_CONVERSIONS), F.col(_CLICKS)).alias(S.ITEM_CVR),
    )
    clicked = shown.where(F.col(_CLICKS) == 1)
    overall = clicked.agg(F.coalesce(F.avg(_COST), F.lit(0.0)).alias("_overall_cpc"))
    cpc = clicked.groupBy(C.CAMPAIGN_ID).agg(F.avg(_COST).alias(S.CPC))
    pair = _counted(shown, [C.PLACEMENT, C.ITEM_ID]).select(
        C.PLACEMENT, C.ITEM_ID, F.col(_IMPS).alias("_pair_imps"), F.col(_CLICKS).alias("_pair_clicks")
    )
    ads = shown.select(C.ITEM_ID, C.CAMPAIGN_ID).distinct()
    placements = shown.select(C.PLACEMENT).distinct()
    state = (
        placements.crossJoin(ads)
        .join(item, C.ITEM_ID, "left")
        .join(rates([C.CAMPAIGN_ID], "campaign"), C.CAMPAIGN_ID, "left")
        .join(rates([C.PLACEMENT], "placement"), C.PLACEMENT, "left")
        .join(pair, [C.PLACEMENT, C.ITEM_ID], "left")
        .join(cpc, C.CAMPAIGN_ID, "left")
        .crossJoin(overall)
    )
    if interest is not None:
        views = interest.groupBy(C.ITEM_ID).agg(F.count(F.lit(1)).cast("double").alias(S.ITEM_VIEWS))
        state = state.join(views, C.ITEM_ID, "left")
    else:
        state = state.withColumn(S.ITEM_VIEWS, F.lit(0.0))
    listed = _listed(catalogue)
    if listed is not None:
        state = state.join(listed, C.ITEM_ID, "left")
    else:
        state = state.withColumns({C.CATEGORY: F.lit(None).cast("string"), C.PRICE: F.lit(None).cast("double")})
    # Every ad is in every placement: one never shown there has no impressions of placement x item.
    pair_imps, pair_clicks = (F.coalesce(F.col(c), F.lit(0.0)) for c in ("_pair_imps", "_pair_clicks"))
    return conform(
        state,
        S.AD_STATE,
        {
            S.ITEM_VIEWS: F.coalesce(F.col(S.ITEM_VIEWS), F.lit(0.0)),
            S.PLACEMENT_ITEM_CTR: smoothing.ctr(pair_clicks, pair_imps),
            C.PRICE_BAND: F.coalesce(price_band(F.col(C.PRICE), price_bands), F.lit(-1)),
            C.PRICE: F.coalesce(F.col(C.PRICE), F.lit(0.0)),
            S.CPC: F.coalesce(F.col(S.CPC), F.col("_overall_cpc")),
            C.RUN_DATE: F.lit(run_date),
        },
    )


def _viewers(shown, latest, interest, run_date, smoothing: Smoothing) -> DataFrame:
    known = F.col(C.USER_ID).isNotNull()
    viewers = _counted(shown.where(known), [C.USER_ID]).select(C.USER_ID, _IMPS, _CLICKS)
    categories = F.array().cast("array<string>")
    category_events = F.array().cast("array<double>")
    user_events = F.lit(0.0)
    if interest is not None:
        mine = interest.where(known)
        if latest is not None:
            mine = mine.join(latest.select(C.ITEM_ID, C.CATEGORY), C.ITEM_ID, "left")
        else:
            mine = mine.withColumn(C.CATEGORY, F.lit(None).cast("string"))
        totals = mine.groupBy(C.USER_ID).agg(F.count(F.lit(1)).cast("double").alias(S.USER_EVENTS))
        per_category = (
            mine.where(F.col(C.CATEGORY).isNotNull())
            .groupBy(C.USER_ID, C.CATEGORY)
            .agg(F.count(F.lit(1)).cast("double").alias("_n"))
            .groupBy(C.USER_ID)
            .agg(F.sort_array(F.collect_list(F.struct(F.col(C.CATEGORY), F.col("_n")))).alias("_pairs"))
        )
        users = viewers.select(C.USER_ID).unionByName(totals.select(C.USER_ID)).distinct()
        viewers = users.join(viewers, C.USER_ID, "left").join(totals, C.USER_ID, "left").join(per_category, C.USER_ID, "left")
        pairs = F.coalesce(F.col("_pairs"), F.array().cast(per_category.schema["_pairs"].dataType))
        categories = F.transform(pairs, lambda p: p[C.CATEGORY])
        category_events = F.transform(pairs, lambda p: p["_n"])
        user_events = F.coalesce(F.col(S.USER_EVENTS), F.lit(0.0))
    imps, clicks = F.coalesce(F.col(_IMPS), F.lit(0.0)), F.coalesce(F.col(_CLICKS), F.lit(0.0))
    known_rows = conform(
        viewers,
        S.AD_VIEWERS,
        {
            S.USER_AD_IMPRESSIONS: imps,
            S.USER_CTR: smoothing.ctr(clicks, imps),
            S.USER_EVENTS: user_events,
            S.CATEGORIES: categories,
            S.CATEGORY_EVENTS: category_events,
            C.RUN_DATE: F.lit(run_date),
        },
    )
    unknown = conform(
        shown.sparkSession.range(1),
        S.AD_VIEWERS,
        {
            C.USER_ID: F.lit(None),
            S.USER_AD_IMPRESSIONS: F.lit(0.0),
            S.USER_CTR: F.lit(smoothing.ctr_prior),
            S.USER_EVENTS: F.lit(0.0),
            S.CATEGORIES: F.array(),
            S.CATEGORY_EVENTS: F.array(),
            C.RUN_DATE: F.lit(run_date),
        },
    )
    return unknown.unionByName(known_rows)
