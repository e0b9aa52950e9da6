"""The entry point of the features step (``spark-submit jobs/build_features.py``, ``shoplake features``)."""

from __future__ import annotations

import argparse
import sys

from shoplake.entry import add_config_args, add_date_args, config_from_args, run_dates

DOC = """Build the features: bronze -> silver -> gold tables (recommendation, forecasting, fraud, text).

Inputs:  bronze.events (optional: Online Retail has none), bronze.orders, bronze.products
         (optional: item features then lack text, category and price, and no day is on
         promotion), bronze.inventory (optional: stock-out flags are then null),
         bronze.payments and bronze.chargebacks (optional: without payments there are no
         fraud tables), bronze.support_tickets (optional: without it there are no
         support tables). For run
         date D only landing days before D and rows timestamped before D's midnight UTC
         (inventory: snapshot days before D) are used.
Outputs: silver.interactions, gold.user_item_matrix, gold.item_features,
         gold.user_features, and gold.item_daily_sales (daily units, revenue, price,
         promotion, stock-out and calendar per item, zero-filled from the item's first
         sale to D - 1; only when bronze.orders exists), silver.transactions (payments of
         the fraud.history_days before D with their orders' size and their label:
         fraud, legitimate, or null until fraud.maturity_days old) and gold.txn_features
         (point-in-time velocity, history and payment features of each of them; only
         when bronze.payments exists), silver.support_tickets (messages created before D,
         one per ticket id, text normalised, with a stable train/validation/test split)
         and gold.support_training (its labelled ones; only when bronze.support_tickets
         exists), gold.product_text (per item the version in effect at D: title,
         description, brand, category, encoder text, split; only when bronze.products
         exists), one partition per run date
         (replaced on re-run), all committed together or not at all. Also the
         partitions of each run date's holdout cutoff (run date -
         recommender.holdout_days) when they are missing: the recommendation run
         trains on that snapshot and evaluates on the days after.
Parameters: --run-date D | --from D1 --to D2 (the days the features are built for),
         --env, --set key=value (features.event_weights, features.half_life_days,
         features.lookback_days, features.price_bands), --no-holdout (only the given days).

    spark-submit jobs/build_features.py --env local --run-date 2024-03-30
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build_features", description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-holdout", action="store_true", help="do not build missing holdout cutoff snapshots")
    return add_config_args(add_date_args(parser))


def main(argv: list[str] | None = None) -> int:
    from shoplake.features.run import FeatureInputError, build_features
    from shoplake.lake import Lake
    from shoplake.spark import get_spark

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    days = run_dates(args)
    lake = Lake(cfg, get_spark(cfg))
    try:
        results = build_features(cfg, lake, days, with_holdout=not args.no_holdout)
    except FeatureInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for result in results:
        print(f"{result.table}: v{result.version}, {result.rows} rows")
    return 0
