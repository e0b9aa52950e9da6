"""The delta-spark engine: Spark's native Delta Lake source (``format("delta")``).

Used where the Delta jars are on Spark's classpath (fetched from Maven Central by
:func:`shoplake.spark.get_spark`, or given by ``--packages`` on Databricks, EMR or any
Spark cluster). Each write is one Delta commit made by Spark itself; a partition
replace uses ``replaceWhere``, an upsert ``DeltaTable.merge``, a restore
``restoreToVersion``, a grown spec ``ALTER TABLE ... ADD COLUMNS``, compaction
``OPTIMIZE``; vacuum goes through delta-rs, like the other engine's. Every commit
carries shoplake's write id and mode in its ``userMetadata``, so :meth:`history`
reads the same as the delta-rs engine's.
"""

from __future__ import annotations

import json
import logging
import re

from shoplake.lake.base import StagedWrite, WriteResult, check_mode
from shoplake.lake.checks import SchemaMismatchError, conform_spark
from shoplake.lake.delta_rs import columns_to_add, remove_table, table_version, vacuum_table
from shoplake.lake.files import new_write_id
from shoplake.lake.manifest import RUN_ID_KEY
from shoplake.lake.spec import TableSpec, spark_ddl_type
from shoplake.storage import spark_uri

log = logging.getLogger(__name__)

WRITE_ID_KEY = "shoplake.write_id"


def replace_where(partitions: dict[str, list[str]]) -> str:
    """SQL predicate selecting the given partition values (``replaceWhere``)."""
    clauses = []
    for col, values in partitions.items():
        quoted = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
        clauses.append(f"CAST(`{col}` AS STRING) IN ({quoted})")
    return " AND ".join(clauses)


_NULL_REFUSED = re.compile(r"table \S+: column \S+ is not nullable but a row is null")


def _refusing_nulls(df, spec: TableSpec):
    """Make the write itself fail on a null in a column the spec says is never null (no extra pass over the data)."""
    from pyspark.sql import functions as F

    exprs = []
    for col in spec.columns:
        if col.nullable:
            exprs.append(F.col(col.name))
        else:
            message = f"table {spec.full_name}: column {col.name} is not nullable but a row is null"
            exprs.append(F.when(F.col(col.name).isNull(), F.raise_error(F.lit(message))).otherwise(F.col(col.name)).alias(col.name))
    return df.select(*exprs)


def _quoted_path(uri: str) -> str:
    return "delta.`" + uri.replace("`", "``") + "`"


class DeltaSparkEngine:
    """Reads and writes Delta tables through Spark's Delta data source.

    Table URIs are the lake's (``s3://...``); Spark is handed them as its Hadoop file
    systems know them (``s3a://...``, :func:`shoplake.storage.spark_uri`), and the
    log reads made with delta-rs get ``storage_options``.
    """

    name = "delta-spark"

    def __init__(self, spark, storage_options: dict[str, str] | None = None):
        self.spark = spark
        self.storage_options = storage_options or None

    def _table(self, uri: str):
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, spark_uri(uri))

    def version(self, uri: str) -> int | None:
        # The log's newest version, read without a Spark job.
        return table_version(uri, self.storage_options)

    def read(self, uri: str, spec: TableSpec, version: int | None = None):
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(spark_uri(uri)).select(*spec.column_names)

    def _result(self, uri: str, spec: TableSpec, mode: str) -> WriteResult:
        from deltalake import DeltaTable

        last = DeltaTable(uri, storage_options=self.storage_options).history(1)[0]
        metrics = last.get("operationMetrics") or {}
        rows = int(metrics.get("numOutputRows", metrics.get("numTargetRowsInserted", 0)) or 0)
        if mode == "merge":
            rows = sum(int(metrics.get(k, 0) or 0) for k in ("numTargetRowsInserted", "numTargetRowsUpdated"))
        files = int(metrics.get("numFiles", metrics.get("numAddedFiles", metrics.get("numTargetFilesAdded", 0))) or 0)
        log.info("wrote %s v%d: %d rows in %d files (%s)", spec.full_name, last["version"], rows, files, mode)
        return WriteResult(spec.full_name, int(last["version"]), rows, files, mode)

    def stage(
        self, df, uri: str, spec: TableSpec, mode: str, partitions: dict[str, list[str]] | None = None, run_id: str | None = None
    ) -> StagedWrite:
        """Check the write now; Spark writes and commits it in one go when the staged write is committed.

        Spark's Delta writer has no separate commit, so a batch runs every check of
        every table first and only then the writes, one after the other; a write
        that fails after others committed has them restored (``rollback``).
        """
        check_mode(mode, partitions, spec.full_name, spec.partition_by)
        df = _refusing_nulls(conform_spark(df, spec), spec)
        metadata = {WRITE_ID_KEY: new_write_id(), "shoplake.mode": mode}
        if run_id:
            metadata[RUN_ID_KEY] = run_id
        state: dict = {}

        def commit() -> WriteResult:
            previous = self.version(uri)
            state["previous"] = previous
            writer = (
                df.write.format("delta").mode("append" if mode == "append" else "overwrite").option("userMetadata", json.dumps(metadata))
            )
            if spec.partition_by:
                writer = writer.partitionBy(*spec.partition_by)
            if mode == "replace":
                writer = writer.option("replaceWhere", replace_where(partitions))
            if spec.description and previous is None:
                writer = writer.option("description", spec.description)
            try:
                writer.save(spark_uri(uri))
            except Exception as exc:
                if previous is None:
                    remove_table(uri, self.storage_options)
                if mode == "replace" and "DELTA_REPLACE_WHERE_MISMATCH" in str(exc):
                    wanted = "; ".join(f"{c} in {', '.join(v)}" for c, v in partitions.items())
                    raise ValueError(f"table {spec.full_name}: rows are outside the partitions being replaced ({wanted})") from None
                refused = _NULL_REFUSED.search(str(exc))
                if refused:
                    raise SchemaMismatchError(refused.group(0)) from None
                raise
            return self._result(uri, spec, mode)

        def rollback() -> None:
            if "previous" not in state:
                return
            if state["previous"] is None:
                remove_table(uri, self.storage_options)
            else:
                self.restore(uri, state["previous"])

        return StagedWrite(spec.full_name, commit, rollback)

    def merge(self, df, uri: str, spec: TableSpec, keys: tuple[str, ...]) -> WriteResult:
        """Upsert by keys with ``DeltaTable.merge``: matching rows are updated, others inserted."""
        from pyspark.sql import functions as F

        df = conform_spark(df, spec)
        dupes = df.groupBy(*keys).count().where(F.col("count") > 1).limit(1).collect()
        if dupes:
            key = {k: dupes[0][k] for k in keys}
            raise ValueError(f"table {spec.full_name}: merge source has several rows for key {key}")
        if self.version(uri) is None:
            return self.stage(df, uri, spec, "overwrite").commit()
        df = _refusing_nulls(df, spec)
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        self._table(uri).alias("t").merge(df.alias("s"), condition).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
        return self._result(uri, spec, "merge")

    def restore(self, uri: str, version: int) -> None:
        self._table(uri).restoreToVersion(version)

    def optimize(self, uri: str) -> None:
        """``OPTIMIZE``: rewrite small files into fewer large ones (one commit)."""
        self._table(uri).optimize().executeCompaction()

    def delete_before(self, uri: str, column: str, before) -> None:
        """Delete the rows whose ``column`` is before ``before`` (one commit; on a partition column, whole files)."""
        from pyspark.sql import functions as F

        self._table(uri).delete(F.col(column) < F.lit(before))

    def vacuum(self, uri: str, retention_hours: float) -> int:
        """``VACUUM`` through delta-rs (:func:`~shoplake.lake.delta_rs.vacuum_table`); returns how many files it deleted."""
        return vacuum_table(uri, retention_hours, self.storage_options)

    def history(self, uri: str, limit: int | None = None) -> list[dict]:
        """Commits, newest first: ``version``, ``timestamp`` (ms), ``operation``, and shoplake's metadata keys."""
        out = []
        for row in self._table(uri).history(limit).collect():
            entry = {
                "version": int(row["version"]),
                "timestamp": int(row["timestamp"].timestamp() * 1000),
                "operation": row["operation"],
                "operationParameters": dict(row["operationParameters"] or {}),
                "operationMetrics": dict(row["operationMetrics"] or {}),
            }
            if row["userMetadata"]:
                try:
                    entry.update(json.loads(row["userMetadata"]))
                except ValueError:
                    entry["userMetadata"] = row["userMetadata"]
            rows = entry["operationMetrics"].get("numOutputRows")
            if rows is not None:
                entry.setdefault("shoplake.rows", str(rows))
            out.append(entry)
        return out

    def add_columns(self, uri: str, spec: TableSpec) -> list[str]:
        """Add the nullable columns the spec gained since the table was created (``ALTER TABLE ... ADD COLUMNS``).

        Raises:
            SchemaMismatchError: A missing column is never null in the spec.
        """
        # The table's schema from its log, without a Spark job.
        missing = columns_to_add(uri, spec, self.storage_options)
        if not missing:
            return []
        columns = ", ".join(f"`{c.name}` {spark_ddl_type(c.dtype)}" for c in missing)
        self.spark.sql(f"ALTER TABLE {_quoted_path(spark_uri(uri))} ADD COLUMNS ({columns})")
        names = [c.name for c in missing]
        log.warning("%s: added column(s) %s to the existing table (older rows read them as null)", spec.full_name, ", ".join(names))
        return names
