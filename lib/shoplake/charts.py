"""Small SVG building blocks shared by the charts of every report: layout, scales, ticks, numbers."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ChartSeries:
    """One item's actual and forecast units.

    Attributes:
        item_id: The item.
        forecast_start: First forecast day; the ``history`` days end the day before.
        history: Actual units of the days before ``forecast_start``, oldest first
            (``None`` or NaN for a day not known).
        p10: 10th percentile of each forecast day's units, from ``forecast_start`` on.
        p50: Median, same days.
        p90: 90th percentile, same days.
        actual: Actual units of the first forecast days, where known already (shorter
            than the forecast, or ``None`` entries, for days not known yet).
        title: What to call the item (its product title); the id when not given.
    """

    item_id: str
    forecast_start: dt.date
    history: Sequence[float | None]
    p10: Sequence[float]
    p50: Sequence[float]
    p90: Sequence[float]
    actual: Sequence[float | None] = ()
    title: str | None = None

    def __post_init__(self) -> None:
        lengths = {len(self.p10), len(self.p50), len(self.p90)}
        if len(lengths) != 1 or not len(self.p50):
            raise ValueError(
                f"item {self.item_id}: p10, p50 and p90 need the same number (>= 1) of days, got {len(self.p10)}, {len(self.p50)}, {len(self.p90)}"
            )
        if len(self.actual) > len(self.p50):
            raise ValueError(f"item {self.item_id}: {len(self.actual)} actual values for {len(self.p50)} forecast days")
        for name in ("p10", "p50", "p90"):
            if not all(_known(v) for v in getattr(self, name)):
                raise ValueError(f"item {self.item_id}: {name} has a missing or non-finite value")

    @property
    def first_day(self) -> dt.date:
        return self.forecast_start - dt.timedelta(days=len(self.history))

    @property
    def days(self) -> int:
        """Days on the chart: history plus forecast."""
        return len(self.history) + len(self.p50)


@dataclass(frozen=True)
class Layout:
    """Size of one chart, in pixels (SVG user units), and its margins around the plot area."""

    width: int = 640
    height: int = 280
    left: int = 56
    right: int = 16
    top: int = 36
    bottom: int = 44
    x_labels: int = 7
    y_ticks: int = 5

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


@dataclass(frozen=True)
class Scale:
    """Maps a day (0 = the chart's first day) and units to SVG coordinates.

    Attributes:
        layout: The chart's layout.
        days: Days on the chart.
        y_max: Units at the top of the plot area.
        y_step: Units between two grid lines.
    """

    layout: Layout
    days: int
    y_max: float
    y_step: float = 1.0

    @classmethod
    def for_series(cls, s: ChartSeries, layout: Layout) -> Scale:
        """The scale of one item: every day, units from 0 to a round number above the largest value."""
        values = [v for v in (*s.history, *s.actual, *s.p90, *s.p50) if _known(v)]
        step = nice_step(max(values, default=0.0), layout.y_ticks)
        top = step * math.ceil(max(values, default=0.0) / step) or step
        return cls(layout, s.days, top, step)

    def x(self, day: float) -> float:
        lay = self.layout
        if self.days <= 1:
            return lay.left + lay.plot_width / 2
        return lay.left + day / (self.days - 1) * lay.plot_width

    def y(self, units: float) -> float:
        lay = self.layout
        return lay.top + lay.plot_height * (1.0 - units / self.y_max)


def nice_step(largest: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks up to ``largest``."""
    if not largest > 0:
        return 1.0
    raw = largest / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-12))


def _known(v) -> bool:
    return v is not None and math.isfinite(v)


SVG_NS = "http://www.w3.org/2000/svg"


def fmt(v: float) -> str:
    """A coordinate as written into SVG markup: one decimal (a tenth of a pixel is finer than any screen)."""
    return f"{v:.1f}"
