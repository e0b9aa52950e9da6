"""Actual against forecast units, one small chart per item: an HTML page, and one SVG and PNG picture of them all.

Each chart shows an item's actual units per period (day, week or month: ``grain``;
the values of ``ChartSeries`` are one per period, placed at the period's first day)
over the recent past as a line, the
forecast median (P50) as a dashed line, the P10-P90 band as a shaded area, a vertical
line where the forecast starts, and the actual units of forecast days already known
(a backtest, or yesterday's forecast seen today). Drawn with matplotlib
(:mod:`shoplake.charts`); the page holds the SVG inline, so nothing is fetched when it
is opened::

    write_forecast_chart("runs/forecast.html", [ChartSeries("i1", date(2024, 3, 1), history, p10, p50, p90)])
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from shoplake.charts import INK, ChartSeries, figure, html_page, known, plain_axes, save_svg_png, svg_markup
from shoplake.forecast.grain import DAY, period_starts, shift

if TYPE_CHECKING:
    from shoplake.forecast.models.panel import SalesPanel
    from shoplake.forecast.train import CutoffForecast

#: Pixels of one item's chart.
WIDTH, HEIGHT = 640, 280
_P50 = "#2563eb"


def _periods(s: ChartSeries, grain: str) -> np.ndarray:
    """The first day of each period on the chart: history, then forecast."""
    return period_starts(shift(s.forecast_start, -len(s.history), grain), len(s.history) + len(s.p50), grain)


def draw_forecast(ax: Axes, s: ChartSeries, legend: bool = True, grain: str = DAY, unit: str = "units") -> None:
    """Draw one item's actual values, forecast band, median and start line on ``ax``.

    Artists carry ids (``gid``): ``band``, ``p50``, ``actual``, ``start``, so the
    SVG says what each shape is. ``grain`` is the period of a value, ``unit`` what
    it counts (the y-axis reads ``<unit> / <grain>``).
    """
    n_hist, horizon = len(s.history), len(s.p50)
    days = _periods(s, grain)
    forecast_days = days[n_hist:]
    if horizon == 1:  # one day: a bar half a day wide each side
        span = np.array([forecast_days[0] - np.timedelta64(12, "h"), forecast_days[0] + np.timedelta64(12, "h")])
        ax.fill_between(span, [s.p10[0]] * 2, [s.p90[0]] * 2, color=INK["band"], alpha=0.45, lw=0, label="P10 to P90", gid="band")
    else:
        ax.fill_between(forecast_days, s.p10, s.p90, color=INK["band"], alpha=0.45, lw=0, label="P10 to P90", gid="band")
    ax.plot(
        forecast_days, s.p50, color=_P50, lw=2, ls=(0, (6, 4)), marker="o" if horizon == 1 else None, ms=3, label="forecast P50", gid="p50"
    )
    actual = np.array([v if known(v) else np.nan for v in (*s.history, *s.actual)], dtype=np.float64)
    if len(actual):
        lone = np.isfinite(actual) & ~np.isfinite(np.r_[np.nan, actual[:-1]]) & ~np.isfinite(np.r_[actual[1:], np.nan])
        # A day with no known neighbour gets a dot, since a line through one point draws nothing.
        ax.plot(days[: len(actual)], actual, color=INK["actual"], lw=1.75, marker=None, label="actual", gid="actual")
        if lone.any():
            ax.plot(days[: len(actual)][lone], actual[lone], ls="none", marker="o", ms=3, color=INK["actual"], gid="actual-days")
    start = np.datetime64(s.forecast_start) - np.timedelta64(12, "h")
    ax.axvline(start, color=INK["start"], ls=(0, (2, 3)), lw=1, gid="start")
    ax.annotate(
        f"forecast from {s.forecast_start:%d %b}", (start, 1), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8
    )
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"{unit} / {grain}", color=INK["text"])
    locator = AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    plain_axes(ax)
    ax.grid(False, axis="x")
    if legend:
        ax.legend(loc="upper left", ncols=3, frameon=False, fontsize=8, bbox_to_anchor=(0, -0.12))


def chart_figure(s: ChartSeries, width: int = WIDTH, height: int = HEIGHT, grain: str = DAY, unit: str = "units") -> Figure:
    """One item's chart as a figure of ``width`` by ``height`` pixels."""
    fig = figure(width, height)
    draw_forecast(fig.add_subplot(), s, grain=grain, unit=unit)
    return fig


def chart_svg(s: ChartSeries, width: int = WIDTH, height: int = HEIGHT, grain: str = DAY, unit: str = "units") -> str:
    """One item's chart as an ``<svg>`` element."""
    return svg_markup(chart_figure(s, width, height, grain, unit))


def _caption(s: ChartSeries, grain: str = DAY, unit: str = "units") -> str:
    h = len(s.p50)
    end = shift(s.forecast_start, h, grain) - dt.timedelta(days=1)
    text = f"Forecast {s.forecast_start.isoformat()} to {end.isoformat()}: P50 total {sum(s.p50):,.1f} {unit}"
    text += f" (P10 to P90 per {grain} summed: {sum(s.p10):,.1f} to {sum(s.p90):,.1f})."
    pairs = [(a, p) for a, p in zip(s.actual, s.p50) if known(a)]
    if pairs:
        actual, forecast = sum(a for a, _ in pairs), sum(p for _, p in pairs)
        inside = sum(1 for a, lo, hi in zip(s.actual, s.p10, s.p90) if known(a) and lo <= a <= hi)
        text += (f" Actual over the {len(pairs)} {grain}(s) known: {actual:,.1f} {unit} against P50 {forecast:,.1f}; "
                 f"{inside} of {len(pairs)} inside the band.")  # fmt: skip
    return html.escape(text)


def render_forecast_chart(
    series: Sequence[ChartSeries], title: str = "Actual and forecast units", subtitle: str | None = None, grain: str = DAY,
    unit: str = "units",
) -> str:  # fmt: skip
    """The HTML page: a heading, then per item its name, its chart and a caption with the totals.

    Args:
        series: The items, in the order shown.
        title: Page title and heading.
        subtitle: A line under the heading (the run date, the model version...).
        grain: The period of one value.
        unit: What the values count.
    """
    sections = []
    for s in series:
        id_note = f' <span class="id">{html.escape(s.item_id)}</span>' if s.title else ""
        sections.append(
            f'<section class="chart">\n<h2>{html.escape(s.title or s.item_id)}{id_note}</h2>\n{chart_svg(s, grain=grain, unit=unit)}\n'
            f'<p class="caption">{_caption(s, grain, unit)}</p>\n</section>'
        )
    return html_page(title, subtitle, sections)


def write_forecast_chart(
    path: str | Path, series: Sequence[ChartSeries], title: str = "Actual and forecast units", subtitle: str | None = None,
    grain: str = DAY, unit: str = "units",
) -> Path:  # fmt: skip
    """Write :func:`render_forecast_chart`'s page to ``path`` (folders created) and return it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_forecast_chart(series, title, subtitle, grain, unit), encoding="utf-8")
    return out


def forecast_figure(series: Sequence[ChartSeries], columns: int = 2, grain: str = DAY, unit: str = "units") -> Figure:
    """The charts of several items in one figure, ``columns`` per row, each titled with the item's name and id."""
    if not series:
        raise ValueError("no items to draw")
    columns = max(1, min(columns, len(series)))
    rows = -(-len(series) // columns)
    fig = figure(WIDTH * columns, (HEIGHT + 22) * rows)
    for n, (s, ax) in enumerate(zip(series, fig.subplots(rows, columns, squeeze=False).ravel())):
        draw_forecast(ax, s, legend=n == 0, grain=grain, unit=unit)
        ax.set_title(f"{s.title} ({s.item_id})" if s.title else s.item_id, loc="left", fontsize=10, fontweight="bold", color=INK["actual"])
        ax.set_gid(f"item-{n}")
    for ax in fig.axes[len(series) :]:
        ax.set_visible(False)
    return fig


def write_forecast_images(
    stem: str | Path, series: Sequence[ChartSeries], columns: int = 2, grain: str = DAY, unit: str = "units"
) -> tuple[Path, Path]:
    """Write :func:`forecast_figure` as ``<stem>.svg`` and ``<stem>.png``."""
    return save_svg_png(forecast_figure(series, columns, grain, unit), stem)


def backtest_chart_series(
    panel: SalesPanel, cut: CutoffForecast, items: int = 4, history_periods: int | None = None, titles: dict[str, str] | None = None
):
    """Chart data of the ``items`` evaluated items with the most revenue before a cut-off: actuals, forecast, band.

    ``history_periods`` defaults to one and a half horizons, at least 12 periods (42 days at a 28-day horizon).
    """
    horizon = cut.forecast.horizon
    history_periods = history_periods or max(round(1.5 * horizon), 12)
    k = panel.column_of(cut.cutoff)
    revenue = np.nan_to_num(panel.revenue[cut.evaluated, max(0, k - horizon) : k]).sum(axis=1)
    out = []
    for row in np.argsort(-revenue, kind="stable")[:items]:
        item = int(cut.evaluated[row])
        past = panel.y[item, max(0, k - history_periods) : k]
        out.append(
            ChartSeries(
                item_id=str(panel.item_ids[item]),
                forecast_start=cut.cutoff,
                history=[None if np.isnan(v) else float(v) for v in past],
                p10=cut.forecast.p10[row].tolist(),
                p50=cut.forecast.p50[row].tolist(),
                p90=cut.forecast.p90[row].tolist(),
                actual=cut.actual[row].tolist(),
                title=(titles or {}).get(str(panel.item_ids[item])),
            )  # fmt: skip
        )
    return out


def write_backtest_chart(
    folder: str | Path, panel: SalesPanel, cut: CutoffForecast, model: str, titles: dict[str, str] | None = None
) -> Path:
    """Write ``backtest.html``, ``backtest.svg`` and ``backtest.png`` into ``folder``: actual vs forecast with the P10-P90 band."""
    series = backtest_chart_series(panel, cut, titles=titles)
    folder = Path(folder)
    page = write_forecast_chart(
        folder / "backtest.html", series, title=f"{model}: actual vs forecast from the cut-off {cut.cutoff}",
        subtitle=f"The top items by revenue in the {cut.forecast.horizon} {panel.grain}s before the cut-off; the band is P10-P90.",
        grain=panel.grain, unit=panel.target,
    )  # fmt: skip
    if series:
        write_forecast_images(folder / "backtest", series, grain=panel.grain, unit=panel.target)
    return page
