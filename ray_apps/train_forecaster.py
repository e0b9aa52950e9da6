"""Backtest, train and register the demand forecasters (Ray Train for the global model).

Inputs:  gold.item_daily_sales of --run-date D (default: the latest partition): each
         item's daily sales up to D - 1.
Outputs: every model of forecasting.models (seasonal_naive, moving_average, ets,
         quantile_net) backtested at forecasting.backtest_origins rolling cut-offs,
         forecasting.horizon_days apart (the last at D - horizon_days): at each cut-off
         a model sees only the sales before it and forecasts the horizon after it.
         MASE, RMSSE, revenue-weighted RMSSE, bias, P10-P90 coverage and pinball loss
         per model and cut-off go to ops.model_metrics (task forecasting, D's rows
         replaced) and are printed as a table. The main model (forecasting.main_model),
         fit on all sales before D, is saved under <runs_dir>/forecaster/<name>/bundle,
         logged to MLflow and registered as forecasting.registered_model with the serving
         alias. Ray Train runs checkpoint every epoch under <runs_dir>/ray_results.
         Prints a line `history quantile_net: <json>` (epoch, loss, ...) of the main fit.
Parameters: --run-date, --name (run folder prefix), --no-register, --env, --set key=value
         (forecasting.*, ray.num_workers).

    python ray_apps/train_forecaster.py --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train_forecaster.py --env cluster --set forecasting.epochs=20
"""

from __future__ import annotations

import argparse
import datetime as dt
import json

from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_forecaster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--run-date", type=parse_date, help="sales date (default: the latest in gold.item_daily_sales)")
    parser.add_argument("--name", help="prefix of the run's folders (default: fc_<run date>_<time>)")
    parser.add_argument("--no-register", action="store_true", help="do not log to MLflow or move the serving alias")
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.reports import forecast_metrics_table
    from shoplake.training.forecasting import MissingSalesError, metrics_rows, run_forecasting

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    console = Console()
    init_ray(cfg)
    try:
        with console.status("forecasting run") as status:
            result = run_forecasting(
                cfg, Lake(cfg), args.run_date, name=args.name, register=not args.no_register,
                on_step=lambda text: status.update(f"forecasting run: {text}"),
            )  # fmt: skip
    except (MissingSalesError, ValueError) as exc:
        console.print(f"error: {exc}")
        return 2
    rows = metrics_rows(result.backtest, result.run_date, result.mlflow_run_id, dt.datetime.now(dt.timezone.utc))
    console.print(forecast_metrics_table(rows, result.main_model))
    for model, seconds in result.backtest.seconds.items():
        console.print(f"{model}: {seconds:.1f} s over {len(result.origins)} cut-off(s)")
    console.print(f"{result.main_model} fit for serving in {result.fit_seconds:.1f} s; ops.model_metrics v{result.metrics_version}; bundle {result.bundle_path}")
    if result.model_version:
        console.print(f"registered {cfg.forecasting.registered_model} version {result.model_version} ({result.main_model}) "
                      f"as '{cfg.recommender.serving_alias}' (MLflow run {result.mlflow_run_id})")  # fmt: skip
    for origin, history in result.backtest.histories.items():
        print(f"history quantile_net@{origin}: " + json.dumps(history))
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
