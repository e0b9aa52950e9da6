"""Demand forecasting data: the sales panel and the forecasts every model makes.

A :class:`SalesPanel` is one partition of ``gold.item_daily_sales`` as dense arrays:
one row per item, one column per period (a day, a week or a month:
:mod:`shoplake.forecast.grain`), ``NaN`` before an item's first sale. It is built
daily (:meth:`SalesPanel.from_arrow`) and summed to the forecasting grain
(:meth:`SalesPanel.to_grain`). Every forecaster reads a panel and forecasts the
``horizon`` periods after its last one as a :class:`Forecast` (mean and P10/P50/P90
per item and period) of the panel's target (:attr:`SalesPanel.y`: units, or revenue).
A backtest at cut-off ``day`` hands the models ``panel.until(day)``, so nothing on or
after the cut-off can leak into a forecast.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.forecast.grain import DAY, check_grain, period_lengths, period_start, period_starts, periods_between, shift

#: What a panel can forecast: the units sold, or their value (revenue, or any non-integer amount imported as one).
TARGETS = ("units", "revenue")

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


@dataclass
class SalesPanel:
    """Sales of many items as dense ``[n_items, n_periods]`` arrays.

    Attributes:
        item_ids: Item ids (str), one per row, sorted when built by :meth:`from_arrow`.
        start: The first day of column 0's period.
        units: Net units sold, float64; NaN before the item's first sale.
        revenue: Net revenue, float64; the same NaN mask as ``units``.
        price: Average (or last known) price, float64; NaN where unknown.
        promo: On promotion that period (any of its days), bool (False before the first sale).
        stock_out: Share of the period's days that ended stocked out: 0.0 .. 1.0, NaN where unknown.
        grain: The period of a column: ``day``, ``week`` or ``month``.
        target: What the models forecast: ``units`` or ``revenue`` (:attr:`y`).
    """

    item_ids: np.ndarray
    start: dt.date
    units: np.ndarray
    revenue: np.ndarray
    price: np.ndarray
    promo: np.ndarray
    stock_out: np.ndarray
    grain: str = DAY
    target: str = "units"

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids, dtype=str)
        self.start = to_date(self.start)
        check_grain(self.grain)
        if self.target not in TARGETS:
            raise ValueError(f"unknown forecasting target {self.target!r}; known: {', '.join(TARGETS)}")
        if period_start(self.start, self.grain) != self.start:
            raise ValueError(f"a {self.grain} panel must start on a period's first day, not {self.start}")
        self.units = np.asarray(self.units, dtype=np.float64)
        shape = (len(self.item_ids), self.units.shape[-1] if self.units.ndim == 2 else -1)
        for name in ("units", "revenue", "price", "promo", "stock_out"):
            value = np.asarray(getattr(self, name), dtype=bool if name == "promo" else np.float64)
            if value.shape != shape:
                raise ValueError(f"SalesPanel.{name} has shape {value.shape}, expected {shape} (items, periods)")
            setattr(self, name, value)

    def _replace(self, **changes) -> SalesPanel:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return SalesPanel(**{**fields, **changes})

    @property
    def y(self) -> np.ndarray:
        """The values the models forecast: :attr:`units` or :attr:`revenue`, as :attr:`target` says."""
        return self.revenue if self.target == "revenue" else self.units

    @property
    def integer(self) -> bool:
        """Whether every known value of :attr:`y` is a whole number (counts: their quantiles are counts too)."""
        known = self.y[~np.isnan(self.y)]
        return bool(np.all(known == np.round(known)))

    @property
    def n_items(self) -> int:
        return self.units.shape[0]

    @property
    def n_periods(self) -> int:
        return self.units.shape[1]

    @property
    def dates(self) -> np.ndarray:
        """The first day of each column's period, ``datetime64[D]``."""
        return period_starts(self.start, self.n_periods, self.grain)

    @property
    def end(self) -> dt.date:
        """The first day after the last column: the first day a forecast from this panel covers."""
        return shift(self.start, self.n_periods, self.grain)

    @property
    def first_sale(self) -> np.ndarray:
        """Column of each item's first observed period; ``n_periods`` for an item without any."""
        if self.n_periods == 0:
            return np.zeros(self.n_items, dtype=np.int64)
        observed = ~np.isnan(self.units)
        return np.where(observed.any(axis=1), observed.argmax(axis=1), self.n_periods)

    @property
    def observed_periods(self) -> np.ndarray:
        """Periods from each item's first sale to the panel's end."""
        return self.n_periods - self.first_sale

    def column_of(self, day) -> int:
        """The column of the period holding ``day`` (may lie outside the panel: negative, or ``n_periods`` and more)."""
        return periods_between(self.start, to_date(day), self.grain)

    def until(self, day) -> SalesPanel:
        """The panel truncated to the periods before the one holding ``day`` (the view of a forecast made on ``day``).

        Items keep their rows: one first sold on or after ``day`` is all NaN. At week
        and month grain ``day`` should be a period's first day; another day cuts at
        its period's start.
        """
        k = int(np.clip(self.column_of(day), 0, self.n_periods))
        return self._replace(
            units=self.units[:, :k], revenue=self.revenue[:, :k], price=self.price[:, :k], promo=self.promo[:, :k],
            stock_out=self.stock_out[:, :k],
        )  # fmt: skip

    def select(self, which) -> SalesPanel:
        """The rows of a boolean mask or of integer indices, in that order."""
        which = np.asarray(which)
        return self._replace(
            item_ids=self.item_ids[which], units=self.units[which], revenue=self.revenue[which], price=self.price[which],
            promo=self.promo[which], stock_out=self.stock_out[which],
        )  # fmt: skip

    def with_target(self, target: str) -> SalesPanel:
        """The same sales with ``target`` (``units`` or ``revenue``) as the values forecast."""
        return self._replace(target=target)

    def to_grain(self, grain: str) -> SalesPanel:
        """A daily panel summed to ``grain``: one column per whole period.

        Only periods whose every day lies in the panel are kept (at the front, a period
        the panel starts inside of; at the end, the period of the run date when the
        run date is not its first day), so the result ends at the first day of the
        period holding :attr:`end`. Per item and period:

        * units and revenue are the sums of the days; NaN when a day of the period is
          NaN (the item's first sale fell inside it: a partial period would look like a
          slump, so the item's history starts with its first whole period);
        * price is revenue / units when units > 0, else the last known daily price of
          the period;
        * promo is true when any day was on promotion;
        * stock_out is the share of stocked-out days among the days with a known stock.

        Raises:
            ValueError: The panel is not daily (and ``grain`` is not its own).
        """
        check_grain(grain)
        if grain == self.grain:
            return self
        if self.grain != DAY:
            raise ValueError(f"only a daily panel can be summed to another grain, this one is {self.grain}")
        first = period_start(self.start, grain)
        if first != self.start:
            first = shift(first, 1, grain)
        last = period_start(self.end, grain)
        n = max(periods_between(first, last, grain), 0) if first <= last else 0
        lengths = period_lengths(first, n, grain)
        c0 = (first - self.start).days
        bounds = c0 + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        c1 = c0 + int(lengths.sum())
        if n == 0:
            empty = np.zeros((self.n_items, 0))
            return self._replace(start=last, units=empty, revenue=empty, price=empty, promo=empty.astype(bool),
                                 stock_out=empty, grain=grain)  # fmt: skip
        days = slice(c0, c1)
        starts = bounds - c0

        def total(values: np.ndarray) -> np.ndarray:
            return np.add.reduceat(values[:, days], starts, axis=1)  # a NaN day makes the period NaN

        units, revenue = total(self.units), total(self.revenue)
        # The last known daily price of each period: carry prices forward within the panel, read each period's last day.
        price = self.price[:, days]
        filled = np.where(np.isnan(price), -1, np.arange(price.shape[1])[None, :])
        np.maximum.accumulate(filled, axis=1, out=filled)
        carried = np.where(filled >= 0, np.take_along_axis(price, np.maximum(filled, 0), axis=1), np.nan)
        ends = starts + lengths - 1
        with np.errstate(all="ignore"):
            price_p = np.where(units > 0, revenue / units, carried[:, ends])
        price_p[np.isnan(units)] = np.nan
        promo = np.logical_or.reduceat(self.promo[:, days], starts, axis=1)
        known = ~np.isnan(self.stock_out[:, days])
        out_days = np.add.reduceat(np.nan_to_num(self.stock_out[:, days]), starts, axis=1)
        known_days = np.add.reduceat(known.astype(np.float64), starts, axis=1)
        with np.errstate(all="ignore"):
            stock_out = np.where(known_days > 0, out_days / known_days, np.nan)
        return self._replace(start=first, units=units, revenue=revenue, price=price_p, promo=promo, stock_out=stock_out, grain=grain)

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
    """Forecasts of ``horizon`` periods for each item, in the panel's target (units, or revenue).

    Attributes:
        item_ids: Item ids, one per row.
        start: The first day of the first forecast period (column 0).
        mean: Expected value (the point forecast), ``[n, horizon]``.
        p10: 10th percentile.
        p50: Median.
        p90: 90th percentile.
        grain: The period of a column.

    All arrays are >= 0 and ``p10 <= p50 <= p90`` (enforced by :meth:`build`).
    """

    item_ids: np.ndarray
    start: dt.date
    mean: np.ndarray
    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray
    grain: str = DAY

    @classmethod
    def build(cls, item_ids, start, mean: np.ndarray, quantiles: np.ndarray, grain: str = DAY) -> Forecast:
        """A forecast from raw outputs: clipped at 0, quantiles sorted (no crossing).

        Args:
            item_ids: Item ids.
            start: First day of the first forecast period.
            mean: ``[n, H]`` point forecast.
            quantiles: ``[n, H, 3]`` values at :data:`~shoplake.forecast.schemas.QUANTILES`.
            grain: The period of a column.
        """
        q = np.sort(np.clip(np.nan_to_num(np.asarray(quantiles, dtype=np.float64)), 0.0, None), axis=-1)
        mean = np.clip(np.nan_to_num(np.asarray(mean, dtype=np.float64)), 0.0, None)
        return cls(np.asarray(item_ids, dtype=str), to_date(start), mean, q[..., 0], q[..., 1], q[..., 2], grain)

    @property
    def horizon(self) -> int:
        return self.mean.shape[1]

    @property
    def dates(self) -> np.ndarray:
        """The first day of each column's period, ``datetime64[D]``."""
        return period_starts(self.start, self.horizon, self.grain)

    @property
    def quantiles(self) -> np.ndarray:
        """P10, P50, P90 stacked: ``[n, H, 3]``."""
        return np.stack([self.p10, self.p50, self.p90], axis=-1)

    def select(self, which) -> Forecast:
        """The rows of a boolean mask or of integer indices."""
        which = np.asarray(which)
        return Forecast(self.item_ids[which], self.start, self.mean[which], self.p10[which], self.p50[which], self.p90[which], self.grain)
