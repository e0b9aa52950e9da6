"""Score the last day's payments with the serving fraud model (Ray Data).

Inputs:  the registered fraud model version that the alias recommender.serving_alias
         names (or --model-version) of fraud.registered_model; gold.txn_features of the
         run date D, its rows of payments made on D - 1.
Outputs: serving.fraud_scores: per payment the score, the decision (approve below the
         model's review threshold, decline at or above its decline threshold, review in
         between), the 3 features that raised the score most with their contributions,
         the model version, run date and scoring time; one Delta commit replacing D's
         partition. Prints one line.
Parameters: --run-date (default: the latest in gold.txn_features), --model-version,
         --env, --set key=value.

    python ray_apps/score_fraud.py --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score_fraud.py --env cluster
"""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="score_fraud", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--run-date", type=parse_date, help="features date; its previous day's payments are scored (default: the latest)")
    parser.add_argument("--model-version", help="registered version to score with (default: the serving alias)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.registry import NoServingModel
    from shoplake.scoring.fraud import score_fraud
    from shoplake.training.fraud import MissingTxnFeaturesError

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    init_ray(cfg)
    try:
        r = score_fraud(cfg, Lake(cfg), args.run_date, version=args.model_version)
    except (NoServingModel, MissingTxnFeaturesError) as exc:
        raise SystemExit(f"error: {exc}") from None
    decided = ", ".join(f"{n} {d}" for d, n in r.decisions.items())
    print(
        f"scored {r.rows} payments with {r.model_name} version {r.model_version} for {r.run_date} ({decided}) "
        f"-> serving.fraud_scores v{r.version}; {r.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
