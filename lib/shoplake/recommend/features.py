"""Recommendation features: interactions and the pair, item and user features built on them.

Pure Spark transforms (no I/O). Each takes the run date ``D`` the features are built
*for* and uses only data strictly before D's midnight, UTC: an event at
``D 00:00:00`` or later is excluded, and so is a product row updated then.

Rules of :func:`compute_interactions`, the silver step:

* **Sources.** Clickstream events of types view, click, add_to_cart and purchase
  (searches have no item) from ``bronze.events``; placed order lines become purchases
  at ``order_ts`` from ``bronze.orders``. Either source may be absent: Online Retail
  has only orders, so its interactions are customers x stock codes. Guest order
  lines (no ``user_id``) are left out; they cannot be attributed to anyone.
* **Cancellation netting.** A cancelled line nets out purchased units of the same
  user and item, latest first (LIFO), among the lines placed at or before it. The
  key is (user, item) rather than the order id because the two shops differ: the
  synthetic shop repeats the cancelled line under its order id, while Online Retail
  gives a cancellation its own ``C``-prefixed invoice number that does not name the
  original invoice. Units count, so cancelling 6 of 12 units leaves the line a
  purchase, and cancelling all 12 removes it. A cancellation with nothing standing
  before it (its sale precedes the data) is ignored. Only cancellations before D
  count: a purchase cancelled on or after D is still a purchase in D's snapshot.
  Returns are not netted: the customer did buy the item.
* **One record of each purchase.** The synthetic shop logs a purchase event for
  every placed line. The order line wins, since only it can be netted against a
  cancellation: a purchase event is dropped when a placed line of the same user and
  item (netted or not) lies within :data:`PURCHASE_MATCH_SECONDS` of it. Purchase
  events without such a line (a clickstream-only shop) stay.
* **Deduplication.** Rows with the same (user, item, event type, event time) are one
  interaction, whichever source or landing file they came from (Online Retail
  repeats some lines exactly; they stay one purchase after netting by units).
* **Window.** Interactions from ``D - lookback_days`` (inclusive) to D's midnight
  (exclusive) are kept; netting and purchase matching look at the whole history
  before D, so a cancellation inside the window of a sale before it does not
  remove another purchase.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.features.catalogue import item_text, price_band
from shoplake.features.history import History, touched_groups
from shoplake.features.orders import KEPT, net_cancellations
from shoplake.features.pit import MICROS_PER_DAY, run_midnight
from shoplake.ingest.landing import CANCELLED, EVENTS, ORDERS, PLACED
from shoplake.recommend.schemas import (
    ADD_TO_CART,
    CLICK,
    INTERACTION_IDENTITY,
    INTERACTION_TYPES,
    INTERACTIONS,
    PURCHASE,
    SOURCE_EVENTS,
    SOURCE_ORDERS,
    VIEW,
)

#: A purchase event this close (either side) to a placed order line of the same user and item is that line.
PURCHASE_MATCH_SECONDS = 60
#: Window of ``popularity`` and ``n_purchases_30d`` in the item features.
POPULARITY_DAYS = 30
_MATCH_USER = "_match_user"
_MATCH_ITEM = "_match_item"
_MATCH_US = "_match_us"
_W = "_weight"
_LATEST = "_latest"
_FIRST_LISTED = "_first_listed"
_FIRST_INTERACTION = "_first_interaction"


def _micros(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def _before(ts_col: str, moment: dt.datetime) -> Column:
    return F.col(ts_col) < F.lit(moment)


def age_days(ts_col: str, run_date: dt.date) -> Column:
    """Fractional days from ``ts_col`` to ``run_date``'s midnight UTC (positive for the past)."""
    # Integer microseconds keep the subtraction exact before the one division.
    return (F.lit(_micros(run_midnight(run_date))) - F.unix_micros(F.col(ts_col))) / F.lit(MICROS_PER_DAY)


def interaction_weight(run_date: dt.date, event_weights: Mapping[str, float], half_life_days: float) -> Column:
    """Implicit-feedback weight of one interaction: ``event_weights[type] * 0.5 ** (age_days / half_life_days)``.

    Args:
        run_date: Day the features are built for; age is measured from its midnight UTC.
        event_weights: Weight per event type; a type not in the map weighs 0.
        half_life_days: Days after which an interaction counts half.

    Returns:
        A double column over ``event_type`` and ``event_ts``.
    """
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
    type_weight: Column = F.lit(0.0)
    for event_type, weight in event_weights.items():
        type_weight = F.when(F.col(C.EVENT_TYPE) == event_type, F.lit(float(weight))).otherwise(type_weight)
    decay = F.pow(F.lit(0.5), age_days(C.EVENT_TS, run_date) / F.lit(float(half_life_days)))
    return type_weight * decay


def _interaction(df: DataFrame, event_type: Column, ts_col: str, source: str) -> DataFrame:
    return df.select(
        F.col(C.USER_ID),
        F.col(C.ITEM_ID),
        event_type.alias(C.EVENT_TYPE),
        F.col(ts_col).alias(C.EVENT_TS),
        F.lit(source).alias(C.SOURCE),
    )


def _drop_purchases_of_order_lines(events: DataFrame, placed: DataFrame, seconds: int) -> DataFrame:
    """Events without the purchase events that record one of the ``placed`` order lines."""
    lines = placed.select(
        F.col(C.USER_ID).alias(_MATCH_USER),
        F.col(C.ITEM_ID).alias(_MATCH_ITEM),
        F.unix_micros(F.col(C.ORDER_TS)).alias(_MATCH_US),
    )
    purchases = events.where(F.col(C.EVENT_TYPE) == PURCHASE)
    same_line = (
        (F.col(C.USER_ID) == F.col(_MATCH_USER))
        & (F.col(C.ITEM_ID) == F.col(_MATCH_ITEM))
        & (F.abs(F.unix_micros(F.col(C.EVENT_TS)) - F.col(_MATCH_US)) <= F.lit(seconds * 1_000_000))
    )
    unrecorded = purchases.join(lines, same_line, "left_anti")
    return events.where(F.col(C.EVENT_TYPE) != PURCHASE).unionByName(unrecorded)


def compute_interactions(
    events_df: DataFrame | None,
    orders_df: DataFrame | None,
    run_date: dt.date,
    lookback_days: int,
    purchase_match_seconds: int = PURCHASE_MATCH_SECONDS,
) -> DataFrame:
    """User-item interactions known before ``run_date``: the rows of ``silver.interactions`` for that date.

    The rules (sources, cancellation netting, purchase matching, deduplication,
    window) are in the module docstring.

    Args:
        events_df: Clickstream rows with ``user_id, item_id, event_type, event_ts``
            (``bronze.events``), or None when the shop has no clickstream.
        orders_df: Order lines with ``order_id, line_number, user_id, item_id,
            quantity, order_ts, status`` (``bronze.orders``), or None.
        run_date: Day the snapshot is built for.
        lookback_days: Interactions older than this many days before ``run_date`` are left out.
        purchase_match_seconds: How far apart a purchase event and its order line may be.

    Returns:
        ``user_id, item_id, event_type, event_ts, source, run_date``, one row per interaction.

    Raises:
        ValueError: Neither source was given, or ``lookback_days`` is not positive.
    """
    if lookback_days < 1:
        raise ValueError(f"lookback_days must be >= 1, got {lookback_days}")
    start = run_midnight(run_date) - dt.timedelta(days=lookback_days)
    return (
        all_interactions(events_df, orders_df, run_date, purchase_match_seconds)
        .where(F.col(C.EVENT_TS) >= F.lit(start))
        .withColumn(C.RUN_DATE, F.lit(run_date))
    )


def all_interactions(
    events_df: DataFrame | None,
    orders_df: DataFrame | None,
    run_date: dt.date,
    purchase_match_seconds: int = PURCHASE_MATCH_SECONDS,
) -> DataFrame:
    """Every interaction known before ``run_date``, however old: the facts of ``silver.interactions``.

    :func:`compute_interactions` without the window; its rules apply.

    Returns:
        ``user_id, item_id, event_type, event_ts, source``, one row per interaction.

    Raises:
        ValueError: Neither source was given.
    """
    if events_df is None and orders_df is None:
        raise ValueError("compute_interactions needs events, orders or both")
    end = run_midnight(run_date)

    parts: list[DataFrame] = []
    placed = None
    if orders_df is not None:
        lines = orders_df.where(F.col(C.USER_ID).isNotNull() & F.col(C.STATUS).isin(PLACED, CANCELLED) & _before(C.ORDER_TS, end)).select(
            C.ORDER_ID, C.LINE_NUMBER, C.USER_ID, C.ITEM_ID, C.QUANTITY, C.ORDER_TS, C.STATUS
        )
        placed = lines.where(F.col(C.STATUS) == PLACED)
        netted = net_cancellations(lines)
        parts.append(_interaction(netted.where(F.col(KEPT)), F.lit(PURCHASE), C.ORDER_TS, SOURCE_ORDERS))
    if events_df is not None:
        events = _interaction(
            events_df.where(
                F.col(C.EVENT_TYPE).isin(*INTERACTION_TYPES)
                & F.col(C.USER_ID).isNotNull()
                & F.col(C.ITEM_ID).isNotNull()
                & _before(C.EVENT_TS, end)
            ),
            F.col(C.EVENT_TYPE),
            C.EVENT_TS,
            SOURCE_EVENTS,
        )
        if placed is not None:
            # Netted lines included: the purchase event of a cancelled line goes with it.
            events = _drop_purchases_of_order_lines(events, placed, purchase_match_seconds)
        parts.append(events)

    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    # After the purchase matching no key occurs in both sources, so the rows that
    # dropDuplicates chooses between are identical: the choice is deterministic.
    return union.dropDuplicates([C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_TS])


def _snapshot(interactions: DataFrame, run_date: dt.date) -> DataFrame:
    # A guard, not a filter that should ever bite: gold rows must not depend on
    # anything at or after the run date even if handed a wider interaction table.
    return interactions.where(_before(C.EVENT_TS, run_midnight(run_date)))


def _count_of(event_type: str) -> Column:
    return F.count(F.when(F.col(C.EVENT_TYPE) == event_type, F.lit(1)))


def compute_user_item_matrix(
    interactions: DataFrame,
    run_date: dt.date,
    event_weights: Mapping[str, float],
    half_life_days: float,
) -> DataFrame:
    """The rows of ``gold.user_item_matrix`` for ``run_date``.

    Args:
        interactions: ``silver.interactions`` rows of this run date.
        run_date: Day the features are built for; ages are measured from its midnight UTC.
        event_weights: Weight per event type (``cfg.features.event_weights``); others weigh 0.
        half_life_days: Decay half-life (``cfg.features.half_life_days``).

    Returns:
        ``user_id, item_id, weight, n_views, n_clicks, n_carts, n_purchases,
        last_interaction_ts, run_date``, one row per pair with an interaction.
    """
    return (
        _snapshot(interactions, run_date)
        .groupBy(C.USER_ID, C.ITEM_ID)
        .agg(
            F.sum(interaction_weight(run_date, event_weights, half_life_days)).alias(C.WEIGHT),
            _count_of(VIEW).alias(C.N_VIEWS),
            _count_of(CLICK).alias(C.N_CLICKS),
            _count_of(ADD_TO_CART).alias(C.N_CARTS),
            _count_of(PURCHASE).alias(C.N_PURCHASES),
            F.max(C.EVENT_TS).alias(C.LAST_INTERACTION_TS),
        )
        .withColumn(C.RUN_DATE, F.lit(run_date))
    )


def compute_item_features(
    products_df: DataFrame | None,
    interactions: DataFrame,
    run_date: dt.date,
    price_bands: Sequence[float],
    popularity_days: int = POPULARITY_DAYS,
) -> DataFrame:
    """The rows of ``gold.item_features`` for ``run_date``.

    Items are the catalogue (every item with a product row updated before the run
    date, cold items included, with popularity 0) plus every interacted item without
    a product row yet; those keep null text, category, brand and price so that a
    model finds a row for each item it has seen while the text encoder skips them.

    Args:
        products_df: Product rows ``item_id, title, description, category, brand,
            price, updated_at`` (``bronze.products``, all versions), or None when the
            shop has no catalogue.
        interactions: ``silver.interactions`` rows of this run date.
        run_date: Day the features are built for.
        price_bands: Upper bounds of the price bands (``cfg.features.price_bands``).
        popularity_days: Window of ``popularity`` and ``n_purchases_30d``.

    Returns:
        One row per item: text and price from the latest product row before the run
        date (price: the latest non-null one), ``price_band``, ``popularity``
        (distinct users in the window), ``n_purchases_30d``, ``first_seen_ts``
        (earliest product row or interaction) and ``run_date``.
    """
    end = run_midnight(run_date)
    since = F.col(C.EVENT_TS) >= F.lit(end - dt.timedelta(days=popularity_days))
    activity = (
        _snapshot(interactions, run_date)
        .groupBy(C.ITEM_ID)
        .agg(
            F.count_distinct(F.when(since, F.col(C.USER_ID))).alias(C.POPULARITY),
            F.count(F.when(since & (F.col(C.EVENT_TYPE) == PURCHASE), F.lit(1))).alias(C.N_PURCHASES_30D),
            F.min(C.EVENT_TS).alias(_FIRST_INTERACTION),
        )
    )
    descriptive = (C.TITLE, C.DESCRIPTION, C.CATEGORY, C.BRAND)
    if products_df is None:
        items = activity
        for name in descriptive:
            items = items.withColumn(name, F.lit(None).cast("string"))
        items = items.withColumn(C.PRICE, F.lit(None).cast("double")).withColumn(_FIRST_LISTED, F.lit(None).cast("timestamp"))
    else:
        catalogue = (
            products_df.where(_before(C.UPDATED_AT, end))
            .groupBy(C.ITEM_ID)
            .agg(
                F.max_by(F.struct(*descriptive), F.col(C.UPDATED_AT)).alias(_LATEST),
                # A row may leave the price empty ("unknown"); the last price known still holds.
                F.max_by(F.col(C.PRICE), F.when(F.col(C.PRICE).isNotNull(), F.col(C.UPDATED_AT))).alias(C.PRICE),
                F.min(C.UPDATED_AT).alias(_FIRST_LISTED),
            )
            .select(C.ITEM_ID, *(F.col(f"{_LATEST}.{name}").alias(name) for name in descriptive), C.PRICE, _FIRST_LISTED)
        )
        items = catalogue.join(activity, C.ITEM_ID, "full_outer")
    return items.select(
        C.ITEM_ID,
        C.TITLE,
        C.DESCRIPTION,
        item_text(F.col(C.TITLE), F.col(C.DESCRIPTION)).alias(C.TEXT),
        C.CATEGORY,
        C.BRAND,
        C.PRICE,
        price_band(F.col(C.PRICE), price_bands).alias(C.PRICE_BAND),
        F.coalesce(F.col(C.POPULARITY), F.lit(0).cast("long")).alias(C.POPULARITY),
        F.coalesce(F.col(C.N_PURCHASES_30D), F.lit(0).cast("long")).alias(C.N_PURCHASES_30D),
        # least() skips nulls: an item known from only one side takes that side's time.
        F.least(F.col(_FIRST_LISTED), F.col(_FIRST_INTERACTION)).alias(C.FIRST_SEEN_TS),
        F.lit(run_date).alias(C.RUN_DATE),
    )


def compute_user_features(
    interactions: DataFrame,
    item_features: DataFrame,
    run_date: dt.date,
    event_weights: Mapping[str, float],
    half_life_days: float,
) -> DataFrame:
    """The rows of ``gold.user_features`` for ``run_date``: one per user with an interaction.

    Args:
        interactions: ``silver.interactions`` rows of this run date.
        item_features: ``gold.item_features`` rows; only those of ``run_date`` are
            used, so no later price or category leaks in.
        run_date: Day the features are built for.
        event_weights: Weight per event type, for the favourite category.
        half_life_days: Decay half-life, for the favourite category.

    Returns:
        ``user_id, n_interactions, n_purchases, n_distinct_items, first_interaction_ts,
        last_interaction_ts, favourite_category`` (the category with the largest
        time-decayed weight, ties alphabetical, null when none of the user's items
        has one), ``avg_purchase_price`` (mean current price over purchases, null
        without any priced purchase), ``days_since_last_interaction`` and ``run_date``.
    """
    items = item_features.where(F.col(C.RUN_DATE) == F.lit(run_date)).select(C.ITEM_ID, C.CATEGORY, C.PRICE)
    with_items = (
        _snapshot(interactions, run_date)
        .withColumn(_W, interaction_weight(run_date, event_weights, half_life_days))
        .join(items, C.ITEM_ID, "left")
    )
    activity = with_items.groupBy(C.USER_ID).agg(
        F.count(F.lit(1)).alias(C.N_INTERACTIONS),
        _count_of(PURCHASE).alias(C.N_PURCHASES),
        F.count_distinct(C.ITEM_ID).alias(C.N_DISTINCT_ITEMS),
        F.min(C.EVENT_TS).alias(C.FIRST_INTERACTION_TS),
        F.max(C.EVENT_TS).alias(C.LAST_INTERACTION_TS),
        # avg skips the nulls: non-purchases and items without a price.
        F.avg(F.when(F.col(C.EVENT_TYPE) == PURCHASE, F.col(C.PRICE))).alias(C.AVG_PURCHASE_PRICE),
    )
    favourite = (
        with_items.where(F.col(C.CATEGORY).isNotNull())
        .groupBy(C.USER_ID, C.CATEGORY)
        .agg(F.sum(_W).alias(_W))
        .groupBy(C.USER_ID)
        # The smallest (-weight, category) is the heaviest category, ties alphabetical.
        .agg(F.min_by(F.col(C.CATEGORY), F.struct(-F.col(_W), F.col(C.CATEGORY))).alias(C.FAVOURITE_CATEGORY))
    )
    return (
        activity.join(favourite, C.USER_ID, "left")
        .withColumn(C.DAYS_SINCE_LAST_INTERACTION, age_days(C.LAST_INTERACTION_TS, run_date))
        .withColumn(C.RUN_DATE, F.lit(run_date))
    )


def _interaction_facts(ctx, pairs, day: dt.date):
    def of_pairs(source: str):
        landed = ctx.landed_before(source, day)
        return landed if landed is None or pairs is None else landed.join(pairs, [C.USER_ID, C.ITEM_ID], "left_semi")

    return all_interactions(of_pairs(EVENTS.name), of_pairs(ORDERS.name), day)


def _touched_pairs(ctx, since: dt.date, day: dt.date):
    frames = [(ctx.landed_before(EVENTS.name, day), C.EVENT_TS), (ctx.landed_before(ORDERS.name, day), C.ORDER_TS)]
    return touched_groups(frames, (C.USER_ID, C.ITEM_ID), since, day)


#: ``silver.interactions``, stored once: an interaction depends only on its user and item's rows.
INTERACTION_HISTORY = History(
    spec=INTERACTIONS,
    identity=INTERACTION_IDENTITY,
    group=(C.USER_ID, C.ITEM_ID),
    ts=C.EVENT_TS,
    facts=_interaction_facts,
    touched=_touched_pairs,
    window_days=lambda cfg: cfg.features.lookback_days,
)
