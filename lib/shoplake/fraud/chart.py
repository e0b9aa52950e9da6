"""Precision against recall of fraud models, one line per model, as SVG and PNG pictures and an HTML page.

Each model's line is drawn as steps: from one score threshold to the next, recall
grows at the precision of the lower threshold, so the area under a line is exactly
its average precision (:func:`shoplake.fraud.metrics.average_precision`).
Operating points (the review threshold of a model, say) are marked with a dot, and
the fraud rate, the precision that flagging at random gets, can be drawn as a
dashed line. Drawn with matplotlib (:mod:`shoplake.charts`)::

    precision, recall, _ = pr_curve(y, scores)
    write_pr_chart("runs/fraud", {"gbt (PR-AUC 0.61)": (precision, recall)}, "Fraud models on test payments")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from shoplake.charts import COLOURS, INK, figure, html_page, plain_axes, save_svg_png, svg_markup

#: Pixels of the chart; the legend goes to the right of the plot.
WIDTH, HEIGHT = 760, 500


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


def _percent(share: float) -> str:
    return f"{share * 100:.2g} %"


def pr_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    subtitle: str | None = None,
    points: Mapping[str, tuple[float, float]] | None = None,
    fraud_rate: float | None = None,
) -> Figure:
    """The precision-recall chart.

    Args:
        curves: Legend text (the model, with its PR-AUC if it is to be shown, e.g.
            ``"gbt (PR-AUC 0.612)"``) to ``(precision, recall)`` arrays, as the first
            two of :func:`~shoplake.fraud.metrics.pr_curve`. Points that are not
            finite (recall without frauds) are left out. Each line has the id
            ``curve-<n>`` in the SVG, in the order given.
        title: Heading of the picture.
        subtitle: A line under it (the payments, the run date...).
        points: Operating points to mark: label to ``(precision, recall)``, the
            same order as ``curves`` (ids ``point-<n>``).
        fraud_rate: The share of frauds, drawn as a dashed line (id ``random``):
            what flagging payments at random would get.

    Raises:
        ValueError: A curve's arrays differ in length, leave [0, 1] or go back in
            recall; a point or ``fraud_rate`` leaves [0, 1].
    """
    lines = {name: _checked_curve(name, p, r) for name, (p, r) in curves.items()}
    marks = {label: _checked_point(label, pt) for label, pt in (points or {}).items()}
    if fraud_rate is not None and not 0 <= fraud_rate <= 1:
        raise ValueError(f"fraud_rate must lie in [0, 1], got {fraud_rate}")
    fig = figure(WIDTH, HEIGHT)
    ax = fig.add_subplot()
    for n, (name, (precision, recall)) in enumerate(lines.items()):
        if len(recall):
            # From recall 0 at the first precision, each step at the precision of the threshold it reaches.
            ax.step(
                np.r_[0.0, recall],
                np.r_[precision[:1], precision],
                where="pre",
                lw=2,
                color=COLOURS[n % len(COLOURS)],
                label=name,
                gid=f"curve-{n}",
            )
        else:
            ax.plot([], [], lw=2, color=COLOURS[n % len(COLOURS)], label=name, gid=f"curve-{n}")
    if fraud_rate is not None:
        ax.axhline(
            fraud_rate, color=INK["start"], lw=1.5, ls=(0, (5, 4)), label=f"random (fraud rate {_percent(fraud_rate)})", gid="random"
        )
    for n, (label, (precision, recall)) in enumerate(marks.items()):
        ax.plot([recall], [precision], ls="none", marker="o", ms=8, mfc="white", mec="#111827", mew=2, label=label, gid=f"point-{n}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(np.linspace(0, 1, 11))
    ax.set_yticks(np.linspace(0, 1, 11))
    ax.set_xlabel("recall (share of frauds flagged)", color=INK["text"])
    ax.set_ylabel("precision (share of flagged payments that are fraud)", color=INK["text"])
    plain_axes(ax)
    if lines or marks or fraud_rate is not None:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize=9)
    fig.suptitle(title, x=0.01, ha="left", fontsize=13, fontweight="bold", color=INK["actual"])
    if subtitle:
        ax.set_title(subtitle, loc="left", fontsize=9, color=INK["muted"])
    return fig


def render_pr_svg(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    subtitle: str | None = None,
    points: Mapping[str, tuple[float, float]] | None = None,
    fraud_rate: float | None = None,
) -> str:
    """:func:`pr_figure` as an ``<svg>`` element."""
    return svg_markup(pr_figure(curves, title, subtitle, points, fraud_rate))


def write_pr_chart(
    folder: str | Path,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    subtitle: str | None = None,
    points: Mapping[str, tuple[float, float]] | None = None,
    fraud_rate: float | None = None,
) -> Path:
    """Write ``pr_curve.svg``, ``pr_curve.png`` and ``pr_curve.html`` (the SVG in a page) into ``folder`` (created).

    Args:
        folder: Where to write.
        curves: Legend text to ``(precision, recall)``, as for :func:`pr_figure`.
        title: Heading of the chart and title of the page.
        subtitle: A line under the heading.
        points: Operating points, label to ``(precision, recall)``.
        fraud_rate: The share of frauds, drawn as the line of random flagging.

    Returns:
        The path of ``pr_curve.svg``.
    """
    svg, _ = save_svg_png(pr_figure(curves, title, subtitle, points, fraud_rate), Path(folder) / "pr_curve")
    section = f'<section class="chart">\n{svg.read_text(encoding="utf-8")}\n</section>'
    (svg.parent / "pr_curve.html").write_text(html_page(title, None, [section]), encoding="utf-8")
    return svg
