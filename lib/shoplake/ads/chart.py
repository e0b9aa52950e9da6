"""Reliability of the ad models' conversion probabilities and the plan's return, as SVG and PNG pictures.

Left: every model's calibrated pCTCVR on the test impressions, grouped into bins of
equal size by predicted probability (:func:`reliability`); each bin is drawn at its
mean prediction against the observed conversion rate of its impressions (dots) and
against the mean of their planted true probability (a line), on log axes, with the
diagonal where a calibrated model lies. Right: per plan, its expected return (value
over spend) beside the logged policy's, with the true return where known. Drawn with
matplotlib (:mod:`shoplake.charts`)::

    write_ads_chart("docs/img/ads_calibration", {"deep_ctr": (p, y, truth)}, {"logged": (7.9, 8.1)}, "Ads on the synthetic shop")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from shoplake.charts import COLOURS, INK, figure, plain_axes, save_svg_png

WIDTH, HEIGHT = 1000, 440


def reliability(predicted, observed, truth=None, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per bin of equal size by predicted probability: mean prediction, observed rate, and mean true probability (when given).

    Raises:
        ValueError: Arrays of different lengths, or none.
    """
    p, y = np.asarray(predicted, dtype=np.float64), np.asarray(observed, dtype=np.float64)
    t = None if truth is None else np.asarray(truth, dtype=np.float64)
    if not len(p) or len(p) != len(y) or (t is not None and len(t) != len(p)):
        raise ValueError(f"predicted, observed and true probabilities need one non-zero length, got {len(p)}, {len(y)}")
    groups = np.array_split(np.argsort(p, kind="stable"), min(bins, len(p)))
    mean_p = np.array([p[g].mean() for g in groups])
    rate = np.array([y[g].mean() for g in groups])
    return mean_p, rate, None if t is None else np.array([t[g].mean() for g in groups])


def ads_figure(
    models: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    returns: Mapping[str, tuple[float, float | None]],
    title: str,
    bins: int = 10,
) -> Figure:
    """The reliability diagram and the plans' returns.

    Args:
        models: Legend text to ``(predicted pCTCVR, converted 0/1, true probability or None)`` of the test impressions.
        returns: Bar label to ``(expected or observed value over spend, true value over spend or None)``.
        title: Heading of the picture.
        bins: Bins of equal size per model.
    """
    fig = figure(WIDTH, HEIGHT)
    left, right = fig.subplots(1, 2, width_ratios=(3, 2))
    low, high = 1.0, 0.0
    for k, (name, (p, y, t)) in enumerate(models.items()):
        mean_p, rate, true = reliability(p, y, t, bins)
        colour = COLOURS[k % len(COLOURS)]
        left.scatter(mean_p, np.maximum(rate, 1e-5), color=colour, s=18, label=f"{name}: observed", zorder=3)
        if true is not None:
            left.plot(mean_p, true, color=colour, lw=1.2, label=f"{name}: planted", zorder=2)
        positive = mean_p[mean_p > 0]
        if len(positive):
            low, high = min(low, float(positive.min())), max(high, float(mean_p.max()), float(rate.max()))
    span = (max(low / 1.5, 1e-5), max(high * 1.5, 1e-4))
    left.plot(span, span, color=INK["start"], lw=1, ls="--", label="calibrated")
    left.set(xscale="log", yscale="log", xlim=span, ylim=span)
    left.set_xlabel("predicted conversion probability (pCTCVR), bin mean", color=INK["text"], fontsize=9)
    left.set_ylabel("conversion rate in the bin", color=INK["text"], fontsize=9)
    left.set_title(f"Reliability on the test impressions ({bins} bins of equal size)", color=INK["text"], fontsize=10)
    left.legend(fontsize=7, frameon=False, ncol=2, loc="upper left")
    plain_axes(left)

    names = list(returns)
    x = np.arange(len(names))
    expected = [returns[n][0] for n in names]
    true = [returns[n][1] for n in names]
    right.bar(x - 0.2, expected, width=0.4, color=COLOURS[0], label="expected (model) / observed (log)")
    right.bar(x + 0.2, [v if v is not None else 0.0 for v in true], width=0.4, color=COLOURS[2], label="true (planted)")
    right.set_xticks(x, names, fontsize=8, rotation=15)
    right.set_ylabel("conversion value over spend (ROAS)", color=INK["text"], fontsize=9)
    right.set_title("The plans' return on ad spend, a day", color=INK["text"], fontsize=10)
    top = max([v for v in expected + true if v is not None] + [1.0])
    right.set_ylim(0, top * 1.3)  # room for the legend above the bars
    right.legend(fontsize=7, frameon=False, loc="upper right")
    plain_axes(right)
    fig.suptitle(title, color=INK["text"], fontsize=11)
    return fig


def write_ads_chart(stem: str | Path, models, returns, title: str, bins: int = 10) -> tuple[Path, Path]:
    """Write ``<stem>.svg`` and ``<stem>.png`` of :func:`ads_figure`."""
    return save_svg_png(ads_figure(models, returns, title, bins), stem)
