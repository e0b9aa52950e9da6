"""Tables written by each engine are read by the other, by deltalake, Polars and Ray, and need no feature delta-rs lacks."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

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


def test_a_ray_job_grows_and_writes_a_table_without_spark(spark, lake, cfg, ray_local):
    from shoplake.lake import Lake

    lake.write(spark.createDataFrame([("u0", 0.5, TS, D1)], "user_id string, score double, scored_at timestamp, run_date date"), SCORES)
    grown = TableSpec(name=SCORES.name, layer=SCORES.layer, columns=(*SCORES.columns, Col("reason", "string")),
                      keys=SCORES.keys, partition_by=SCORES.partition_by)  # fmt: skip
    # As in a Ray job: a lake without a Spark session, whose engine is never chosen (that would start Spark).
    ray_lake = Lake(cfg)
    ds = ray_local.data.from_items([{"user_id": "u1", "score": 1.0, "scored_at": TS, "run_date": D2, "reason": "new"}])
    assert ray_lake.ray_write(ds, grown, mode="replace", run_dates=[D2]).rows == 1
    assert ray_lake._spark is None and ray_lake._engine is None
    assert sorted(lake.to_arrow(grown).to_pylist(), key=lambda r: r["user_id"]) == [
        {"user_id": "u0", "score": 0.5, "scored_at": TS, "run_date": D1, "reason": None},
        {"user_id": "u1", "score": 1.0, "scored_at": TS, "run_date": D2, "reason": "new"},
    ]


def test_ray_write_checks_the_spec(lake, ray_local):
    ds = ray_local.data.from_items([{"user_id": "u1", "score": "high", "scored_at": TS, "run_date": D1}])
    with pytest.raises(Exception, match="column score has type string, spec says double"):
        lake.ray_write(ds, SCORES)
    assert not lake.exists(SCORES)


#: Reader and writer features of Delta's protocol that delta-rs 1.6 reads and writes.
DELTA_RS_READER_FEATURES = {"timestampNtz", "columnMapping", "deletionVectors", "v2Checkpoint"}
DELTA_RS_WRITER_FEATURES = {"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns", "timestampNtz",
                            "columnMapping", "deletionVectors", "v2Checkpoint", "identityColumns"}  # fmt: skip


@pytest.fixture
def both_engines(make_cfg, spark):
    from shoplake.lake import Lake
    from shoplake.spark import delta_classes_available

    if not delta_classes_available(spark):
        pytest.skip("this Spark session has no Delta jars")
    return {name: Lake(make_cfg(f"lake.engine={name}"), spark) for name in ("delta-spark", "delta-rs")}


@pytest.mark.parametrize("writer, reader", [("delta-spark", "delta-rs"), ("delta-rs", "delta-spark")])
def test_each_engine_reads_what_the_other_wrote(spark, both_engines, writer, reader):
    import polars as pl

    w, r = both_engines[writer], both_engines[reader]
    assert (w.engine.name, r.engine.name) == (writer, reader)
    first = spark.createDataFrame(
        [(f"u{i}", float(i), TS, D1) for i in range(20)], "user_id string, score double, scored_at timestamp, run_date date"
    )
    w.write(first, SCORES, mode="replace", run_dates=[D1])
    # The other engine replaces one date, merges and time-travels on the same table.
    r.write(first.limit(5).withColumn("run_date", F.lit(D2)), SCORES, mode="replace", run_dates=[D2])
    r.merge(spark.createDataFrame([("u1", -1.0, TS, D1)], "user_id string, score double, scored_at timestamp, run_date date"), SCORES)
    assert r.read(SCORES).count() == 25 and w.read(SCORES, version=0).count() == 20
    assert {x.user_id: x.score for x in w.read(SCORES).where(F.col("run_date") == D1).collect()}["u1"] == -1.0
    # Outside readers: deltalake, Polars.
    assert DeltaTable(w.uri(SCORES)).to_pyarrow_table().num_rows == 25
    assert pl.read_delta(w.uri(SCORES)).filter(pl.col("user_id") == "u1").sort("run_date")["score"].to_list() == [-1.0, 1.0]
    # The history reads the same through both engines.
    assert [h["version"] for h in w.history(SCORES)] == [h["version"] for h in r.history(SCORES)] == [2, 1, 0]
    r.restore(SCORES, 0)
    assert w.read(SCORES).count() == 20


@pytest.mark.parametrize("engine", ["delta-spark", "delta-rs"])
def test_tables_need_no_feature_delta_rs_lacks(spark, both_engines, engine):
    lake = both_engines[engine]
    df = spark.createDataFrame(
        [(f"u{i}", float(i), TS, D1) for i in range(3)], "user_id string, score double, scored_at timestamp, run_date date"
    )
    lake.write(df, SCORES, mode="replace", run_dates=[D1])
    lake.merge(df.limit(1), SCORES)
    protocol = DeltaTable(lake.uri(SCORES)).protocol()
    assert set(protocol.reader_features or ()) <= DELTA_RS_READER_FEATURES, protocol
    assert set(protocol.writer_features or ()) <= DELTA_RS_WRITER_FEATURES, protocol
    assert protocol.min_reader_version <= 3 and protocol.min_writer_version <= 7
