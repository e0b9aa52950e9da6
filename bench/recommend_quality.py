"""Benchmark: recommendation quality of every model side by side, on real and synthetic data.

For each dataset the script makes sure a lake with the features of the run date and
of its two holdout cutoffs exists (building it through the platform's own steps when it
does not: ``shoplake import`` / ``generate``, then ``shoplake nightly --no-recommend``),
then runs the recommendation run without registering anything or refitting for
serving (:func:`shoplake.recommend.train.run_recommendation`,
``register=False``, ``recommender.refit=false``):
popularity, trending, item co-occurrence, item-kNN, EASE, matrix factorization and
the text-aware sequence model are trained on the snapshot before each held-out window (validation, then
test) and ranked over the whole catalogue against the purchases of its days. It
prints the metrics table of each dataset (NDCG@10 with its bootstrap interval over
users), the champion (the best on validation), and on test its NDCG@10 against the
next model of validation: the paired difference with its interval, the verdict
(win, loss or within noise) and the ratio; then the settings the validation window
chose for the tuned baselines, and the main model against the best baseline of
validation, on test, with the interval of the difference.

Datasets:

* ``online-retail``: the UCI Online Retail import (customers x stock codes,
  2010-12-01 .. 2011-12-09; run date 2011-12-10), lake under ``data/lake-online-retail``;
* ``synthetic``: the demo's synthetic shop (``generate`` settings), lake under
  ``data/lake-synthetic-bench``.

Run::

    .venv/bin/python bench/recommend_quality.py                      # both datasets
    .venv/bin/python bench/recommend_quality.py --dataset online-retail --set sequence_model.epochs=30
    .venv/bin/python bench/recommend_quality.py --dataset online-retail --run-date 2011-11-26   # an earlier window

Building the Online Retail lake the first time takes about 3 minutes; the
recommendation run itself a few minutes per dataset on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

from lakes import DATASETS, ROOT, ensure_lake
from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append", help="dataset (repeatable; default: all)")
    parser.add_argument("--run-date", type=parse_date, help="evaluate another run date (default: the morning after the last day)")
    add_config_args(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    logging.getLogger("ray").setLevel(logging.WARNING)

    from rich.console import Console

    from shoplake.config import load_config
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.recommend.report import metrics_table
    from shoplake.recommend.train import metrics_rows, run_recommendation

    console = Console()
    summary = []
    for name in args.dataset or sorted(DATASETS):
        overrides, run_date = ensure_lake(name, cfg, args.run_date)
        # Quality only: the holdout fits are what is measured, no retraining for serving.
        dcfg = load_config(cfg.env, ["recommender.refit=false", *args.overrides, *overrides, f"runs_dir={ROOT}/runs/bench"])
        init_ray(dcfg)
        started = time.monotonic()
        result = run_recommendation(
            dcfg, Lake(dcfg), run_date, name=f"bench_{name.replace('-', '_')}_{run_date}_{int(time.time())}", register=False
        )
        seconds = time.monotonic() - started
        console.print(f"\n[bold]{name}[/bold]: run date {run_date}, {seconds:.0f} s")
        rows = metrics_rows(result.by_cutoff(), run_date, None, dt.datetime.now(dt.timezone.utc))
        console.print(metrics_table(rows, result.main_model))
        summary.append((name, result))
    console.print("\nchampion (best validation NDCG@10) against the next on validation, on test:")
    for name, result in summary:
        console.print(f"  {name}: {result.versus_line() or f'{result.champion} (no validation window)'}")
        if result.versus is not None:
            other = result.versus[0]
            console.print(f"    ratio {result.ndcg(result.champion) / result.ndcg(other):.2f}x")
        if result.tuned:
            console.print(f"    settings chosen on validation: {', '.join(f'{k} {v}' for k, v in result.tuned.items())}")
        line = _main_versus_best_baseline(result, cfg)
        if line:
            console.print(f"    {line}")
    return 0


def _main_versus_best_baseline(result, cfg) -> str | None:
    """The configured main model on test against the baseline that is best on validation."""
    from shoplake.evaluation import paired_difference, pick_champion
    from shoplake.recommend.metrics import CHAMPION_METRIC

    main = result.main_model
    baselines = {m: result.ndcg(m, split="validation") for m in result.validation if m not in (main, "mf", "sasrec")}
    best = pick_champion(baselines)
    if best is None or main not in result.metrics:
        return None
    ev = cfg.evaluation
    a, b = result.metrics[main]["all"].per_user, result.metrics[best]["all"].per_user
    diff = paired_difference(a, b, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)
    ratio = result.ndcg(main) / result.ndcg(best) if result.ndcg(best) > 0 else float("inf")
    return (f"main model {main} vs the best baseline of validation ({best}), test {CHAMPION_METRIC}: {result.ndcg(main):.4f} vs "
            f"{result.ndcg(best):.4f} = {ratio:.2f}x, difference {diff}: {diff.verdict()}")  # fmt: skip


if __name__ == "__main__":
    exit_cleanly(main)
