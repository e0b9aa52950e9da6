"""Benchmark: a further night's ingest and features under Spark settings side by side, in one session.

A synthetic shop of ``--scale`` times the configured users and items is generated
(as :mod:`scale` does) and its first ``--days`` landing days are backfilled. Then the
same further night (ingest of the next landing day, features of the morning after)
runs once to warm the JVM and ``--repeats`` times under each set of settings, the
order of the sets turned round every repeat so that neither always goes first. A
night re-run replaces what it wrote, so every run does the same work.

The sets are Spark SQL settings changed on the running session (``spark.conf.set``);
``baseline`` is the configuration as it stands. The default other set is
``small-data`` (:data:`shoplake.spark.SMALL_DATA_CONF`): no adaptive query execution, no whole-stage code generation, Delta's
log replayed in one partition and no checksum file per commit, the settings the test
suite runs with. ``--variant name:key=value,key=value`` adds sets.

It prints each set's median seconds per step, the Spark stages a night runs, and
each set's paired ratio to the baseline (median, with the lowest and highest of the
repeats).

Run::

    .venv/bin/python bench/spark_settings.py --scale 1 --days 30 --repeats 3
    .venv/bin/python bench/spark_settings.py --scale 10 --variant no-aqe:spark.sql.adaptive.enabled=false
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import time
from pathlib import Path

from scale import ensure_landing, scale_config, shop_params
from scale_measure import SparkStages
from shoplake.entry import add_config_args, exit_cleanly
from shoplake.spark import SMALL_DATA_CONF

BASELINE = "baseline"
STEPS = ("ingest", "features")


def parse_variant(value: str) -> tuple[str, dict[str, str]]:
    name, _, pairs = value.partition(":")
    settings = dict(p.split("=", 1) for p in pairs.split(",") if "=" in p)
    if not name or not settings or name == BASELINE:
        raise argparse.ArgumentTypeError(f"a variant is name:key=value[,key=value...] (not named {BASELINE}): {value!r}")
    return name, settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spark_settings", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.set_defaults(log_level="WARNING")
    parser.add_argument("--scale", type=int, default=1, help="multiple of generate.users and generate.items")
    parser.add_argument("--days", type=int, default=30, help="landing days of the backfill")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the night under each set of settings")
    parser.add_argument("--variant", type=parse_variant, action="append", default=[], help="name:key=value,... (repeatable)")
    parser.add_argument("--out", default="data/spark-settings", help="landing files and lake (relative: to the project root)")
    parser.add_argument("--keep", action="store_true", help="reuse landing files generated earlier with the same parameters")
    return parser


def apply(spark, settings: dict[str, str], defaults: dict[str, str | None]) -> None:
    """Set ``settings`` on the session and every other key of any set back to what it was."""
    for key, before in defaults.items():
        if key in settings:
            spark.conf.set(key, settings[key])
        elif before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from shoplake.entry import date_range
    from shoplake.pipeline import run_nightly
    from shoplake.spark import get_spark

    args = build_parser().parse_args(argv)
    if args.days < 1 or args.repeats < 1:
        raise SystemExit("--days and --repeats must be at least 1")
    variants = {BASELINE: {}, **dict(args.variant or [("small-data", SMALL_DATA_CONF)])}
    console = Console(file=sys.stdout, width=160)
    out = Path(args.out).expanduser()
    args.out_path = out if out.is_absolute() else Path(__file__).resolve().parents[1] / out
    cfg = scale_config(args, args.scale)
    params = shop_params(cfg, args.scale, args.days, 1)
    ensure_landing(Path(cfg.landing.root), params, args.keep, console)
    shutil.rmtree(cfg.lake.root, ignore_errors=True)
    spark = get_spark(cfg)
    stages = SparkStages(spark)
    landed = date_range(params.start, params.start + dt.timedelta(days=params.days - 1))
    start = time.perf_counter()
    run_nightly(cfg, landed[: args.days], only=set(STEPS), console=console)
    console.print(f"backfill of {args.days} days: {time.perf_counter() - start:.1f} s")
    night = [landed[args.days]]
    keys = {key for settings in variants.values() for key in settings}
    defaults = {key: spark.conf.get(key, None) for key in keys}

    def run_night() -> tuple[dict[str, float], int]:
        seconds = {}
        stages.mark()
        for step in STEPS:
            begin = time.perf_counter()
            run_nightly(cfg, night, only={step}, console=console)
            seconds[step] = time.perf_counter() - begin
        return seconds, stages.since_mark()["stages"]

    run_night()  # warms the JVM: its first night compiles and loads what later ones reuse
    runs: dict[str, list[tuple[dict[str, float], int]]] = {name: [] for name in variants}
    order = list(variants)
    for repeat in range(args.repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            apply(spark, variants[name], defaults)
            runs[name].append(run_night())
            seconds = ", ".join(f"{step} {s:.1f} s" for step, s in runs[name][-1][0].items())
            console.print(f"repeat {repeat + 1} {name}: {seconds}, {runs[name][-1][1]} stages")
    apply(spark, {}, defaults)

    table = Table(title=f"a further night at {args.scale}x ({params.users:,} users, {params.items:,} items), {args.repeats} repeats")
    for column in ("settings", *(f"{s} s" for s in STEPS), "night s", "stages", "night / baseline (low..high)"):
        table.add_column(column, justify="left" if column == "settings" else "right")
    base = [sum(s.values()) for s, _ in runs[BASELINE]]
    for name, results in runs.items():
        totals = [sum(s.values()) for s, _ in results]
        ratios = [t / b for t, b in zip(totals, base, strict=True)]
        steps = [f"{statistics.median(s[step] for s, _ in results):.1f}" for step in STEPS]
        ratio = "-" if name == BASELINE else f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}..{max(ratios):.2f})"
        table.add_row(name, *steps, f"{statistics.median(totals):.1f}", str(results[-1][1]), ratio)
    console.print(table)
    for name, settings in variants.items():
        if settings:
            console.print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
