"""Forecast accuracy metrics, as pure numpy functions.

Shapes: ``actual``, point forecasts and quantiles are ``[n_items, H]`` (the
forecast periods); ``history`` is ``[n_items, T]``, the item's past up to the cut-off,
NaN before its first sale. NaN in ``actual`` (a period not to be scored) is ignored.

The scaled errors follow the M5 competition: an item's forecast errors are divided
by the in-sample errors of the naive forecast on its own history, so items selling
1 and 1,000 units a period are comparable, and a value below 1 means better than the
naive forecast was in the past. Everything is computed on the grain evaluated: at
week grain ``history`` holds weekly sums, so the scale is the week-to-week change,
not the day-to-day one of a series that may sell on one day a week. :func:`summarise` puts one model's figures at one
cut-off into one dict.
"""

from __future__ import annotations

import numpy as np

from shoplake.forecast.schemas import QUANTILES


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean of the non-NaN values; NaN (without a warning) where there are none."""
    known = ~np.isnan(values)
    count = known.sum(axis=axis)
    total = np.where(known, values, 0.0).sum(axis=axis)
    with np.errstate(all="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _naive_scale(history: np.ndarray, season: int, power: int) -> np.ndarray:
    """``mean_t |y_t - y_{t-season}|^power`` over the item's history (pairs with both days known)."""
    history = np.asarray(history, dtype=np.float64)
    if history.shape[1] <= season:
        return np.full(history.shape[0], np.nan)
    diff = np.abs(history[:, season:] - history[:, :-season]) ** power
    return _nanmean(diff, axis=1)


def _scaled(actual, point, history, season: int, power: int) -> np.ndarray:
    actual, point = np.asarray(actual, dtype=np.float64), np.asarray(point, dtype=np.float64)
    if actual.shape != point.shape:
        raise ValueError(f"actual {actual.shape} and forecast {point.shape} differ in shape")
    error = _nanmean(np.abs(actual - point) ** power, axis=1)
    scale = _naive_scale(history, season, power)
    with np.errstate(all="ignore"):
        return np.where(scale > 0, error / scale, np.nan)


def mase(actual: np.ndarray, point: np.ndarray, history: np.ndarray, season: int = 1) -> np.ndarray:
    """Mean absolute scaled error per item.

    ``MASE_i = mean_h |a_ih - f_ih| / mean_t |y_it - y_i,t-season|``, the
    denominator over the item's history from its first sale (NaN days ignored).

    Returns:
        ``[n]``; NaN for an item whose scale is 0 or undefined (constant or too
        short a history) or without actual values.
    """
    return _scaled(actual, point, history, season, 1)


def rmsse(actual: np.ndarray, point: np.ndarray, history: np.ndarray, season: int = 1) -> np.ndarray:
    """Root mean squared scaled error per item (the M5 definition).

    ``RMSSE_i = sqrt( mean_h (a_ih - f_ih)^2 / mean_t (y_it - y_i,t-season)^2 )``,
    the denominator over the item's history from its first sale.

    Returns:
        ``[n]``; NaN where :func:`mase` is NaN.
    """
    return np.sqrt(_scaled(actual, point, history, season, 2))


def revenue_weights(revenue_history: np.ndarray, days: int = 28) -> np.ndarray:
    """M5-style item weights: revenue over the last ``days`` periods of history, normalised to sum 1.

    ``w_i = sum_{t > T-days} r_it / sum_j sum_{t > T-days} r_jt`` (NaN periods count 0).
    The forecasting run passes its horizon: M5 weighs by the last 28 days of a 28-day horizon.

    Returns:
        ``[n]``; all NaN when no item had revenue then.
    """
    revenue_history = np.asarray(revenue_history, dtype=np.float64)
    recent = np.nansum(revenue_history[:, -days:], axis=1) if revenue_history.shape[1] else np.zeros(revenue_history.shape[0])
    total = recent.sum()
    return recent / total if total > 0 else np.full(len(recent), np.nan)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """``sum w_i v_i / sum w_i`` over the items where ``v_i`` is defined (weights renormalised); NaN if none."""
    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    keep = ~np.isnan(values) & ~np.isnan(weights)
    total = weights[keep].sum()
    return float((weights[keep] * values[keep]).sum() / total) if total > 0 else float("nan")


def bias(actual: np.ndarray, point: np.ndarray, per_item: bool = False):
    """Relative bias: ``(sum f - sum a) / sum a`` over all items and days.

    Positive: the forecast is too high overall (over-stocking); negative: too low.
    Days where ``actual`` is NaN are left out of both sums.

    Args:
        actual: ``[n, H]`` actual units.
        point: ``[n, H]`` point forecast.
        per_item: Return the bias of each item (``[n]``) instead of the total.

    Returns:
        A float (NaN when the actual total is 0), or ``[n]`` with NaN where an
        item's actual total is 0.
    """
    actual, point = np.asarray(actual, dtype=np.float64), np.asarray(point, dtype=np.float64)
    known = ~np.isnan(actual)
    f, a = np.where(known, point, 0.0), np.where(known, actual, 0.0)
    if per_item:
        sa = a.sum(axis=1)
        with np.errstate(all="ignore"):
            return np.where(sa != 0, (f.sum(axis=1) - sa) / sa, np.nan)
    sa = a.sum()
    return float((f.sum() - sa) / sa) if sa != 0 else float("nan")


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actual values inside ``[lower, upper]``, bounds included (NaN actuals ignored).

    For P10 and P90 a calibrated forecast covers 0.8.
    """
    actual = np.asarray(actual, dtype=np.float64)
    known = ~np.isnan(actual)
    if not known.any():
        return float("nan")
    inside = (actual >= lower) & (actual <= upper)
    return float(inside[known].mean())


def pinball(actual: np.ndarray, q_pred: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of the forecast quantile ``q``.

    ``L = mean max(q (a - p), (q - 1)(a - p))``: under-forecasts cost ``q`` per
    unit, over-forecasts ``1 - q``. In units; NaN actuals ignored.
    """
    actual = np.asarray(actual, dtype=np.float64)
    diff = actual - np.asarray(q_pred, dtype=np.float64)
    loss = np.maximum(q * diff, (q - 1.0) * diff)
    return float(_nanmean(loss))


def summarise(
    actual: np.ndarray,
    mean: np.ndarray,
    p10: np.ndarray,
    p50: np.ndarray,
    p90: np.ndarray,
    units_history: np.ndarray,
    revenue_history: np.ndarray,
    *,
    season: int = 1,
    weight_days: int = 28,
    raw_p10: np.ndarray | None = None,
    raw_p90: np.ndarray | None = None,
) -> dict[str, float]:
    """One model's figures at one cut-off.

    The point forecast of the scaled errors and the bias is ``mean`` (the expected
    units that the forecasts table serves). Items with an undefined scale are left
    out of ``mase``, ``rmsse`` and ``wrmsse``; ``wrmsse`` renormalises the
    :func:`revenue_weights` over the items left.

    Args:
        season: Lag of the naive forecast that scales the errors (1: the previous period, as in M5).
        weight_days: Periods of revenue that weigh the items (the horizon).
        raw_p10: The P10 before calibration, when the band was calibrated.
        raw_p90: The P90 before calibration.

    Returns:
        ``mase`` and ``rmsse`` (means over items), ``wrmsse``, ``bias``,
        ``coverage_p10_p90``, ``pinball`` (mean of the pinball losses at
        P10/P50/P90), ``pinball_p10``/``pinball_p50``/``pinball_p90``,
        ``coverage_p10_p90_raw`` (the band before calibration; the same as
        ``coverage_p10_p90`` without one), and ``n_items`` (items with a defined
        scale, as a float).
    """
    scaled_abs = mase(actual, mean, units_history, season)
    scaled_sq = rmsse(actual, mean, units_history, season)
    weights = revenue_weights(revenue_history, weight_days)
    losses = {f"pinball_p{round(q * 100)}": pinball(actual, pred, q) for q, pred in zip(QUANTILES, (p10, p50, p90), strict=True)}
    return {
        "mase": float(_nanmean(scaled_abs)),
        "rmsse": float(_nanmean(scaled_sq)),
        "wrmsse": weighted_mean(scaled_sq, weights),
        "bias": bias(actual, mean),
        "coverage_p10_p90": coverage(actual, p10, p90),
        "pinball": float(np.mean(list(losses.values()))),
        **losses,
        "coverage_p10_p90_raw": coverage(actual, p10 if raw_p10 is None else raw_p10, p90 if raw_p90 is None else raw_p90),
        "n_items": float((~np.isnan(scaled_sq)).sum()),
    }
