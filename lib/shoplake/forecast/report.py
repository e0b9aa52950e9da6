"""The forecasters' backtest metrics as a rich table, for the CLI and the Ray apps."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from shoplake import columns as C
from shoplake.evaluation import SPLIT_LABELS, TEST, VALIDATION, Interval, label_cutoffs, pick_champion

#: Forecast metrics shown, in order (lower is better for all but coverage, whose target is 0.8:
#: ``cov80`` of the calibrated band, ``raw80`` of the model's own); ops.model_metrics holds more
#: (MASE, RMSSE, the pinball loss of each quantile).
FORECAST_METRICS = ("wrmsse", "bias", "coverage_p10_p90", "coverage_p10_p90_raw", "pinball")
FORECAST_HEADERS = {"coverage_p10_p90": "cov80", "coverage_p10_p90_raw": "raw80"}
CHAMPION_METRIC = FORECAST_METRICS[0]


def _means(records: list[dict]) -> tuple[dict, dict, dict]:
    """``(values, items, cutoffs)``: per (model, split) the metrics averaged over the split's cut-offs."""
    splits = label_cutoffs(r[C.CUTOFF_DATE] for r in records)
    sums: dict[tuple[str, str], dict[str, list[float]]] = {}
    items: dict[tuple[str, str], list[int]] = {}
    for r in records:
        key = (r[C.MODEL_NAME], splits[r[C.CUTOFF_DATE]])
        per_model = sums.setdefault(key, {})
        if r[C.VALUE] is not None and not math.isnan(r[C.VALUE]):
            per_model.setdefault(r[C.METRIC], []).append(r[C.VALUE])
        if r[C.METRIC] == CHAMPION_METRIC:
            items.setdefault(key, []).append(r[C.N_EVALUATED])
    means = {key: {m: sum(v) / len(v) for m, v in vals.items()} for key, vals in sums.items()}
    cutoffs = {split: sorted(c for c, s in splits.items() if s == split) for split in (VALIDATION, TEST)}
    return means, items, cutoffs


def forecast_champion(rows) -> str | None:
    """The model with the lowest mean validation WRMSSE in a run's forecasting rows (None with a single cut-off)."""
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not records:
        return None
    means, _, _ = _means(records)
    return pick_champion({m: v.get(CHAMPION_METRIC, math.nan) for (m, split), v in means.items() if split == VALIDATION}, False)


def forecast_metrics_table(rows, main_model: str | None = None, intervals: dict[tuple[str, str], Interval] | None = None) -> Table:
    """One row per model and split of forecasting ``ops.model_metrics`` rows.

    The last cut-off is test, the earlier ones validation (averaged). The champion
    (lowest validation WRMSSE; ``main_model`` with a single cut-off) is in bold; the
    caption compares its test WRMSSE with the next model of validation, below 1.00x
    the champion errs less. The interval is the bootstrap interval over items of a
    split with one cut-off, or the one ``intervals`` gives per ``(model, split)``
    (``validation``/``test``; the pooled interval of several cut-offs,
    :func:`shoplake.forecast.protocol.pooled_interval`).
    """
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not records:
        return Table(title="no forecast metrics")
    means, items, cutoffs = _means(records)
    spans = [f"{SPLIT_LABELS[s]} {', '.join(map(str, cutoffs[s]))}" for s in (VALIDATION, TEST) if cutoffs[s]]
    measured = forecast_champion(records)
    champion = measured or main_model
    out = Table(title=f"forecasters: rolling-origin backtest, cut-offs {'; '.join(spans)}", box=box.SIMPLE, padding=(0, 1, 0, 0))
    out.add_column("model", no_wrap=True)
    out.add_column("split", no_wrap=True)
    # The raw coverage only where some model's band was calibrated (rows from before calibration lack it).
    shown = [m for m in FORECAST_METRICS if m != "coverage_p10_p90_raw" or any(r[C.METRIC] == m for r in records)]
    headers = [CHAMPION_METRIC, "95% int.", *(FORECAST_HEADERS.get(m, m) for m in shown[1:]), "items"]
    for header in headers:
        out.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    order = {model: n for n, (model, _) in enumerate(means)}
    for (model, split), vals in sorted(means.items(), key=lambda kv: (kv[0][1] != VALIDATION, order[kv[0][0]])):
        name = f"[bold]{model}[/bold]" if model == champion else model
        cells = ["-" if vals.get(m) is None else f"{vals[m]:.3f}" for m in shown]
        low, high = vals.get(f"{CHAMPION_METRIC}_low"), vals.get(f"{CHAMPION_METRIC}_high")
        one = len(cutoffs[split]) == 1
        given = (intervals or {}).get((model, split))
        if given is not None and not math.isnan(given.low):
            low, high, one = given.low, given.high, True
        interval = f"{low:.2f}-{high:.2f}" if one and low is not None and high is not None else "-"
        n = items.get((model, split), [])
        out.add_row(name, SPLIT_LABELS[split], cells[0], interval, *cells[1:], f"{round(sum(n) / len(n)):,}" if n else "-")
    caption = _versus_next(means, champion, measured is not None)
    if caption:
        out.caption = caption
    return out


def _versus_next(means: dict[tuple[str, str], dict], champion: str | None, measured: bool) -> str | None:
    def score(model, split):
        return means.get((model, split), {}).get(CHAMPION_METRIC, math.nan)

    if champion is None:
        return None
    models = list(dict.fromkeys(model for model, _ in means))
    other = pick_champion({m: score(m, VALIDATION if measured else TEST) for m in models if m != champion}, False)
    test, best = score(champion, TEST), score(other, TEST) if other else math.nan
    if other is None or math.isnan(test) or math.isnan(best):
        return None
    ratio = test / best if best > 0 else float("inf")
    if measured:
        return f"champion {champion} (best on validation): test WRMSSE = {ratio:.2f}x {other} ({best:.3f}), the next on validation"
    return f"{champion} (configured; no validation cut-off): test WRMSSE = {ratio:.2f}x {other} ({best:.3f}), the best other"
