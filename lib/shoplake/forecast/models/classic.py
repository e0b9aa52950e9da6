"""Demand forecasting: the daily sales panel, forecasts, and the classic baselines.

A :class:`SalesPanel` is one partition of ``gold.item_daily_sales`` as dense arrays:
one row per item, one column per day, ``NaN`` before an item's first sale. Every
forecaster reads a panel and forecasts the ``horizon`` days after its last day as a
:class:`Forecast` (mean and P10/P50/P90 per item and day). A backtest at cut-off
``day`` hands the models ``panel.until(day)``, so nothing on or after the cut-off
can leak into a forecast.

The baselines, each ``fn(panel, horizon, ...) -> Forecast``:

* :func:`seasonal_naive`: the last week, repeated.
* :func:`moving_average`: the mean of the last ``window`` days, flat.
* :func:`ets`: Holt-Winters exponential smoothing with additive weekly seasonality
  and an optional damped trend; the smoothing parameters are chosen per item on a
  small grid by in-sample one-step squared error, all items at once.

**Quantiles of the baselines.** None of them has a distribution of its own, so
P10/P50/P90 come from each model's errors on the item's recent past, *at the lead
being forecast*: for lead ``h`` (1 = the first forecast day), the errors
``actual - forecast`` of the forecasts the same method would have made ``h`` days
ahead for each of the last ``error_days`` days of the panel (56 by default: eight
weeks, so every weekday counts equally). The quantile ``q`` of those errors is
added to the point forecast and the result clipped at 0. Where an item has fewer
than :data:`MIN_ERRORS` such errors at a lead (a short history), its errors of all
leads are pooled; with fewer than that in all, the quantiles are those of a Poisson
distribution with the point forecast as mean, the textbook model of counts.

**Short histories.** Days before an item's first sale never count. The seasonal
naive forecast fills a weekday without history with the mean of the item's
observed days in the last week; ETS needs two weeks to tell level from season, so
an item with fewer than :data:`ETS_MIN_DAYS` observed days gets the moving average
of its history instead. An item without any observed day (first sold on or after
the cut-off) is forecast 0 with all quantiles 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from shoplake import columns as C
from shoplake.forecast.schemas import QUANTILES

#: Length of the weekly season, days.
SEASON = 7
#: Days of the panel's end whose errors give the baselines' quantiles.
ERROR_DAYS = 56
#: Errors needed at a lead before its own quantiles are used (else pooled, else Poisson).
MIN_ERRORS = 7
#: Observed days an item needs before ETS is fitted to it (else moving average).
ETS_MIN_DAYS = 2 * SEASON
#: Days at an item's start whose one-step errors do not count when ETS parameters are chosen.
ETS_BURN_IN = SEASON
#: Days at an item's start that initialise the ETS level and season.
ETS_INIT_DAYS = 4 * SEASON

#: The ETS grid: smoothing of level (alpha), season (gamma) and trend (beta, with damping phi).
ETS_ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
ETS_GAMMAS = (0.01, 0.05, 0.1, 0.2)
ETS_TRENDS_DAMPED = ((0.0, 1.0), (0.02, 0.9), (0.1, 0.9))
ETS_TRENDS_NONE = ((0.0, 1.0),)

_EPOCH = dt.date(1970, 1, 1)


def to_date(day) -> dt.date:
    """A day given as ``datetime.date``, ``datetime.datetime``, ``numpy.datetime64`` or ISO string."""
    if isinstance(day, dt.datetime):
        return day.date()
    if isinstance(day, dt.date):
        return day
    if isinstance(day, np.datetime64):
        return _EPOCH + dt.timedelta(days=int(day.astype("datetime64[D]").astype(np.int64)))
    return dt.date.fromisoformat(str(day))


def nanmean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of the non-NaN values along ``axis``; NaN (and no warning) where there are none."""
    known = ~np.isnan(values)
    count = known.sum(axis=axis)
    total = np.where(known, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _day_numbers(start: dt.date, n: int) -> np.ndarray:
    return np.datetime64(start, "D") + np.arange(n)


@dataclass
class SalesPanel:
    """Daily sales of many items as dense ``[n_items, n_days]`` arrays.

    Attributes:
        item_ids: Item ids (str), one per row, sorted when built by :meth:`from_arrow`.
        start: The day of column 0.
        units: Net units sold, float64; NaN before the item's first sale.
        revenue: Net revenue, float64; the same NaN mask as ``units``.
        price: Average (or last known) price, float64; NaN where unknown.
        promo: On promotion that day, bool (False before the first sale).
        stock_out: End-of-day stock-out: 1.0, 0.0, or NaN where unknown.
    """

    item_ids: np.ndarray
    start: dt.date
    units: np.ndarray
    revenue: np.ndarray
    price: np.ndarray
    promo: np.ndarray
    stock_out: np.ndarray

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids, dtype=str)
        self.start = to_date(self.start)
        self.units = np.asarray(self.units, dtype=np.float64)
        shape = (len(self.item_ids), self.units.shape[-1] if self.units.ndim == 2 else -1)
        for name in ("units", "revenue", "price", "promo", "stock_out"):
            value = np.asarray(getattr(self, name), dtype=bool if name == "promo" else np.float64)
            if value.shape != shape:
                raise ValueError(f"SalesPanel.{name} has shape {value.shape}, expected {shape} (items, days)")
            setattr(self, name, value)

    @property
    def n_items(self) -> int:
        return self.units.shape[0]

    @property
    def n_days(self) -> int:
        return self.units.shape[1]

    @property
    def dates(self) -> np.ndarray:
        """The day of each column, ``datetime64[D]``."""
        return _day_numbers(self.start, self.n_days)

    @property
    def end(self) -> dt.date:
        """The day after the last column: the first day a forecast from this panel covers."""
        return self.start + dt.timedelta(days=self.n_days)

    @property
    def first_sale(self) -> np.ndarray:
        """Column of each item's first observed day; ``n_days`` for an item without any."""
        if self.n_days == 0:
            return np.zeros(self.n_items, dtype=np.int64)
        observed = ~np.isnan(self.units)
        return np.where(observed.any(axis=1), observed.argmax(axis=1), self.n_days)

    @property
    def observed_days(self) -> np.ndarray:
        """Days from each item's first sale to the panel's end."""
        return self.n_days - self.first_sale

    def until(self, day) -> SalesPanel:
        """The panel truncated to the days before ``day`` (the view of a forecast made on ``day``).

        Items keep their rows: one first sold on or after ``day`` is all NaN.
        """
        k = int(np.clip((to_date(day) - self.start).days, 0, self.n_days))
        return SalesPanel(
            self.item_ids, self.start, self.units[:, :k], self.revenue[:, :k], self.price[:, :k], self.promo[:, :k], self.stock_out[:, :k]
        )

    def select(self, which) -> SalesPanel:
        """The rows of a boolean mask or of integer indices, in that order."""
        which = np.asarray(which)
        return SalesPanel(
            self.item_ids[which],
            self.start,
            self.units[which],
            self.revenue[which],
            self.price[which],
            self.promo[which],
            self.stock_out[which],
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> SalesPanel:
        """Build a panel from rows of ``gold.item_daily_sales`` (one ``run_date``).

        Items are sorted by id; the days run from the earliest ``sale_date`` to the
        latest. The table is zero-filled from each item's first sale, so a cell
        without a row is a day before that item's first sale (NaN); should a day
        after it lack a row, it counts as a day without sales (0 units, unknown
        price and stock).

        Args:
            table: At least the columns item_id, sale_date, units, revenue,
                avg_price, on_promotion and stock_out; run_date, if present, must
                hold one value.

        Raises:
            ValueError: A column is missing, the table is empty, it holds several
                run dates, or an (item, day) repeats.
        """
        needed = (C.ITEM_ID, C.SALE_DATE, C.UNITS, C.REVENUE, C.AVG_PRICE, C.ON_PROMOTION, C.STOCK_OUT)
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise ValueError(f"item daily sales lack the column(s) {missing}")
        if table.num_rows == 0:
            raise ValueError("item daily sales are empty: no panel to build")
        if C.RUN_DATE in table.column_names and len(pc.unique(table[C.RUN_DATE])) > 1:
            raise ValueError("item daily sales hold several run dates: pass one run_date's partition")

        item_ids, row = np.unique(table[C.ITEM_ID].to_numpy(zero_copy_only=False).astype(str), return_inverse=True)
        days = table[C.SALE_DATE].cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        first_day, n_days = int(days.min()), int(days.max() - days.min()) + 1
        col = days - first_day
        n = len(item_ids)
        cell = row * n_days + col
        if len(np.unique(cell)) != len(cell):
            raise ValueError("item daily sales repeat an (item_id, sale_date)")

        def dense(name: str, fill: float) -> np.ndarray:
            out = np.full(n * n_days, fill)
            out[cell] = table[name].cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
            return out.reshape(n, n_days)

        units, revenue, price, stock_out = (
            dense(C.UNITS, np.nan),
            dense(C.REVENUE, np.nan),
            dense(C.AVG_PRICE, np.nan),
            dense(C.STOCK_OUT, np.nan),
        )
        promo = np.zeros(n * n_days, dtype=bool)
        promo[cell] = pc.fill_null(table[C.ON_PROMOTION], False).to_numpy(zero_copy_only=False)
        # Days after an item's first row without a row of their own: no sales.
        first_row = np.full(n, n_days)
        np.minimum.at(first_row, row, col)
        gap = np.isnan(units) & (np.arange(n_days)[None, :] >= first_row[:, None])
        units[gap], revenue[gap] = 0.0, 0.0
        return cls(item_ids, _EPOCH + dt.timedelta(days=first_day), units, revenue, price, promo.reshape(n, n_days), stock_out)


@dataclass
class Forecast:
    """Forecasts of ``horizon`` days for each item, in units.

    Attributes:
        item_ids: Item ids, one per row.
        start: The first forecast day (column 0).
        mean: Expected units (the point forecast), ``[n, horizon]``.
        p10: 10th percentile.
        p50: Median.
        p90: 90th percentile.

    All arrays are >= 0 and ``p10 <= p50 <= p90`` (enforced by :meth:`build`).
    """

    item_ids: np.ndarray
    start: dt.date
    mean: np.ndarray
    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray

    @classmethod
    def build(cls, item_ids, start, mean: np.ndarray, quantiles: np.ndarray) -> Forecast:
        """A forecast from raw outputs: clipped at 0, quantiles sorted (no crossing).

        Args:
            item_ids: Item ids.
            start: First forecast day.
            mean: ``[n, H]`` point forecast.
            quantiles: ``[n, H, 3]`` values at :data:`~shoplake.forecast.schemas.QUANTILES`.
        """
        q = np.sort(np.clip(np.nan_to_num(np.asarray(quantiles, dtype=np.float64)), 0.0, None), axis=-1)
        mean = np.clip(np.nan_to_num(np.asarray(mean, dtype=np.float64)), 0.0, None)
        return cls(np.asarray(item_ids, dtype=str), to_date(start), mean, q[..., 0], q[..., 1], q[..., 2])

    @property
    def horizon(self) -> int:
        return self.mean.shape[1]

    @property
    def dates(self) -> np.ndarray:
        """The day of each column, ``datetime64[D]``."""
        return _day_numbers(self.start, self.horizon)

    @property
    def quantiles(self) -> np.ndarray:
        """P10, P50, P90 stacked: ``[n, H, 3]``."""
        return np.stack([self.p10, self.p50, self.p90], axis=-1)

    def select(self, which) -> Forecast:
        """The rows of a boolean mask or of integer indices."""
        which = np.asarray(which)
        return Forecast(self.item_ids[which], self.start, self.mean[which], self.p10[which], self.p50[which], self.p90[which])


# ---------------------------------------------------------------------------
# Quantiles from errors


def nan_quantiles(values: np.ndarray, qs) -> np.ndarray:
    """Quantiles over the last axis, ignoring NaN (linear interpolation, as ``np.nanquantile``).

    Much faster than ``np.nanquantile`` on many short rows. A row without values gives NaN.

    Returns:
        ``values.shape[:-1] + (len(qs),)``.
    """
    out = np.full(values.shape[:-1] + (len(qs),), np.nan)
    if values.shape[-1] == 0:
        return out
    values = np.sort(values, axis=-1)  # NaN sorts last
    count = (~np.isnan(values)).sum(axis=-1)
    for k, q in enumerate(qs):
        pos = q * np.maximum(count - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
        v_lo = np.take_along_axis(values, lo[..., None], axis=-1)[..., 0]
        v_hi = np.take_along_axis(values, hi[..., None], axis=-1)[..., 0]
        out[..., k] = np.where(count > 0, v_lo + (pos - lo) * (v_hi - v_lo), np.nan)
    return out


def quantiles_from_errors(point: np.ndarray, errors: np.ndarray, min_errors: int = MIN_ERRORS) -> np.ndarray:
    """P10/P50/P90 as the point forecast plus empirical quantiles of past errors.

    Args:
        point: ``[n, H]`` point forecast (>= 0).
        errors: ``[n, H, K]`` past errors (actual - forecast) at each lead; NaN where none.
        min_errors: Fewer errors at a lead: the item's errors of all leads are
            pooled; fewer than that in all: Poisson quantiles around the point.

    Returns:
        ``[n, H, 3]`` quantiles, clipped at 0 (not yet sorted).
    """
    n, horizon, _ = errors.shape
    by_lead = nan_quantiles(errors, QUANTILES)
    pooled = nan_quantiles(errors.reshape(n, -1), QUANTILES)[:, None, :]
    count = (~np.isnan(errors)).sum(axis=-1)[..., None]
    pooled_count = count.sum(axis=1, keepdims=True)
    offsets = np.where(count >= min_errors, by_lead, pooled)
    out = point[..., None] + offsets
    poisson = stats.poisson.ppf(np.asarray(QUANTILES), np.maximum(point, 1e-9)[..., None])
    out = np.where((count < min_errors) & (pooled_count < min_errors), poisson, out)
    return np.clip(np.nan_to_num(out), 0.0, None)


def lead_errors(units: np.ndarray, backcast: Callable[[int, np.ndarray], np.ndarray], horizon: int, error_days: int) -> np.ndarray:
    """Errors of a method's past forecasts at each lead, over the panel's last ``error_days`` days.

    Args:
        units: ``[n, T]`` units (NaN before the first sale).
        backcast: ``backcast(h, days)``: the method's forecasts of the columns
            ``days`` made ``h`` days ahead (from data before ``days - h + 1``),
            ``[n, len(days)]``, NaN where it could not forecast.
        horizon: Leads 1..horizon.
        error_days: Target days, the last columns of the panel.

    Returns:
        ``[n, horizon, K]`` errors ``actual - forecast`` (NaN where either is missing).
    """
    n, t = units.shape
    days = np.arange(max(t - error_days, 0), t)
    out = np.full((n, horizon, len(days)), np.nan)
    for h in range(1, horizon + 1):
        out[:, h - 1, :] = units[:, days] - backcast(h, days)
    return out


def _finish(panel: SalesPanel, point: np.ndarray, errors: np.ndarray) -> Forecast:
    point = np.clip(np.nan_to_num(point), 0.0, None)
    quantiles = quantiles_from_errors(point, errors)
    unseen = panel.observed_days == 0
    point[unseen], quantiles[unseen] = 0.0, 0.0
    return Forecast.build(panel.item_ids, panel.end, point, quantiles)


def _check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")


# ---------------------------------------------------------------------------
# Seasonal naive


def seasonal_naive(panel: SalesPanel, horizon: int, *, season: int = SEASON, error_days: int = ERROR_DAYS) -> Forecast:
    """Repeat the last ``season`` days: the forecast of day ``T + j`` is day ``T - season + j mod season``.

    A day of the last season before the item's first sale takes the mean of the
    item's observed days in that season.

    Args:
        panel: History; the forecast starts the day after its last day.
        horizon: Days to forecast.
        season: Season length, days.
        error_days: Days whose errors give the quantiles (see the module docstring).
    """
    _check_horizon(horizon)
    y, t = panel.units, panel.n_days
    last = np.full((panel.n_items, season), np.nan)
    if t:
        last[:, season - min(season, t) :] = y[:, max(t - season, 0) :]
    fill = np.nan_to_num(nanmean(last, axis=1))
    last = np.where(np.isnan(last), fill[:, None], last)
    point = last[:, np.arange(horizon) % season]

    def backcast(h: int, days: np.ndarray) -> np.ndarray:
        source = days - season * int(np.ceil(h / season))
        return np.where(source >= 0, y[:, np.maximum(source, 0)], np.nan)

    return _finish(panel, point, lead_errors(y, backcast, horizon, error_days))


# ---------------------------------------------------------------------------
# Moving average


def _trailing_means(y: np.ndarray, window: int) -> np.ndarray:
    """``[n, T + 1]``: column ``o`` is the mean of the observed days among ``o - window .. o - 1`` (NaN if none)."""
    n, t = y.shape
    observed = ~np.isnan(y)
    sums = np.zeros((n, t + 1))
    counts = np.zeros((n, t + 1))
    np.cumsum(np.where(observed, y, 0.0), axis=1, out=sums[:, 1:])
    np.cumsum(observed, axis=1, out=counts[:, 1:])
    lo = np.maximum(np.arange(t + 1) - window, 0)
    with np.errstate(all="ignore"):
        return (sums - sums[:, lo]) / (counts - counts[:, lo])


def moving_average(panel: SalesPanel, horizon: int, *, window: int = 28, error_days: int = ERROR_DAYS) -> Forecast:
    """The mean of the last ``window`` days (those after the item's first sale), flat over the horizon.

    Args:
        panel: History; the forecast starts the day after its last day.
        horizon: Days to forecast.
        window: Days averaged.
        error_days: Days whose errors give the quantiles (see the module docstring).
    """
    _check_horizon(horizon)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    y = panel.units
    means = _trailing_means(y, window)
    point = np.repeat(means[:, -1:], horizon, axis=1)

    def backcast(h: int, days: np.ndarray) -> np.ndarray:
        return means[:, days - h + 1]

    return _finish(panel, point, lead_errors(y, backcast, horizon, error_days))


# ---------------------------------------------------------------------------
# ETS (Holt-Winters)


@dataclass
class _HWPath:
    """The filtered ETS states of each item after each day (for forecasts from any origin)."""

    level: np.ndarray  # [n, T]
    trend: np.ndarray  # [n, T]
    season: np.ndarray  # [n, T]: the estimate for the weekday of day t, after day t
    phi: np.ndarray  # [n]


def _hw_init(y: np.ndarray, first: np.ndarray, season: int) -> tuple[np.ndarray, np.ndarray]:
    """Initial level and seasonal ring ``[season, n]`` from each item's first :data:`ETS_INIT_DAYS` days.

    The ring is indexed by ``column % season``, so weekdays line up across items.
    """
    n, t = y.shape
    cols = first[:, None] + np.arange(ETS_INIT_DAYS)[None, :]
    inside = cols < t
    values = np.where(inside, y[np.arange(n)[:, None], np.minimum(cols, t - 1)], np.nan)
    level = np.nan_to_num(nanmean(values, axis=1))
    ring = np.zeros((season, n))
    counts = np.zeros((season, n))
    slot = cols % season
    for k in range(season):
        hit = (slot == k) & ~np.isnan(values)
        ring[k] = np.where(hit, values - level[:, None], 0.0).sum(axis=1)
        counts[k] = hit.sum(axis=1)
    ring = np.where(counts > 0, ring / np.maximum(counts, 1), 0.0)
    ring -= ring.mean(axis=0, keepdims=True)  # seasonal effects sum to zero
    return level, ring


def _hw_filter(y, first, alpha, beta, phi, gamma, season: int, keep_path: bool = False):
    """Run additive Holt-Winters (error-correction form) over all items and parameter sets at once.

    ``e_t = y_t - (l + phi b + s_{t-m})``; ``l <- l + phi b + alpha e``;
    ``b <- phi b + alpha beta e``; ``s_t = s_{t-m} + gamma e``. States stay at their
    initial values until the item's first sale.

    Args:
        y: ``[n, T]`` units, NaN before the first sale.
        first: ``[n]`` first observed column.
        alpha, beta, phi, gamma: Parameters broadcastable to ``[G, n]``.
        season: Season length.
        keep_path: Also return the states after every day (needs ``G == 1``).

    Returns:
        ``sse [G, n]`` of the one-step errors after the burn-in, and a
        :class:`_HWPath` when ``keep_path``.
    """
    n, t = y.shape
    shape = np.broadcast_shapes(np.shape(alpha), np.shape(beta), np.shape(phi), np.shape(gamma), (1, n))
    level0, ring0 = _hw_init(y, first, season)
    level = np.broadcast_to(level0, shape).copy()
    trend = np.zeros(shape)
    ring = np.broadcast_to(ring0[:, None, :], (season, *shape)).copy()
    sse = np.zeros(shape)
    ab = alpha * beta
    if keep_path:
        path = _HWPath(np.zeros((n, t)), np.zeros((n, t)), np.zeros((n, t)), np.broadcast_to(phi, shape)[0].copy())
    scored_from = first + ETS_BURN_IN
    for day in range(t):
        yt = y[:, day]
        observed = ~np.isnan(yt)
        slot = day % season
        base = level + phi * trend
        err = np.where(observed, yt - base - ring[slot], 0.0)
        level = base + alpha * err
        trend = phi * trend + ab * err
        ring[slot] = ring[slot] + gamma * err  # a day without a value (err 0) only carries the states forward
        sse += np.where(day >= scored_from, err * err, 0.0)
        if keep_path:
            path.level[:, day], path.trend[:, day], path.season[:, day] = level[0], trend[0], ring[slot][0]
    return (sse, path) if keep_path else sse


def _damp_sum(phi: np.ndarray, h: int) -> np.ndarray:
    """``phi + phi^2 + ... + phi^h`` per item."""
    return sum(phi**i for i in range(1, h + 1))


def ets(panel: SalesPanel, horizon: int, *, damped: bool = True, season: int = SEASON, error_days: int = ERROR_DAYS) -> Forecast:
    """Holt-Winters with additive weekly season (and a damped trend), parameters chosen per item.

    For every item the grid :data:`ETS_ALPHAS` x :data:`ETS_GAMMAS` x trends
    (none, or damped with ``phi = 0.9``; only none when ``damped`` is False) is run
    over its whole history at once, and the set with the lowest sum of squared
    one-step errors (after a burn-in of :data:`ETS_BURN_IN` days) forecasts:
    ``l_T + (phi + ... + phi^h) b_T + s_{T+h-m*ceil(h/m)}``. Level and season start
    from the item's first four weeks. Items with fewer than :data:`ETS_MIN_DAYS`
    observed days get :func:`moving_average` of their history.

    Args:
        panel: History; the forecast starts the day after its last day.
        horizon: Days to forecast.
        damped: Include damped-trend models in the grid.
        season: Season length, days.
        error_days: Days whose errors give the quantiles (see the module docstring).
    """
    _check_horizon(horizon)
    y, t = panel.units, panel.n_days
    fallback = moving_average(panel, horizon, window=max(t, 1), error_days=error_days)
    fit = panel.observed_days >= ETS_MIN_DAYS
    if not fit.any():
        return fallback
    y_fit, first = y[fit], panel.first_sale[fit]

    trends = ETS_TRENDS_DAMPED if damped else ETS_TRENDS_NONE
    grid = np.array([(a, b, p, g) for a in ETS_ALPHAS for g in ETS_GAMMAS for b, p in trends])
    sse = _hw_filter(y_fit, first, *(grid[:, [k]] for k in range(4)), season)  # each [G, 1] against [G, n]
    best = grid[np.argmin(sse, axis=0)]  # [n_fit, 4]
    _, path = _hw_filter(y_fit, first, *(best[None, :, k] for k in range(4)), season, keep_path=True)

    def predict(origin_state: np.ndarray, days: np.ndarray, h: int) -> np.ndarray:
        """Forecast of columns ``days`` from the states after columns ``origin_state``."""
        seasonal_col = days - season * int(np.ceil(h / season))
        valid = (origin_state >= first[:, None] + ETS_BURN_IN - 1) & (seasonal_col >= 0) & (origin_state >= 0)
        o, s = np.maximum(origin_state, 0), np.maximum(seasonal_col, 0)
        rows = np.arange(len(first))[:, None]
        value = path.level[rows, o] + _damp_sum(path.phi, h)[:, None] * path.trend[rows, o] + path.season[rows, s]
        return np.where(valid, value, np.nan)

    last_state = np.full((len(first), 1), t - 1)
    point = np.column_stack([predict(last_state, np.array([t - 1 + h]), h)[:, 0] for h in range(1, horizon + 1)])

    def backcast(h: int, days: np.ndarray) -> np.ndarray:
        return predict(np.broadcast_to(days - h, (len(first), len(days))), days, h)

    errors = lead_errors(y_fit, backcast, horizon, error_days)
    point = np.clip(np.nan_to_num(point), 0.0, None)
    quantiles = quantiles_from_errors(point, errors)
    mean, q = fallback.mean.copy(), fallback.quantiles
    mean[fit], q[fit] = point, quantiles
    return Forecast.build(panel.item_ids, panel.end, mean, q)
