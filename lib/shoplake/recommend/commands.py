"""The entry points of recommendations: ``train`` and ``score`` (``shoplake train-recommender``, ``shoplake score-recommendations``)."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from shoplake import entry
from shoplake.entry import config_from_args

TRAIN_DOC = """Train, evaluate and register the recommenders (Ray Train).

Inputs:  the features snapshot (silver.interactions, gold.item_features) of
         --run-date D (default: the latest of gold.user_item_matrix); every
         history a model learns from is cut from it by event time.
Outputs: every model of recommender.models (popularity, trending, cooccurrence, item_knn, ease, mf, sasrec)
         judged by recommender.protocol: time_cutoff (trained on what came before
         C = D - recommender.holdout_days and ranked over the whole catalogue
         against the purchases of [C, D): test; the same for the window before C:
         validation), rolling (recommender.rolling_cutoffs such windows, the earlier
         ones validation, pooled) or leave_last_out (each user's last purchase day
         is test, the one before validation). The metrics of every split go to
         ops.model_metrics (D's partition replaced; slice <protocol>/<split>/<items>)
         and are printed as a table. The champion (recommender.champion_rule: the
         simplest model not shown worse than the best validation NDCG@10, a
         baseline may win), is retrained on D's snapshot when recommender.refit,
         packed as a bundle under <runs_dir>/recommender/<name>/bundle, logged to
         MLflow with its metrics and the Delta versions of its inputs, and becomes
         the version with the serving alias. Without a validation split
         recommender.main_model is served. Ray Train runs (mf, sasrec) checkpoint
         every epoch under <runs_dir>/ray_results/<name>_<model>_holdout (and
         _validation<n>) and resume after a worker failure. Prints a line
         `history <model>: <json>` per Ray-trained model of the test split: epoch,
         loss, resumed_from, nodes.
Parameters: --run-date, --name (run folder prefix), --no-register, --env, --set
         key=value (recommender.*, sequence_model.*, training.* for mf, ray.num_workers).

    python ray_apps/train.py recommend --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train.py recommend --env cluster --set sequence_model.epochs=30
"""


def train_parser() -> argparse.ArgumentParser:
    return entry.train_parser(
        "train.py recommend", TRAIN_DOC, "features date (default: the latest in gold.user_item_matrix)", "rec_<run date>_<time>"
    )


def train(argv: list[str] | None = None) -> int:
    from shoplake.recommend.holdout import MissingFeaturesError
    from shoplake.recommend.report import metrics_table
    from shoplake.recommend.train import metrics_rows, run_recommendation

    cfg, console, result = entry.run_training(
        train_parser().parse_args(argv), "recommendation", run_recommendation, (MissingFeaturesError,)
    )
    if result is None:
        return 2
    rows = metrics_rows(result, dt.datetime.now(dt.timezone.utc))
    console.print(metrics_table(rows, result.main_model))
    if result.versus_line():
        console.print(result.versus_line())
    for model, seconds in result.seconds.items():
        console.print(f"{model}: trained in {seconds:.1f} s")
    console.print(f"ops.model_metrics v{result.metrics_version}; bundle {result.bundle_path}")
    if result.model_version:
        console.print(f"registered {cfg.recommender.registered_model} version {result.model_version} ({result.champion}) "
                      f"as '{cfg.registry.serving_alias}' (MLflow run {result.mlflow_run_id})")  # fmt: skip
    for model, history in result.histories.items():
        # One machine-readable line per Ray-trained model for schedulers and tests.
        print(f"history {model}: " + json.dumps(history))
    return 0


SCORE_DOC = """Score every user with the serving recommender (Ray Data) into serving.recommendations.

Inputs:  the registered recommender version that the alias registry.serving_alias
         names (or --model-version), from the MLflow registry (registry.uri;
         default: SQLite under <lake.root>/_mlflow).
Outputs: serving.recommendations, the partition of --run-date replaced in one Delta
         commit: recommender.k rows per user (rank 1..k, item, score, reason), each
         tagged with model_name, model_version, run_date and scored_at (UTC).
         Prints one line: users, rows, the table version and the model version.
Parameters: --run-date (default: the run date the model was trained for),
         --model-version, --actors (default: half the cluster's CPUs worth),
         --env, --set key=value. CPUs per actor come from ray.cpus_per_data_task;
         k and exclude_seen from the recommender section.

    python ray_apps/score.py recommend --env local --run-date 2024-03-01
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score.py recommend --env cluster --model-version 3
"""


def score_parser() -> argparse.ArgumentParser:
    parser = entry.score_parser("score.py recommend", SCORE_DOC, "run date of the rows (default: the model's training run date)")
    parser.add_argument("--actors", type=int, help="Ray Data actors scoring at once, at most")
    return parser


def score(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.recommend.score import score_recommendations
    from shoplake.registry import NoServingModel

    args = score_parser().parse_args(argv)
    if args.actors is not None and args.actors < 1:
        raise SystemExit("--actors must be at least 1")
    cfg = config_from_args(args)
    init_ray(cfg)
    try:
        result = score_recommendations(cfg, Lake(cfg), args.run_date, version=args.model_version, actors=args.actors)
    except (NoServingModel, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"scored {result.users} users with {result.model_name} version {result.model_version} for {result.run_date}: "
        f"{result.rows} rows -> {result.table} v{result.table_version} in {result.seconds:.1f} s"
    )
    return 0
