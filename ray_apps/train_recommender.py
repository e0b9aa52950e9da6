"""Train, evaluate and register the recommenders (Ray Train).

Inputs:  the feature snapshots (silver.interactions, gold.user_item_matrix,
         gold.item_features) of --run-date D (default: the latest) and of its cutoff
         D - recommender.holdout_days (the features step builds both).
Outputs: every model of recommender.models (popularity, cooccurrence, mf, sasrec)
         trained on the cutoff snapshot and ranked over the whole catalogue against
         the purchases of the held-out days: the metrics go to ops.model_metrics
         (D's partition replaced) and are printed as a table. The main model
         (recommender.main_model, retrained on D's snapshot when recommender.refit)
         is packed as a bundle under <runs_dir>/recommender/<name>/bundle, logged to
         MLflow with its metrics and the Delta versions of its inputs, and becomes the
         version with the serving alias. Ray Train runs (mf, sasrec) checkpoint every
         epoch under <runs_dir>/ray_results/<name>_<model>_holdout and resume after a
         worker failure. Prints a line `history: <json>` per Ray-trained model
         (`history <model>: ...`): epoch, loss, resumed_from, nodes.
Parameters: --run-date, --name (run folder prefix), --no-register, --env, --set
         key=value (recommender.*, sequence_model.*, training.* for mf, ray.num_workers).

    python ray_apps/train_recommender.py --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train_recommender.py --env cluster --set sequence_model.epochs=30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json

from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_recommender", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--run-date", type=parse_date, help="features date (default: the latest in gold.user_item_matrix)")
    parser.add_argument("--name", help="prefix of the run's folders (default: rec_<run date>_<time>)")
    parser.add_argument("--no-register", action="store_true", help="do not log to MLflow or move the serving alias")
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.reports import metrics_table
    from shoplake.training.holdout import MissingFeaturesError
    from shoplake.training.recommendation import metrics_rows, run_recommendation

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    console = Console()
    init_ray(cfg)
    try:
        with console.status("recommendation run") as status:
            result = run_recommendation(
                cfg, Lake(cfg), args.run_date, name=args.name, register=not args.no_register,
                on_step=lambda text: status.update(f"recommendation run: {text}"),
            )  # fmt: skip
    except MissingFeaturesError as exc:
        console.print(f"error: {exc}")
        return 2
    rows = metrics_rows(result.metrics, result.run_date, result.cutoff, result.mlflow_run_id, dt.datetime.now(dt.timezone.utc))
    console.print(metrics_table(rows, result.main_model))
    for model, seconds in result.seconds.items():
        console.print(f"{model}: trained in {seconds:.1f} s")
    console.print(f"ops.model_metrics v{result.metrics_version}; bundle {result.bundle_path}")
    if result.model_version:
        console.print(f"registered {cfg.recommender.registered_model} version {result.model_version} ({result.main_model}) "
                      f"as '{cfg.recommender.serving_alias}' (MLflow run {result.mlflow_run_id})")  # fmt: skip
    for model, history in result.histories.items():
        # One machine-readable line per Ray-trained model for schedulers and tests.
        print(f"history {model}: " + json.dumps(history))
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
