"""Tables written through Spark are read by deltalake and Ray, and the reverse."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable

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


DELTA_SPARK_RUN = """
import json, sys
from deltalake import DeltaTable
from pyspark.sql import functions as F
from shoplake.config import load_config
from shoplake.lake import Lake, SchemaMismatchError
from shoplake.lake.spec import Col, TableSpec
from shoplake.spark import get_spark

cfg = load_config("local", json.loads(sys.argv[1]))
spark = get_spark(cfg)
lake = Lake(cfg, spark)
spec = TableSpec(name="scores", layer="serving", columns=(Col("user_id", "string", nullable=False), Col("score", "double"),
                 Col("run_date", "date", nullable=False)), keys=("user_id", "run_date"), partition_by=("run_date",))
df = spark.createDataFrame([(f"u{i}", float(i)) for i in range(10)], "user_id string, score double").withColumn(
    "run_date", F.to_date(F.lit("2024-05-01")))
lake.write(df, spec, mode="replace", run_dates=["2024-05-01"])
lake.write(df, spec, mode="replace", run_dates=["2024-05-01"])
grown = TableSpec(name="scores", layer="serving", columns=(*spec.columns, Col("note", "string")), keys=spec.keys,
                  partition_by=spec.partition_by)
lake.merge(df.limit(2).withColumn("score", F.lit(-1.0)).withColumn("note", F.lit("fixed")), grown)
try:
    lake.write(df.drop("score"), spec)
    refused = False
except SchemaMismatchError:
    refused = True
rows = DeltaTable(lake.uri(spec)).to_pyarrow_table().to_pylist()
print("RESULT " + json.dumps({"engine": lake.engine.name, "rows": len(rows), "refused": refused,
                             "fixed": sorted(r["user_id"] for r in rows if r["note"] == "fixed"),
                             "classes": spark.sparkContext._jvm is not None}), flush=True)
spark.stop()
# deltalake's Arrow readers may abort the interpreter at exit (``terminate called ...``); the work is done.
import os
os._exit(0)
"""


def test_delta_spark_engine_with_the_jars_from_maven_central(make_cfg, tmp_path):
    """Native Delta through Spark, in a Spark of its own that fetches the Delta jars (skipped only offline)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import shoplake
    from helpers import TEST_OVERRIDES
    from shoplake.spark import DELTA_PACKAGE

    overrides = [*TEST_OVERRIDES, f"lake.root={tmp_path}/lake", f"landing.root={tmp_path}/landing", f"runs_dir={tmp_path}/runs",
                 "lake.engine=delta-spark", f"spark.conf.spark.jars.packages={DELTA_PACKAGE}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(shoplake.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", DELTA_SPARK_RUN, json.dumps(overrides)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)  # fmt: skip
    if done.returncode and ("UNRESOLVED DEPENDENCIES" in done.stderr or "not found" in done.stderr and "io.delta" in done.stderr):
        pytest.skip(f"{DELTA_PACKAGE} cannot be fetched from Maven Central here")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])
    assert result == {"engine": "delta-spark", "rows": 10, "refused": True, "fixed": ["u0", "u1"], "classes": True}
