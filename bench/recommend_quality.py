"""Benchmark: recommendation quality of every model side by side, on real and synthetic data.

For each dataset the script makes sure a lake with the features of the run date
exists (building it through the platform's own steps when it does not: ``shoplake
import`` / ``generate``, then ``shoplake nightly --no-recommend``), then runs the
recommendation run without registering anything or refitting for serving
(:func:`shoplake.recommend.train.run_recommendation`, ``register=False``,
``recommender.refit=false``) under the configured ``recommender.protocol``
(``--set recommender.protocol=leave_last_out`` or ``rolling`` for the others):
popularity, trending, item co-occurrence, item-kNN, EASE, matrix factorization and
the text-aware sequence model are fitted on the history before each validation
split and the test split, with every candidate setting tried on validation (the
settings of matrix factorization and the sequence model searched there first with
Ray Tune: ``recommender.mf_search``, ``sequence_model.search``, ``tuning.*``), and
rank the whole catalogue against the held-out purchases. It prints per dataset the
metrics table (NDCG@10 with its bootstrap interval over users, validation and test,
all items and the cold-item slice), the settings validation chose, the champion
(the simplest model within noise of the best on validation) on test against the next model of validation, and the
champion and the main model each on test against the best baseline: the ratio,
the paired difference with its interval and the verdict (win, loss or within noise).

Datasets:

* ``online-retail``: the UCI Online Retail import (customers x stock codes,
  2010-12-01 .. 2011-12-09; run date 2011-12-10), lake under ``data/lake-online-retail``;
* ``synthetic``: the demo's synthetic shop (``generate`` settings) with 2,000 users,
  lake under ``data/lake-synthetic-bench``.

Run::

    .venv/bin/python bench/recommend_quality.py                      # both datasets, the configured protocol
    .venv/bin/python bench/recommend_quality.py --set recommender.protocol=leave_last_out
    .venv/bin/python bench/recommend_quality.py --dataset online-retail --set sequence_model.epochs=30
    .venv/bin/python bench/recommend_quality.py --dataset online-retail --run-date 2011-11-26   # an earlier window

Building the Online Retail lake the first time takes about 3 minutes; the
recommendation run itself several minutes per dataset on 2 cores.
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
        console.print(f"\n[bold]{name}[/bold]: run date {run_date}, {dcfg.recommender.protocol}, {seconds:.0f} s")
        rows = metrics_rows(result, dt.datetime.now(dt.timezone.utc))
        console.print(metrics_table(rows, result.main_model))
        # Printed with each dataset's table, so that a long run's first figures are complete before the next starts.
        _print_summary(console, name, result, cfg)
    return 0


def _print_summary(console, name: str, result, cfg) -> None:
    """The champion against the next model of validation, the chosen settings, the searches and the best-baseline lines."""
    console.print("champion (recommender.champion_rule on validation) against the next on validation, on test:")
    console.print(f"  {name}: {result.versus_line() or f'{result.champion} (no validation window)'}")
    if result.versus is not None:
        other = result.versus[0]
        console.print(f"    ratio {_ratio(result.ndcg(result.champion), result.ndcg(other))}")
    if result.margins:
        console.print(
            "    validation NDCG@10 minus the best's, paired over users: "
            + ", ".join(f"{kind} {margin} {margin.verdict()}" for kind, margin in result.margins.items())
        )
    if result.tuned:
        console.print(f"    settings chosen on validation: {', '.join(f'{k} {_shown(v)}' for k, v in result.tuned.items())}")
    for kind, searched in result.searches.items():
        best = searched.best
        console.print(f"    {kind} search: {len(searched.trials)} trials ({searched.stopped_early} stopped early by ASHA) in "
                      f"{searched.seconds:.0f} s, best validation {searched.metric} {best.best_score:.4f} at epoch "
                      f"{best.best_iteration}")  # fmt: skip
    for line in _versus_best_baseline(result, cfg):
        console.print(f"    {line}")


def _shown(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "inf"


def _versus_best_baseline(result, cfg) -> list[str]:
    """The champion, and the main model, on test against the best baseline (every model but the main one).

    The champion is compared with the best baseline on test (the bar it has to clear;
    test chooses nothing here, it only names the strongest opponent), the main model
    with the baseline that is best on validation.
    """
    from shoplake.evaluation import paired_difference, pick_champion
    from shoplake.recommend.metrics import CHAMPION_METRIC

    main, ev = result.main_model, cfg.evaluation
    baselines = [m for m in result.metrics if m != main]

    def versus(model: str, other: str, label: str) -> str:
        a, b = result.metrics[model]["all"].per_user, result.metrics[other]["all"].per_user
        diff = paired_difference(a, b, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)
        return (f"{label} {model} vs {other}, test {CHAMPION_METRIC}: {result.ndcg(model):.4f} vs {result.ndcg(other):.4f} = "
                f"{_ratio(result.ndcg(model), result.ndcg(other))}, difference {diff}: {diff.verdict()}")  # fmt: skip

    lines = []
    best_on_test = pick_champion({m: result.ndcg(m) for m in baselines if m != result.champion})
    if best_on_test is not None and result.champion in result.metrics:
        lines.append(versus(result.champion, best_on_test, "champion"))
    best_on_validation = pick_champion({m: result.ndcg(m, split="validation") for m in baselines if m in result.validation})
    if main in result.metrics and best_on_validation is not None and main != result.champion:
        lines.append(versus(main, best_on_validation, "main model"))
    return lines


if __name__ == "__main__":
    exit_cleanly(main)
