"""The delta-spark engine: Spark's native Delta Lake source (``format("delta")``).

Used where the Delta jars are on Spark's classpath (``--packages
io.delta:delta-spark_2.13:<version>``, Databricks, EMR). Each write is one Delta
commit made by Spark itself; a partition replace uses ``replaceWhere``.
"""

from __future__ import annotations

import logging

from shoplake.lake.base import StagedWrite, WriteResult, check_mode
from shoplake.lake.checks import conform_spark
from shoplake.lake.delta_rs import remove_table
from shoplake.lake.spec import TableSpec

log = logging.getLogger(__name__)


def replace_where(partitions: dict[str, list[str]]) -> str:
    """SQL predicate selecting the given partition values (``replaceWhere``)."""
    clauses = []
    for col, values in partitions.items():
        quoted = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
        clauses.append(f"CAST(`{col}` AS STRING) IN ({quoted})")
    return " AND ".join(clauses)


class DeltaSparkEngine:
    """Reads and writes Delta tables through Spark's Delta data source."""

    name = "delta-spark"

    def __init__(self, spark):
        self.spark = spark

    def _table(self, uri: str):
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, uri)

    def version(self, uri: str) -> int | None:
        from delta.tables import DeltaTable

        if not DeltaTable.isDeltaTable(self.spark, uri):
            return None
        return int(self._table(uri).history(1).collect()[0]["version"])

    def read(self, uri: str, spec: TableSpec, version: int | None = None):
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(uri).select(*spec.column_names)

    def _result(self, uri: str, spec: TableSpec, mode: str) -> WriteResult:
        last = self._table(uri).history(1).collect()[0]
        metrics = last["operationMetrics"] or {}
        rows = int(metrics.get("numOutputRows", 0) or 0)
        files = int(metrics.get("numFiles", metrics.get("numAddedFiles", 0)) or 0)
        log.info("wrote %s v%d: %d rows in %d files (%s)", spec.full_name, last["version"], rows, files, mode)
        return WriteResult(spec.full_name, int(last["version"]), rows, files, mode)

    def stage(self, df, uri: str, spec: TableSpec, mode: str, partitions: dict[str, list[str]] | None = None) -> StagedWrite:
        check_mode(mode, partitions, spec.full_name, spec.partition_by)
        df = conform_spark(df, spec)
        previous = self.version(uri)
        writer = df.write.format("delta").mode("append" if mode == "append" else "overwrite")
        if spec.partition_by:
            writer = writer.partitionBy(*spec.partition_by)
        if mode == "replace":
            writer = writer.option("replaceWhere", replace_where(partitions))
        if spec.description and previous is None:
            writer = writer.option("description", spec.description)
        writer.save(uri)
        result = self._result(uri, spec, mode)

        def rollback() -> None:
            if previous is None:
                remove_table(uri)
            else:
                self.restore(uri, previous)

        return StagedWrite(spec.full_name, lambda: result, rollback, committed=True)

    def merge(self, df, uri: str, spec: TableSpec, keys: tuple[str, ...]) -> WriteResult:
        df = conform_spark(df, spec)
        if self.version(uri) is None:
            return self.stage(df, uri, spec, "overwrite").commit()
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        self._table(uri).alias("t").merge(df.alias("s"), condition).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
        result = self._result(uri, spec, "merge")
        return result

    def restore(self, uri: str, version: int) -> None:
        self._table(uri).restoreToVersion(version)
