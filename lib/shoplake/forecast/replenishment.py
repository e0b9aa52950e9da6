"""Replenishment from probabilistic demand forecasts: safety stock, reorder point, order quantity.

The policy is a **periodic review, order-up-to** policy: every ``R`` days
(``forecasting.review_period_days``) the stock position is reviewed, and an order
raises it to the order-up-to level ``S``. Whatever is ordered now arrives after the
item's lead time ``L``, and the next order only arrives ``R`` days after that, so the
stock position must cover the demand of the next ``L + R`` days::

    D      = demand over L + R days           ~ Normal(mu, sigma_LR)
    mu     = sum of the forecast mean over the first L + R days
    sigma_LR = sqrt(sum of sigma_day**2 over those days)   (days independent)
    sigma_day = (p90 - p10) / (2 * z_0.9),   z_0.9 = Phi^-1(0.9) = 1.2816
    safety_stock  = z_alpha * sigma_LR,      z_alpha = Phi^-1(service level)
    S = reorder_point = mu + safety_stock
    position      = on_hand + on_order
    order_quantity = ceil(S - position) if position < S else 0
    stockout_risk  = P(D > position) = 1 - Phi((position - mu) / sigma_LR)

The reorder point and the order-up-to level are the same number here: at each review
an item below it is ordered up to it. The daily sigma reads the P10-P90 band of the
forecast as a Normal's (its width is ``2 * 1.2816`` sigmas), which is what a
quantile model's band says about spread without assuming more of its shape.

**Weeks and months.** Lead times and review periods are in days, so forecasts of
weeks or months are spread over their days first (:func:`daily_from_periods`): each
day of a period of ``n`` days gets ``mean / n`` and the sigma ``sigma_period /
sqrt(n)`` (the period's variance split evenly over independent days, so the days of
a whole period add back up to its mean and variance). The days of the first period
before the run date (sold already) are dropped, and the plan covers ``L + R`` days
from the run date on as for daily forecasts.

All functions are pure numpy (and pyarrow for :func:`plan`'s table); the job reads
the forecasts and the inventory, calls :func:`plan`, stamps the model version, run
date and time, and writes ``serving.replenishment_plan``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import norm

from shoplake import columns as C
from shoplake.forecast.grain import DAY, period_lengths, period_start
from shoplake.forecast.schemas import REPLENISHMENT_PLAN

#: Phi^-1(0.9): the P10-P90 band of a Normal is 2 * Z_P90 sigmas wide.
Z_P90 = NormalDist().inv_cdf(0.9)

#: Columns :func:`plan` returns: the plan's columns but those the job stamps.
PLAN_COLUMNS = tuple(c for c in REPLENISHMENT_PLAN.column_names if c not in (C.MODEL_VERSION, C.RUN_DATE, C.SCORED_AT))

#: Order quantities are rounded up after rounding to this many decimals, so that
#: floating-point noise (30.000000000004 units) does not order one unit more.
_DECIMALS = 9


def sigma_from_band(p10: np.ndarray, p90: np.ndarray) -> np.ndarray:
    """Standard deviation of each day's demand from its P10-P90 band.

    ``sigma_day = (p90 - p10) / (2 * 1.2816)``, the sigma of a Normal with those
    quantiles. A crossed band (``p90 < p10``, a quantile model's occasional
    inconsistency) counts as no spread rather than failing the plan.

    Args:
        p10: 10th percentiles, any shape.
        p90: 90th percentiles, same shape.

    Returns:
        Sigmas, same shape, >= 0.
    """
    p10 = np.asarray(p10, dtype=np.float64)
    p90 = np.asarray(p90, dtype=np.float64)
    if p10.shape != p90.shape:
        raise ValueError(f"p10 and p90 differ in shape: {p10.shape} vs {p90.shape}")
    return np.maximum(p90 - p10, 0.0) / (2.0 * Z_P90)


def daily_from_periods(
    mean: np.ndarray, p10: np.ndarray, p90: np.ndarray, start: dt.date, grain: str, first_day: dt.date
) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts of periods spread over their days from ``first_day`` on: ``(mean_day, sigma_day)``, ``[n_items, days]``.

    Each day of a period of ``n`` days gets ``mean / n`` and the sigma
    ``sigma_from_band(p10, p90) / sqrt(n)``; the days before ``first_day`` are dropped.

    Args:
        mean: ``[n_items, H]`` forecast of each period.
        p10: ``[n_items, H]`` its 10th percentile.
        p90: ``[n_items, H]`` its 90th percentile.
        start: The first day of the first period.
        grain: ``day``, ``week`` or ``month``.
        first_day: The first day to keep (the run date); it must lie in the first period.

    Raises:
        ValueError: ``first_day`` is not in the first period.
    """
    mean = np.asarray(mean, dtype=np.float64)
    if period_start(first_day, grain) != start:
        raise ValueError(f"{first_day} does not lie in the first forecast {grain}, which starts on {start}")
    lengths = period_lengths(start, mean.shape[1], grain)
    per_day = np.repeat(mean / lengths, lengths, axis=1)
    sigma = np.repeat(sigma_from_band(p10, p90) / np.sqrt(lengths), lengths, axis=1)
    skip = (first_day - start).days
    return per_day[:, skip:], sigma[:, skip:]


def demand_over_period(mean: np.ndarray, sigma_day: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sigma of each item's total demand over its first ``days`` forecast days.

    ``mu = sum(mean[:days])`` and ``sigma = sqrt(sum(sigma_day[:days] ** 2))``: the
    days are taken as independent, so their variances add. When ``days`` exceeds the
    horizon ``H``, each day past it counts as an average day of the horizon: it adds
    ``mean(mean[:H])`` to ``mu`` and ``mean(sigma_day[:H] ** 2)`` to the variance.

    Args:
        mean: Forecast mean units, ``[n_items, H]``, ``H >= 1``.
        sigma_day: Sigma of each day's units, ``[n_items, H]``.
        days: Days to cover per item, ``[n_items]`` integers >= 0.

    Returns:
        ``(mu, sigma)``, each ``[n_items]``.

    Raises:
        ValueError: Shapes disagree, the horizon is empty or a day count is negative.
    """
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(sigma_day, dtype=np.float64) ** 2
    days = np.asarray(days, dtype=np.int64)
    if mean.ndim != 2 or mean.shape[1] == 0:
        raise ValueError(f"mean must be [n_items, horizon] with horizon >= 1, got shape {mean.shape}")
    if var.shape != mean.shape:
        raise ValueError(f"sigma_day has shape {var.shape}, mean {mean.shape}")
    n, horizon = mean.shape
    if days.shape != (n,):
        raise ValueError(f"days must have one value per item ({n}), got shape {days.shape}")
    if n and days.min() < 0:
        raise ValueError(f"days must be >= 0, got {days.min()}")
    within = np.minimum(days, horizon)
    beyond = days - within
    rows = np.arange(n)
    zero = np.zeros((n, 1))
    mu = np.concatenate([zero, mean.cumsum(axis=1)], axis=1)[rows, within] + beyond * mean.mean(axis=1)
    variance = np.concatenate([zero, var.cumsum(axis=1)], axis=1)[rows, within] + beyond * var.mean(axis=1)
    return mu, np.sqrt(variance)


def safety_stock(sigma: np.ndarray, service_level: float) -> np.ndarray:
    """``z(service_level) * sigma``: stock held against demand above its mean.

    Args:
        sigma: Sigma of demand over the lead time plus review period, per item.
        service_level: Target cycle service level ``alpha`` in (0, 1); ``z`` is the
            standard Normal's ``alpha`` quantile (1.6449 for 0.95).
    """
    if not 0.0 < service_level < 1.0:
        raise ValueError(f"service_level must lie in (0, 1), got {service_level}")
    return float(norm.ppf(service_level)) * np.asarray(sigma, dtype=np.float64)


def order_quantity(reorder_point: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Units to order: ``ceil(reorder_point - position)`` below the reorder point, else 0.

    Args:
        reorder_point: Order-up-to level per item.
        position: Stock position (on hand + on order) per item.

    Returns:
        int64 quantities >= 0.
    """
    gap = np.round(np.asarray(reorder_point, dtype=np.float64) - np.asarray(position, dtype=np.float64), _DECIMALS)
    return np.where(gap > 0, np.ceil(gap), 0.0).astype(np.int64)


def stockout_risk(mu: np.ndarray, sigma: np.ndarray, position: np.ndarray) -> np.ndarray:
    """``P(D > position)`` for demand ``D ~ Normal(mu, sigma)``: ``1 - Phi((position - mu) / sigma)``.

    With ``sigma == 0`` demand is certain: the risk is 1.0 when ``mu > position``,
    else 0.0.

    Args:
        mu: Mean demand over the lead time plus review period, per item.
        sigma: Its sigma, per item (>= 0).
        position: Stock position per item.
    """
    mu, sigma, position = (np.asarray(a, dtype=np.float64) for a in (mu, sigma, position))
    certain = (mu > position).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        risk = norm.sf((position - mu) / np.where(sigma > 0, sigma, 1.0))
    return np.where(sigma > 0, risk, certain)


def _inventory_for(item_ids: pa.Array, inventory, default_lead_time_days: int) -> dict[str, pa.Array]:
    """Inventory columns aligned with ``item_ids``; items without a row get the defaults."""
    n = len(item_ids)
    if inventory is None:
        inventory = {C.ITEM_ID: pa.array([], pa.string())}
    inv = inventory if isinstance(inventory, pa.Table) else pa.table(dict(inventory))
    if C.ITEM_ID not in inv.column_names:
        raise ValueError(f"inventory has no {C.ITEM_ID} column (columns: {', '.join(inv.column_names)})")
    inv_ids = inv[C.ITEM_ID].cast(pa.string())
    counts = pc.value_counts(inv_ids)
    dupes = [c["values"] for c in counts.to_pylist() if c["counts"] > 1]
    if dupes:
        raise ValueError(
            f"inventory has several rows for item(s) {', '.join(map(str, dupes[:5]))}: give one (the latest snapshot) per item"
        )
    rows = pc.index_in(item_ids, value_set=inv_ids)  # null where the item has no inventory row

    def column(name: str, type_: pa.DataType, default):
        if name not in inv.column_names:
            values = pa.nulls(n, type_)
        else:
            values = inv[name].cast(type_).combine_chunks().take(rows)
        return values if default is None else pc.fill_null(values, pa.scalar(default, type_))

    on_hand = column(C.ON_HAND, pa.int64(), None)
    return {
        C.SNAPSHOT_DATE: column(C.SNAPSHOT_DATE, pa.date32(), None),
        C.NO_INVENTORY: pc.is_null(on_hand),
        C.ON_HAND: pc.fill_null(on_hand, pa.scalar(0, pa.int64())),
        C.ON_ORDER: column(C.ON_ORDER, pa.int64(), 0),
        C.LEAD_TIME_DAYS: column(C.LEAD_TIME_DAYS, pa.int32(), default_lead_time_days),
    }


def plan(
    item_ids: Sequence[str],
    mean: np.ndarray,
    p10: np.ndarray | None,
    p90: np.ndarray | None,
    inventory: pa.Table | Mapping[str, Sequence] | None = None,
    *,
    service_level: float,
    review_period_days: int,
    default_lead_time_days: int,
    sigma_day: np.ndarray | None = None,
) -> pa.Table:
    """The replenishment plan of each forecast item (see the module docstring for the policy).

    Each item covers ``L + R`` days: its lead time ``L`` plus the review period ``R``.
    An item without an inventory row is planned from an empty position (on hand 0,
    on order 0, the default lead time, a null snapshot date) and flagged
    ``no_inventory``; a null ``on_hand`` (flagged too), ``on_order`` or
    ``lead_time_days`` in a row gets the same default. Inventory rows
    of items not forecast are ignored.

    Args:
        item_ids: Items, in the row order of the forecast matrices.
        mean: Forecast mean units per day, ``[n_items, H]``.
        p10: 10th percentiles, ``[n_items, H]``.
        p90: 90th percentiles, ``[n_items, H]``.
        inventory: One row per item (the latest snapshot): ``item_id``, ``on_hand``
            and optionally ``snapshot_date``, ``on_order``, ``lead_time_days``; an
            Arrow table or a mapping of column name to values. None: no inventory.
        service_level: Target cycle service level ``alpha`` (``forecasting.service_level``).
        review_period_days: ``R`` (``forecasting.review_period_days``).
        default_lead_time_days: ``L`` where unknown (``forecasting.default_lead_time_days``).
        sigma_day: ``[n_items, H]`` sigma of each day's demand, instead of the band
            ``p10``/``p90`` (forecasts of weeks or months spread over days: :func:`daily_from_periods`).

    Returns:
        An Arrow table with :data:`PLAN_COLUMNS`, typed as in
        ``serving.replenishment_plan``, one row per item in ``item_ids`` order.

    Raises:
        ValueError: Shapes disagree, an item has several inventory rows, or a lead
            time or the review period is negative.
    """
    ids = pa.array(list(item_ids), pa.string())
    mean = np.asarray(mean, dtype=np.float64)
    if mean.ndim != 2 or mean.shape[0] != len(ids):
        raise ValueError(f"mean must be [n_items={len(ids)}, horizon], got shape {mean.shape}")
    if review_period_days < 0 or default_lead_time_days < 0:
        raise ValueError(f"review_period_days and default_lead_time_days must be >= 0, got {review_period_days}, {default_lead_time_days}")
    inv = _inventory_for(ids, inventory, default_lead_time_days)
    lead = inv[C.LEAD_TIME_DAYS].to_numpy(zero_copy_only=False).astype(np.int64)
    if lead.size and lead.min() < 0:
        bad = ids.filter(pa.array(lead < 0))[0].as_py()
        raise ValueError(f"lead_time_days must be >= 0, got {lead.min()} (item {bad})")
    on_hand = inv[C.ON_HAND].to_numpy(zero_copy_only=False)
    on_order = inv[C.ON_ORDER].to_numpy(zero_copy_only=False)

    if sigma_day is None:
        sigma_day = sigma_from_band(p10, p90)
    mu, sigma = demand_over_period(mean, sigma_day, lead + review_period_days)
    safety = safety_stock(sigma, service_level)
    reorder = mu + safety
    position = (on_hand + on_order).astype(np.float64)
    columns = {
        C.ITEM_ID: ids,
        **inv,
        C.DEMAND_OVER_LEAD_TIME: mu,
        C.SAFETY_STOCK: safety,
        C.REORDER_POINT: reorder,
        C.ORDER_QUANTITY: order_quantity(reorder, position),
        C.STOCKOUT_RISK: stockout_risk(mu, sigma, position),
        C.SERVICE_LEVEL: np.full(len(ids), float(service_level)),
    }
    schema = pa.schema([REPLENISHMENT_PLAN.arrow_schema().field(name) for name in PLAN_COLUMNS])
    return pa.table({name: columns[name] for name in PLAN_COLUMNS}, schema=schema)


def forecast_grain(forecasts: pa.Table) -> tuple[str, dt.date | None]:
    """The grain of forecast rows of one run date (``day`` for rows without one) and the first day of their first period."""
    from shoplake.forecast.schemas import GRAIN

    grain = DAY
    if GRAIN in forecasts.column_names:
        grains = {g for g in pc.unique(forecasts[GRAIN]).to_pylist() if g is not None}
        if len(grains) > 1:
            raise ValueError(f"forecast rows of several grains: {', '.join(sorted(grains))}")
        grain = grains.pop() if grains else DAY
    first = forecasts.filter(pc.equal(forecasts[C.HORIZON_DAY], 1))
    return grain, (first[C.FORECAST_DATE][0].as_py() if first.num_rows else None)


def forecast_matrices(forecasts: pa.Table) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Long forecast rows (one per item and horizon day, as in ``serving.forecasts``) as matrices.

    Args:
        forecasts: Rows with ``item_id``, ``horizon_day``, ``mean``, ``p10``, ``p90``
            of one run date; every item must have the days ``1..H``, the same ``H``.

    Returns:
        ``(item_ids, mean, p10, p90)``: items sorted, matrices ``[n_items, H]``.

    Raises:
        ValueError: An item lacks a day, has one twice, or horizons differ.
    """
    t = forecasts.select([C.ITEM_ID, C.HORIZON_DAY, C.MEAN, C.P10, C.P90]).sort_by([(C.ITEM_ID, "ascending"), (C.HORIZON_DAY, "ascending")])
    ids = t[C.ITEM_ID].to_numpy(zero_copy_only=False)
    days = t[C.HORIZON_DAY].to_numpy(zero_copy_only=False).astype(np.int64)
    items, counts = np.unique(ids, return_counts=True)
    if not len(items):
        return [], *(np.zeros((0, 0)) for _ in range(3))
    horizon = int(counts[0])
    if (counts != horizon).any():
        odd = items[np.argmax(counts != horizon)]
        raise ValueError(f"items have different numbers of forecast days: {items[0]} has {horizon}, {odd} has {counts[items == odd][0]}")
    expected = np.tile(np.arange(1, horizon + 1), len(items))
    if (days != expected).any():
        odd = ids[np.argmax(days != expected)]
        raise ValueError(f"item {odd}: horizon days must be 1..{horizon}, each once")
    shape = (len(items), horizon)
    matrices = (t[c].to_numpy(zero_copy_only=False).astype(np.float64).reshape(shape) for c in (C.MEAN, C.P10, C.P90))
    return items.tolist(), *matrices
