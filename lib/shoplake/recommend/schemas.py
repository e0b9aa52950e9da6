"""Operational tables: what the platform records about its own data and models."""

from __future__ import annotations

from shoplake import columns as C
from shoplake.ingest.landing import EVENT_TYPES, EVENTS, ORDERS
from shoplake.lake.spec import Col, TableSpec, history_columns

#: Values of ``ops.model_metrics.task``: the run that evaluated.
TASK_RECOMMENDATION = "recommendation"

#: The evaluation protocols of the recommendation run (``recommender.protocol``).
TIME_CUTOFF, ROLLING, LEAVE_LAST_OUT = "time_cutoff", "rolling", "leave_last_out"
#: The items a recommendation metric is computed over: every held-out item, or the
#: held-out items without a training interaction.
ALL_ITEMS, COLD_ITEMS = "all", "cold_items"
#: ``ops.model_metrics.slice`` of a recommendation row is ``<protocol>/<split>/<items>``,
#: e.g. ``rolling/validation/all``: the evaluation protocol, the split and the items.
SLICE_SEPARATOR = "/"
#: The split of a run's validation figures pooled over several validation windows (rolling).
VALIDATION_POOLED = "validation_pooled"


def metrics_slice(protocol: str, split: str, items: str) -> str:
    """The ``ops.model_metrics.slice`` of a recommendation row."""
    return SLICE_SEPARATOR.join((protocol, split, items))


def parse_metrics_slice(value: str) -> tuple[str | None, str | None, str]:
    """``(protocol, split, items)`` of a recommendation row's slice; rows written before protocols were named hold only the items."""
    parts = value.split(SLICE_SEPARATOR)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return None, None, value


VIEW, CLICK, ADD_TO_CART, PURCHASE, SEARCH = EVENT_TYPES

#: Event types that are interactions with an item (a search is not about one item).
INTERACTION_TYPES = (VIEW, CLICK, ADD_TO_CART, PURCHASE)
#: Values of ``silver.interactions.source``: the bronze table the interaction came from.
SOURCE_EVENTS = EVENTS.name
SOURCE_ORDERS = ORDERS.name
INTERACTION_SOURCES = (SOURCE_EVENTS, SOURCE_ORDERS)

_RUN_DATE = Col(C.RUN_DATE, "date", False, "The day these features are built for; only data before its midnight (UTC) is used.")

#: Columns that identify an interaction of ``silver.interactions``.
INTERACTION_IDENTITY = (C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_TS, C.SOURCE)

INTERACTIONS = TableSpec(
    name="interactions",
    layer="silver",
    columns=(
        Col(C.USER_ID, "string", False, "Customer (or anonymous visitor of the clickstream)."),
        Col(C.ITEM_ID, "string", False, "Product."),
        Col(C.EVENT_TYPE, "string", False, f"One of {', '.join(INTERACTION_TYPES)}."),
        Col(C.EVENT_TS, "timestamp", False, "When it happened, UTC."),
        Col(C.SOURCE, "string", False, f"Bronze table it came from: {' or '.join(INTERACTION_SOURCES)}."),
        *history_columns("interaction"),
    ),
    keys=(*INTERACTION_IDENTITY, C.KNOWN_FROM),
    partition_by=(C.EVENT_DATE,),
    description=(
        "User-item interactions, each stored once: clickstream views, clicks, add-to-carts and purchases plus placed "
        "order lines net of cancellations, deduplicated; run date D's snapshot is known_from <= D < known_until "
        "within features.lookback_days."
    ),
)

USER_ITEM_MATRIX = TableSpec(
    name="user_item_matrix",
    layer="gold",
    columns=(
        Col(C.USER_ID, "string", False, "Customer."),
        Col(C.ITEM_ID, "string", False, "Product."),
        Col(
            C.WEIGHT,
            "double",
            False,
            "Implicit feedback: sum of features.event_weights[type] * 0.5 ** (age_days / features.half_life_days), "
            "age measured from run_date's midnight UTC.",
        ),
        Col(C.N_VIEWS, "long", False, "Views in the lookback window."),
        Col(C.N_CLICKS, "long", False, "Clicks in the lookback window."),
        Col(C.N_CARTS, "long", False, "Add-to-carts in the lookback window."),
        Col(C.N_PURCHASES, "long", False, "Purchases (net of cancellations) in the lookback window."),
        Col(C.LAST_INTERACTION_TS, "timestamp", False, "Latest interaction of the pair."),
        _RUN_DATE,
    ),
    keys=(C.USER_ID, C.ITEM_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=("Time-decayed implicit-feedback weight and interaction counts per user and item, for collaborative filtering."),
)

ITEM_FEATURES = TableSpec(
    name="item_features",
    layer="gold",
    columns=(
        Col(C.ITEM_ID, "string", False, "Product."),
        Col(
            C.TITLE,
            "string",
            True,
            "Title of the latest product row before run_date; null for an item seen only in interactions.",
        ),
        Col(C.DESCRIPTION, "string", True, "Description of that row."),
        Col(
            C.TEXT,
            "string",
            True,
            "Input of the text encoder: title + '. ' + description (the title alone when they are equal or there is no description).",
        ),
        Col(C.CATEGORY, "string", True, "Category of the latest product row."),
        Col(C.BRAND, "string", True, "Brand of the latest product row."),
        Col(C.PRICE, "double", True, "Latest known list price before run_date."),
        Col(
            C.PRICE_BAND,
            "int",
            True,
            "Index into features.price_bands: the first band whose upper bound is >= price; len(bands) above the last.",
        ),
        Col(C.POPULARITY, "long", False, "Distinct users who interacted with the item in the 30 days before run_date."),
        Col(C.N_PURCHASES_30D, "long", False, "Purchase interactions in the 30 days before run_date."),
        Col(
            C.FIRST_SEEN_TS,
            "timestamp",
            False,
            "Earliest of the item's first product row and its first interaction in the lookback window.",
        ),
        _RUN_DATE,
    ),
    keys=(C.ITEM_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=("Every catalogued item (cold ones included) and every interacted item, with text, price and popularity as of run_date."),
)

USER_FEATURES = TableSpec(
    name="user_features",
    layer="gold",
    columns=(
        Col(C.USER_ID, "string", False, "Customer with at least one interaction in the lookback window."),
        Col(C.N_INTERACTIONS, "long", False, "Interactions in the lookback window."),
        Col(C.N_PURCHASES, "long", False, "Purchases (net of cancellations) in the lookback window."),
        Col(C.N_DISTINCT_ITEMS, "long", False, "Distinct items interacted with."),
        Col(C.FIRST_INTERACTION_TS, "timestamp", False, "Earliest interaction in the lookback window."),
        Col(C.LAST_INTERACTION_TS, "timestamp", False, "Latest interaction."),
        Col(
            C.FAVOURITE_CATEGORY,
            "string",
            True,
            "Category with the largest time-decayed interaction weight (ties: alphabetical); null when no item has one.",
        ),
        Col(
            C.AVG_PURCHASE_PRICE,
            "double",
            True,
            "Mean current price of the purchased items, one term per purchase; null without purchases or prices.",
        ),
        Col(
            C.DAYS_SINCE_LAST_INTERACTION,
            "double",
            False,
            "Fractional days from the last interaction to run_date's midnight UTC.",
        ),
        _RUN_DATE,
    ),
    keys=(C.USER_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description="Activity, taste and price level per user as of run_date.",
)

RECOMMENDATIONS = TableSpec(
    name="recommendations",
    layer="serving",
    columns=(
        Col(C.USER_ID, "string", False, "Customer."),
        Col(C.RANK, "int", False, "1 = best."),
        Col(C.ITEM_ID, "string", False, "Recommended product."),
        Col(C.SCORE, "double", False, "The model's score (comparable within one user and model version)."),
        Col(C.RECOMMENDATION_REASON, "string", False, "Short explanation: 'bought X', 'popular in Y'."),
        Col(C.MODEL_NAME, "string", False, "Model family of the registered version."),
        Col(C.MODEL_VERSION, "string", False, "Registered model version (MLflow) that scored."),
        Col(C.RUN_DATE, "date", False, "Features date scored for."),
        Col(C.SCORED_AT, "timestamp", False, "When the scoring ran, UTC."),
    ),
    keys=(C.USER_ID, C.RANK, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description="Top-k recommendations per user and run date, written in one commit per run.",
)

SPECS = (INTERACTIONS, USER_ITEM_MATRIX, ITEM_FEATURES, USER_FEATURES, RECOMMENDATIONS)
