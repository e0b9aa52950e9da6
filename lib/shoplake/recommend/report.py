"""The recommenders' metrics as a rich table, for the CLI and the Ray apps."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from shoplake import columns as C
from shoplake import evaluation
from shoplake.config.recommend import RECOMMENDERS_SIMPLEST_FIRST
from shoplake.evaluation import SPLIT_LABELS, Interval, label_cutoffs, pick_champion, pick_simplest_within_noise
from shoplake.recommend.metrics import CHAMPION_METRIC, MARGIN_METRIC
from shoplake.recommend.schemas import ALL_ITEMS, COLD_ITEMS, LEAVE_LAST_OUT, VALIDATION_POOLED, parse_metrics_slice

#: Metrics shown, in order; ops.model_metrics holds more (every metric at k=10 and 20, hit rate, MRR).
SHOWN_METRICS = ("ndcg@10", "recall@20", "coverage@10")
SLICE_LABELS = {COLD_ITEMS: "cold"}
VALID, TEST = SPLIT_LABELS[evaluation.VALIDATION], SPLIT_LABELS[evaluation.TEST]


def _shown(records: list[dict]) -> tuple[str | None, list[tuple[str, dict]]]:
    """The protocol of a run's rows and the rows the table shows, each with its label ``valid`` or ``test``.

    Validation pooled over several windows stands for them; rows written before
    protocols were named are labelled by their cutoffs (the latest is test).
    """
    parsed = [(parse_metrics_slice(r[C.SLICE]), r) for r in records]
    if any(protocol is None for (protocol, _, _), _ in parsed):
        windows = {c: SPLIT_LABELS[split] for c, split in label_cutoffs(r[C.CUTOFF_DATE] for r in records).items()}
        return None, [(windows[r[C.CUTOFF_DATE]], {**r, C.SLICE: items}) for (_, _, items), r in parsed]
    pooled = any(split == VALIDATION_POOLED for (_, split, _), _ in parsed)
    labels = {VALIDATION_POOLED: VALID, evaluation.TEST: TEST, **({} if pooled else {evaluation.VALIDATION: VALID})}
    protocol = parsed[0][0][0] if parsed else None
    return protocol, [(labels[split], {**r, C.SLICE: items}) for (_, split, items), r in parsed if split in labels]


def recommend_champion(rows) -> str | None:
    """The champion of a run's ``ops.model_metrics`` rows (None without validation).

    With margins to the best on validation (``recommender.champion_rule: simplest_within_noise``), the simplest
    model whose margin is not a loss; without them, the best validation NDCG@10.
    """
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not records:
        return None
    _, shown = _shown(records)
    valid = {}
    for label, r in shown:
        if label == VALID and r[C.SLICE] == ALL_ITEMS:
            valid.setdefault(r[C.MODEL_NAME], {})[r[C.METRIC]] = math.nan if r[C.VALUE] is None else r[C.VALUE]
    margins = {
        model: Interval(m[MARGIN_METRIC], m[f"{MARGIN_METRIC}_low"], m[f"{MARGIN_METRIC}_high"])
        for model, m in valid.items() if MARGIN_METRIC in m
    }  # fmt: skip
    if margins:
        return pick_simplest_within_noise(margins, RECOMMENDERS_SIMPLEST_FIRST)
    return pick_champion({model: m[CHAMPION_METRIC] for model, m in valid.items() if CHAMPION_METRIC in m})


def _spans(protocol: str | None, shown: list[tuple[str, dict]], records: list[dict]) -> str:
    run_date = records[0][C.RUN_DATE]
    if protocol == LEAVE_LAST_OUT:
        firsts = {
            label: min(r[C.CUTOFF_DATE] for lab, r in shown if lab == label)
            for label in (VALID, TEST)
            if any(lab == label for lab, _ in shown)
        }
        return ", ".join(
            f"{label} {'last' if label == TEST else 'last-but-one'} purchase day of each user (from {c})" for label, c in firsts.items()
        )
    cutoffs = sorted({r[C.CUTOFF_DATE] for r in records})
    ends = dict(zip(cutoffs, [*cutoffs[1:], run_date]))
    labels = {r[C.CUTOFF_DATE]: label for label, r in shown}
    valid = [c for c in cutoffs if labels.get(c, VALID) == VALID and c != max(cutoffs)]
    parts = []
    if len(valid) > 1:
        parts.append(f"{VALID} {len(valid)} windows {valid[0]}..{ends[valid[-1]]} pooled")
    elif valid:
        parts.append(f"{VALID} {valid[0]}..{ends[valid[0]]}")
    parts.append(f"{TEST} {cutoffs[-1]}..{run_date}")
    return ", ".join(parts)


def metrics_table(rows, main_model: str | None = None) -> Table:
    """One row per model, split and slice of a run's ``ops.model_metrics`` rows (an Arrow table or dicts).

    The slice of each row names its protocol and split (``<protocol>/<split>/<items>``);
    validation pooled over several windows stands for them. The champion
    (:func:`recommend_champion`; ``main_model`` when the run had no validation split) is in
    bold, and the caption compares its test NDCG@10 with the best other model of
    validation. The interval is the bootstrap interval over users.
    """
    records = rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)
    if not records:
        return Table(title="no model metrics")
    protocol, shown = _shown(records)
    values: dict[tuple[str, str, str], dict[str, float | None]] = {}
    users: dict[tuple[str, str, str], int] = {}
    for label, r in shown:
        key = (r[C.MODEL_NAME], label, r[C.SLICE])
        values.setdefault(key, {})[r[C.METRIC]] = r[C.VALUE]
        users[key] = r[C.N_EVALUATED]
    measured = recommend_champion(records)
    champion = measured or main_model
    heading = "recommenders" if protocol is None else f"recommenders ({protocol.replace('_', ' ')})"
    # No vertical rules: the table fits an 80-column terminal.
    out = Table(title=f"{heading}, full-catalogue ranking: {_spans(protocol, shown, records)}", box=box.SIMPLE, padding=(0, 1, 0, 0))
    out.add_column("model", no_wrap=True)
    out.add_column("split", no_wrap=True)
    out.add_column("items", no_wrap=True)
    headers = [SHOWN_METRICS[0], "95% int.", *(m.replace("coverage", "cov") for m in SHOWN_METRICS[1:]), "users"]
    for header in headers:
        out.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    order = {model: n for n, (model, _, _) in enumerate(values)}  # models in the order the run trained them
    rank = {VALID: 0, TEST: 1}
    for (model, split, slice_), vals in sorted(
        values.items(), key=lambda kv: (rank[kv[0][1]], kv[0][2] != ALL_ITEMS, kv[0][2], order[kv[0][0]])
    ):
        name = f"[bold]{model}[/bold]" if model == champion else model
        cells = ["-" if _missing(vals.get(m)) else f"{vals[m]:.4f}" for m in SHOWN_METRICS]
        low, high = vals.get(f"{CHAMPION_METRIC}_low"), vals.get(f"{CHAMPION_METRIC}_high")
        interval = "-" if _missing(low) or _missing(high) else f"{low:.2f}-{high:.2f}"
        out.add_row(name, split, SLICE_LABELS.get(slice_, slice_), cells[0], interval, *cells[1:], f"{users[(model, split, slice_)]:,}")
    caption = _versus_best_other(values, champion, measured=measured is not None)
    if caption:
        out.caption = caption
    return out


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _versus_best_other(values: dict[tuple[str, str, str], dict], champion: str | None, measured: bool) -> str | None:
    def score(model, split):
        value = values.get((model, split, ALL_ITEMS), {}).get(CHAMPION_METRIC)
        return math.nan if value is None else value

    if champion is None:
        return None
    models = list(dict.fromkeys(model for model, _, _ in values))
    chooser = VALID if measured else TEST
    other = pick_champion({m: score(m, chooser) for m in models if m != champion})
    test, best = score(champion, TEST), score(other, TEST) if other else math.nan
    if other is None or math.isnan(test) or math.isnan(best):
        return None
    ratio = test / best if best > 0 else float("inf")
    if measured:
        best_valid = pick_champion({m: score(m, VALID) for m in models})
        why = "best on validation" if best_valid == champion else f"simplest within noise of {best_valid} on validation"
        which = "the best" if other == best_valid else "the next"
        return f"champion {champion} ({why}): test NDCG@10 = {ratio:.2f}x {other} ({best:.4f}), {which} on validation"
    return f"{champion} (configured; no validation window): test NDCG@10 = {ratio:.2f}x {other} ({best:.4f}), the best other"
