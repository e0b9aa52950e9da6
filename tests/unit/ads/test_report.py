"""The ad models' table: every model and split, not the plan's estimates, readable in an 80-column terminal."""

from __future__ import annotations

import datetime as dt
import io

from rich.console import Console

from shoplake import columns as C
from shoplake.ads.report import ADS_METRICS, ads_champion, ads_metrics_table


def _rows() -> list[dict]:
    rows = []
    for i, model in enumerate(("historic_ctr", "logistic", "deep_ctr")):
        for split in ("validation", "test"):
            for metric, _ in ADS_METRICS:
                value = 0.0500 + i / 1000 if metric == "conversion_log_loss" else 0.6789
                rows.append({C.MODEL_NAME: model, C.SLICE: split, C.METRIC: metric, C.VALUE: value, C.N_EVALUATED: 3009,
                             C.CUTOFF_DATE: dt.date(2024, 3, 5)})  # fmt: skip
    rows.append(
        {C.MODEL_NAME: "plan", C.SLICE: "test", C.METRIC: "ips", C.VALUE: 0.2, C.N_EVALUATED: 3009, C.CUTOFF_DATE: dt.date(2024, 3, 5)}
    )
    return rows


def test_the_table_lists_each_model_per_split_untruncated_in_80_columns_without_the_plan():
    console = Console(width=80, file=io.StringIO(), force_terminal=False)
    console.print(ads_metrics_table(_rows()))
    text = console.file.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    assert "plan" not in text
    for model in ("historic_ctr", "logistic", "deep_ctr"):
        assert sum(line.split()[0:1] == [model] for line in lines) == 2  # validation and test
    assert text.count("0.6789") == 6 * (len(ADS_METRICS) - 1)
    assert ads_champion(_rows()) == "historic_ctr"
