"""Benchmark: demand forecasting quality of every model side by side, on real and synthetic data.

For each dataset the script makes sure the lake has ``gold.item_daily_sales`` of the
run date (building it through the platform's own steps when it does not, see
``lakes.py``), reads the sales panel, keeps the ``--top-items`` items with the
most revenue in the year before the run date (all items of the synthetic shop by
default), and runs the rolling-origin backtest of the forecasting run
(:func:`shoplake.forecast.train.backtest`): the statsforecast baselines (SeasonalNaive,
WindowAverage, AutoETS, AutoTheta, ADIDA) against the global quantile
network trained with Ray Train before each cut-off, all scored on the same items and
days. Nothing is registered or written to the lake.

It prints the metrics table of each dataset: the cut-offs before the last are
validation (averaged), the last is test, WRMSSE with its 95 % bootstrap interval
over items. Then, on the test cut-off, two comparisons, each as the ratio of the
revenue-weighted RMSSE (below 1: the first errs less) with a paired bootstrap
interval over items (items resampled with their revenue weights, both models on
the same resample) and the verdict (win, loss or within noise):

* the champion (the lowest validation WRMSSE, which the platform would serve)
  against the next model of validation;
* the main model (``forecasting.main_model``) against the best baseline of
  validation.

Last, the wall time of each model over all cut-offs (for the global model: Ray
Train start, training and forecasting).

Run::

    .venv/bin/python bench/forecast_quality.py                             # both datasets
    .venv/bin/python bench/forecast_quality.py --dataset online-retail --top-items 1000
    .venv/bin/python bench/forecast_quality.py --dataset synthetic --set forecasting.epochs=4
    .venv/bin/python bench/forecast_quality.py --dataset online-retail --chart-dir runs/bench/charts

``--chart-dir DIR`` also writes the main model's backtest chart of the last cut-off
(``backtest.html``, ``.svg``, ``.png``) into ``DIR/<dataset>/``; the one in
``docs/forecast-backtest.svg`` comes from the Online Retail run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from pathlib import Path

import numpy as np

from lakes import ROOT, ensure_lake
from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date

#: Items kept per dataset by default (None: all).
TOP_ITEMS = {"online-retail": 500, "synthetic": None}


def top_items(panel, run_date: dt.date, n: int | None):
    """The ``n`` items with the most revenue in the 365 days before the run date (all when ``n`` is None)."""
    if n is None or n >= panel.n_items:
        return panel
    days = min(365, panel.n_days)
    revenue = np.nan_to_num(panel.revenue[:, -days:]).sum(axis=1)
    return panel.select(np.sort(np.argsort(-revenue, kind="stable")[:n]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(TOP_ITEMS), action="append", help="dataset (repeatable; default: both)")
    parser.add_argument("--run-date", type=parse_date, help="run date (default: the morning after the last day)")
    parser.add_argument("--top-items", type=int, help=f"items kept, by revenue (default: {TOP_ITEMS})")
    parser.add_argument("--chart-dir", help="also write the main model's backtest chart of the last cut-off into DIR/<dataset>/")
    add_config_args(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    logging.getLogger("ray").setLevel(logging.WARNING)

    from rich.console import Console

    from shoplake.config import load_config
    from shoplake.evaluation import pick_champion
    from shoplake.forecast.bundle import BASELINES
    from shoplake.forecast.report import forecast_metrics_table
    from shoplake.forecast.schemas import ITEM_DAILY_SALES
    from shoplake.forecast.train import (
        CHAMPION_METRIC,
        backtest,
        backtest_origins,
        choose_champion,
        item_titles,
        load_panel,
        metrics_rows,
        write_backtest_chart,
        wrmsse_ratio,
    )  # fmt: skip
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray

    console = Console()
    summary = []
    for name in args.dataset or sorted(TOP_ITEMS):
        overrides, run_date = ensure_lake(name, cfg, args.run_date, needs=(ITEM_DAILY_SALES,))
        dcfg = load_config(cfg.env, [*args.overrides, *overrides, f"runs_dir={ROOT}/runs/bench"])
        init_ray(dcfg)
        lake = Lake(dcfg)
        panel, run_date, _ = load_panel(lake, run_date)
        panel = top_items(panel, run_date, args.top_items if args.top_items is not None else TOP_ITEMS[name])
        origins = backtest_origins(dcfg, run_date, panel.start)
        started = time.monotonic()
        result = backtest(dcfg, panel, origins, f"bench_fc_{name.replace('-', '_')}_{int(time.time())}")
        seconds = time.monotonic() - started
        rows = metrics_rows(result, run_date, None, dt.datetime.now(dt.timezone.utc))
        main_model = dcfg.forecasting.main_model
        console.print(
            f"\n[bold]{name}[/bold]: run date {run_date}, {panel.n_items:,} items, cut-offs {', '.join(map(str, origins))}; {seconds:.0f} s"
        )
        console.print(forecast_metrics_table(rows, main_model))
        for model, secs in result.seconds.items():
            console.print(f"  {model}: {secs:.1f} s over {len(origins)} cut-off(s)")
        if args.chart_dir:
            page = write_backtest_chart(
                Path(args.chart_dir) / name, panel, result.last[main_model], main_model, item_titles(lake, run_date)
            )
            console.print(f"  backtest chart: {page}")
        champion, versus = choose_champion(dcfg, panel, result, origins)
        validation = {m: result.mean(m, CHAMPION_METRIC, origins[:-1]) for m in result.seconds}
        best = pick_champion({m: v for m, v in validation.items() if m in BASELINES}, higher_is_better=False)
        main_vs = None
        if best and main_model in result.last and main_model != best:
            main_vs = (best, wrmsse_ratio(dcfg, panel, result.last[main_model], result.last[best]))
        summary.append((name, origins[-1], result, champion, versus, main_model, main_vs))
    console.print("\ntest WRMSSE ratios (below 1: the first errs less), 95 % interval over items:")
    for name, test, result, champion, versus, main_model, main_vs in summary:
        at = result.metrics[test]
        for label, first, found in (("champion", champion, versus), ("main model", main_model, main_vs)):
            if found is None:
                continue
            other, ratio = found
            console.print(
                f"  {name} {label}: {first} {at[first][CHAMPION_METRIC]:.3f} / {other} {at[other][CHAMPION_METRIC]:.3f} = "
                f"{ratio}: {ratio.verdict(higher_is_better=False, null=1.0)}"
            )
        console.print(f"  {name}: {main_model} wall time {result.seconds.get(main_model, float('nan')):.0f} s")
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
