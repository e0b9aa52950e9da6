"""Submitted by the cluster failure test with spark-submit: overwrite a test table with generated rows.

Writes ``--rows`` rows (ids 0..rows-1) to ``ops.cluster_test_rows`` through
:class:`shoplake.lake.Lake` in one commit. Every task first leaves a marker file in
``--marker-dir`` and works ``--task-seconds`` before it yields its rows, so that the
test can kill a Spark worker while the write is under way.

Prints ``WROTE <table> v<version> <rows> rows``.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from pathlib import Path

from shoplake.entry import add_config_args, config_from_args, exit_cleanly
from shoplake.lake.spec import Col, TableSpec

SPEC = TableSpec(
    "cluster_test_rows",
    "ops",
    (Col("id", "long", nullable=False), Col("task", "int"), Col("payload", "string")),
    keys=("id",),
    description="rows written by the cluster failure test",
)


def _slow_rows(batches, *, marker_dir: str, seconds: float):
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark import TaskContext

    ctx = TaskContext.get()
    part, attempt = (ctx.partitionId(), ctx.attemptNumber()) if ctx else (0, 0)
    Path(marker_dir, f"task-{part}-attempt-{attempt}-pid-{os.getpid()}").touch()
    time.sleep(seconds)
    for batch in batches:
        ids = batch.column(0)
        payload = pc.binary_join_element_wise("row-", pc.cast(ids, pa.string()), "")
        yield pa.RecordBatch.from_arrays([ids, pa.array([part] * len(ids), pa.int32()), payload], names=["id", "task", "payload"])


def main(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.lake.catalog import register
    from shoplake.spark import get_spark

    parser = add_config_args(argparse.ArgumentParser(prog="spark_write_rows"))
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--task-seconds", type=float, default=0.0)
    parser.add_argument("--marker-dir", required=True)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    register(SPEC)
    spark = get_spark(cfg)
    task = functools.partial(_slow_rows, marker_dir=args.marker_dir, seconds=args.task_seconds)
    df = spark.range(0, args.rows, 1, args.partitions).mapInArrow(task, "id long, task int, payload string")
    result = Lake(cfg, spark).write(df, SPEC, mode="overwrite")
    print(f"WROTE {result.table} v{result.version} {result.rows} rows")
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
