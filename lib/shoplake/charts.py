"""What the charts of every report share: matplotlib figures of a size in pixels, saved as SVG and PNG, and HTML pages around them.

Charts are drawn with matplotlib on its Agg canvas through :class:`matplotlib.figure.Figure`
objects (no pyplot state, so charts can be drawn from several threads). SVG output
keeps its text as text and is deterministic (no date, fixed ids), so a re-run writes
the same bytes; PNG is for places that do not show SVG.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

#: Pixels per inch of the figures: sizes are given in pixels.
DPI = 100

#: Line colours, in the order series are drawn (repeated after the last).
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")

INK = {"text": "#374151", "muted": "#6b7280", "grid": "#e5e7eb", "actual": "#1f2937", "band": "#93c5fd", "start": "#9ca3af"}

# Applied when a figure is saved: text stays text in SVG, and its ids do not change between runs.
_STYLE = {"svg.hashsalt": "shoplake", "svg.fonttype": "none"}


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
            if not all(known(v) for v in getattr(self, name)):
                raise ValueError(f"item {self.item_id}: {name} has a missing or non-finite value")

    @property
    def first_day(self) -> dt.date:
        return self.forecast_start - dt.timedelta(days=len(self.history))

    @property
    def days(self) -> int:
        """Days on the chart: history plus forecast."""
        return len(self.history) + len(self.p50)


def known(v) -> bool:
    """Whether ``v`` is a number to draw (not None, NaN or infinite)."""
    return v is not None and math.isfinite(v)


def figure(width_px: int, height_px: int) -> Figure:
    """An empty figure of ``width_px`` by ``height_px`` pixels, laid out so that labels fit."""
    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")


def plain_axes(ax) -> None:
    """The look every chart shares: light grid lines behind the data, no top and right frame."""
    ax.grid(color=INK["grid"], lw=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(colors=INK["text"], labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(INK["muted"])


def _save(fig: Figure, target, fmt: str) -> None:
    with matplotlib.rc_context(_STYLE):
        fig.savefig(target, format=fmt, dpi=DPI, facecolor="white", metadata={"Date": None} if fmt == "svg" else {"Software": None})


def svg_markup(fig: Figure) -> str:
    """The figure as an ``<svg>`` element, without the XML prolog, to stand alone or inside a page."""
    buffer = io.StringIO()
    _save(fig, buffer, "svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def save_svg_png(fig: Figure, stem: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.svg`` and ``<stem>.png`` (folders created) and return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    svg, png = stem.with_suffix(".svg"), stem.with_suffix(".png")
    svg.write_text(svg_markup(fig), encoding="utf-8")
    _save(fig, png, "png")
    return svg, png


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2937; margin: 24px; background: #f9fafb; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.subtitle { color: #6b7280; margin: 0 0 20px; font-size: 13px; }
div.charts { display: flex; flex-wrap: wrap; gap: 16px; }
section.chart { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 12px 12px 8px; }
section.chart h2 { font-size: 15px; margin: 0 0 2px; }
section.chart h2 span.id { color: #6b7280; font-weight: normal; font-size: 13px; }
section.chart p.caption { color: #4b5563; font-size: 12px; margin: 4px 0 0; max-width: 640px; }
svg { max-width: 100%; height: auto; }
"""


def html_page(title: str, subtitle: str | None, sections: Sequence[str]) -> str:
    """A self-contained HTML page (nothing fetched when opened) holding ``sections`` (markup) under a heading."""
    body = "\n".join(sections) if sections else "<p>No items to show.</p>"
    sub = f'<p class="subtitle">{html.escape(subtitle)}</p>\n' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n{sub}<div class="charts">\n{body}\n</div>\n</body>\n</html>\n'
    )
