"""Precision against recall of fraud models, one line per model, as a standalone SVG image.

Each model's line is drawn as steps: from one score threshold to the next, recall
grows at the precision of the lower threshold, so the area under a line is exactly
its average precision (:func:`shoplake.fraud.metrics.average_precision`).
Operating points (the review threshold of a model, say) are marked with a dot, and
the fraud rate, the precision that flagging at random gets, can be drawn as a
dashed line. Built as strings like :mod:`shoplake.forecast.chart`: no plotting
library, and the markup parses as XML::

    precision, recall, _ = pr_curve(y, scores)
    write_pr_chart("runs/fraud", {"gbt (PR-AUC 0.61)": (precision, recall)}, "Fraud models on test payments")
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from shoplake.charts import SVG_NS, Layout, fmt

LAYOUT = Layout(width=760, height=500, left=60, right=230, top=64, bottom=50)

FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"

# One colour per model, in the order given (repeated after the last).
LINE_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")

_INK = {"text": "#374151", "muted": "#6b7280", "grid": "#e5e7eb", "axis": "#9ca3af", "point": "#111827", "baseline": "#9ca3af"}

_TICK = 0.1  # grid line every 0.1 of precision and recall
_LABEL_EVERY = 2  # a number on every second one


def _step_vertices(precision: np.ndarray, recall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corners of the step line through ``(recall_k, precision_k)``, recall rising: ``(0, p0), (r0, p0), (r0, p1), (r1, p1)...``."""
    xs = np.r_[0.0, np.repeat(recall, 2)[:-1]]
    ys = np.repeat(precision, 2)
    return xs, ys


def _thin(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop corners that draw nothing at a tenth of a pixel: repeats, and the middle of straight runs.

    A curve of a million thresholds keeps a few thousand corners at most, so the
    picture stays small whatever the number of payments.
    """
    tx, ty = np.round(xs * 10).astype(np.int64), np.round(ys * 10).astype(np.int64)
    keep = np.r_[True, (tx[1:] != tx[:-1]) | (ty[1:] != ty[:-1])]
    tx, ty = tx[keep], ty[keep]
    if len(tx) > 2:
        middle = ((tx[:-2] == tx[1:-1]) & (tx[1:-1] == tx[2:])) | ((ty[:-2] == ty[1:-1]) & (ty[1:-1] == ty[2:]))
        keep = np.r_[True, ~middle, True]
        tx, ty = tx[keep], ty[keep]
    return tx / 10, ty / 10


def _checked_curve(name: str, precision, recall) -> tuple[np.ndarray, np.ndarray]:
    """The curve's known points, recall rising (a curve given highest recall first is turned round)."""
    precision, recall = np.asarray(precision, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    if precision.ndim != 1 or precision.shape != recall.shape:
        raise ValueError(f"curve {name!r}: precision and recall must be 1-D of one length, got shapes {precision.shape} and {recall.shape}")
    known = np.isfinite(precision) & np.isfinite(recall)
    precision, recall = precision[known], recall[known]
    if ((precision < 0) | (precision > 1) | (recall < 0) | (recall > 1)).any():
        raise ValueError(f"curve {name!r}: precision and recall must lie in [0, 1]")
    if len(recall) > 1 and recall[0] > recall[-1]:
        precision, recall = precision[::-1], recall[::-1]
    if (np.diff(recall) < 0).any():
        raise ValueError(f"curve {name!r}: recall must rise (or fall) steadily along the curve, as pr_curve returns it")
    return precision, recall


def _checked_point(label: str, point: tuple[float, float]) -> tuple[float, float]:
    precision, recall = (float(v) for v in point)
    if not (0 <= precision <= 1 and 0 <= recall <= 1):
        raise ValueError(f"point {label!r}: precision {precision} and recall {recall} must lie in [0, 1]")
    return precision, recall


def render_pr_svg(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    subtitle: str | None = None,
    points: Mapping[str, tuple[float, float]] | None = None,
    fraud_rate: float | None = None,
    layout: Layout = LAYOUT,
) -> str:
    """The precision-recall chart as a standalone SVG image.

    Args:
        curves: Legend text (the model, with its PR-AUC if it is to be shown, e.g.
            ``"gbt (PR-AUC 0.612)"``) to ``(precision, recall)`` arrays, as the first
            two of :func:`~shoplake.fraud.metrics.pr_curve`. Points that
            are not finite (recall without frauds) are left out.
        title: Heading of the image.
        subtitle: A line under it (the payments, the run date...).
        points: Operating points to mark: label to ``(precision, recall)``, the
            same order as ``curves``.
        fraud_rate: The share of frauds, drawn as a dashed line: what flagging
            payments at random would get.
        layout: Size and margins; the legend goes in the right margin.

    Returns:
        The SVG markup, with its namespace.

    Raises:
        ValueError: A curve's arrays differ in length, leave [0, 1] or go back in
            recall; a point or ``fraud_rate`` leaves [0, 1].
    """
    lines = {name: _checked_curve(name, p, r) for name, (p, r) in curves.items()}
    marks = {label: _checked_point(label, pt) for label, pt in (points or {}).items()}
    if fraud_rate is not None and not 0 <= fraud_rate <= 1:
        raise ValueError(f"fraud_rate must lie in [0, 1], got {fraud_rate}")
    lay = layout
    right, bottom = lay.left + lay.plot_width, lay.top + lay.plot_height

    def x(recall):  # a number or an array
        return lay.left + recall * lay.plot_width

    def y(precision):
        return lay.top + (1.0 - precision) * lay.plot_height

    parts = [
        f'<svg xmlns="{SVG_NS}" class="pr-curve" viewBox="0 0 {lay.width} {lay.height}" width="{lay.width}" height="{lay.height}" '
        f'font-family="{FONT}" font-size="11" role="img" aria-label="{html.escape(f"Precision against recall: {title}")}">',
        f"<title>{html.escape(title)}</title>",
        f'<rect width="{lay.width}" height="{lay.height}" fill="#ffffff"/>',
        f'<text class="title" x="{lay.left}" y="22" font-size="15" font-weight="bold" fill="#1f2937">{html.escape(title)}</text>',
    ]
    if subtitle:
        parts.append(f'<text class="subtitle" x="{lay.left}" y="42" font-size="12" fill="{_INK["muted"]}">{html.escape(subtitle)}</text>')
    # Grid, tick labels and axes: both 0 to 1.
    ticks = round(1 / _TICK)
    for k in range(ticks + 1):
        v = k * _TICK
        gx, gy = fmt(x(v)), fmt(y(v))
        parts.append(f'<line class="grid" x1="{lay.left}" x2="{right}" y1="{gy}" y2="{gy}" stroke="{_INK["grid"]}"/>')
        parts.append(f'<line class="grid" x1="{gx}" x2="{gx}" y1="{lay.top}" y2="{bottom}" stroke="{_INK["grid"]}"/>')
        if k % _LABEL_EVERY == 0:
            parts.append(
                f'<text x="{lay.left - 6}" y="{gy}" text-anchor="end" dominant-baseline="middle" fill="{_INK["text"]}">{v:.1f}</text>'
            )
            parts.append(f'<text x="{gx}" y="{bottom + 16}" text-anchor="middle" fill="{_INK["text"]}">{v:.1f}</text>')
    parts.append(
        f'<rect class="frame" x="{lay.left}" y="{lay.top}" width="{lay.plot_width}" height="{lay.plot_height}" fill="none" stroke="{_INK["axis"]}"/>'
    )
    mid_x, mid_y = fmt(lay.left + lay.plot_width / 2), fmt(lay.top + lay.plot_height / 2)
    parts.append(
        f'<text class="axis-label" x="{mid_x}" y="{lay.height - 10}" text-anchor="middle" fill="{_INK["text"]}">recall: share of frauds flagged</text>'
    )
    parts.append(
        f'<text class="axis-label" x="16" y="{mid_y}" text-anchor="middle" transform="rotate(-90 16 {mid_y})" fill="{_INK["text"]}">'
        "precision: share of flagged payments that are fraud</text>"
    )
    if fraud_rate is not None:
        by = fmt(y(fraud_rate))
        parts.append(
            f'<line class="baseline" x1="{lay.left}" x2="{right}" y1="{by}" y2="{by}" stroke="{_INK["baseline"]}" stroke-width="1.5" stroke-dasharray="5 4"/>'
        )
    for n, (name, (p, r)) in enumerate(lines.items()):
        if not len(p):
            continue
        corner_r, corner_p = _step_vertices(p, r)
        xs, ys = _thin(x(corner_r), y(corner_p))
        coords = " ".join(f"{fmt(a)},{fmt(b)}" for a, b in zip(xs, ys))
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        parts.append(
            f'<polyline class="curve" data-model="{html.escape(name)}" points="{coords}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>'
        )
    for label, (p, r) in marks.items():
        px, py = x(r), y(p)
        anchor, dx = ("end", -8) if r > 0.75 else ("start", 8)
        parts.append(
            f'<circle class="point" cx="{fmt(px)}" cy="{fmt(py)}" r="4.5" fill="#ffffff" stroke="{_INK["point"]}" stroke-width="2"/>'
        )
        parts.append(
            f'<text class="point-label" x="{fmt(px + dx)}" y="{fmt(py - 8)}" text-anchor="{anchor}" fill="{_INK["point"]}" '
            f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{html.escape(label)}</text>'
        )
    parts.append(_legend(list(lines), list(marks), fraud_rate, lay))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _legend(names: list[str], marks: list[str], fraud_rate: float | None, lay: Layout) -> str:
    x0, row = lay.left + lay.plot_width + 20, 20
    items, y = [], lay.top + 6
    for n, name in enumerate(names):
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        items.append(f'<line x1="{x0}" x2="{x0 + 22}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"/>')
        items.append(f'<text x="{x0 + 30}" y="{y}" dominant-baseline="middle" fill="{_INK["text"]}">{html.escape(name)}</text>')
        y += row
    if fraud_rate is not None:
        items.append(
            f'<line x1="{x0}" x2="{x0 + 22}" y1="{y}" y2="{y}" stroke="{_INK["baseline"]}" stroke-width="1.5" stroke-dasharray="5 4"/>'
        )
        items.append(
            f'<text x="{x0 + 30}" y="{y}" dominant-baseline="middle" fill="{_INK["text"]}">random (fraud rate {_percent(fraud_rate)})</text>'
        )
        y += row
    for label in marks:
        items.append(f'<circle cx="{x0 + 11}" cy="{y}" r="4.5" fill="#ffffff" stroke="{_INK["point"]}" stroke-width="2"/>')
        items.append(f'<text x="{x0 + 30}" y="{y}" dominant-baseline="middle" fill="{_INK["text"]}">{html.escape(label)}</text>')
        y += row
    return '<g class="legend">' + "".join(items) + "</g>"


def _percent(share: float) -> str:
    return f"{share * 100:.2g} %"


def render_pr_page(svg: str, title: str) -> str:
    """An HTML page around the chart of :func:`render_pr_svg` (well-formed XML, nothing fetched)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>body { margin: 24px; background: #f9fafb; } svg { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; max-width: 100%; height: auto; }</style>\n"
        f"</head>\n<body>\n{svg}</body>\n</html>\n"
    )


def write_pr_chart(
    folder: str | Path,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    subtitle: str | None = None,
    points: Mapping[str, tuple[float, float]] | None = None,
    fraud_rate: float | None = None,
) -> Path:
    """Write ``pr_curve.svg`` and ``pr_curve.html`` (the same chart in a page) into ``folder`` (created).

    Args:
        folder: Where to write.
        curves: Legend text to ``(precision, recall)``, as for :func:`render_pr_svg`.
        title: Heading of the chart and title of the page.
        subtitle: A line under the heading.
        points: Operating points, label to ``(precision, recall)``.
        fraud_rate: The share of frauds, drawn as the line of random flagging.

    Returns:
        The path of ``pr_curve.svg``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    svg = render_pr_svg(curves, title, subtitle, points, fraud_rate)
    (out / "pr_curve.html").write_text(render_pr_page(svg, title), encoding="utf-8")
    path = out / "pr_curve.svg"
    path.write_text(svg, encoding="utf-8")
    return path
