"""Forecast every item and plan replenishment with the serving forecaster (Ray Data).

Inputs:  the registered forecaster version that the alias recommender.serving_alias
         names (or --model-version) of forecasting.registered_model; gold.item_daily_sales
         of the run date; the latest bronze.inventory snapshot per item before it.
Outputs: serving.forecasts (forecasting.horizon_days rows per item: mean, P10, P50, P90
         from the run date on) and serving.replenishment_plan (one row per item: stock
         position, demand over lead time + review period, safety stock for
         forecasting.service_level, reorder point, order quantity, stock-out risk), each
         in one Delta commit replacing the run date's partition. Prints one line.
Parameters: --run-date (default: the run date the model was trained for),
         --model-version, --env, --set key=value.

    python ray_apps/score_forecasts.py --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score_forecasts.py --env cluster
"""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="score_forecasts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--run-date", type=parse_date, help="first forecast day (default: the model's training run date)")
    parser.add_argument("--model-version", help="registered version to forecast with (default: the serving alias)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import NoServingModel
    from shoplake.scoring.forecasts import score_forecasts
    from shoplake.training.forecasting import MissingSalesError

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    init_ray(cfg)
    try:
        r = score_forecasts(cfg, Lake(cfg), args.run_date, version=args.model_version)
    except (NoServingModel, MissingSalesError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"forecast {r.items} items with {r.model_name} version {r.model_version} from {r.run_date}: "
        f"{r.forecast_rows} rows -> serving.forecasts v{r.forecasts_version}; "
        f"{r.items_to_order} items to reorder -> serving.replenishment_plan v{r.plan_version}; {r.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
