"""Tables written through Spark are read by deltalake and Ray, and the reverse."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from shoplake.lake import SchemaMismatchError
from shoplake.lake.catalog import register
from shoplake.lake.spec import Col, TableSpec

SCORES = TableSpec(
    name="test_scores",
    layer="serving",
    columns=(
        Col("user_id", "string", nullable=False),
        Col("score", "double"),
        Col("scored_at", "timestamp"),
        Col("run_date", "date", nullable=False),
    ),
    keys=("user_id", "run_date"),
    partition_by=("run_date",),
)
register(SCORES)
D1, D2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)
TS = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)


def test_spark_written_table_reads_in_deltalake_and_ray(spark, lake, ray_local):
    rows = [(f"u{i}", i / 10, TS, D1) for i in range(40)]
    lake.write(spark.createDataFrame(rows, "user_id string, score double, scored_at timestamp, run_date date"), SCORES)
    arrow = DeltaTable(lake.uri(SCORES)).to_pyarrow_table()
    assert arrow.num_rows == 40
    assert arrow.schema.field("scored_at").type == pa.timestamp("us", tz="UTC")
    ds = lake.ray_read(SCORES)
    got = ds.to_pandas()
    assert len(got) == 40
    assert set(got["user_id"]) == {f"u{i}" for i in range(40)}
    assert got["scored_at"].iloc[0] == TS


def test_ray_written_table_reads_in_spark_and_deltalake(spark, lake, ray_local):
    ds = ray_local.data.from_items(
        [{"user_id": f"u{i}", "score": float(i), "scored_at": TS, "run_date": D1 if i % 2 else D2} for i in range(60)]
    ).repartition(3)
    result = lake.ray_write(ds, SCORES, mode="overwrite")
    assert (result.version, result.rows) == (0, 60)
    assert result.files >= 3  # several tasks wrote files, one commit holds them
    assert DeltaTable(lake.uri(SCORES)).version() == 0
    df = lake.read(SCORES)
    assert df.count() == 60
    assert {r.run_date: r["count"] for r in df.groupBy("run_date").count().collect()} == {D1: 30, D2: 30}
    # A re-run of one date from Ray replaces that date only.
    again = ray_local.data.from_items([{"user_id": "x", "score": 1.0, "scored_at": TS, "run_date": D1}])
    lake.ray_write(again, SCORES, mode="replace", run_dates=[D1])
    assert {r.run_date: r["count"] for r in lake.read(SCORES).groupBy("run_date").count().collect()} == {D1: 1, D2: 30}


def test_ray_write_checks_the_spec(lake, ray_local):
    ds = ray_local.data.from_items([{"user_id": "u1", "score": "high", "scored_at": TS, "run_date": D1}])
    with pytest.raises(Exception, match="column score has type string, spec says double"):
        lake.ray_write(ds, SCORES)
    assert not lake.exists(SCORES)


def test_delta_spark_engine_when_jars_are_present(make_cfg, spark):
    """Native Delta through Spark; runs wherever the Delta jars are on the classpath."""
    from shoplake.lake import Lake
    from shoplake.spark import delta_classes_available

    if not delta_classes_available(spark):
        pytest.skip("Delta Lake jars are not on Spark's classpath (Maven Central is unreachable here)")
    lake = Lake(make_cfg("lake.engine=delta-spark"), spark)
    rows = [(f"u{i}", float(i), TS, D1) for i in range(10)]
    df = spark.createDataFrame(rows, "user_id string, score double, scored_at timestamp, run_date date")
    lake.write(df, SCORES, mode="replace", run_dates=[D1])
    lake.write(df, SCORES, mode="replace", run_dates=[D1])
    assert lake.read(SCORES).count() == 10
    assert DeltaTable(lake.uri(SCORES)).to_pyarrow_table().num_rows == 10
    with pytest.raises(SchemaMismatchError):
        lake.write(df.drop("score"), SCORES)
