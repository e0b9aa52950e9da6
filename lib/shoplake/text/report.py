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

    The served model (the ``served`` rows; else the best validation macro-F1) is in
    bold; the caption sets its test macro-F1 against the best other model of validation.
    """
    from shoplake.text.metrics import MACRO_F1
    from shoplake.text.run import SERVED

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
    served = [m for m in models if values.get((m, VALIDATION), {}).get(SERVED)]
    champion = served[0] if served else max(models, key=lambda m: f1(m, VALIDATION))
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
    others = [m for m in models if m != champion]
    if others:
        other = max(others, key=lambda m: f1(m, VALIDATION))
        versus = (f"served {champion}: test macro-F1 {_with_interval(values.get((champion, TEST), {}))} against "
                  f"{_with_interval(values.get((other, TEST), {}))} for {other}, the best other model on validation")  # fmt: skip
        out.caption = f"{versus}\n{out.caption}" if out.caption else versus
    return out


def _with_interval(vals: dict[str, float | None]) -> str:
    """Macro-F1 with its 95 % interval when the rows carry one."""
    from shoplake.text.run import MACRO_F1_HIGH, MACRO_F1_LOW

    value, low, high = vals.get("macro_f1"), vals.get(MACRO_F1_LOW), vals.get(MACRO_F1_HIGH)
    if value is None:
        return "-"
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} ({low:.3f}..{high:.3f})"


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
    if result.choice:
        lines.append(result.choice)
    lines.extend(f"warning: {w}" for w in result.warnings)
    return lines
