"""Benchmark: demand forecasting quality of every model side by side, on real and synthetic data.

For each dataset the script makes sure the lake has ``gold.item_daily_sales`` of the
run date (building it through the platform's own steps when it does not, see
``lakes.py``), reads the sales panel, keeps the ``--top-items`` items with the
most revenue in the year before the run date (all items of the synthetic shop by
default), and runs the rolling-origin backtest of the forecasting run
(:func:`shoplake.forecast.train.backtest`): seasonal naive, moving average and
ETS against the global quantile network trained with Ray Train before each cut-off,
all scored on the same items and days. Nothing is registered or written to the lake.

It prints the metrics table of each dataset (averaged over the cut-offs), the main
model's revenue-weighted RMSSE as a ratio to the best baseline's (below 1: the main
model is better), and the wall time of each model over all cut-offs (for the
global model: Ray Train start, training and forecasting).

Run::

    .venv/bin/python bench/forecast_quality.py                             # both datasets
    .venv/bin/python bench/forecast_quality.py --dataset online-retail --top-items 1000
    .venv/bin/python bench/forecast_quality.py --dataset synthetic --set forecasting.epochs=4
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

import numpy as np

from lakes import DATASETS, ROOT, ensure_lake
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
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append", help="dataset (repeatable; default: all)")
    parser.add_argument("--run-date", type=parse_date, help="run date (default: the morning after the last day)")
    parser.add_argument("--top-items", type=int, help=f"items kept, by revenue (default: {TOP_ITEMS})")
    add_config_args(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    logging.getLogger("ray").setLevel(logging.WARNING)

    from rich.console import Console

    from shoplake.config import load_config
    from shoplake.forecast.report import forecast_metrics_table, forecast_ratio
    from shoplake.forecast.schemas import ITEM_DAILY_SALES
    from shoplake.forecast.train import backtest, backtest_origins, load_panel, metrics_rows
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray

    console = Console()
    summary = []
    for name in args.dataset or sorted(DATASETS):
        overrides, run_date = ensure_lake(name, cfg, args.run_date, needs=(ITEM_DAILY_SALES,))
        dcfg = load_config(cfg.env, [*args.overrides, *overrides, f"runs_dir={ROOT}/runs/bench"])
        init_ray(dcfg)
        panel, run_date, _ = load_panel(Lake(dcfg), run_date)
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
        means = {m: {k: result.mean(m, k) for k in ("wrmsse",)} for m in result.seconds}
        found = forecast_ratio(means, main_model)
        if found:
            summary.append((name, main_model, means[main_model]["wrmsse"], *found, result.seconds.get(main_model, float("nan"))))
    console.print("\nmain model WRMSSE / best baseline WRMSSE (below 1: the main model is better):")
    for name, main_model, value, ratio, best, best_value, train_s in summary:
        console.print(
            f"  {name}: {main_model} {value:.3f} / {best} {best_value:.3f} = {ratio:.2f}x; {main_model} wall time {train_s:.0f} s"
        )
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
