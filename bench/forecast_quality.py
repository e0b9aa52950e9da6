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

It prints the metrics table of each dataset (averaged over the cut-offs), the main
model's revenue-weighted RMSSE as a ratio to the best baseline's (below 1: the main
model is better) with a 95 % bootstrap interval over the items of the last cut-off
(items resampled with their revenue weights, both models on the same resample), says
whether the main model wins, loses or is within noise, and the wall time of each
model over all cut-offs (for the global model: Ray Train start, training and
forecasting).

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


def ratio_interval(panel, main_cut, base_cut, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """WRMSSE of ``main_cut`` over ``base_cut`` at one cut-off, with a 95 % paired bootstrap interval over items."""
    from shoplake.forecast.metrics import revenue_weights, rmsse

    history = panel.until(main_cut.cutoff).select(main_cut.evaluated)
    weights = revenue_weights(history.revenue)
    main = rmsse(main_cut.actual, main_cut.forecast.mean, history.units)
    base = rmsse(base_cut.actual, base_cut.forecast.mean, history.units)

    def ratio(rows: np.ndarray) -> float:
        w, m, b = weights[rows], main[rows], base[rows]
        keep = ~(np.isnan(w) | np.isnan(m) | np.isnan(b))
        return float((w[keep] * m[keep]).sum() / (w[keep] * b[keep]).sum())

    rng = np.random.default_rng(seed)
    n = len(weights)
    samples = [ratio(rng.integers(0, n, n)) for _ in range(draws)]
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return ratio(np.arange(n)), float(low), float(high)


def verdict(low: float, high: float) -> str:
    """What an interval of main / baseline says."""
    if high < 1:
        return "the main model wins"
    if low > 1:
        return "the main model LOSES"
    return "within noise"


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
    from shoplake.forecast.report import forecast_metrics_table, forecast_ratio
    from shoplake.forecast.schemas import ITEM_DAILY_SALES
    from shoplake.forecast.train import backtest, backtest_origins, item_titles, load_panel, metrics_rows, write_backtest_chart
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
        means = {m: {k: result.mean(m, k) for k in ("wrmsse",)} for m in result.seconds}
        found = forecast_ratio(means, main_model)
        if found:
            best = found[1]
            last_ratio, low, high = ratio_interval(panel, result.last[main_model], result.last[best])
            summary.append(
                (name, main_model, means[main_model]["wrmsse"], *found, last_ratio, low, high, result.seconds.get(main_model, float("nan")))
            )
    console.print("\nmain model WRMSSE / best baseline WRMSSE (below 1: the main model is better):")
    for name, main_model, value, ratio, best, best_value, last_ratio, low, high, train_s in summary:
        console.print(
            f"  {name}: {main_model} {value:.3f} / {best} {best_value:.3f} = {ratio:.2f}x over the cut-offs; "
            f"last cut-off {last_ratio:.2f}x (95 % interval {low:.2f}..{high:.2f}): {verdict(low, high)}; "
            f"{main_model} wall time {train_s:.0f} s"
        )
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
