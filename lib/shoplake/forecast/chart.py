"""Actual against forecast units, one small chart per item, as a self-contained HTML page.

Each chart shows an item's actual daily units over the recent past as a line, the
forecast median (P50) as a dashed line, the P10-P90 band as a shaded area, a vertical
line where the forecast starts, and the actual units of forecast days already known
(a backtest, or yesterday's forecast seen today). The page is plain HTML with inline
SVG, built as strings: no plotting library, nothing fetched when it is opened, and it
parses as XML (tests read it with :mod:`xml.etree`)::

    write_forecast_chart("runs/forecast.html", [ChartSeries("i1", date(2024, 3, 1), history, p10, p50, p90)])
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from pathlib import Path

from shoplake.charts import SVG_NS as _SVG_NS
from shoplake.charts import ChartSeries, Layout, Scale, _known
from shoplake.charts import fmt as _fmt

_COLOURS = {"actual": "#1f2937", "p50": "#2563eb", "band": "#93c5fd", "start": "#9ca3af", "grid": "#e5e7eb", "text": "#374151"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2937; margin: 24px; background: #f9fafb; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.subtitle { color: #6b7280; margin: 0 0 20px; font-size: 13px; }
div.charts { display: flex; flex-wrap: wrap; gap: 16px; }
section.chart { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 12px 12px 8px; }
section.chart h2 { font-size: 15px; margin: 0 0 2px; }
section.chart h2 span.id { color: #6b7280; font-weight: normal; font-size: 13px; }
section.chart p.caption { color: #4b5563; font-size: 12px; margin: 4px 0 0; }
svg text { font-family: inherit; font-size: 11px; fill: #374151; }
"""


def _units(v: float, step: float) -> str:
    if step >= 1:
        return f"{v:,.0f}"
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{v:,.{decimals}f}"


def _segments(points: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive known points (a day not known breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


def _polyline(points: list[tuple[float, float]], cls: str, style: str) -> str:
    if len(points) == 1:  # a lone day: a dot, since a one-point polyline draws nothing
        (x, y) = points[0]
        return f'<circle class="{cls}" cx="{_fmt(x)}" cy="{_fmt(y)}" r="2.5" fill="{_COLOURS[cls]}"/>'
    coords = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)
    return f'<polyline class="{cls}" points="{coords}" fill="none" {style}/>'


def _x_label_days(days: int, labels: int) -> list[int]:
    every = max(1, math.ceil(days / labels))
    return list(range(0, days, every))


def chart_svg(s: ChartSeries, layout: Layout = Layout()) -> str:
    """One item's chart as an ``<svg>`` element.

    Args:
        s: The item's actual and forecast units.
        layout: Size and margins.

    Returns:
        The SVG markup (with its namespace, so that the page parses as XML).
    """
    sc = Scale.for_series(s, layout)
    lay = layout
    name = s.title or s.item_id
    n_hist = len(s.history)
    fc_days = [n_hist + i for i in range(len(s.p50))]
    plot_bottom, plot_right = lay.top + lay.plot_height, lay.left + lay.plot_width
    parts = [
        f'<svg xmlns="{_SVG_NS}" class="forecast" viewBox="0 0 {lay.width} {lay.height}" width="{lay.width}" height="{lay.height}" '
        f'role="img" aria-label="{html.escape(f"Actual and forecast daily units of {name}")}">',
        f"<title>{html.escape(f'{name}: actual and forecast daily units')}</title>",
    ]
    # Grid and y axis: units.
    for k in range(round(sc.y_max / sc.y_step) + 1):
        tick = k * sc.y_step
        y = _fmt(sc.y(tick))
        parts.append(f'<line class="grid" x1="{lay.left}" x2="{plot_right}" y1="{y}" y2="{y}" stroke="{_COLOURS["grid"]}"/>')
        parts.append(f'<text x="{lay.left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle">{_units(tick, sc.y_step)}</text>')
    mid_y = _fmt(lay.top + lay.plot_height / 2)
    parts.append(f'<text class="axis-label" x="14" y="{mid_y}" text-anchor="middle" transform="rotate(-90 14 {mid_y})">units / day</text>')
    # x axis: dates.
    parts.append(
        f'<line class="axis" x1="{lay.left}" x2="{plot_right}" y1="{plot_bottom}" y2="{plot_bottom}" stroke="{_COLOURS["text"]}"/>'
    )
    for day in _x_label_days(s.days, lay.x_labels):
        x = _fmt(sc.x(day))
        date = s.first_day + dt.timedelta(days=day)
        parts.append(f'<line x1="{x}" x2="{x}" y1="{plot_bottom}" y2="{plot_bottom + 4}" stroke="{_COLOURS["text"]}"/>')
        parts.append(f'<text x="{x}" y="{plot_bottom + 16}" text-anchor="middle">{date:%d %b}</text>')
    parts.append(
        f'<text class="axis-label" x="{_fmt(lay.left + lay.plot_width / 2)}" y="{lay.height - 6}" text-anchor="middle">'
        f"date ({s.first_day.isoformat()} to {(s.first_day + dt.timedelta(days=s.days - 1)).isoformat()})</text>"
    )
    # The P10-P90 band: along P90 forward, back along P10.
    band = [(sc.x(d), sc.y(v)) for d, v in zip(fc_days, s.p90)] + [(sc.x(d), sc.y(v)) for d, v in reversed(list(zip(fc_days, s.p10)))]
    if len(fc_days) == 1:  # one day: a bar half a day wide each side
        half = lay.plot_width / max(s.days - 1, 1) / 2
        (x, top), (_, low) = band
        band = [(x - half, top), (x + half, top), (x + half, low), (x - half, low)]
    points = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in band)
    parts.append(f'<polygon class="band" points="{points}" fill="{_COLOURS["band"]}" fill-opacity="0.45" stroke="none"/>')
    # Where the forecast starts: midnight between the last actual day and the first forecast day.
    start_x = _fmt(max(lay.left, sc.x(n_hist - 0.5)))
    parts.append(
        f'<line class="start" x1="{start_x}" x2="{start_x}" y1="{lay.top}" y2="{plot_bottom}" stroke="{_COLOURS["start"]}" stroke-dasharray="2 3"/>'
    )
    parts.append(f'<text x="{start_x}" y="{lay.top - 4}" text-anchor="middle">forecast from {s.forecast_start:%d %b}</text>')
    # P50 dashed, actual solid over both periods.
    parts.append(
        _polyline(
            [(sc.x(d), sc.y(v)) for d, v in zip(fc_days, s.p50)],
            "p50",
            f'stroke="{_COLOURS["p50"]}" stroke-width="2" stroke-dasharray="6 4"',
        )
    )
    actual = [(sc.x(d), sc.y(v) if _known(v) else None) for d, v in enumerate((*s.history, *s.actual))]
    for run in _segments(actual):
        parts.append(_polyline(run, "actual", f'stroke="{_COLOURS["actual"]}" stroke-width="1.75"'))
    parts.append(_legend(lay))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(lay: Layout) -> str:
    y = 12
    x = lay.left
    items = [
        f'<line x1="{x}" x2="{x + 20}" y1="{y}" y2="{y}" stroke="{_COLOURS["actual"]}" stroke-width="1.75"/>',
        f'<text x="{x + 26}" y="{y}" dominant-baseline="middle">actual</text>',
        f'<line x1="{x + 80}" x2="{x + 100}" y1="{y}" y2="{y}" stroke="{_COLOURS["p50"]}" stroke-width="2" stroke-dasharray="6 4"/>',
        f'<text x="{x + 106}" y="{y}" dominant-baseline="middle">forecast P50</text>',
        f'<rect x="{x + 196}" y="{y - 6}" width="20" height="12" fill="{_COLOURS["band"]}" fill-opacity="0.45"/>',
        f'<text x="{x + 222}" y="{y}" dominant-baseline="middle">P10 to P90</text>',
    ]
    return '<g class="legend">' + "".join(items) + "</g>"


def _caption(s: ChartSeries) -> str:
    h = len(s.p50)
    end = s.forecast_start + dt.timedelta(days=h - 1)
    text = f"Forecast {s.forecast_start.isoformat()} to {end.isoformat()}: P50 total {sum(s.p50):,.1f} units"
    text += f" (P10 to P90 per day summed: {sum(s.p10):,.1f} to {sum(s.p90):,.1f})."
    known = [(a, p) for a, p in zip(s.actual, s.p50) if _known(a)]
    if known:
        actual, forecast = sum(a for a, _ in known), sum(p for _, p in known)
        inside = sum(1 for a, lo, hi in zip(s.actual, s.p10, s.p90) if _known(a) and lo <= a <= hi)
        text += f" Actual over the {len(known)} day(s) known: {actual:,.1f} units against P50 {forecast:,.1f}; {inside} of {len(known)} inside the band."
    return html.escape(text)


def render_forecast_chart(
    series: Sequence[ChartSeries], title: str = "Actual and forecast units", subtitle: str | None = None, layout: Layout = Layout()
) -> str:
    """The HTML page: a heading and one chart per item.

    Args:
        series: The items, in the order shown.
        title: Page title and heading.
        subtitle: A line under the heading (the run date, the model version...).
        layout: Size of each chart.
    """
    sections = []
    for s in series:
        id_note = f' <span class="id">{html.escape(s.item_id)}</span>' if s.title else ""
        sections.append(
            f'<section class="chart">\n<h2>{html.escape(s.title or s.item_id)}{id_note}</h2>\n{chart_svg(s, layout)}\n'
            f'<p class="caption">{_caption(s)}</p>\n</section>'
        )
    body = "\n".join(sections) if sections else "<p>No items to show.</p>"
    sub = f'<p class="subtitle">{html.escape(subtitle)}</p>\n' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n{sub}<div class="charts">\n{body}\n</div>\n</body>\n</html>\n'
    )


def write_forecast_chart(
    path: str | Path,
    series: Sequence[ChartSeries],
    title: str = "Actual and forecast units",
    subtitle: str | None = None,
    layout: Layout = Layout(),
) -> Path:
    """Write :func:`render_forecast_chart`'s page to ``path`` (folders created).

    Args:
        path: The HTML file to write.
        series: The items, in the order shown.
        title: Page title and heading.
        subtitle: A line under the heading.
        layout: Size of each chart.

    Returns:
        The path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_forecast_chart(series, title, subtitle, layout), encoding="utf-8")
    return out


def render_forecast_svg(series: Sequence[ChartSeries], layout: Layout = Layout(), columns: int = 2) -> str:
    """The charts of :func:`render_forecast_chart` as one standalone SVG image (for a README), ``columns`` per row."""
    head = 22  # the item's title above its chart
    rows = max(1, -(-len(series) // columns))
    cell_h = layout.height + head
    width, height = layout.width * min(columns, max(1, len(series))), cell_h * rows
    parts = [
        f'<svg xmlns="{_SVG_NS}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for n, s in enumerate(series):
        x, y = (n % columns) * layout.width, (n // columns) * cell_h
        name = s.title or s.item_id
        label = f"{name} ({s.item_id})" if s.title else name
        parts.append(
            f'<text x="{x + layout.left}" y="{y + 16}" font-size="13" font-weight="bold" fill="#1f2937">{html.escape(label)}</text>'
        )
        parts.append(f'<g transform="translate({x},{y + head})">{chart_svg(s, layout)}</g>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
