"""Ads tables: point-in-time impression features (gold), the advertised items' text and price (gold).

Both are partitioned by ``run_date`` like the other feature tables. The partition of
day D of ``gold.ad_features`` holds the impressions of the ``ads.history_days`` before
D's midnight (UTC) as known before D: every feature of an impression is computed from
what happened strictly before it, its click from the same impression, and its
conversion only once the impression is ``ads.maturity_days`` old (null before).
``gold.ad_items`` holds every advertised item as the catalogue described it before D.
"""

from __future__ import annotations

from shoplake import columns as C
from shoplake.lake.spec import Col, TableSpec

TASK_ADS = "ads"

# Column names of the ads tables (the landing fields come from shoplake.columns).
IMPRESSION_TS = "impression_ts"
HOUR = "hour"
PROPENSITY_LOGGED = "propensity_logged"
CLICK = "click"
CONVERSION = "conversion"
AD_TEXT = "ad_text"
ITEM_IMPRESSIONS = "item_impressions"
ITEM_CTR = "item_ctr"
ITEM_CVR = "item_cvr"
CAMPAIGN_CTR = "campaign_ctr"
CAMPAIGN_CVR = "campaign_cvr"
PLACEMENT_CTR = "placement_ctr"
PLACEMENT_CVR = "placement_cvr"
PLACEMENT_ITEM_CTR = "placement_item_ctr"
USER_AD_IMPRESSIONS = "user_ad_impressions"
USER_CTR = "user_ctr"
USER_EVENTS = "user_events"
USER_CATEGORY_AFFINITY = "user_category_affinity"
ITEM_VIEWS = "item_views"

#: Numeric features of gold.ad_features, in model order, with what each means.
NUMERIC_FEATURES: dict[str, str] = {
    ITEM_IMPRESSIONS: "Impressions of the item before this one (its ad popularity).",
    ITEM_CTR: "Smoothed click-through of the item's earlier impressions (clicks before this impression).",
    ITEM_CVR: "Smoothed conversion rate of the item's earlier clicks (conversions before this impression).",
    CAMPAIGN_CTR: "Smoothed click-through of the campaign's earlier impressions.",
    CAMPAIGN_CVR: "Smoothed conversion rate of the campaign's earlier clicks.",
    PLACEMENT_CTR: "Smoothed click-through of the placement's earlier impressions.",
    PLACEMENT_CVR: "Smoothed conversion rate of the placement's earlier clicks.",
    PLACEMENT_ITEM_CTR: "Smoothed click-through of the item's earlier impressions in this placement.",
    USER_AD_IMPRESSIONS: "Ad impressions the viewer saw before this one (0 for an unknown viewer).",
    USER_CTR: "Smoothed click-through of the viewer's earlier impressions (the prior for an unknown viewer).",
    USER_EVENTS: "Clickstream events (views, clicks, carts, purchases) of the viewer before the impression.",
    USER_CATEGORY_AFFINITY: "Share of those events in the ad item's category, smoothed: (in category + 1) / (all + 10).",
    ITEM_VIEWS: "Clickstream events of the ad item (anyone's) before the impression.",
    C.PRICE: "The item's price as the catalogue listed it before the impression (0 when unknown).",
}
#: Categorical fields the models read (hashed or embedded), in model order.
CATEGORICAL_FEATURES: tuple[str, ...] = (C.PLACEMENT, C.POSITION, HOUR, C.ITEM_ID, C.CAMPAIGN_ID, C.CATEGORY, C.PRICE_BAND)

_RUN_DATE = Col(C.RUN_DATE, "date", False, "The day the table is built for; only data before its midnight (UTC) is used.")

AD_FEATURES = TableSpec(
    name="ad_features",
    layer="gold",
    columns=(
        Col(C.IMPRESSION_ID, "string", False, "Impression."),
        Col(C.USER_ID, "string", True, "Viewer, when known."),
        Col(C.ITEM_ID, "string", False, "Advertised item."),
        Col(C.CAMPAIGN_ID, "string", False, "Campaign."),
        Col(C.PLACEMENT, "string", False, "Where the ad was shown."),
        Col(C.POSITION, "int", False, "Slot within the placement, from 1 (1 when the log has none)."),
        Col(IMPRESSION_TS, "timestamp", False, "When the ad was shown, UTC; before run_date and within ads.history_days."),
        Col(HOUR, "int", False, "Hour of day of the impression, UTC."),
        Col(C.CATEGORY, "string", True, "The item's category as the catalogue listed it before the impression."),
        Col(C.PRICE_BAND, "int", False, "Index into features.price_bands of the price (len(bands) above the last; -1 when unknown)."),
        *(Col(name, "double", False, doc) for name, doc in NUMERIC_FEATURES.items()),
        Col(C.PROPENSITY, "double", False, "Probability with which the shop's policy chose this ad for this slot."),
        Col(PROPENSITY_LOGGED, "boolean", False, "The propensity is the logged one (false: estimated as the ad's share of its placement)."),
        Col(C.COST, "double", False, "What the impression's click was charged (0 without a click)."),
        Col(CLICK, "int", False, "1: the impression was clicked before run_date, else 0."),
        Col(C.MATURED, "boolean", False, "The impression is at least ads.maturity_days old at run_date: its conversion label is final."),
        Col(CONVERSION, "int", True, "1: converted before run_date; 0: did not; null while the impression has not matured."),
        _RUN_DATE,
    ),
    keys=(C.IMPRESSION_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "Every ad impression of ads.history_days before run_date with point-in-time features (from what happened strictly "
        "before it) and its click and matured conversion labels (shoplake.ads.features)."
    ),
)

AD_ITEMS = TableSpec(
    name="ad_items",
    layer="gold",
    columns=(
        Col(C.ITEM_ID, "string", False, "Advertised item (in an impression before run_date)."),
        Col(C.CATEGORY, "string", True, "Category as the catalogue listed it last before run_date."),
        Col(C.PRICE, "double", True, "Price as listed last before run_date."),
        Col(C.PRICE_BAND, "int", False, "Index into features.price_bands of the price (-1 when unknown)."),
        Col(AD_TEXT, "string", True, "Input of the text encoder: title + '. ' + description (the title alone without one)."),
        _RUN_DATE,
    ),
    keys=(C.ITEM_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description="Every advertised item with its category, price and ad text as known before run_date.",
)

PLAN_IMPRESSIONS = "impressions"
PLAN_CLICKS = "clicks"
PLAN_CONVERSIONS = "conversions"
PLAN_SPEND = "spend"
PLAN_VALUE = "value"
PLAN_ROAS = "roas"
DAILY_BUDGET = "daily_budget"
BUDGET_MULTIPLIER = "budget_multiplier"
EXPLORATION = "exploration"
PLANNED_AT = "planned_at"

AD_PLAN = TableSpec(
    name="ad_plan",
    layer="serving",
    columns=(
        Col(C.CAMPAIGN_ID, "string", False, "Campaign."),
        Col(C.PLACEMENT, "string", False, "Placement."),
        Col(PLAN_IMPRESSIONS, "double", False, "Impressions a day the per-viewer plan expects to give the campaign there."),
        Col(PLAN_CLICKS, "double", False, "Expected clicks a day (calibrated pCTR summed over the planned impressions)."),
        Col(PLAN_CONVERSIONS, "double", False, "Expected conversions a day (calibrated pCTCVR summed)."),
        Col(PLAN_SPEND, "double", False, "Expected spend a day: expected clicks times the campaign's cost per click."),
        Col(PLAN_VALUE, "double", False, "Expected conversion value a day: expected conversions times the item's price."),
        Col(PLAN_ROAS, "double", False, "Expected return on ad spend: value over spend (0 without spend)."),
        Col(DAILY_BUDGET, "double", False, "The campaign's daily budget: what it spent a day over the plan's traffic days."),
        Col(BUDGET_MULTIPLIER, "double", False, "Dual price of the campaign's budget (0: not binding); value - (1 + it) x cost ranks ads."),
        Col(EXPLORATION, "double", False, "Share of every slot that follows the logged ad shares (ads.plan_exploration)."),
        Col(C.MODEL_NAME, "string", False, "Model family of the bundle whose scores the plan used."),
        Col(C.MODEL_VERSION, "string", True, "Registered version of ads.registered_model."),
        Col(PLANNED_AT, "timestamp", False, "When the plan was made, UTC."),
        _RUN_DATE,
    ),
    keys=(C.CAMPAIGN_ID, C.PLACEMENT, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "The per-viewer ad plan of run_date aggregated per campaign and placement: expected impressions, clicks, conversions, "
        "spend, value and ROAS a day within each campaign's daily budget (shoplake.ads.planning)."
    ),
)

SPECS = (AD_FEATURES, AD_ITEMS, AD_PLAN)
