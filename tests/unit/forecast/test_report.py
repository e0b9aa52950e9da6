"""The forecaster metrics table: validation cut-offs averaged, the last one test, the champion measured on validation."""

from __future__ import annotations

import datetime as dt

from rich.console import Console

from shoplake.forecast.report import forecast_champion, forecast_metrics_table

CUTOFFS = [dt.date(2024, 1, 1), dt.date(2024, 1, 29), dt.date(2024, 2, 26)]


def render(table) -> str:
    console = Console(width=80, record=True)
    console.print(table)
    return console.export_text()


def forecast_rows(wrmsse: dict[str, list[float]]) -> list[dict]:
    def value(metric, v):
        return {"wrmsse": v, "wrmsse_low": v - 0.05, "wrmsse_high": v + 0.1}.get(metric, 0.5)

    return [
        {
            "run_date": dt.date(2024, 3, 25),
            "cutoff_date": cutoff,
            "model_name": model,
            "slice": "all",
            "metric": metric,
            "value": value(metric, v),
            "n_evaluated": 100 + n,
        }  # fmt: skip
        for model, values in wrmsse.items()
        for n, (cutoff, v) in enumerate(zip(CUTOFFS[-len(values) :], values))
        for metric in ("wrmsse", "wrmsse_low", "wrmsse_high", "coverage_p10_p90")
    ]


DATA = {"seasonal_naive": [1.2, 1.0, 1.1], "ets": [0.7, 0.7, 0.8], "quantile_net": [0.8, 0.8, 0.6]}


def test_the_champion_is_the_lowest_validation_wrmsse_not_the_lowest_test():
    assert forecast_champion(forecast_rows(DATA)) == "ets"  # quantile_net is best on test only
    assert forecast_champion(forecast_rows({m: v[-1:] for m, v in DATA.items()})) is None  # one cut-off: nothing measured


def test_table_averages_validation_shows_test_with_its_interval_and_compares_the_champion():
    text = render(forecast_metrics_table(forecast_rows(DATA), main_model="quantile_net"))
    flat = " ".join(text.split())
    assert "champion ets (best on validation): test WRMSSE = 1.33x quantile_net (0.600), the next on validation" in flat
    assert "valid 2024-01-01, 2024-01-29; test 2024-02-26" in flat
    rows = [line.split() for line in text.splitlines() if line.split()[:1] and line.split()[0] in DATA]
    assert [(r[0], r[1]) for r in rows] == [(m, s) for s in ("valid", "test") for m in DATA]
    assert rows[0][2:4] == ["1.100", "-"]  # seasonal_naive, validation: mean of two cut-offs, no single interval
    assert rows[3][2:4] == ["1.100", "1.05-1.20"] and rows[3][-1] == "102"  # test: one cut-off with its interval
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80


def test_with_one_cutoff_the_configured_model_is_named_as_such():
    text = " ".join(render(forecast_metrics_table(forecast_rows({m: v[-1:] for m, v in DATA.items()}), "quantile_net")).split())
    assert "quantile_net (configured; no validation cut-off): test WRMSSE = 0.75x ets (0.800), the best other" in text
