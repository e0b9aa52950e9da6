"""The recommenders' metrics as a rich table, for the CLI and the Ray apps."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from shoplake import columns as C

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
