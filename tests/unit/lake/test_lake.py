"""The lake on each engine: write modes, atomicity, idempotence, schema checks, time travel."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from shoplake.lake import SchemaMismatchError
from shoplake.lake.catalog import register
from shoplake.lake.spec import Col, TableSpec

EVENTS = TableSpec(
    name="test_events",
    layer="silver",
    columns=(
        Col("event_id", "long", nullable=False),
        Col("user_id", "string"),
        Col("amount", "double"),
        Col("event_ts", "timestamp"),
        Col("run_date", "date", nullable=False),
    ),
    keys=("event_id",),
    partition_by=("run_date",),
    description="test table",
)
PLAIN = TableSpec(
    name="test_plain",
    layer="gold",
    columns=(Col("k", "string", nullable=False), Col("v", "long")),
    keys=("k",),
)
register(EVENTS, PLAIN)

D1, D2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)


def events_df(spark, run_date: dt.date, n: int = 50, start: int = 0, partitions: int = 2):
    from pyspark.sql import functions as F

    return (
        spark.range(start, start + n, numPartitions=partitions)
        .withColumnRenamed("id", "event_id")
        .withColumn("user_id", F.concat(F.lit("u"), (F.col("event_id") % 7).cast("string")))
        .withColumn("amount", F.col("event_id") * 1.5)
        .withColumn("event_ts", F.lit(dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.timezone.utc)))
        .withColumn("run_date", F.lit(run_date))
    )


def test_overwrite_creates_one_commit_from_several_tasks(spark, lake):
    result = lake.write(events_df(spark, D1, 1000, partitions=4), EVENTS, mode="overwrite")
    assert (result.version, result.rows) == (0, 1000)
    # Four tasks wrote files, yet the log has a single commit that adds all of them.
    assert result.files == 4
    table = DeltaTable(lake.uri(EVENTS))
    assert table.version() == 0
    assert len(table.file_uris()) == 4
    assert table.to_pyarrow_table().num_rows == 1000
    assert table.metadata().partition_columns == ["run_date"]


def test_append_adds_and_overwrite_replaces(spark, lake):
    lake.write(events_df(spark, D1, 10), EVENTS, mode="overwrite")
    lake.write(events_df(spark, D2, 5, start=100), EVENTS, mode="append")
    assert lake.read(EVENTS).count() == 15
    lake.write(events_df(spark, D2, 3, start=200), EVENTS, mode="overwrite")
    assert sorted(r.event_id for r in lake.read(EVENTS).collect()) == [200, 201, 202]
    assert lake.version(EVENTS) == 2


def test_replace_run_date_is_idempotent_and_keeps_other_dates(spark, lake):
    lake.write(events_df(spark, D1, 10), EVENTS, mode="replace", run_dates=[D1])
    lake.write(events_df(spark, D2, 20, start=100), EVENTS, mode="replace", run_dates=[D2])
    for _ in range(2):
        lake.write(events_df(spark, D2, 20, start=100), EVENTS, mode="replace", run_dates=[D2])
    counts = {r.run_date: r["count"] for r in lake.read(EVENTS).groupBy("run_date").count().collect()}
    assert counts == {D1: 10, D2: 20}


def test_replace_refuses_rows_outside_the_replaced_dates(spark, lake):
    lake.write(events_df(spark, D1, 10), EVENTS, mode="replace", run_dates=[D1])
    with pytest.raises(Exception, match="outside the partitions being replaced"):
        lake.write(events_df(spark, D2, 10), EVENTS, mode="replace", run_dates=[D1])
    assert lake.version(EVENTS) == 0
    assert lake.read(EVENTS).count() == 10


def test_failed_write_leaves_previous_version_and_no_stray_files(spark, lake):
    from pyspark.sql import functions as F

    lake.write(events_df(spark, D1, 100), EVENTS, mode="overwrite")
    files_before = sorted(p.name for p in Path(lake.uri(EVENTS)).rglob("*.parquet"))
    # One task succeeds and writes its files, another fails half-way through the job.
    boom = F.udf(lambda i: i if i < 150 else int("not a number"), "long")
    bad = events_df(spark, D2, 100, start=100, partitions=2).withColumn("event_id", boom("event_id"))
    with pytest.raises(Exception):  # noqa: B017 - a Py4J or a Python error, whichever side fails first
        lake.write(bad, EVENTS, mode="overwrite")
    assert lake.version(EVENTS) == 0
    assert lake.read(EVENTS).count() == 100
    assert sorted(p.name for p in Path(lake.uri(EVENTS)).rglob("*.parquet")) == files_before


def test_missing_and_mistyped_columns_name_table_and_column(spark, lake):
    df = events_df(spark, D1, 5)
    with pytest.raises(SchemaMismatchError, match=r"silver\.test_events.*missing column\(s\) amount"):
        lake.write(df.drop("amount"), EVENTS)
    with pytest.raises(SchemaMismatchError, match=r"silver\.test_events: column user_id has type bigint, spec says string"):
        lake.write(df.withColumn("user_id", df.event_id), EVENTS)
    assert not lake.exists(EVENTS)


def test_int_widens_to_long_and_extra_columns_are_dropped(spark, lake):
    from pyspark.sql import functions as F

    df = events_df(spark, D1, 5).withColumn("event_id", F.col("event_id").cast("int")).withColumn("extra", F.lit(1))
    lake.write(df, EVENTS)
    assert lake.read(EVENTS).columns == EVENTS.column_names
    assert dict(lake.read(EVENTS).dtypes)["event_id"] == "bigint"


def test_nulls_in_a_non_nullable_column_are_refused(spark, lake):
    from pyspark.sql import functions as F

    df = events_df(spark, D1, 5).withColumn("event_id", F.when(F.col("event_id") > 2, F.col("event_id")))
    with pytest.raises(Exception, match="event_id is not nullable"):
        lake.write(df, EVENTS)
    assert not lake.exists(EVENTS)


def test_time_travel_reads_each_version(spark, lake):
    lake.write(events_df(spark, D1, 10), EVENTS)
    lake.write(events_df(spark, D1, 30), EVENTS)
    assert lake.read(EVENTS, version=0).count() == 10
    assert lake.read(EVENTS, version=1).count() == 30
    assert lake.read(EVENTS).count() == 30
    history = lake.history(EVENTS)
    assert [h["version"] for h in history] == [1, 0]
    assert history[0]["shoplake.rows"] == "30"


def test_merge_updates_matching_keys_and_inserts_new_ones(spark, lake):
    lake.write(spark.createDataFrame([("a", 1), ("b", 2)], "k string, v long"), PLAIN)
    result = lake.merge(spark.createDataFrame([("b", 20), ("c", 30)], "k string, v long"), PLAIN)
    assert result.mode == "merge"
    assert sorted(tuple(r) for r in lake.read(PLAIN).collect()) == [("a", 1), ("b", 20), ("c", 30)]


def test_merge_rewrites_only_the_partitions_it_touches(spark, lake):
    lake.write(events_df(spark, D1, 10), EVENTS, mode="replace", run_dates=[D1])
    lake.write(events_df(spark, D2, 10, start=100), EVENTS, mode="replace", run_dates=[D2])
    d1_files = set(DeltaTable(lake.uri(EVENTS)).file_uris([("run_date", "=", D1.isoformat())]))
    update = events_df(spark, D2, 3, start=108)  # 108, 109 exist; 110 is new
    lake.merge(update, EVENTS)
    assert set(DeltaTable(lake.uri(EVENTS)).file_uris([("run_date", "=", D1.isoformat())])) == d1_files
    assert lake.read(EVENTS).where(f"run_date = '{D2}'").count() == 11


def test_merge_refuses_duplicate_source_keys(spark, lake):
    lake.write(spark.createDataFrame([("a", 1)], "k string, v long"), PLAIN)
    with pytest.raises(ValueError, match="several rows for key"):
        lake.merge(spark.createDataFrame([("b", 1), ("b", 2)], "k string, v long"), PLAIN)


def test_batch_commits_all_or_nothing(spark, lake):
    lake.write(spark.createDataFrame([("a", 1)], "k string, v long"), PLAIN)
    files = set(Path(lake.uri(PLAIN)).rglob("*.parquet"))
    with pytest.raises(SchemaMismatchError):
        with lake.batch() as batch:
            batch.write(spark.createDataFrame([("z", 9)], "k string, v long"), PLAIN)
            batch.write(events_df(spark, D1, 5).drop("amount"), EVENTS)
    assert lake.version(PLAIN) == 0
    assert [tuple(r) for r in lake.read(PLAIN).collect()] == [("a", 1)]
    assert not lake.exists(EVENTS)
    assert set(Path(lake.uri(PLAIN)).rglob("*.parquet")) == files


def test_stats_let_readers_skip_files(spark, lake):
    lake.write(events_df(spark, D1, 100, partitions=4), EVENTS)
    table = DeltaTable(lake.uri(EVENTS))
    actions = pa.table(table.get_add_actions(flatten=True))
    assert sum(actions["num_records"].to_pylist()) == 100
    assert min(actions["min.event_id"].to_pylist()) == 0
    assert max(actions["max.event_id"].to_pylist()) == 99
    hits = table.to_pyarrow_table(filters=[("event_id", ">=", 98)])
    assert sorted(hits["event_id"].to_pylist()) == [98, 99]


def test_a_spec_that_gained_a_nullable_column_adds_it_to_the_table(spark, lake):
    from pyspark.sql import functions as F

    v1 = TableSpec(name="test_grown", layer="gold", columns=(Col("k", "string", nullable=False), Col("v", "long")), keys=("k",))
    v2 = TableSpec(name="test_grown", layer="gold", columns=(*v1.columns, Col("w", "boolean")), keys=("k",))
    lake.write(spark.createDataFrame([("a", 1)], "k string, v long"), v1)
    lake.write(spark.createDataFrame([("b", 2)], "k string, v long").withColumn("w", F.lit(True)), v2, mode="append")
    assert [f.name for f in DeltaTable(lake.uri(v2)).schema().fields] == ["k", "v", "w"]
    assert sorted(lake.to_arrow(v2).to_pylist(), key=lambda r: r["k"]) == [{"k": "a", "v": 1, "w": None}, {"k": "b", "v": 2, "w": True}]
    # A column that is never null cannot appear in rows written before it existed.
    v3 = TableSpec(name="test_grown", layer="gold", columns=(*v2.columns, Col("x", "long", nullable=False)), keys=("k",))
    with pytest.raises(SchemaMismatchError, match=r"gold\.test_grown .* lacks column\(s\) x"):
        lake.write(spark.createDataFrame([("c", 3, False, 1)], "k string, v long, w boolean, x long"), v3, mode="append")
    assert lake.version(v2) == 2
