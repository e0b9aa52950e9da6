"""shoplake profile-tables (ray_apps/profile_tables.py): row and null counts per run date and column, into ops.table_profiles."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from shoplake.monitor.profile import count_batch

D1, D2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)


def test_count_batch_groups_by_run_date():
    batch = pa.table({"run_date": pa.array([D1, D1, D2], pa.date32()), "a": [1, None, None], "b": ["x", "y", None]})
    got = {(r["run_date"], r["column_name"]): (r["rows"], r["nulls"]) for r in count_batch(batch, ["a", "b"]).to_pylist()}
    assert got == {(D1, "a"): (2, 1), (D1, "b"): (2, 0), (D2, "a"): (1, 1), (D2, "b"): (1, 1)}


def test_profile_app_writes_ops_table_and_replaces_on_rerun(cfg, spark, lake, ray_local):
    from pyspark.sql import functions as F

    df = spark.range(10).select(
        F.concat(F.lit("o"), F.col("id").cast("string")).alias("order_id"),
        F.lit(1).alias("line_number"),
        F.when(F.col("id") % 2 == 0, F.lit("u1")).alias("user_id"),
        F.lit("i1").alias("item_id"),
        F.lit(1).alias("quantity"),
        F.lit(1.0).alias("unit_price"),
        F.current_timestamp().alias("order_ts"),
        F.lit("placed").alias("status"),
        F.lit(None).cast("string").alias("country"),
        F.lit("f.csv").alias("_source_file"),
        F.col("id").alias("_row_number"),
        F.current_timestamp().alias("_ingested_at"),
        F.when(F.col("id") < 4, F.lit(D1)).otherwise(F.lit(D2)).alias("run_date"),
    )
    lake.write(df, "bronze.orders")
    from shoplake.monitor.commands import main

    argv = ["--table", "bronze.orders", "--set", f"lake.root={cfg.lake.root}"]
    assert main(argv) == 0
    assert main(argv) == 0
    profile = lake.read("ops.table_profiles")
    assert profile.count() == 2 * 12  # two run dates x twelve non-partition columns
    rows = {(r.run_date, r.column_name): (r.rows, r.nulls) for r in profile.collect()}
    assert rows[(D1, "user_id")] == (4, 2) and rows[(D2, "user_id")] == (6, 3)
    assert rows[(D2, "country")] == (6, 6)
    assert lake.version("ops.table_profiles") == 1
