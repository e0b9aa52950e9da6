"""Benchmark: demand forecasting quality of every model side by side, on real and synthetic data, at a day or week grain.

For each run (a dataset at a grain) the script makes sure the lake has
``gold.item_daily_sales`` of the run date (building it through the platform's own
steps when it does not, see ``lakes.py``), reads the daily sales panel, keeps the
``--top-items`` items with the most revenue in the year before the run date (all
items of the synthetic shop by default), sums it to the grain, and runs the
rolling-origin backtest of the forecasting run
(:func:`shoplake.forecast.train.backtest`) with its calibration cut-offs: the
statsforecast baselines against the global models (the quantile network and the
gradient-boosted trees, trained with Ray Train before each cut-off) and their
ensemble, all scored on the same items and periods, every band calibrated on the
earlier cut-offs' residuals. As in the forecasting run, the global models' settings
are first searched with Ray Tune on the validation cut-offs
(:func:`shoplake.forecast.tuning.search_settings`: ``forecasting.gbdt_search``,
``forecasting.net_search``, ``tuning.num_samples`` trials each; ``--set
'forecasting.gbdt_search={}'`` skips one) and backtested with the best. Nothing is
registered or written to the lake.

It prints per run the metrics table: the cut-offs before the last are validation
(averaged, with the bootstrap interval over their (item, cut-off) pairs), the last
is test (interval over items); cov80 is the calibrated P10-P90 coverage, raw80 the
model's own. Then every model's test WRMSSE as a ratio to the best baseline of
validation, with a paired bootstrap interval over items and the verdict (win, loss
or within noise), the champion (the lowest validation WRMSSE, which the platform
would serve) against the next model of validation and against that baseline, and
each model's wall time over all cut-offs (for a global model: Ray Train start,
training and forecasting). No setting is chosen on the test cut-off.

Run::

    .venv/bin/python bench/forecast_quality.py                      # online-retail and synthetic by day, online-retail by week
    .venv/bin/python bench/forecast_quality.py --dataset online-retail --grain week
    .venv/bin/python bench/forecast_quality.py --dataset synthetic --set forecasting.epochs=4
    .venv/bin/python bench/forecast_quality.py --dataset online-retail --chart-dir runs/bench/charts
    .venv/bin/python bench/forecast_quality.py --dataset online-retail --grain week \\
        --set 'forecasting.models=[ets,auto_theta,auto_arima]'       # AutoARIMA's time

``--chart-dir DIR`` also writes the champion's backtest chart of the last cut-off
(``backtest.html``, ``.svg``, ``.png``) into ``DIR/<dataset>-<grain>/``; the one in
``docs/forecast-backtest.svg`` comes from the Online Retail run by day.
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
#: The runs of a plain invocation: (dataset, grain).
DEFAULT_RUNS = (("online-retail", "day"), ("synthetic", "day"), ("online-retail", "week"))


def top_items(panel, run_date: dt.date, n: int | None):
    """The ``n`` items of a daily panel with the most revenue in the 365 days before the run date (all when ``n`` is None)."""
    if n is None or n >= panel.n_items:
        return panel
    days = min(365, panel.n_periods)
    revenue = np.nan_to_num(panel.revenue[:, -days:]).sum(axis=1)
    return panel.select(np.sort(np.argsort(-revenue, kind="stable")[:n]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(TOP_ITEMS), action="append", help="dataset (repeatable)")
    parser.add_argument("--grain", choices=["day", "week", "month"], action="append", help="grain (repeatable)")
    parser.add_argument("--run-date", type=parse_date, help="run date (default: the morning after the last day)")
    parser.add_argument("--top-items", type=int, help=f"items kept, by revenue (default: {TOP_ITEMS})")
    parser.add_argument("--chart-dir", help="also write the champion's backtest chart of the last cut-off into DIR/<dataset>-<grain>/")
    add_config_args(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    logging.getLogger("ray").setLevel(logging.WARNING)

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from shoplake.config import load_config
    from shoplake.evaluation import TEST, VALIDATION
    from shoplake.forecast.chart import write_backtest_chart
    from shoplake.forecast.models.panel import SalesPanel
    from shoplake.forecast.protocol import (
        CHAMPION_METRIC,
        backtest_origins,
        best_baseline,
        calibration_origins,
        choose_champion,
        pooled_interval,
        wrmsse_ratio,
    )
    from shoplake.forecast.report import forecast_metrics_table
    from shoplake.forecast.schemas import ITEM_DAILY_SALES
    from shoplake.forecast.train import backtest, item_titles, metrics_rows
    from shoplake.forecast.tuning import search_settings, searched_settings
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray

    if args.dataset or args.grain:
        runs = [(d, g) for d in (args.dataset or sorted(TOP_ITEMS)) for g in (args.grain or ["day"])]
    else:
        runs = list(DEFAULT_RUNS)
    console = Console(width=110)
    summary = []
    for name, grain in runs:
        overrides, run_date = ensure_lake(name, cfg, args.run_date, needs=(ITEM_DAILY_SALES,))
        dcfg = load_config(cfg.env, [*overrides, f"forecasting.grain={grain}", *args.overrides, f"runs_dir={ROOT}/runs/bench"])
        fc = dcfg.forecasting
        init_ray(dcfg)
        lake = Lake(dcfg)
        daily = SalesPanel.from_arrow(lake.to_arrow(ITEM_DAILY_SALES, run_date=run_date))
        daily = top_items(daily, run_date, args.top_items if args.top_items is not None else TOP_ITEMS[name])
        panel = daily.to_grain(grain).with_target(fc.target)
        origins = backtest_origins(dcfg, run_date, panel.start)
        calibration = calibration_origins(dcfg, origins, panel.start)
        started = time.monotonic()
        label = f"{name}-{grain}"
        run_name = f"bench_fc_{label.replace('-', '_')}_{int(time.time())}"
        dcfg, searches = search_settings(dcfg, panel, origins, run_name)
        search_seconds = time.monotonic() - started
        result = backtest(dcfg, panel, origins, run_name, calibration=calibration)
        seconds = time.monotonic() - started
        rows = metrics_rows(result, run_date, None, dt.datetime.now(dt.timezone.utc))
        validation = origins[:-1]
        intervals = (
            {(m, VALIDATION): pooled_interval(dcfg, panel, result, m, validation) for m in result.seconds} if len(validation) > 1 else {}
        )
        console.print(
            f"\n[bold]{name}[/bold] at {grain} grain ({fc.target}): run date {run_date}, {panel.n_items:,} items, "
            f"{panel.n_periods} {grain}s from {panel.start}; calibration cut-offs {', '.join(map(str, calibration)) or 'none'}; "
            f"scored cut-offs {', '.join(map(str, origins))}; horizon {fc.horizon} {grain}s; {seconds:.0f} s "
            f"({search_seconds:.0f} s of searches)"
        )
        for model, found in searched_settings(dcfg, searches).items():
            console.print(
                f"  {model}: settings searched on validation ({found['trials']} trials, {found['stopped_early']} stopped early, "
                f"best validation WRMSSE {found['best_valid_wrmsse']:.3f}): {found['settings']}"
            )
        console.print(forecast_metrics_table(rows, fc.main_model, intervals))
        champion, versus = choose_champion(dcfg, panel, result, origins)
        best = best_baseline(result, origins)
        test = origins[-1]
        at = result.metrics[test]
        ratios = Table(title=f"{label}: test WRMSSE / {best} (the best baseline of validation), 95 % interval over items",
                       box=box.SIMPLE, padding=(0, 1, 0, 0))  # fmt: skip
        for header in ("model", "test wrmsse", "ratio", "95% int.", "verdict", "seconds"):
            ratios.add_column(header, justify="left" if header in ("model", "verdict") else "right")
        for model in result.seconds:
            r = wrmsse_ratio(dcfg, panel, result.last[model], result.last[best])
            ratios.add_row(
                f"[bold]{model}[/bold]" if model == champion else model, f"{at[model][CHAMPION_METRIC]:.3f}", f"{r.value:.3f}",
                f"{r.low:.3f}-{r.high:.3f}", "-" if model == best else r.verdict(higher_is_better=False, null=1.0),
                f"{result.seconds[model]:.0f}",
            )  # fmt: skip
        console.print(ratios)
        if args.chart_dir:
            page = write_backtest_chart(Path(args.chart_dir) / label, panel, result.last[champion], champion, item_titles(lake, run_date))
            console.print(f"  backtest chart: {page}")
        champ_vs_best = None if champion == best else (best, wrmsse_ratio(dcfg, panel, result.last[champion], result.last[best]))
        coverage = {s: result.mean(champion, "coverage_p10_p90", c) for s, c in ((VALIDATION, validation), (TEST, [test]))}
        summary.append((label, at, champion, versus, champ_vs_best, coverage, seconds, searched_settings(dcfg, searches)))
    console.print("\ntest WRMSSE ratios (below 1: the first errs less), 95 % interval over items:")
    for label, at, champion, versus, champ_vs_best, coverage, seconds, searched in summary:
        for what, found in (("the next on validation", versus), ("the best baseline of validation", champ_vs_best)):
            if found is None:
                continue
            other, ratio = found
            console.print(
                f"  {label}: champion {champion} {at[champion][CHAMPION_METRIC]:.3f} / {other} {at[other][CHAMPION_METRIC]:.3f} "
                f"({what}) = {ratio}: {ratio.verdict(higher_is_better=False, null=1.0)}"
            )
        if champ_vs_best is None:
            console.print(f"  {label}: champion {champion} is the best baseline of validation")
        console.print(f"  {label}: champion P10-P90 coverage {coverage[VALIDATION]:.3f} on validation, {coverage[TEST]:.3f} on test; "
                      f"{seconds:.0f} s")  # fmt: skip
        for model, found in searched.items():
            console.print(f"  {label}: {model} searched on validation: {found['settings']}")
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
