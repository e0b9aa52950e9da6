"""Score every user with the serving recommender (Ray Data) into serving.recommendations.

Inputs:  the registered recommender version that the alias recommender.serving_alias
         names (or --model-version), from the MLflow registry (recommender.registry_uri;
         default: SQLite under <lake.root>/_mlflow).
Outputs: serving.recommendations, the partition of --run-date replaced in one Delta
         commit: recommender.k rows per user (rank 1..k, item, score, reason), each
         tagged with model_name, model_version, run_date and scored_at (UTC).
         Prints one line: users, rows, the table version and the model version.
Parameters: --run-date (default: the run date the model was trained for),
         --model-version, --actors (default: half the cluster's CPUs worth),
         --env, --set key=value. CPUs per actor come from ray.cpus_per_data_task;
         k and exclude_seen from the recommender section.

    python ray_apps/score_recommendations.py --env local --run-date 2024-03-01
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score_recommendations.py --env cluster --model-version 3
"""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="score_recommendations", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--run-date", type=parse_date, help="run date of the rows (default: the model's training run date)")
    parser.add_argument("--model-version", help="registered version to score with (default: the serving alias)")
    parser.add_argument("--actors", type=int, help="Ray Data actors scoring at once, at most")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import NoServingModel
    from shoplake.scoring.recommendations import score_recommendations

    args = build_parser().parse_args(argv)
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


if __name__ == "__main__":
    exit_cleanly(main)
