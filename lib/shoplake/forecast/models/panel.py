"""Demand forecasting data: the daily sales panel and the forecasts every model makes.

A :class:`SalesPanel` is one partition of ``gold.item_daily_sales`` as dense arrays:
one row per item, one column per day, ``NaN`` before an item's first sale. Every
forecaster reads a panel and forecasts the ``horizon`` days after its last day as a
:class:`Forecast` (mean and P10/P50/P90 per item and day). A backtest at cut-off
``day`` hands the models ``panel.until(day)``, so nothing on or after the cut-off
can leak into a forecast.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C

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
