"""The recommender metrics table: both held-out windows, the champion measured on validation."""

from __future__ import annotations

import datetime as dt

from rich.console import Console

from shoplake.recommend.report import metrics_table, recommend_champion

VALID_NDCG = {"popularity": 0.05, "cooccurrence": 0.09, "mf": 0.06, "sasrec": 0.08}
TEST_NDCG = {"popularity": 0.05, "cooccurrence": 0.10, "mf": 0.06, "sasrec": 0.08}
RUN, TEST_CUTOFF, VALID_CUTOFF = dt.date(2024, 1, 29), dt.date(2024, 1, 22), dt.date(2024, 1, 15)


def window(ndcg: dict[str, float], cutoff: dt.date) -> list[dict]:
    values = {"ndcg@10": lambda v: v, "ndcg@10_low": lambda v: v - 0.02, "ndcg@10_high": lambda v: v + 0.03, "mrr": lambda v: v}
    return [
        {
            "run_date": RUN,
            "cutoff_date": cutoff,
            "model_name": model,
            "slice": slice_,
            "metric": metric,
            "value": f(value) if slice_ == "all" else None,
            "n_evaluated": 40 if slice_ == "all" else 0,
        }  # fmt: skip
        for model, value in ndcg.items()
        for slice_ in ("all", "cold_items")
        for metric, f in values.items()
    ]


def render(table) -> str:
    console = Console(width=80, record=True)
    console.print(table)
    return console.export_text()


def flat(table) -> str:
    return " ".join(render(table).split())


def test_the_champion_is_the_best_on_validation_not_on_test():
    both = window(VALID_NDCG, VALID_CUTOFF) + window({**TEST_NDCG, "sasrec": 0.2}, TEST_CUTOFF)
    assert recommend_champion(both) == "cooccurrence"
    assert recommend_champion(window(TEST_NDCG, TEST_CUTOFF)) is None  # one window: nothing measured


def margins(values: dict[str, tuple[float, float, float]], cutoff: dt.date = VALID_CUTOFF) -> list[dict]:
    return [
        {"run_date": RUN, "cutoff_date": cutoff, "model_name": model, "slice": "all", "metric": f"ndcg@10_to_best{suffix}",
         "value": value, "n_evaluated": 40}
        for model, interval in values.items()
        for suffix, value in zip(("", "_low", "_high"), interval)
    ]  # fmt: skip


def test_with_margins_the_simplest_model_within_noise_of_the_best_is_the_champion():
    rows = window(VALID_NDCG, VALID_CUTOFF) + window(TEST_NDCG, TEST_CUTOFF)
    within = margins({"popularity": (-0.04, -0.09, 0.001), "cooccurrence": (0.0, 0.0, 0.0), "mf": (-0.03, -0.05, -0.01),
                      "sasrec": (-0.01, -0.03, 0.01)})  # fmt: skip
    assert recommend_champion(rows + within) == "popularity"  # the simplest, its interval reaches zero
    text = flat(metrics_table(rows + within))
    assert "champion popularity (simplest within noise of cooccurrence on validation): test NDCG@10 = 0.50x cooccurrence" in text
    assert "the best on validation" in text
    lost = margins({"popularity": (-0.04, -0.09, -0.001), "cooccurrence": (0.0, 0.0, 0.0), "sasrec": (-0.01, -0.03, 0.01)})
    assert recommend_champion(rows + lost) == "cooccurrence"
    assert recommend_champion(rows + margins({"mf": (0.0, -0.01, 0.01)}, TEST_CUTOFF)) == "cooccurrence"  # test never chooses


def test_caption_compares_the_champion_with_the_next_on_validation():
    text = flat(metrics_table(window(VALID_NDCG, VALID_CUTOFF) + window(TEST_NDCG, TEST_CUTOFF), main_model="sasrec"))
    assert "champion cooccurrence (best on validation): test NDCG@10 = 1.25x sasrec (0.0800)" in text
    assert "valid 2024-01-15..2024-01-22, test 2024-01-22..2024-01-29" in text


def test_rows_run_validation_then_test_all_before_cold_with_intervals_in_80_columns():
    lines = render(metrics_table(window(VALID_NDCG, VALID_CUTOFF) + window(TEST_NDCG, TEST_CUTOFF))).splitlines()
    body = [line.split() for line in lines if line.split()[:1] and line.split()[0] in VALID_NDCG]
    expected = [(m, split, items) for split in ("valid", "test") for items in ("all", "cold") for m in VALID_NDCG]
    assert [(b[0], b[1], b[2]) for b in body] == expected
    assert body[0][3:5] == ["0.0500", "0.03-0.08"]  # popularity, validation: the value and its interval
    assert body[-1][3] == "-"  # a slice without users shows no value
    assert max(len(line.rstrip()) for line in lines) <= 80


def test_without_validation_the_configured_model_is_named_as_such():
    text = flat(metrics_table(window(TEST_NDCG, TEST_CUTOFF), main_model="sasrec"))
    assert "sasrec (configured; no validation window): test NDCG@10 = 0.80x cooccurrence (0.1000)" in text
    assert "champion" not in render(metrics_table(window(TEST_NDCG, TEST_CUTOFF), main_model=None))
