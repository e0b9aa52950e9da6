"""Benchmark: writing a Spark DataFrame through the lake's two Delta engines vs plain Parquet.

What it measures, for each size, in one run and one Spark session (which has the
Delta jars):

* **parquet**: ``df.write.mode("overwrite").partitionBy("run_date").parquet(path)``,
  Spark's own writer and the baseline;
* **delta-rs**: ``Lake.write(df, spec, mode="overwrite")`` with ``lake.engine=delta-rs``:
  Spark tasks write the Parquet files through ``mapInArrow`` and the driver makes
  one Delta commit with deltalake;
* **delta-spark**: the same call with ``lake.engine=delta-spark``: Spark's native
  ``format("delta")`` writer (skipped, with a note, where the jars cannot be had).

All write the same cached DataFrame, an order-lines-like table (strings, longs,
doubles, a timestamp and a ``run_date`` date partition spread over a few days),
generated with ``spark.range`` and cached and counted before any timing, so data
generation is not measured. One untimed warm-up write of each kind runs first (JVM
JIT, Python workers). Each write is timed ``--repeats`` times, the writers taking
turns in a rotating order, and the best time is kept; each ratio is the engine's
rows/s divided by plain Parquet's (1.0 = as fast, below 1 = slower). After every
Delta write the table is checked: its row count (from the Delta log) must equal the
size and the write must be one commit (version 0 of a fresh table); anything else
fails the run.

Run::

    make bench
    .venv/bin/python bench/lake_write.py --sizes 100000,1000000,10000000 --repeats 2
    .venv/bin/python bench/lake_write.py --sizes 200000 --set spark.master=local[4]

Outputs go to a temporary folder that is deleted afterwards, unless ``--out`` names
one (it is then left in place). Spark's master comes from the configuration
(``local[2]`` in ``lib/shoplake/conf/local.yaml``).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from shoplake import columns as C
from shoplake.entry import add_config_args, config_from_args, exit_cleanly
from shoplake.lake.spec import Col, TableSpec

log = logging.getLogger("bench.lake_write")

BENCH_SPEC = TableSpec(
    name="bench_order_lines",
    layer="silver",
    columns=(
        Col(C.ORDER_ID, "string", False, "Order id."),
        Col(C.LINE_NUMBER, "long", False, "1-based line within the order."),
        Col(C.USER_ID, "string", True, "Buyer."),
        Col(C.ITEM_ID, "string", True, "Item bought."),
        Col(C.QUANTITY, "long", True, "Units."),
        Col(C.UNIT_PRICE, "double", True, "Price of one unit."),
        Col("amount", "double", True, "quantity * unit_price."),
        Col(C.STATUS, "string", True, "Line status."),
        Col("ordered_at", "timestamp", True, "When the order was placed, UTC."),
        Col(C.RUN_DATE, "date", False, "Partition: the day of the order."),
    ),
    keys=(C.ORDER_ID, C.LINE_NUMBER),
    partition_by=(C.RUN_DATE,),
    description="Benchmark only: synthetic order lines written by bench/lake_write.py.",
)

FIRST_DATE = "2024-03-01"
WARMUP_ROWS = 20_000


def parse_sizes(value: str) -> list[int]:
    try:
        sizes = [int(s.strip().replace("_", "")) for s in value.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers: {value!r}") from None
    if not sizes or any(n <= 0 for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive integers: {value!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lake_write", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("100000,1000000,10000000"), help="rows per run, comma-separated")
    parser.add_argument("--repeats", type=int, default=2, help="timed writes of each kind per size (best is kept)")
    parser.add_argument("--dates", type=int, default=5, help="distinct run_date partitions in the data")
    parser.add_argument("--partitions", type=int, default=None, help="Spark partitions of the data (default: Spark's default parallelism)")
    parser.add_argument("--out", default=None, help="folder for the written data (default: a temporary folder, deleted afterwards)")
    return parser


def make_data(spark, rows: int, dates: int, partitions: int):
    """An order-lines-like DataFrame of ``rows`` rows, cached and materialised."""
    from pyspark.sql import functions as F

    df = spark.range(0, rows, 1, partitions).select(
        F.concat(F.lit("O"), F.lpad((F.col("id") / 3).cast("long").cast("string"), 10, "0")).alias(C.ORDER_ID),
        (F.col("id") % 3 + 1).alias(C.LINE_NUMBER),
        F.concat(F.lit("U"), F.pmod(F.hash("id", F.lit(1)), F.lit(50_000)).cast("string")).alias(C.USER_ID),
        F.concat(F.lit("I"), F.pmod(F.hash("id", F.lit(2)), F.lit(5_000)).cast("string")).alias(C.ITEM_ID),
        (F.pmod(F.hash("id", F.lit(3)), F.lit(5)) + 1).cast("long").alias(C.QUANTITY),
        F.round(F.pmod(F.hash("id", F.lit(4)), F.lit(100_000)) / 100.0 + 0.99, 2).alias(C.UNIT_PRICE),
        F.element_at(
            F.array(*[F.lit(s) for s in ("placed", "paid", "shipped", "delivered", "returned")]),
            (F.pmod(F.hash("id", F.lit(5)), F.lit(5)) + 1).cast("int"),
        ).alias(C.STATUS),
        F.date_add(F.lit(FIRST_DATE).cast("date"), (F.col("id") % dates).cast("int")).alias(C.RUN_DATE),
        F.pmod(F.hash("id", F.lit(6)), F.lit(86_400)).alias("_second"),
    )
    df = df.select(
        *[c for c in df.columns if c not in ("_second", C.RUN_DATE)],
        F.round(F.col(C.QUANTITY) * F.col(C.UNIT_PRICE), 2).alias("amount"),
        F.timestamp_seconds(F.unix_date(C.RUN_DATE).cast("long") * 86_400 + F.col("_second")).alias("ordered_at"),
        C.RUN_DATE,
    ).select(*BENCH_SPEC.column_names)
    df = df.cache()
    counted = df.count()
    if counted != rows:
        raise RuntimeError(f"generated {counted} rows, expected {rows}")
    return df


def write_parquet(df, path: str) -> float:
    start = time.perf_counter()
    df.write.mode("overwrite").partitionBy(C.RUN_DATE).parquet(path)
    return time.perf_counter() - start


def write_delta(cfg, spark, df, root: str, rows: int, engine: str) -> float:
    """Write through the lake with ``engine`` into a fresh table under ``root``; check rows and commits."""
    from shoplake.lake import Lake

    lake = Lake(cfg.model_copy(update={"lake": cfg.lake.model_copy(update={"root": root, "engine": engine})}), spark)
    if lake.exists(BENCH_SPEC):
        raise RuntimeError(f"{lake.uri(BENCH_SPEC)} already holds a table; the benchmark needs a fresh path")
    start = time.perf_counter()
    result = lake.write(df, BENCH_SPEC, mode="overwrite")
    elapsed = time.perf_counter() - start
    counted = lake.row_count(BENCH_SPEC)
    version = lake.version(BENCH_SPEC)
    problems = []
    if counted != rows:
        problems.append(f"the Delta log counts {counted} rows")
    if result.rows != rows:
        problems.append(f"the write reported {result.rows} rows")
    if result.version != 0 or version != 0:
        problems.append(f"the write made version {result.version} and the table is at version {version} (expected one commit, version 0)")
    if problems:
        raise RuntimeError(f"delta write of {rows} rows to {lake.uri(BENCH_SPEC)} is wrong: " + "; ".join(problems))
    log.info("delta %d rows: %.2f s, v%d, %d files (%s engine)", rows, elapsed, result.version, result.files, lake.engine.name)
    return elapsed


#: The writers compared, the baseline first.
PARQUET, DELTA_RS, DELTA_SPARK = "parquet", "delta-rs", "delta-spark"


@dataclass
class SizeResult:
    rows: int
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def best(self, kind: str) -> float | None:
        times = self.seconds.get(kind)
        return min(times) if times else None


def results_table(results: list[SizeResult], kinds: list[str], title: str):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("rows", justify="right")
    for kind in kinds:
        table.add_column(f"{kind} s", justify="right")
        table.add_column(f"{kind} rows/s", justify="right")
        if kind != PARQUET:
            table.add_column(f"{kind} ratio", justify="right")
    for r in results:
        base = r.rows / r.best(PARQUET)
        cells = [f"{r.rows:,}"]
        for kind in kinds:
            best = r.best(kind)
            cells += [f"{best:.2f}", f"{r.rows / best:,.0f}"]
            if kind != PARQUET:
                cells.append(f"{r.rows / best / base:.2f}x")
        table.add_row(*cells)
    return table


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from shoplake.lake.catalog import register
    from shoplake.spark import delta_classes_available, get_spark

    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    if args.dates < 1:
        raise SystemExit("--dates must be at least 1")
    cfg = config_from_args(args)
    register(BENCH_SPEC)

    spark = get_spark(cfg)
    kinds = [PARQUET, DELTA_RS]
    if delta_classes_available(spark):
        kinds.append(DELTA_SPARK)
    else:
        log.warning("this Spark session has no Delta jars: delta-spark is left out")
    partitions = args.partitions or spark.sparkContext.defaultParallelism
    own_out = args.out is None
    out = Path(tempfile.mkdtemp(prefix="shoplake-bench-") if own_out else args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: list[SizeResult] = []

    def write(kind: str, df, folder: Path, rows: int) -> float:
        if kind == PARQUET:
            return write_parquet(df, str(folder / "parquet"))
        return write_delta(cfg, spark, df, str(folder / kind), rows, kind)

    try:
        log.info("warm-up (%d rows, untimed)", WARMUP_ROWS)
        warm = make_data(spark, WARMUP_ROWS, args.dates, partitions)
        for kind in kinds:
            write(kind, warm, out / "warmup", WARMUP_ROWS)
        warm.unpersist(blocking=True)
        shutil.rmtree(out / "warmup", ignore_errors=True)

        for rows in args.sizes:
            df = make_data(spark, rows, args.dates, partitions)
            result = SizeResult(rows)
            for rep in range(args.repeats):
                run_dir = out / f"{rows}" / f"r{rep}"
                # Rotate which writer goes first so that none always gets the quieter slot.
                for kind in kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]:
                    result.seconds.setdefault(kind, []).append(write(kind, df, run_dir, rows))
                    log.info("%s %d rows: %.2f s", kind, rows, result.seconds[kind][-1])
                if own_out:
                    shutil.rmtree(run_dir, ignore_errors=True)
            df.unpersist(blocking=True)
            results.append(result)
            log.info("%d rows: %s", rows, ", ".join(f"{k} median {statistics.median(result.seconds[k]):.2f} s" for k in kinds))
    finally:
        if own_out:
            shutil.rmtree(out, ignore_errors=True)

    console = Console(file=sys.stdout, width=200)
    console.print(
        f"Spark {spark.version} {spark.sparkContext.master}, {partitions} data partitions, {args.dates} run dates, "
        f"best of {args.repeats}; ratio = the engine's rows/s / plain Parquet's rows/s",
        soft_wrap=True,
    )
    console.print(results_table(results, kinds, "lake write: Lake.write on each Delta engine vs df.write.parquet"))
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
