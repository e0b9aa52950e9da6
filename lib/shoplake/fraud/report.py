"""The fraud models' metrics per split as a rich table, for the CLI and the Ray apps."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from shoplake import columns as C
from shoplake.fraud.metrics import PR_AUC
from shoplake.fraud.train import PR_AUC_HIGH, PR_AUC_LOW, RULES, TEST, VALIDATION

#: Fraud metrics shown, in order (metric name in ops.model_metrics -> header).
FRAUD_METRICS = {
    "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC", "recall@1%fpr": "R@1%FPR", "precision@capacity": "P@cap",
    "recall@review": "R@review", "cost_per_payment": "cost/pay",
}  # fmt: skip
FRAUD_SPLITS = (VALIDATION, TEST)
FRAUD_SPLIT_LABELS = {VALIDATION: "valid"}


def fraud_champion(records: list[dict]) -> str | None:
    """The model with the best validation PR-AUC in fraud ``ops.model_metrics`` records (the run's champion)."""
    best = {r[C.MODEL_NAME]: r[C.VALUE] for r in records if r[C.SLICE] == VALIDATION and r[C.METRIC] == PR_AUC}
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
    for (model, split), vals in sorted(
        values.items(), key=lambda kv: (FRAUD_SPLITS.index(kv[0][1]) if kv[0][1] in FRAUD_SPLITS else 9, order[kv[0][0]])
    ):
        name = f"[bold]{model}[/bold]" if model == champion else model
        cells = ["-" if vals.get(m) is None else f"{vals[m]:.3f}" for m in FRAUD_METRICS]
        out.add_row(name, FRAUD_SPLIT_LABELS.get(split, split), *cells)
    other = RULES if champion != RULES else max((m for m, s in values if s == VALIDATION and m != RULES),
                                                 key=lambda m: values[(m, VALIDATION)].get(PR_AUC) or -1.0, default=None)  # fmt: skip
    test = {m: values.get((m, TEST), {}).get(PR_AUC) for m in (champion, other)}
    if champion and other and all(v is not None and not math.isnan(v) for v in test.values()):
        ratio = test[champion] / test[other] if test[other] > 0 else float("inf")
        against = "the rules baseline" if other == RULES else f"{other}, the best trained model on validation"
        out.caption = (f"champion {champion}: test PR-AUC {_with_interval(values[(champion, TEST)])} = {ratio:.2f}x "
                       f"{against} ({_with_interval(values[(other, TEST)])})")  # fmt: skip
    return out


def _with_interval(vals: dict[str, float | None]) -> str:
    """PR-AUC with its 95 % interval when the rows carry one."""
    low, high = vals.get(PR_AUC_LOW), vals.get(PR_AUC_HIGH)
    text = f"{vals[PR_AUC]:.3f}"
    return text if low is None or high is None else f"{text}, 95 % interval {low:.3f}..{high:.3f}"
