"""Rich tables of what the platform measured, shared by the CLI and the Ray apps."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from shoplake.schemas import columns as C
from shoplake.training.fraud import RULES, TEST, TRAINED, VALIDATION
from shoplake.training.fraud_metrics import PR_AUC

#: Metrics shown, in order; ops.model_metrics holds more (every metric at k=10 and 20).
SHOWN_METRICS = ("ndcg@10", "recall@20", "hr@10", "mrr", "coverage@10")
BASELINES = ("popularity", "cooccurrence", "mf")
SLICE_LABELS = {"cold_items": "cold"}


def metrics_table(rows, main_model: str | None = None) -> Table:
    """One row per model and slice of ``ops.model_metrics`` rows (an Arrow table or a list of dicts).

    The caption compares the main model's NDCG@10 with the best baseline's.
    """
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not records:
        return Table(title="no model metrics")
    first = records[0]
    values: dict[tuple[str, str], dict[str, float | None]] = {}
    users: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r[C.MODEL_NAME], r[C.SLICE])
        values.setdefault(key, {})[r[C.METRIC]] = r[C.VALUE]
        users[key] = r[C.N_EVALUATED]
    # No vertical rules: the table fits an 80-column terminal.
    out = Table(title=f"recommenders on the holdout {first[C.CUTOFF_DATE]} .. {first[C.RUN_DATE]} (full-catalogue ranking)", box=box.SIMPLE)
    out.add_column("model", no_wrap=True, min_width=max(len(model) for model, _ in values))
    out.add_column("items", no_wrap=True)
    for metric in SHOWN_METRICS:
        header = metric.replace("coverage", "cov")
        out.add_column(header, justify="right", min_width=max(len(header), 6))
    out.add_column("users", justify="right")
    order = {model: n for n, (model, _) in enumerate(values)}  # models in the order the run trained them
    for (model, slice_), vals in sorted(values.items(), key=lambda kv: (kv[0][1] != "all", kv[0][1], order[kv[0][0]])):
        name = f"[bold]{model}[/bold]" if model == main_model else model
        cells = ["-" if vals.get(m) is None else f"{vals[m]:.4f}" for m in SHOWN_METRICS]
        out.add_row(name, SLICE_LABELS.get(slice_, slice_), *cells, f"{users[(model, slice_)]:,}")
    caption = _versus_baselines(values, main_model)
    if caption:
        out.caption = caption
    return out


def _versus_baselines(values: dict[tuple[str, str], dict], main_model: str | None) -> str | None:
    main = values.get((main_model, "all"), {}).get("ndcg@10") if main_model else None
    base = {m: values[(m, "all")].get("ndcg@10") for m in BASELINES if m != main_model and (m, "all") in values}
    base = {m: v for m, v in base.items() if v is not None and not math.isnan(v)}
    if main is None or not base:
        return None
    best = max(base, key=base.get)
    ratio = main / base[best] if base[best] > 0 else float("inf")
    return f"{main_model} NDCG@10 = {ratio:.2f}x the best baseline ({best}, {base[best]:.4f})"


#: Forecast metrics shown, in order (lower is better for all but coverage, whose target is 0.8).
FORECAST_METRICS = ("wrmsse", "rmsse", "mase", "bias", "coverage_p10_p90", "pinball")
FORECAST_HEADERS = {"coverage_p10_p90": "cov80"}
FORECAST_BASELINES = ("seasonal_naive", "moving_average", "ets")


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


#: Fraud metrics shown, in order (metric name in ops.model_metrics -> header).
FRAUD_METRICS = {
    "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC", "recall@1%fpr": "R@1%FPR", "precision@capacity": "P@cap",
    "recall@review": "R@review", "cost_per_payment": "cost/pay",
}  # fmt: skip
FRAUD_SPLITS = (VALIDATION, TEST)
FRAUD_SPLIT_LABELS = {VALIDATION: "valid"}


def fraud_champion(records: list[dict]) -> str | None:
    """The trained model with the best validation PR-AUC in fraud ``ops.model_metrics`` records (the run's champion)."""
    best = {
        r[C.MODEL_NAME]: r[C.VALUE] for r in records
        if r[C.SLICE] == VALIDATION and r[C.METRIC] == PR_AUC and r[C.MODEL_NAME] in TRAINED
    }  # fmt: skip
    if not best:
        return None
    return max(best, key=lambda m: -1.0 if best[m] is None or math.isnan(best[m]) else best[m])


def fraud_metrics_table(rows) -> Table:
    """One row per fraud model and held-out split (the title gives each split's payments and first day).

    The champion is in bold; the caption compares its test PR-AUC with the rules baseline's.
    """
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not records:
        return Table(title="no fraud metrics")
    values: dict[tuple[str, str], dict[str, float | None]] = {}
    payments: dict[tuple[str, str], int] = {}
    starts: dict[str, object] = {}
    for r in records:
        key = (r[C.MODEL_NAME], r[C.SLICE])
        values.setdefault(key, {})[r[C.METRIC]] = r[C.VALUE]
        payments[key] = r[C.N_EVALUATED]
        starts[r[C.SLICE]] = r[C.CUTOFF_DATE]
    champion = fraud_champion(records)
    sizes = {split: n for (_, split), n in payments.items()}
    splits = ", ".join(f"{FRAUD_SPLIT_LABELS.get(s, s)} {sizes[s]:,} from {starts[s]}" for s in FRAUD_SPLITS if s in starts)
    out = Table(title=f"fraud models, matured payments: {splits}", box=box.SIMPLE)
    out.add_column("model", no_wrap=True)
    out.add_column("split", no_wrap=True)
    for header in FRAUD_METRICS.values():
        out.add_column(header, justify="right", min_width=max(len(header), 6))
    order = {model: n for n, (model, _) in enumerate(values)}
    for (model, split), vals in sorted(values.items(), key=lambda kv: (FRAUD_SPLITS.index(kv[0][1]) if kv[0][1] in FRAUD_SPLITS else 9, order[kv[0][0]])):
        name = f"[bold]{model}[/bold]" if model == champion else model
        cells = ["-" if vals.get(m) is None else f"{vals[m]:.3f}" for m in FRAUD_METRICS]
        out.add_row(name, FRAUD_SPLIT_LABELS.get(split, split), *cells)
    test = {m: values.get((m, TEST), {}).get(PR_AUC) for m in (champion, RULES)}
    if champion and all(v is not None and not math.isnan(v) for v in test.values()):
        ratio = test[champion] / test[RULES] if test[RULES] > 0 else float("inf")
        out.caption = f"champion {champion}: test PR-AUC {test[champion]:.3f} = {ratio:.2f}x the rules baseline ({test[RULES]:.3f})"
    return out


#: Columns of the text tables: metric -> header; the hand-off ones only for support.
TEXT_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
HANDOFF_METRICS = {"answered_in_scope": "answered", "answered_accuracy": "right", "handoff_out_of_scope": "OOS to human"}


def text_metrics_table(rows, task: str) -> Table:
    """One row per text model and held-out split of a support or categorization run.

    The champion (best validation macro-F1) is in bold; the caption compares the
    fine-tuned encoder's test macro-F1 with the best baseline's.
    """
    from shoplake.models.text_classifier import FINE_TUNED
    from shoplake.training.text_metrics import MACRO_F1

    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not records:
        return Table(title=f"no {task} metrics")
    values: dict[tuple[str, str], dict[str, float | None]] = {}
    sizes: dict[str, int] = {}
    for r in records:
        values.setdefault((r[C.MODEL_NAME], r[C.SLICE]), {})[r[C.METRIC]] = r[C.VALUE]
        sizes[r[C.SLICE]] = r[C.N_EVALUATED]

    def f1(model: str, split: str) -> float:
        value = values.get((model, split), {}).get(MACRO_F1)
        return -1.0 if value is None or math.isnan(value) else value

    models = list(dict.fromkeys(model for model, _ in values))
    champion = max(models, key=lambda m: f1(m, VALIDATION))
    shown = {**TEXT_METRICS, **(HANDOFF_METRICS if any("answered_in_scope" in v for v in values.values()) else {})}
    splits = ", ".join(f"{s} {sizes[s]:,}" for s in (VALIDATION, TEST) if s in sizes)
    caption = "answered: in-scope messages answered; right: answers with the right intent; OOS to human: out-of-scope messages handed off"
    out = Table(title=f"{task} models, in-scope texts: {splits}", box=box.SIMPLE, caption=caption if "answered" in shown.values() else None)
    out.add_column("model", no_wrap=True)
    out.add_column("split", no_wrap=True)
    for header in shown.values():
        out.add_column(header, justify="right", min_width=max(len(header), 6))
    for split in (VALIDATION, TEST):
        for model in models:
            vals = values.get((model, split))
            if vals is None:
                continue
            cells = ["-" if vals.get(m) is None else f"{vals[m]:.3f}" for m in shown]
            out.add_row(f"[bold]{model}[/bold]" if model == champion else model, "valid" if split == VALIDATION else split, *cells)
    baselines = [m for m in models if m != FINE_TUNED]
    if FINE_TUNED in models and baselines:
        best = max(baselines, key=lambda m: f1(m, TEST))
        versus = f"{FINE_TUNED}: test macro-F1 {f1(FINE_TUNED, TEST):.3f} against {f1(best, TEST):.3f} for the best baseline ({best})"
        out.caption = f"{versus}\n{out.caption}" if out.caption else versus
    return out


def text_run_lines(result) -> list[str]:
    """What a support or categorization run did, a line per model and for the registration."""
    sizes = ", ".join(f"{split} {n:,}" + (f" (+{oos:,} out of scope)" if oos else "") for split, (n, oos) in result.sizes.items())
    lines = [f"{result.task} for {result.run_date}: {len(result.labels)} labels; texts: {sizes}"]
    for model, ev in result.evaluations.items():
        speed = f", {ev.examples_per_s:.0f} training examples/s" if ev.examples_per_s else ""
        lines.append(f"{model}: {ev.seconds:.1f} s{speed}")
    lines.append(f"ops.model_metrics v{result.metrics_version}; bundle {result.bundle_path}")
    if result.model_version:
        lines.append(f"registered version {result.model_version} ({result.champion}), MLflow run {result.mlflow_run_id}")
    return lines
