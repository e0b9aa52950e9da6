"""The entry points of product categorization: ``train`` and ``score`` (``shoplake train-categorizer``, ``shoplake score-categories``)."""

from __future__ import annotations

import argparse

from shoplake import entry
from shoplake.entry import config_from_args

TRAIN_DOC = """Fine-tune, compare and register the product category models.

Inputs:  gold.product_text of --run-date D (default: the latest partition), with its
         stable train / validation / test split; products without a category are not used.
Outputs: every model of categorization.models (tfidf_lr, frozen_lr, fine_tuned; see
         ``shoplake train-support --help``) trained on the train split, at most
         categorization.max_train_rows rows (a random sample); accuracy and macro-F1 on
         validation and test to ops.model_metrics (task categorization, D's rows
         replaced), printed as a table. The champion (best validation macro-F1) is saved
         under <runs_dir>/categorization/<name>/bundle, logged to MLflow and registered as
         categorization.registered_model with the serving alias.
Parameters: --run-date, --name (run folder prefix), --no-register, --env,
         --set key=value (categorization.*, fine_tuning.*, text_encoder.model_path, ray.num_workers).

    python ray_apps/train.py categorize --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train.py categorize --env cluster --set fine_tuning.epochs=4
"""


def train(argv: list[str] | None = None) -> int:
    from shoplake.categorize.train import run_categorization
    from shoplake.text.commands import train_parser, train_text

    return train_text(argv, train_parser("train.py categorize", TRAIN_DOC, "gold.product_text"), run_categorization, "categorization")


SCORE_DOC = """Every product's predicted category with the serving categorizer.

Inputs:  the registered categorizer version that the alias registry.serving_alias
         names (or --model-version) of categorization.registered_model; gold.product_text
         of the run date D (default: the latest partition).
Outputs: serving.product_categories: per product the predicted category with its
         probability, the runner-up, the category the catalogue gives and whether the
         model contradicts it with at least categorization.disagreement_confidence
         (disagrees), the model version, run date and scoring time; one Delta commit
         replacing D's partition. Prints one line.
Parameters: --run-date, --model-version, --env, --set key=value.

    python ray_apps/score.py categorize --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/score.py categorize --env cluster
"""


def score_parser() -> argparse.ArgumentParser:
    return entry.score_parser("score.py categorize", SCORE_DOC, "features date (default: the latest in gold.product_text)")


def score(argv: list[str] | None = None) -> int:
    from shoplake.categorize.score import score_categories
    from shoplake.lake import Lake
    from shoplake.registry import NoServingModel
    from shoplake.text.run import MissingTextTableError

    args = score_parser().parse_args(argv)
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
