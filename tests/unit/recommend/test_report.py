"""The recommender metrics table: one row per model and slice, and the main model against the best baseline."""

from __future__ import annotations

import datetime as dt

from rich.console import Console

from shoplake.recommend.report import metrics_table

NDCG = {"popularity": 0.05, "cooccurrence": 0.08, "mf": 0.06, "sasrec": 0.10}


def rows(ndcg: dict[str, float]) -> list[dict]:
    return [
        {
            "run_date": dt.date(2024, 1, 29),
            "cutoff_date": dt.date(2024, 1, 22),
            "model_name": model,
            "slice": slice_,
            "metric": metric,
            "value": value if slice_ == "all" else None,
            "n_evaluated": 40 if slice_ == "all" else 0,
        }  # fmt: skip
        for model, value in ndcg.items()
        for slice_ in ("all", "cold_items")
        for metric in ("ndcg@10", "mrr")
    ]


def render(table) -> str:
    console = Console(width=80, record=True)
    console.print(table)
    return console.export_text()


def test_caption_compares_the_main_model_with_the_best_baseline():
    text = render(metrics_table(rows(NDCG), main_model="sasrec"))
    assert "sasrec NDCG@10 = 1.25x the best baseline (cooccurrence, 0.0800)" in text


def test_rows_keep_the_run_order_all_before_cold_and_fit_80_columns():
    lines = render(metrics_table(rows(NDCG), main_model="sasrec")).splitlines()
    body = [line.split() for line in lines if line.split()[:1] and line.split()[0] in NDCG and line.split()[1] in ("all", "cold")]
    assert [(b[0], b[1]) for b in body] == [(m, "all") for m in NDCG] + [(m, "cold") for m in NDCG]
    assert body[-1][2] == "-"  # a slice without users shows no value
    assert max(len(line.rstrip()) for line in lines) <= 80


def test_no_caption_without_the_main_model():
    assert "best baseline" not in render(metrics_table(rows(NDCG), main_model=None))
