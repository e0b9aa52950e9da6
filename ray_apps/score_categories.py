"""Every product's predicted category with the serving categorizer.

Inputs:  the registered categorizer version that the alias recommender.serving_alias
         names (or --model-version) of categorization.registered_model; gold.product_text
         of the run date D (default: the latest partition).
Outputs: serving.product_categories: per product the predicted category with its
         probability, the runner-up, the category the catalogue gives and whether the
         model contradicts it with at least categorization.disagreement_confidence
         (disagrees), the model version, run date and scoring time; one Delta commit
         replacing D's partition. Prints one line.
Parameters: --run-date, --model-version, --env, --set key=value.

    python ray_apps/score_categories.py --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score_categories.py --env cluster
"""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="score_categories", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--run-date", type=parse_date, help="features date (default: the latest in gold.product_text)")
    parser.add_argument("--model-version", help="registered version to score with (default: the serving alias)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.registry import NoServingModel
    from shoplake.scoring.categories import score_categories
    from shoplake.training.text import MissingTextTableError

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    try:
        r = score_categories(cfg, Lake(cfg), args.run_date, version=args.model_version)
    except (NoServingModel, MissingTextTableError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"categorised {r.rows} products with {r.model_name} version {r.model_version} for {r.run_date}, "
        f"{r.flagged} flagged -> serving.product_categories v{r.version}; {r.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
