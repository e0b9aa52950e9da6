"""The lake on S3 (a local S3-compatible server): both engines, Ray, the run manifest and recovery.

Each test gets a bucket of its own on one moto server; the endpoint and credentials are
in the environment, and the configuration refers to them as ``${ENV}`` (or leaves them
out, so that they come from the environment).
"""

from __future__ import annotations

import datetime as dt
import threading

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from shoplake.lake import Lake, LakeBatch
from shoplake.lake.catalog import register
from shoplake.lake.manifest import COMPLETE, ROLLED_BACK
from shoplake.lake.spec import Col, TableSpec

pytestmark = pytest.mark.object_storage

EVENTS = TableSpec(
    name="test_s3_events",
    layer="silver",
    columns=(
        Col("event_id", "long", nullable=False),
        Col("user_id", "string"),
        Col("amount", "double"),
        Col("run_date", "date", nullable=False),
    ),
    keys=("event_id",),
    partition_by=("run_date",),
)
FIRST = TableSpec(name="test_s3_first", layer="silver", columns=(Col("k", "long", nullable=False), Col("v", "string")), keys=("k",))
SECOND = TableSpec(name="test_s3_second", layer="gold", columns=(Col("k", "long", nullable=False), Col("v", "string")), keys=("k",))
register(EVENTS, FIRST, SECOND)
D1, D2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
STEP = "test-s3-step"

#: The store's settings as a shop's configuration writes them: references to its environment.
STORAGE_OPTIONS = (
    "lake.storage_options={AWS_ENDPOINT_URL: '${AWS_ENDPOINT_URL}', AWS_REGION: '${AWS_REGION}', "
    "AWS_ACCESS_KEY_ID: '${AWS_ACCESS_KEY_ID}', AWS_SECRET_ACCESS_KEY: '${AWS_SECRET_ACCESS_KEY}'}"
)


def s3_lake(make_cfg, root: str, spark, engine: str, *overrides: str) -> Lake:
    from shoplake.spark import delta_classes_available

    if engine == "delta-spark" and not delta_classes_available(spark):
        pytest.skip("this Spark session has no Delta jars (no access to Maven Central)")
    return Lake(make_cfg(f"lake.root={root}", f"lake.engine={engine}", *overrides), spark)


def events_df(spark, run_date: dt.date, n: int, start: int = 0):
    from pyspark.sql import functions as F

    return (
        spark.range(start, start + n, numPartitions=2)
        .withColumnRenamed("id", "event_id")
        .withColumn("user_id", F.concat(F.lit("u"), (F.col("event_id") % 7).cast("string")))
        .withColumn("amount", F.col("event_id") * 1.5)
        .withColumn("run_date", F.lit(run_date))
    )


@pytest.mark.parametrize("engine", ["delta-spark", "delta-rs"])
def test_write_replace_merge_time_travel_and_restore_on_s3(engine, make_cfg, s3_root, s3_keys, s3_spark, tmp_path):
    spark = s3_spark
    lake = s3_lake(make_cfg, s3_root, spark, engine, STORAGE_OPTIONS)
    assert lake.uri(EVENTS) == f"{s3_root}/silver/test_s3_events"

    assert lake.write(events_df(spark, D1, 40), EVENTS).version == 0
    lake.write(events_df(spark, D2, 10, start=100), EVENTS, mode="replace", run_dates=[D2])
    update = spark.createDataFrame(
        [(0, "u0", -1.0, D1), (500, "u9", 5.0, D2)], "event_id long, user_id string, amount double, run_date date"
    )
    assert lake.merge(update, EVENTS).mode == "merge"

    rows = {r.event_id: r.amount for r in lake.read(EVENTS).collect()}
    assert len(rows) == 51 and rows[0] == -1.0 and rows[500] == 5.0
    assert lake.read(EVENTS, version=0).count() == 40 and lake.read(EVENTS, version=1).count() == 50
    lake.restore(EVENTS, 1)
    assert [h["version"] for h in lake.history(EVENTS)] == [3, 2, 1, 0]
    assert lake.read(EVENTS).count() == 50 and lake.row_count(EVENTS) == 50
    assert lake.run_dates(EVENTS) == [D1, D2]

    # An ordinary Delta table in the bucket, read by delta-rs as any Delta reader would; nothing went to local disk.
    table = DeltaTable(lake.uri(EVENTS), storage_options=lake.storage_options)
    assert table.version() == 3 and table.to_pyarrow_table().num_rows == 50
    keys = s3_keys(s3_root)
    assert "silver/test_s3_events/_delta_log/00000000000000000003.json" in keys
    assert any(k.startswith("silver/test_s3_events/run_date=2024-03-02/") and k.endswith(".parquet") for k in keys)
    assert not (tmp_path / "lake").exists()


def test_ray_writes_and_reads_on_s3_with_credentials_from_the_environment_only(make_cfg, s3_root, s3_spark, ray_local, test_engine):
    # No storage options in the configuration: the endpoint and keys come from the driver's environment,
    # which the Ray workers (started before it was set) never saw.
    lake = s3_lake(make_cfg, s3_root, s3_spark, test_engine)
    assert lake.storage_options["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    items = [{"event_id": i, "user_id": f"u{i % 3}", "amount": float(i), "run_date": D1 if i % 2 else D2} for i in range(30)]
    result = lake.ray_write(ray_local.data.from_items(items).repartition(3), EVENTS, mode="overwrite")
    assert (result.version, result.rows) == (0, 30) and result.files >= 3

    got = lake.ray_read(EVENTS).to_pandas()
    assert sorted(got["event_id"]) == list(range(30))
    # Spark reads what Ray wrote, and Ray reads a replace Spark made.
    assert lake.read(EVENTS).count() == 30
    lake.write(events_df(s3_spark, D1, 4, start=100), EVENTS, mode="replace", run_dates=[D1])
    again = lake.ray_read(EVENTS).to_pandas()
    assert len(again) == 19 and set(again.loc[again["run_date"] == D1, "event_id"]) == {100, 101, 102, 103}
    # An old version through Ray (time travel).
    assert lake.ray_read(EVENTS, version=0).count() == 30


def frame(spark, tag: str, n: int = 5):
    return spark.createDataFrame([(i, f"{tag}{i}") for i in range(n)], "k long, v string")


def values(lake, spec) -> list[str]:
    return sorted(r.v for r in lake.read(spec).collect())


def test_the_run_manifest_and_recovery_on_s3(make_cfg, s3_root, s3_keys, s3_spark):
    spark = s3_spark
    lake = s3_lake(make_cfg, s3_root, spark, "delta-rs", STORAGE_OPTIONS)
    with lake.batch(step=STEP, tables=[FIRST, SECOND], run_date=D1) as batch:
        batch.write(frame(spark, "a"), FIRST)
        batch.write(frame(spark, "a"), SECOND)
    assert [(r.status, r.versions) for r in lake.manifest.runs()] == [(COMPLETE, {FIRST.full_name: 0, SECOND.full_name: 0})]

    # A run killed after committing FIRST and writing SECOND's files.
    before = set(s3_keys(s3_root))
    killed = LakeBatch(lake, STEP, [FIRST.full_name, SECOND.full_name], D1)
    killed.begin()
    killed.write(frame(spark, "x", 7), FIRST)
    killed.staged[0].commit()
    killed.write(frame(spark, "x", 7), SECOND)
    stray = [k for k in set(s3_keys(s3_root)) - before if k.startswith("gold/test_s3_second/") and k.endswith(".parquet")]
    assert stray, "the cut-short write left objects in the bucket"
    # Readers of the manifest (written with delta-rs on S3) keep seeing the complete run.
    assert lake.current_version(FIRST) == 1 and lake.version(FIRST) == 0 and values(lake, FIRST) == [f"a{i}" for i in range(5)]

    # A fresh process (a new Lake) starting the step rolls the killed run back: the restore and the
    # listing and deleting of the objects no commit references go through S3.
    again = Lake(lake.cfg, spark)
    with again.batch(step=STEP, tables=[FIRST, SECOND], run_date=D1) as batch:
        batch.write(frame(spark, "b"), FIRST)
        batch.write(frame(spark, "b"), SECOND)
    statuses = {r.run_id: r.status for r in again.manifest.runs()}
    assert statuses[killed.run_id] == ROLLED_BACK and statuses[batch.run_id] == COMPLETE
    assert [h["version"] for h in again.history(FIRST)][:2] == [3, 2]
    assert values(again, FIRST) == values(again, SECOND) == [f"b{i}" for i in range(5)]
    keys = s3_keys(s3_root)
    assert not set(stray) & set(keys)
    assert any(k.startswith("ops/runs/_delta_log/") for k in keys)


def test_concurrent_commits_to_one_table_on_s3_all_land(make_cfg, s3_root):
    # delta-rs commits to S3 with conditional writes (put if absent), so writers racing for one
    # version retry instead of overwriting each other; the storage options keep that default.
    lake = Lake(make_cfg(f"lake.root={s3_root}", "lake.engine=delta-rs", STORAGE_OPTIONS))
    uri = lake.uri(FIRST)
    write_deltalake(uri, pa.table({"k": [0], "v": ["seed"]}), storage_options=lake.storage_options)
    errors = []

    def append(i: int) -> None:
        try:
            write_deltalake(uri, pa.table({"k": [i], "v": [f"w{i}"]}), mode="append", storage_options=lake.storage_options)
        except Exception as exc:  # noqa: BLE001 - collected and shown by the assertion below
            errors.append(exc)

    writers = [threading.Thread(target=append, args=(i,)) for i in range(1, 7)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert not errors
    table = DeltaTable(uri, storage_options=lake.storage_options)
    assert table.version() == 6
    assert sorted(table.to_pyarrow_table()["k"].to_pylist()) == list(range(7))
