"""The time grain of forecasting: day, week or month periods, their calendar and season lengths.

``forecasting.grain`` decides the period every model sees, forecasts and is scored
on. ``gold.item_daily_sales`` stays daily; the panel is summed to the grain before
any model reads it (:meth:`shoplake.forecast.models.panel.SalesPanel.to_grain`).

* **day**: one period per UTC day. Season 7 (the week).
* **week**: ISO weeks, Monday to Sunday, named by their Monday. Season 52.
* **month**: calendar months, named by their first day. Season 12.

A period is named by its first day everywhere (panel columns, backtest cut-offs,
``serving.forecasts.forecast_date``). The yearly season of daily sales (365) is left
out: statsforecast's AutoETS, AutoTheta, AutoARIMA and SeasonalNaive take a single
season length, and a model with two (MSTL) needs two full years of every item's
history to estimate the yearly one, more than the shops here have (Online Retail
holds one year).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import numpy as np

Grain = Literal["day", "week", "month"]
GRAINS: tuple[str, ...] = ("day", "week", "month")
DAY, WEEK, MONTH = GRAINS

#: The season length of each grain, in periods: the week of days, the year of weeks or months.
SEASON_LENGTH = {DAY: 7, WEEK: 52, MONTH: 12}
#: Periods in a year (the item-age cap of the global models).
PERIODS_PER_YEAR = {DAY: 365, WEEK: 52, MONTH: 12}
#: The short and long windows of rolling statistics, in periods: a week and four weeks of
#: days, a month and a quarter of weeks, a quarter and a year of months.
ROLLING_WINDOWS = {DAY: (7, 28), WEEK: (4, 13), MONTH: (3, 12)}

_EPOCH = dt.date(1970, 1, 1)


def check_grain(grain: str) -> str:
    """``grain`` itself, or a ValueError naming the grains known."""
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; known: {', '.join(GRAINS)}")
    return grain


def season_length(grain: str) -> int:
    """The season of ``grain`` in periods: 7 for days, 52 for weeks, 12 for months."""
    return SEASON_LENGTH[check_grain(grain)]


def period_start(day: dt.date, grain: str) -> dt.date:
    """The first day of the period holding ``day``: the day itself, its week's Monday, its month's first day."""
    check_grain(grain)
    if grain == DAY:
        return day
    if grain == WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def _month_number(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


def shift(start: dt.date, periods: int, grain: str) -> dt.date:
    """The start of the period ``periods`` after (negative: before) the period starting on ``start``."""
    check_grain(grain)
    if grain == DAY:
        return start + dt.timedelta(days=periods)
    if grain == WEEK:
        return start + dt.timedelta(weeks=periods)
    n = _month_number(start) + periods
    return dt.date(n // 12, n % 12 + 1, 1)


def periods_between(a: dt.date, b: dt.date, grain: str) -> int:
    """Whole periods from the period holding ``a`` to the one holding ``b`` (negative when ``b`` is earlier)."""
    check_grain(grain)
    if grain == DAY:
        return (b - a).days
    if grain == WEEK:
        return (period_start(b, WEEK) - period_start(a, WEEK)).days // 7
    return _month_number(b) - _month_number(a)


def period_starts(start: dt.date, n: int, grain: str) -> np.ndarray:
    """The first day of ``n`` consecutive periods from the one starting on ``start``, ``datetime64[D]``."""
    check_grain(grain)
    if grain == DAY:
        return np.datetime64(start, "D") + np.arange(n)
    if grain == WEEK:
        return np.datetime64(start, "D") + 7 * np.arange(n)
    months = np.datetime64(f"{start.year:04d}-{start.month:02d}", "M") + np.arange(n)
    return months.astype("datetime64[D]")


def period_lengths(start: dt.date, n: int, grain: str) -> np.ndarray:
    """Days in each of ``n`` consecutive periods from the one starting on ``start`` (int64)."""
    edges = period_starts(start, n + 1, grain).astype(np.int64)
    return np.diff(edges)


def period_index(days: np.ndarray, grain: str) -> np.ndarray:
    """A period number (increasing by one per period) of each day of ``days`` (``datetime64[D]`` or days since 1970)."""
    check_grain(grain)
    numbers = np.asarray(days).astype("datetime64[D]").astype(np.int64)
    if grain == DAY:
        return numbers
    if grain == WEEK:
        return (numbers + 3) // 7  # 1970-01-01 was a Thursday: Monday-based weeks
    return np.asarray(days).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def to_date(value: np.datetime64) -> dt.date:
    """A ``datetime64`` day as ``datetime.date``."""
    return _EPOCH + dt.timedelta(days=int(np.datetime64(value, "D").astype(np.int64)))
