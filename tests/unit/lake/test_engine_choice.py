"""Engine selection and the delta-spark engine's pieces that need no jars."""

from __future__ import annotations

import pytest

from shoplake.lake import Lake
from shoplake.lake.delta_spark import replace_where


def test_auto_picks_delta_rs_without_delta_jars(make_cfg, spark):
    from shoplake.spark import delta_classes_available

    lake = Lake(make_cfg("lake.engine=auto"), spark)
    assert lake.engine.name == ("delta-spark" if delta_classes_available(spark) else "delta-rs")


def test_forcing_delta_spark_without_jars_is_a_clear_error(make_cfg, spark):
    from shoplake.spark import delta_classes_available

    if delta_classes_available(spark):
        pytest.skip("the Delta jars are present on this machine")
    with pytest.raises(RuntimeError, match="Delta Lake's classes are not on Spark's classpath"):
        _ = Lake(make_cfg("lake.engine=delta-spark"), spark).engine


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
