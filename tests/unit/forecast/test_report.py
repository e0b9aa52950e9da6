"""The forecaster metrics table: cut-offs averaged, WRMSSE of the main model against the best baseline."""

from __future__ import annotations

import datetime as dt

from rich.console import Console

from shoplake.forecast.report import forecast_metrics_table


def render(table) -> str:
    console = Console(width=80, record=True)
    console.print(table)
    return console.export_text()


def forecast_rows(wrmsse: dict[str, list[float]]) -> list[dict]:
    cutoffs = [dt.date(2024, 1, 1), dt.date(2024, 1, 29)]
    return [
        {
            "run_date": dt.date(2024, 2, 26),
            "cutoff_date": cutoff,
            "model_name": model,
            "slice": "all",
            "metric": metric,
            "value": value if metric == "wrmsse" else 0.5,
            "n_evaluated": 100 + n,
        }  # fmt: skip
        for model, values in wrmsse.items()
        for n, (cutoff, value) in enumerate(zip(cutoffs, values))
        for metric in ("wrmsse", "coverage_p10_p90")
    ]


def test_forecast_table_averages_the_cutoffs_and_compares_wrmsse_with_the_best_baseline():
    data = {"seasonal_naive": [1.2, 1.0], "ets": [0.9, 0.7], "quantile_net": [0.6, 0.6]}
    text = render(forecast_metrics_table(forecast_rows(data), main_model="quantile_net"))
    assert "quantile_net WRMSSE = 0.75x the best baseline (ets, 0.800)" in text
    line = next(line.split() for line in text.splitlines() if line.split()[:1] == ["seasonal_naive"])
    assert line[1] == "1.100" and line[-1] == "100"  # mean over cut-offs; items rounded from 100 and 101
    assert "2 cut-off(s) 2024-01-01 .. 2024-01-29" in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
