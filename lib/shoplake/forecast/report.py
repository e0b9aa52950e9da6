"""The forecasters' backtest metrics as a rich table, for the CLI and the Ray apps."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from shoplake import columns as C
from shoplake.forecast.bundle import BASELINES

#: Forecast metrics shown, in order (lower is better for all but coverage, whose target is 0.8).
FORECAST_METRICS = ("wrmsse", "rmsse", "mase", "bias", "coverage_p10_p90", "pinball")
FORECAST_HEADERS = {"coverage_p10_p90": "cov80"}
#: The baselines the main model is compared with.
FORECAST_BASELINES = BASELINES


def forecast_metrics_table(rows, main_model: str | None = None) -> Table:
    """One row per model of forecasting ``ops.model_metrics`` rows, averaged over the backtest cut-offs.

    The caption compares the main model's WRMSSE (revenue-weighted RMSSE) with the
    best baseline's; below 1.00x the main model is better (the column is lower-is-better).
    """
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not records:
        return Table(title="no forecast metrics")
    sums: dict[str, dict[str, list[float]]] = {}
    items: dict[str, list[int]] = {}
    for r in records:
        per_model = sums.setdefault(r[C.MODEL_NAME], {})
        if r[C.VALUE] is not None and not math.isnan(r[C.VALUE]):
            per_model.setdefault(r[C.METRIC], []).append(r[C.VALUE])
        if r[C.METRIC] == FORECAST_METRICS[0]:
            items.setdefault(r[C.MODEL_NAME], []).append(r[C.N_EVALUATED])
    cutoffs = sorted({r[C.CUTOFF_DATE] for r in records})
    means = {m: {k: sum(v) / len(v) for k, v in vals.items()} for m, vals in sums.items()}
    out = Table(
        title=f"forecasters: rolling-origin backtest, {len(cutoffs)} cut-off(s) {cutoffs[0]} .. {cutoffs[-1]}",
        box=box.SIMPLE,
    )
    out.add_column("model", no_wrap=True)
    for metric in FORECAST_METRICS:
        header = FORECAST_HEADERS.get(metric, metric)
        out.add_column(header, justify="right", min_width=max(len(header), 6))
    out.add_column("items", justify="right")
    for model, vals in means.items():
        name = f"[bold]{model}[/bold]" if model == main_model else model
        cells = ["-" if vals.get(m) is None else f"{vals[m]:.3f}" for m in FORECAST_METRICS]
        n = items.get(model, [])
        out.add_row(name, *cells, f"{round(sum(n) / len(n)):,}" if n else "-")
    caption = _forecast_versus_baselines(means, main_model)
    if caption:
        out.caption = caption
    return out


def forecast_ratio(means: dict[str, dict[str, float]], main_model: str | None) -> tuple[float, str, float] | None:
    """``(main WRMSSE / best baseline WRMSSE, best baseline, its WRMSSE)``, or None when either is missing."""
    metric = FORECAST_METRICS[0]
    main = means.get(main_model, {}).get(metric) if main_model else None
    base = {m: means[m][metric] for m in FORECAST_BASELINES if m != main_model and metric in means.get(m, {})}
    if main is None or not base:
        return None
    best = min(base, key=base.get)
    return (main / base[best] if base[best] > 0 else float("inf")), best, base[best]


def _forecast_versus_baselines(means: dict[str, dict[str, float]], main_model: str | None) -> str | None:
    found = forecast_ratio(means, main_model)
    if found is None:
        return None
    ratio, best, value = found
    return f"{main_model} WRMSSE = {ratio:.2f}x the best baseline ({best}, {value:.3f})"
