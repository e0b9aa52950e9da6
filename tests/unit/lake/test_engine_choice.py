"""Engine selection, the Spark session's Delta jars and the delta-spark engine's pieces that need no Spark."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoplake.lake import Lake
from shoplake.lake.delta_spark import replace_where
from shoplake.spark import DELTA_EXCLUDES, DELTA_PACKAGE, session_conf


def test_auto_picks_delta_spark_where_the_classes_load(make_cfg, spark):
    from shoplake.spark import delta_classes_available

    lake = Lake(make_cfg("lake.engine=auto"), spark)
    assert lake.engine.name == ("delta-spark" if delta_classes_available(spark) else "delta-rs")


def test_the_session_asks_for_the_delta_jars_without_what_pyspark_ships(make_cfg):
    cfg = make_cfg("lake.engine=auto", "spark.packages=[org.example:extra:1.0]", "spark.ivy_dir=ivy")
    conf = session_conf(cfg, with_delta=True)
    assert conf["spark.jars.packages"] == f"{DELTA_PACKAGE},org.example:extra:1.0"
    assert "org.apache.hadoop:hadoop-client-api" in conf["spark.jars.excludes"].split(",")
    assert set(conf["spark.jars.excludes"].split(",")) == set(DELTA_EXCLUDES)
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    # A relative Ivy folder is the project's.
    assert conf["spark.jars.ivy"] == str(Path(cfg.project_root) / "ivy")
    plain = session_conf(make_cfg("lake.engine=delta-rs"), with_delta=False)
    assert "spark.jars.packages" not in plain and "spark.sql.extensions" not in plain
    # Jars the configuration already names are not asked for twice.
    given = session_conf(make_cfg(f"spark.conf.spark.jars.packages={DELTA_PACKAGE}"), with_delta=True)
    assert given["spark.jars.packages"] == DELTA_PACKAGE


FALLBACK_RUN = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from shoplake.config import load_config
from shoplake.lake import Lake
from shoplake.spark import get_spark

cfg = load_config("local", [*json.loads(sys.argv[1]), "lake.engine=auto"])
lake = Lake(cfg, get_spark(cfg))
print("RESULT " + json.dumps({"auto": lake.engine.name, "rows": lake.spark.range(3).count()}), flush=True)
"""


def test_without_the_jars_auto_falls_back_to_delta_rs(tmp_path):
    """A Delta package that cannot be fetched stands for a machine without Maven access."""
    import json
    import os
    import subprocess
    import sys

    import shoplake
    from helpers import TEST_OVERRIDES

    missing = "io.delta:delta-spark-does-not-exist_2.13:0.0.1"
    overrides = [*TEST_OVERRIDES, f"lake.root={tmp_path}/lake", f"spark.delta_package={missing}", f"spark.ivy_dir={tmp_path}/ivy"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(shoplake.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", FALLBACK_RUN, json.dumps(overrides)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])
    assert result == {"auto": "delta-rs", "rows": 3}
    assert f"Spark could not start with the Delta jars {missing}" in done.stderr


def test_forcing_delta_spark_without_the_jars_says_why(make_cfg, monkeypatch):
    import shoplake.spark as S

    def no_maven(cfg, conf):
        if "spark.jars.packages" in conf:
            raise RuntimeError("[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port number.")
        raise AssertionError("delta-spark must not start without the jars")

    monkeypatch.setattr(S, "_build", no_maven)
    monkeypatch.setattr(S, "launched_by_spark_submit", lambda: False)
    monkeypatch.setattr("pyspark.sql.SparkSession.getActiveSession", staticmethod(lambda: None))
    with pytest.raises(
        S.SparkStartError, match=r"lake.engine is delta-spark but Spark could not start with io\.delta.*JAVA_GATEWAY_EXITED"
    ):
        S.get_spark(make_cfg("lake.engine=delta-spark"))


def test_replace_where_quotes_values():
    assert replace_where({"run_date": ["2024-01-01", "2024-01-02"]}) == "CAST(`run_date` AS STRING) IN ('2024-01-01', '2024-01-02')"
    assert replace_where({"k": ["o'brien"]}) == "CAST(`k` AS STRING) IN ('o''brien')"


def test_write_modes_are_checked(lake, spark):
    df = spark.createDataFrame([("a", 1)], "k string, v long")
    with pytest.raises(ValueError, match="unknown write mode"):
        lake.write(df, "bronze.orders", mode="upsert")
    with pytest.raises(ValueError, match="needs the partition values"):
        lake.write(df, "bronze.orders", mode="replace")
    with pytest.raises(KeyError, match="unknown table 'bronze.nope'"):
        lake.write(df, "bronze.nope")
