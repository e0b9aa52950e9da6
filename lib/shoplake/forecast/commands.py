"""The entry points of forecasting: ``train`` and ``score`` (``shoplake train-forecaster``, ``shoplake score-forecasts``)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from shoplake import entry
from shoplake.entry import config_from_args

TRAIN_DOC = """Backtest, train and register the demand forecasters (Ray Train for the global model).

Inputs:  gold.item_daily_sales of --run-date D (default: the latest partition): each
         item's daily sales up to D - 1, summed to forecasting.grain (day, week or
         month; whole periods only), forecasting.target (units or revenue).
Outputs: every model of forecasting.models (the statsforecast baselines seasonal_naive,
         moving_average, ets, auto_theta, auto_arima, adida, croston, imapa; the global
         quantile_net and gbdt; the ensemble of forecasting.ensemble_members)
         backtested at forecasting.backtest_origins rolling cut-offs,
         forecasting.backtest_spacing periods apart (the last at the horizon before D's
         period), after forecasting.calibration_origins calibration cut-offs: at each
         cut-off a model sees only the sales before it and forecasts the horizon after
         it; its P10/P90 are calibrated on the residuals of the earlier cut-offs.
         MASE, RMSSE, revenue-weighted RMSSE (with its bootstrap interval over items),
         bias, P10-P90 coverage (calibrated and raw) and pinball loss per model and
         cut-off, on the grain, go to ops.model_metrics (task forecasting, D's rows
         replaced) and are printed as a table. The cut-offs before the last are
         validation, the last is test: the champion, the lowest validation WRMSSE (a
         baseline may win; forecasting.main_model with a single cut-off), fit on all
         sales before D with the test cut-off's calibration, is saved under
         <runs_dir>/forecaster/<name>/bundle, logged to MLflow and registered as
         forecasting.registered_model with the serving alias. Ray Train runs go under
         <runs_dir>/ray_results. Prints a line `history <model>@<cut-off>: <json>`
         (epoch or round, loss, ...) per global-model fit of the backtest.
Parameters: --run-date, --name (run folder prefix), --no-register, --env, --set key=value
         (forecasting.*, ray.num_workers).

    python ray_apps/train.py forecast --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train.py forecast --env cluster --set forecasting.epochs=20
"""


def train_parser() -> argparse.ArgumentParser:
    return entry.train_parser(
        "train.py forecast", TRAIN_DOC, "sales date (default: the latest in gold.item_daily_sales)", "fc_<run date>_<time>"
    )


def train(argv: list[str] | None = None) -> int:
    from shoplake.forecast.report import forecast_metrics_table
    from shoplake.forecast.train import MissingSalesError, metrics_rows, run_forecasting

    cfg, console, result = entry.run_training(
        train_parser().parse_args(argv), "forecasting", run_forecasting, (MissingSalesError, ValueError)
    )
    if result is None:
        return 2
    rows = metrics_rows(result.backtest, result.run_date, result.mlflow_run_id, dt.datetime.now(dt.timezone.utc))
    console.print(forecast_metrics_table(rows, result.main_model))
    if result.versus_line():
        console.print(result.versus_line())
    cutoffs = len(result.origins) + len(result.backtest.calibration_cutoffs)
    for model, seconds in result.backtest.seconds.items():
        console.print(f"{model}: {seconds:.1f} s over {cutoffs} cut-off(s)")
    console.print(
        f"{result.champion} fit for serving in {result.fit_seconds:.1f} s; ops.model_metrics v{result.metrics_version}; bundle {result.bundle_path}"
    )
    if result.model_version:
        console.print(f"registered {cfg.forecasting.registered_model} version {result.model_version} ({result.champion}) "
                      f"as '{cfg.registry.serving_alias}' (MLflow run {result.mlflow_run_id})")  # fmt: skip
    for (model, origin), history in result.backtest.histories.items():
        print(f"history {model}@{origin}: " + json.dumps(history))
    return 0


SCORE_DOC = """Forecast every item and plan replenishment with the serving forecaster (Ray Data).

Inputs:  the registered forecaster version that the alias registry.serving_alias
         names (or --model-version) of forecasting.registered_model; gold.item_daily_sales
         of the run date; the latest bronze.inventory snapshot per item before it.
Outputs: serving.forecasts (forecasting.horizon rows per item: mean, P10, P50, P90 of
         each period from the one holding the run date on, named by its first day,
         with the grain) and serving.replenishment_plan (one row per item: stock
         position, demand over lead time + review period, safety stock for
         forecasting.service_level, reorder point, order quantity, stock-out risk), each
         in one Delta commit replacing the run date's partition. Prints one line.
Parameters: --run-date (default: the run date the model was trained for),
         --model-version, --env, --set key=value.

    python ray_apps/score.py forecast --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score.py forecast --env cluster
"""


def score_parser() -> argparse.ArgumentParser:
    return entry.score_parser("score.py forecast", SCORE_DOC, "first forecast day (default: the model's training run date)")


def score(argv: list[str] | None = None) -> int:
    from shoplake.forecast.score import no_inventory_warning, score_forecasts
    from shoplake.forecast.train import MissingSalesError
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import NoServingModel

    args = score_parser().parse_args(argv)
    cfg = config_from_args(args)
    init_ray(cfg)
    try:
        r = score_forecasts(cfg, Lake(cfg), args.run_date, version=args.model_version)
    except (NoServingModel, MissingSalesError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    plan = (f"{r.items_to_order} items to reorder -> serving.replenishment_plan v{r.plan_version}"
            if r.plan_version is not None else "no replenishment plan (the forecaster does not forecast units)")  # fmt: skip
    print(
        f"forecast {r.items} items with {r.model_name} version {r.model_version} from {r.run_date}: "
        f"{r.forecast_rows} rows -> serving.forecasts v{r.forecasts_version}; {plan}; {r.seconds:.1f} s"
    )
    if r.items_without_inventory:
        print(f"warning: {no_inventory_warning(r.items_without_inventory, r.items, r.run_date)}", file=sys.stderr)
    return 0
