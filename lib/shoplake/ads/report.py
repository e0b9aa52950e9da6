"""The ad models' metrics per split as a rich table, for the CLI and the Ray apps."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from shoplake import columns as C
from shoplake.ads.metrics import ECE, LOG_LOSS, NE, ROC_AUC
from shoplake.evaluation import TEST, VALIDATION

#: Columns of the table: (metric in ops.model_metrics, header).
ADS_METRICS = tuple(
    (f"{target}_{metric}", f"{short}\n{label}")
    for target, short in (("click", "CTR"), ("conversion", "CVR"))
    for metric, label in ((ROC_AUC, "AUC"), (LOG_LOSS, "LL"), (NE, "NE"), (ECE, "ECE"))
)
ADS_SPLITS = (VALIDATION, TEST)
_LABELS = {VALIDATION: "valid"}
_KEY = "conversion_log_loss"


def ads_champion(records: list[dict]) -> str | None:
    """The model with the lowest validation conversion log-loss in ads ``ops.model_metrics`` records (the run's champion)."""
    best = {r[C.MODEL_NAME]: r[C.VALUE] for r in records if r[C.SLICE] == VALIDATION and r[C.METRIC] == _KEY}
    if not best:
        return None
    return min(best, key=lambda m: math.inf if best[m] is None or math.isnan(best[m]) else best[m])


def ads_metrics_table(rows) -> Table:
    """One row per ad model and held-out split, conversion meaning pCTCVR over every impression; the champion in bold.

    The caption gives the champion's test conversion log-loss with its 95 % interval.
    """
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    # The plan's off-policy estimates share the task; they are not a model's metrics.
    metric_names = {m for m, _ in ADS_METRICS}
    scored = {r[C.MODEL_NAME] for r in records if r[C.METRIC] in metric_names}
    records = [r for r in records if r[C.SLICE] in ADS_SPLITS and r[C.MODEL_NAME] in scored]
    if not records:
        return Table(title="no ads metrics")
    values: dict[tuple[str, str], dict[str, float | None]] = {}
    sizes, starts = {}, {}
    for r in records:
        values.setdefault((r[C.MODEL_NAME], r[C.SLICE]), {})[r[C.METRIC]] = r[C.VALUE]
        sizes[r[C.SLICE]], starts[r[C.SLICE]] = r[C.N_EVALUATED], r[C.CUTOFF_DATE]
    champion = ads_champion(records)
    splits = ", ".join(f"{_LABELS.get(s, s)} {sizes[s]:,} from {starts[s]}" for s in ADS_SPLITS if s in starts)
    # Ten columns: one space between them keeps the table within an 80-column terminal.
    out = Table(title=f"ad models, matured impressions: {splits}", box=box.SIMPLE, padding=(0, 0))
    out.add_column("model", no_wrap=True)
    out.add_column("split", no_wrap=True)
    for _, header in ADS_METRICS:
        out.add_column(header, justify="right", min_width=6)
    order = {model: n for n, (model, _) in enumerate(values)}
    for (model, split), vals in sorted(values.items(), key=lambda kv: (ADS_SPLITS.index(kv[0][1]), order[kv[0][0]])):
        name = f"[bold]{model}[/bold]" if model == champion else model
        out.add_row(name, _LABELS.get(split, split), *("-" if vals.get(m) is None else f"{vals[m]:.4f}" for m, _ in ADS_METRICS))
    test = values.get((champion, TEST), {})
    low, high = test.get(f"{_KEY}_low"), test.get(f"{_KEY}_high")
    if champion and test.get(_KEY) is not None and low is not None and high is not None:
        out.caption = f"champion {champion}: test conversion log-loss {test[_KEY]:.4f}, 95 % interval {low:.4f}..{high:.4f}"
    return out
