"""The feature step: bronze -> ``silver.*`` -> ``gold.*`` for some run dates.

For each run date D the step reads what the lake knew before D (bronze partitions
of landing days before D, and within them only rows timestamped before D's
midnight), computes the four recommendation tables with the pure transforms of
:mod:`shoplake.features.interactions`, when the shop has orders, the daily item
sales of :mod:`shoplake.features.daily_sales`, when it has payments, the fraud
tables ``silver.transactions`` and ``gold.txn_features`` of
:mod:`shoplake.features.txn_features`, and the text tables of
:mod:`shoplake.features.text`: ``silver.support_tickets`` and ``gold.support_training``
when it has support tickets, ``gold.product_text`` when it has products; and writes
D's partition of each. All tables
of all run dates are written in one lake batch: after an error the lake is as it
was, and re-running a date replaces its partitions (a new version with the same rows).
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shoplake.config import Config
from shoplake.features.daily_sales import compute_item_daily_sales
from shoplake.features.interactions import (
    compute_interactions,
    compute_item_features,
    compute_user_features,
    compute_user_item_matrix,
    landed_before,
    run_midnight,
)
from shoplake.features.text import compute_product_text, compute_support_tickets, compute_support_training
from shoplake.features.txn_features import compute_transactions, compute_txn_features
from shoplake.lake import Lake, WriteResult
from shoplake.schemas import columns as C
from shoplake.schemas.bronze import BRONZE
from shoplake.schemas.forecast import ITEM_DAILY_SALES
from shoplake.schemas.fraud import TRANSACTIONS, TXN_FEATURES
from shoplake.schemas.landing import CHARGEBACKS, EVENTS, INVENTORY, ORDERS, PAYMENTS, PRODUCTS
from shoplake.schemas.landing import SUPPORT_TICKETS as TICKETS_SOURCE
from shoplake.schemas.recsys import INTERACTIONS, ITEM_FEATURES, USER_FEATURES, USER_ITEM_MATRIX
from shoplake.schemas.spec import TableSpec
from shoplake.schemas.text import PRODUCT_TEXT, SUPPORT_TICKETS, SUPPORT_TRAINING

log = logging.getLogger(__name__)

#: Every table the step writes, in the order of its results. ``gold.item_daily_sales``
#: needs orders: a shop without them (clickstream only) does not get it.
#: ``silver.transactions`` and ``gold.txn_features`` need payments: a shop without them
#: (Online Retail) does not get them. ``silver.support_tickets`` and ``gold.support_training``
#: need support tickets, ``gold.product_text`` needs products.
OUTPUTS = (
    INTERACTIONS, USER_ITEM_MATRIX, ITEM_FEATURES, USER_FEATURES, ITEM_DAILY_SALES, TRANSACTIONS, TXN_FEATURES,
    SUPPORT_TICKETS, SUPPORT_TRAINING, PRODUCT_TEXT,
)  # fmt: skip
#: The recommendation tables, built from ``bronze.events`` and ``bronze.orders``.
RECOMMENDATION_OUTPUTS = (INTERACTIONS, USER_ITEM_MATRIX, ITEM_FEATURES, USER_FEATURES)
#: The tables built from ``bronze.payments``.
FRAUD_OUTPUTS = (TRANSACTIONS, TXN_FEATURES)
#: The tables built from ``bronze.support_tickets``.
SUPPORT_OUTPUTS = (SUPPORT_TICKETS, SUPPORT_TRAINING)
#: The tables built from ``bronze.products`` alone.
PRODUCT_OUTPUTS = (PRODUCT_TEXT,)


class FeatureInputError(ValueError):
    """The bronze tables the features need are not in the lake."""


def _read_optional(lake: Lake, spec: TableSpec, why_optional: str) -> DataFrame | None:
    version = lake.version(spec)
    if version is None:
        log.warning("%s does not exist in %s; %s", spec.full_name, lake.root, why_optional)
        return None
    log.info("reading %s v%d", spec.full_name, version)
    return lake.read(spec)


def _landed_before(df: DataFrame | None, day: dt.date) -> DataFrame | None:
    # Bronze partitions are landing days; the nightly run for D has only seen files of
    # earlier days, so a late-arriving row does not change D's snapshot on a rebuild.
    return None if df is None else landed_before(df, day)


def _landed_between(df: DataFrame | None, first: dt.date, day: dt.date) -> DataFrame | None:
    landed = _landed_before(df, day)
    return None if landed is None else landed.where(F.col(C.RUN_DATE) >= F.lit(first))


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df)
    return out


def holdout_dates(cfg: Config, lake: Lake, run_dates: list[dt.date]) -> list[dt.date]:
    """Cutoff dates the recommendation run will evaluate from that have no features yet.

    The recommendation run for D trains on the snapshot of ``D - recommender.holdout_days``
    and holds out the days after it. A nightly schedule built that snapshot days ago;
    this returns the cutoffs of ``run_dates`` whose ``gold.user_item_matrix`` partition
    is missing (a first run, a backfill), so the feature step can build them too.
    """
    cutoffs = {d - dt.timedelta(days=cfg.recommender.holdout_days) for d in run_dates}
    have = set(lake.run_dates(USER_ITEM_MATRIX))
    return sorted(cutoffs - have - set(run_dates))


def build_features(cfg: Config, lake: Lake, run_dates: list[dt.date], *, with_holdout: bool = False) -> list[WriteResult]:
    """Build the ``silver`` and ``gold`` tables of :data:`OUTPUTS` for some run dates.

    ``silver.interactions`` and ``gold.{user_item_matrix,item_features,user_features}``
    for recommendation, ``gold.item_daily_sales`` for forecasting, ``silver.transactions``
    and ``gold.txn_features`` for fraud detection, ``silver.support_tickets`` and
    ``gold.support_training`` for customer service, ``gold.product_text`` for product
    categorization.

    Args:
        cfg: Configuration (``features``: event weights, half-life, lookback, price
            bands; ``fraud``: history and maturity days, fraud reason codes).
        lake: The lake to read bronze from and write the features to.
        run_dates: Days to build the features for; each day's partition of every
            output is replaced. A loop over days, so meant for nightly runs and short
            backfills rather than years at once.
        with_holdout: Also build the missing cutoff snapshots of :func:`holdout_dates`.

    Returns:
        The write results of the tables written, in the order of :data:`OUTPUTS`:
        all ten, less the recommendation tables (:data:`RECOMMENDATION_OUTPUTS`) when
        neither ``bronze.events`` nor ``bronze.orders`` exists (a lake of catalogue and
        support messages only), less ``gold.item_daily_sales`` when ``bronze.orders`` does not
        exist, less ``silver.transactions`` and ``gold.txn_features``
        (:data:`FRAUD_OUTPUTS`) when ``bronze.payments`` does not, less
        ``silver.support_tickets`` and ``gold.support_training``
        (:data:`SUPPORT_OUTPUTS`) when ``bronze.support_tickets`` does not and less
        ``gold.product_text`` (:data:`PRODUCT_OUTPUTS`) when ``bronze.products`` does not.

    Raises:
        FeatureInputError: No table can be built: none of ``bronze.events``, ``orders``,
            ``payments``, ``support_tickets`` and ``products`` exists.
        ValueError: No run dates were given.
    """
    days = sorted(set(run_dates))
    if not days:
        raise ValueError("build_features: no run dates given")
    if with_holdout:
        extra = holdout_dates(cfg, lake, days)
        if extra:
            log.info("features: also building the holdout cutoff snapshot(s) %s", ", ".join(map(str, extra)))
        days = sorted(set(days) | set(extra))
    feats, fraud = cfg.features, cfg.fraud
    events = _read_optional(lake, BRONZE[EVENTS.name], "interactions come from orders only")
    orders = _read_optional(lake, BRONZE[ORDERS.name], "interactions come from the clickstream only")
    products = _read_optional(lake, BRONZE[PRODUCTS.name], "item features have no text, category or price")
    inventory = None
    specs = list(OUTPUTS)
    shopping = events is not None or orders is not None
    if not shopping:
        log.warning(
            "features: no %s or %s in %s; %s are skipped", BRONZE[EVENTS.name].full_name, BRONZE[ORDERS.name].full_name,
            lake.root, ", ".join(s.full_name for s in RECOMMENDATION_OUTPUTS),
        )  # fmt: skip
        specs = [spec for spec in specs if spec not in RECOMMENDATION_OUTPUTS]
    if orders is None:
        log.info("features: %s is skipped, it is built from orders", ITEM_DAILY_SALES.full_name)
        specs.remove(ITEM_DAILY_SALES)
    else:
        inventory = _read_optional(lake, BRONZE[INVENTORY.name], "item daily sales have no stock-out flags")
    payments = _read_optional(lake, BRONZE[PAYMENTS.name], "the fraud tables are not built")
    chargebacks = None
    if payments is None:
        log.info(
            "features: %s are skipped, they are built from payments", " and ".join(s.full_name for s in FRAUD_OUTPUTS)
        )
        specs = [spec for spec in specs if spec not in FRAUD_OUTPUTS]
    else:
        chargebacks = _read_optional(
            lake, BRONZE[CHARGEBACKS.name], "no payment has a chargeback: matured ones are labelled 0"
        )
    tickets = _read_optional(lake, BRONZE[TICKETS_SOURCE.name], "the support tables are not built")
    if tickets is None:
        log.info(
            "features: %s are skipped, they are built from support tickets",
            " and ".join(s.full_name for s in SUPPORT_OUTPUTS),
        )
        specs = [spec for spec in specs if spec not in SUPPORT_OUTPUTS]
    if products is None:
        log.info("features: %s is skipped, it is built from products", PRODUCT_TEXT.full_name)
        specs = [spec for spec in specs if spec not in PRODUCT_OUTPUTS]
    if not specs:
        raise FeatureInputError(
            f"no {BRONZE[EVENTS.name].full_name}, {BRONZE[ORDERS.name].full_name}, {BRONZE[PAYMENTS.name].full_name}, "
            f"{BRONZE[TICKETS_SOURCE.name].full_name} or {BRONZE[PRODUCTS.name].full_name} in {lake.root}: nothing to "
            "build features from; ingest the shop's files first"
        )

    outputs: dict[str, list[DataFrame]] = {spec.full_name: [] for spec in specs}
    cached: list[DataFrame] = []
    try:
        for day in days:
            if shopping:
                earliest_event = (run_midnight(day) - dt.timedelta(days=feats.lookback_days)).date()
                # Nothing happens before it lands, so older landing days cannot hold events in the window.
                day_events = _landed_before(events, day)
                if day_events is not None:
                    day_events = day_events.where(F.col(C.RUN_DATE) >= F.lit(earliest_event))
                interactions = compute_interactions(
                    day_events, _landed_before(orders, day), day, feats.lookback_days
                ).persist()
                items = compute_item_features(_landed_before(products, day), interactions, day, feats.price_bands).persist()
                cached += [interactions, items]
                outputs[INTERACTIONS.full_name].append(interactions)
                outputs[USER_ITEM_MATRIX.full_name].append(
                    compute_user_item_matrix(interactions, day, feats.event_weights, feats.half_life_days)
                )
                outputs[ITEM_FEATURES.full_name].append(items)
                outputs[USER_FEATURES.full_name].append(
                    compute_user_features(interactions, items, day, feats.event_weights, feats.half_life_days)
                )
            if orders is not None:
                outputs[ITEM_DAILY_SALES.full_name].append(
                    compute_item_daily_sales(
                        _landed_before(orders, day), _landed_before(products, day), _landed_before(inventory, day), day
                    )
                )
            if payments is not None:
                # A payment or its chargeback lands on the day it happened or later, so
                # older landing days hold nothing of the history window.
                earliest_payment = (run_midnight(day) - dt.timedelta(days=fraud.history_days)).date()
                transactions = compute_transactions(
                    _landed_between(payments, earliest_payment, day),
                    _landed_before(orders, day),
                    _landed_between(chargebacks, earliest_payment, day),
                    day,
                    fraud.history_days,
                    fraud.maturity_days,
                    fraud.fraud_reason_codes,
                ).persist()
                cached.append(transactions)
                outputs[TRANSACTIONS.full_name].append(transactions)
                outputs[TXN_FEATURES.full_name].append(compute_txn_features(transactions))
            if tickets is not None:
                support = compute_support_tickets(_landed_before(tickets, day), day).persist()
                cached.append(support)
                outputs[SUPPORT_TICKETS.full_name].append(support)
                outputs[SUPPORT_TRAINING.full_name].append(compute_support_training(support))
            if products is not None:
                outputs[PRODUCT_TEXT.full_name].append(compute_product_text(_landed_before(products, day), day))
        with lake.batch() as batch:
            for spec in specs:
                batch.write(_union(outputs[spec.full_name]), spec, mode="replace", run_dates=days)
                log.info("features: %s staged for %s..%s", spec.full_name, days[0], days[-1])
        results = list(batch.results)
    finally:
        for df in cached:
            df.unpersist()
    for result in results:
        log.info("features: %s v%d, %d rows for %d run date(s)", result.table, result.version, result.rows, len(days))
    return results


__all__ = [
    "FRAUD_OUTPUTS", "OUTPUTS", "PRODUCT_OUTPUTS", "RECOMMENDATION_OUTPUTS", "SUPPORT_OUTPUTS", "FeatureInputError", "build_features",
    "holdout_dates",
]  # fmt: skip
