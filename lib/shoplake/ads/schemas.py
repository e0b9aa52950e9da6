"""Ads tables: point-in-time impression features, the advertised items, the state at D's midnight (gold), the scores (serving).

All are partitioned by ``run_date`` like the other feature tables. The partition of
day D of ``gold.ad_features`` holds the impressions of the ``ads.history_days`` before
D's midnight (UTC) as known before D: every feature of an impression is computed from
what happened strictly before it, its click from the same impression, and its
conversion only once the impression is ``ads.maturity_days`` old (null before).
``gold.ad_items`` holds every advertised item as the catalogue described it before D.
``gold.ad_state`` and ``gold.ad_viewers`` hold what an impression at D's midnight would
see (the same definitions): per placement x ad the ad's side of the features, per
viewer the viewer's side. ``serving.ad_scores`` holds the scores of every viewer (and
the unknown viewer) for every ad in every placement, from that state.
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
#: The viewer's features among NUMERIC_FEATURES; the rest describe the ad in its placement.
VIEWER_FEATURES: tuple[str, ...] = (USER_AD_IMPRESSIONS, USER_CTR, USER_EVENTS, USER_CATEGORY_AFFINITY)
#: The ad's side of NUMERIC_FEATURES (gold.ad_state), in model order.
AD_SIDE_FEATURES: tuple[str, ...] = tuple(n for n in NUMERIC_FEATURES if n not in VIEWER_FEATURES)
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

CPC = "cpc"
CATEGORIES = "categories"
CATEGORY_EVENTS = "category_events"
P_CTR = "p_ctr"
P_CVR = "p_cvr"
P_CTCVR = "p_ctcvr"
EXPECTED_VALUE = "expected_value"
RANK = "rank"
RANKING_VALUE = "ranking_value"
BUDGET_MULTIPLIER = "budget_multiplier"
PLAN_RUN_DATE = "plan_run_date"

AD_STATE = TableSpec(
    name="ad_state",
    layer="gold",
    columns=(
        Col(C.PLACEMENT, "string", False, "A placement of the log's impressions before run_date."),
        Col(C.ITEM_ID, "string", False, "Advertised item."),
        Col(C.CAMPAIGN_ID, "string", False, "Its campaign (one with impressions in the window)."),
        Col(C.CATEGORY, "string", True, "The item's category as the catalogue listed it last before run_date."),
        Col(C.PRICE_BAND, "int", False, "Index into features.price_bands of the price (-1 when unknown)."),
        *(Col(name, "double", False, NUMERIC_FEATURES[name]) for name in AD_SIDE_FEATURES),
        Col(CPC, "double", False, "The campaign's cost per click: mean charge of its clicked impressions (else all campaigns')."),
        _RUN_DATE,
    ),
    keys=(C.PLACEMENT, C.ITEM_ID, C.CAMPAIGN_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "Every ad (item x campaign of the window) in every placement of the log, with the ad's side of gold.ad_features "
        "for an impression at run_date's midnight (shoplake.ads.state)."
    ),
)

AD_VIEWERS = TableSpec(
    name="ad_viewers",
    layer="gold",
    columns=(
        Col(C.USER_ID, "string", True, "Viewer with ad impressions or clickstream events in the window; null: the unknown viewer."),
        Col(USER_AD_IMPRESSIONS, "double", False, NUMERIC_FEATURES[USER_AD_IMPRESSIONS]),
        Col(USER_CTR, "double", False, NUMERIC_FEATURES[USER_CTR]),
        Col(USER_EVENTS, "double", False, NUMERIC_FEATURES[USER_EVENTS]),
        Col(CATEGORIES, "array<string>", False, "The categories of the viewer's clickstream events, sorted."),
        Col(CATEGORY_EVENTS, "array<double>", False, "The viewer's events in each of those categories."),
        _RUN_DATE,
    ),
    keys=(C.USER_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "Every viewer of the window and the unknown viewer, with the viewer's side of gold.ad_features for an impression "
        "at run_date's midnight (shoplake.ads.state)."
    ),
)

AD_SCORES = TableSpec(
    name="ad_scores",
    layer="serving",
    columns=(
        Col(C.USER_ID, "string", True, "Viewer (a row of gold.ad_viewers); null: the unknown viewer."),
        Col(C.PLACEMENT, "string", False, "Placement."),
        Col(C.ITEM_ID, "string", False, "Advertised item."),
        Col(C.CAMPAIGN_ID, "string", False, "Its campaign."),
        Col(P_CTR, "double", False, "Calibrated probability of a click (an impression at position 1)."),
        Col(P_CVR, "double", False, "Calibrated probability of a conversion after a click."),
        Col(P_CTCVR, "double", False, "Calibrated probability of a click that converts."),
        Col(EXPECTED_VALUE, "double", False, "p_ctcvr x the item's price minus p_ctr x the campaign's cost per click."),
        Col(RANK, "int", False, "Rank of the ad by ranking_value among the placement's ads for this viewer (1: the best)."),
        Col(C.MODEL_NAME, "string", False, "Model family of the bundle that scored."),
        Col(C.MODEL_VERSION, "string", False, "Registered version of ads.registered_model."),
        _RUN_DATE,
        Col(C.SCORED_AT, "timestamp", False, "When the run scored, UTC."),
        Col(RANKING_VALUE, "double", True, "p_ctcvr x price - (1 + budget_multiplier) x p_ctr x cpc, what rank orders."),
        Col(PLAN_RUN_DATE, "date", True, "Run date of the serving.ad_plan ranked by (null: none of run_date; ranked by expected_value)."),
        Col(BUDGET_MULTIPLIER, "double", True, "The campaign's budget multiplier in that plan (null: no plan or no row for the campaign)."),
    ),
    keys=(C.USER_ID, C.PLACEMENT, C.ITEM_ID, C.CAMPAIGN_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "Scores of every viewer of gold.ad_viewers and the unknown viewer for every ad in every placement of gold.ad_state, "
        "ranked as the run date's serving.ad_plan weighs them (shoplake.ads.score)."
    ),
)

PLAN_IMPRESSIONS = "impressions"
PLAN_CLICKS = "clicks"
PLAN_CONVERSIONS = "conversions"
PLAN_SPEND = "spend"
PLAN_VALUE = "value"
PLAN_ROAS = "roas"
DAILY_BUDGET = "daily_budget"
EXPLORATION = "exploration"
MAX_RATIO = "max_ratio"
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
        Col(EXPLORATION, "double", False, "Share of every slot that follows the logged policy (ads.plan_exploration)."),
        Col(MAX_RATIO, "double", True, "Bound on an ad's share of a slot, times the logged policy's (ads.plan_max_ratio; null: none)."),
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

SPECS = (AD_FEATURES, AD_ITEMS, AD_STATE, AD_VIEWERS, AD_SCORES, AD_PLAN)
