"""The text models' metrics (support and categorization) as a rich table, for the CLI and the Ray apps."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from shoplake import columns as C
from shoplake.text.splits import TEST, VALIDATION

#: Columns of the text tables: metric -> header; the hand-off ones only for support.
TEXT_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
HANDOFF_METRICS = {"answered_in_scope": "answered", "answered_accuracy": "right", "handoff_out_of_scope": "OOS to human"}


def text_metrics_table(rows, task: str) -> Table:
    """One row per text model and held-out split of a support or categorization run.

    The champion (best validation macro-F1) is in bold; the caption compares the
    fine-tuned encoder's test macro-F1 with the best baseline's.
    """
    from shoplake.text.classifier import FINE_TUNED
    from shoplake.text.metrics import MACRO_F1

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
