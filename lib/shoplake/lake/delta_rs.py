"""The delta-rs engine: Spark tasks write Parquet, the driver commits once with ``deltalake``.

Used where Delta Lake's JVM jars are absent. Data never passes through the driver:
each Spark task writes its own files (``mapInArrow``) and returns only their
metadata; the driver then makes one Delta transaction that adds them (and, for an
overwrite or a partition replace, removes the files they supersede). Readers keep
seeing the previous version until that commit, and files of a failed write are
deleted.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from urllib.parse import urlparse

from shoplake.lake.base import StagedWrite, WriteResult, check_mode, partition_filters
from shoplake.lake.checks import SchemaMismatchError, conform_spark
from shoplake.lake.files import (
    FILE_RECORD_DDL,
    delete_files_of_write,
    filesystem,
    iter_write_records,
    new_write_id,
    partition_value_str,
    write_data_files,
)
from shoplake.lake.manifest import RUN_ID_KEY
from shoplake.lake.spec import TableSpec
from shoplake.storage import spark_uri

log = logging.getLogger(__name__)

WRITE_ID_KEY = "shoplake.write_id"


def _spark_task_writer(batches, *, spec, uri, write_id, allowed, target_rows, storage_options):
    from pyspark import TaskContext

    ctx = TaskContext.get()
    tag = f"{ctx.partitionId():05d}-{ctx.attemptNumber()}" if ctx else "0"
    records = write_data_files(batches, spec, uri, write_id, allowed, target_rows, storage_options, tag)
    yield from iter_write_records(records)


def commit_files(
    uri: str,
    spec: TableSpec,
    records: list[dict],
    mode: str,
    partitions: dict[str, list[str]] | None,
    write_id: str,
    storage_options: dict[str, str] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> int:
    """Commit written files to a Delta table as one transaction; returns the new version.

    Creates the table (with the spec's schema, partitioning and description) when it
    does not exist yet.
    """
    from deltalake import DeltaTable, Schema
    from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions

    actions = [
        AddAction(r["path"], int(r["size"]), json.loads(r["partition_values"]), int(r["modification_time"]), True, r["stats"])
        for r in records
    ]
    metadata = {WRITE_ID_KEY: write_id, "shoplake.mode": mode, "shoplake.rows": str(sum(int(r["num_records"]) for r in records))}
    metadata.update(extra_metadata or {})
    props = CommitProperties(custom_metadata=metadata)
    schema = Schema.from_arrow(spec.arrow_schema())
    partition_by = list(spec.partition_by) or None
    if DeltaTable.is_deltatable(uri, storage_options=storage_options):
        table = DeltaTable(uri, storage_options=storage_options)
        table.create_write_transaction(
            actions,
            "append" if mode == "append" else "overwrite",
            schema,
            partition_by=partition_by,
            partition_filters=partition_filters(partitions) if mode == "replace" else None,
            commit_properties=props,
        )
    else:
        create_table_with_add_actions(
            uri,
            schema,
            actions,
            mode="error",
            partition_by=partition_by,
            name=spec.full_name,
            description=spec.description,
            storage_options=storage_options,
            commit_properties=props,
        )
    return _version_of_write(uri, write_id, storage_options)


def vacuum_table(uri: str, retention_hours: float, storage_options: dict | None = None) -> int:
    """``VACUUM``: delete the table's files older than the retention that no retained version references; returns how many.

    Files no commit ever referenced (those of a write killed before its commit) go too
    once they are that old. Both engines vacuum this way: it lists and deletes files
    from this process, where Spark's ``VACUUM`` runs several jobs per table (over a
    minute for a table of four files on two cores).
    """
    from deltalake import DeltaTable

    table = DeltaTable(uri, storage_options=storage_options)
    return len(table.vacuum(retention_hours=int(retention_hours), dry_run=False, enforce_retention_duration=False, full=True))


def columns_to_add(uri: str, spec: TableSpec, storage_options=None) -> list:
    """The spec's columns an existing table lacks (none for a table that does not exist), read from its log.

    Only nullable columns can be added: the rows already in the table read them as
    null. A table that lacks a column the spec says is never null must be rewritten.

    Raises:
        SchemaMismatchError: A missing column is not nullable.
    """
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri, storage_options=storage_options):
        return []
    have = {f.name for f in DeltaTable(uri, storage_options=storage_options).schema().fields}
    missing = [c for c in spec.columns if c.name not in have]
    required = [c.name for c in missing if not c.nullable]
    if required:
        raise SchemaMismatchError(
            f"table {spec.full_name} at {uri} lacks column(s) {', '.join(required)} that are never null in its spec: "
            "rewrite the table (mode overwrite) or drop it and rebuild it"
        )
    return missing


def add_missing_columns(uri: str, spec: TableSpec, storage_options=None) -> list[str]:
    """Add the columns a spec gained since the table was created (:func:`columns_to_add`); returns their names."""
    import pyarrow as pa
    from deltalake import DeltaTable, Schema

    missing = columns_to_add(uri, spec, storage_options)
    if not missing:
        return []
    table = DeltaTable(uri, storage_options=storage_options)
    arrow = spec.arrow_schema()
    table.alter.add_columns(Schema.from_arrow(pa.schema([arrow.field(c.name) for c in missing])).fields)
    names = [c.name for c in missing]
    log.warning("%s: added column(s) %s to the existing table (older rows read them as null)", spec.full_name, ", ".join(names))
    return names


def _version_of_write(uri: str, write_id: str, storage_options) -> int:
    from deltalake import DeltaTable

    table = DeltaTable(uri, storage_options=storage_options)
    for entry in table.history(limit=20):
        if entry.get(WRITE_ID_KEY) == write_id:
            return int(entry["version"])
    return int(table.version())


def table_version(uri: str, storage_options=None) -> int | None:
    """Current version of the table at ``uri``, or None when there is no table."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri, storage_options=storage_options):
        return None
    return int(DeltaTable(uri, storage_options=storage_options).version())


def remove_table(uri: str, storage_options=None) -> None:
    """Delete a table's folder, log and data (used to undo the creation of a new table)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        shutil.rmtree(parsed.path if parsed.scheme else uri, ignore_errors=True)
        return
    fs, root = filesystem(uri, storage_options)
    fs.delete_dir_contents(root, missing_dir_ok=True)


def restore(uri: str, version: int | None, storage_options=None) -> None:
    """Put a table back to ``version``; ``None`` removes a table the write created."""
    from deltalake import DeltaTable

    if version is None:
        remove_table(uri, storage_options)
    else:
        DeltaTable(uri, storage_options=storage_options).restore(version)


class DeltaRsEngine:
    """Reads and writes Delta tables with Spark for the data and delta-rs for the log."""

    name = "delta-rs"

    def __init__(self, spark, storage_options: dict[str, str] | None = None, target_file_rows: int = 1_000_000):
        self.spark = spark
        self.storage_options = storage_options or None
        self.target_file_rows = target_file_rows

    def version(self, uri: str) -> int | None:
        return table_version(uri, self.storage_options)

    def history(self, uri: str, limit: int | None = None) -> list[dict]:
        """Commits, newest first: ``version``, ``timestamp`` (ms), ``operation``, and shoplake's metadata keys."""
        from deltalake import DeltaTable

        return DeltaTable(uri, storage_options=self.storage_options).history(limit)

    def restore(self, uri: str, version: int) -> None:
        restore(uri, version, self.storage_options)

    def add_columns(self, uri: str, spec: TableSpec) -> list[str]:
        return add_missing_columns(uri, spec, self.storage_options)

    def optimize(self, uri: str) -> None:
        """Rewrite small files into fewer large ones (one commit)."""
        from deltalake import DeltaTable

        DeltaTable(uri, storage_options=self.storage_options).optimize.compact()

    def delete_before(self, uri: str, column: str, before) -> None:
        """Delete the rows whose ``column`` is before ``before`` (a date; one commit, on a partition column whole files)."""
        from deltalake import DeltaTable

        DeltaTable(uri, storage_options=self.storage_options).delete(f"{column} < '{before.isoformat()}'")

    def vacuum(self, uri: str, retention_hours: float) -> int:
        """Delete files older than the retention that no retained version references, commits or not; returns how many."""
        return vacuum_table(uri, retention_hours, self.storage_options)

    def read(self, uri: str, spec: TableSpec, version: int | None = None):
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(uri, storage_options=self.storage_options):
            raise FileNotFoundError(f"table {spec.full_name} does not exist at {uri}")
        table = DeltaTable(uri, version=version, storage_options=self.storage_options)
        # Spark opens object stores through its Hadoop connectors (s3a:// for s3://).
        files = [spark_uri(f) for f in table.file_uris()]
        schema = spec.spark_schema()
        if not files:
            return self.spark.createDataFrame([], schema)
        return self.spark.read.schema(schema).option("basePath", spark_uri(uri)).parquet(*files).select(*spec.column_names)

    def stage(
        self, df, uri: str, spec: TableSpec, mode: str, partitions: dict[str, list[str]] | None = None, run_id: str | None = None
    ) -> StagedWrite:
        check_mode(mode, partitions, spec.full_name, spec.partition_by)
        df = conform_spark(df, spec)
        write_id = new_write_id()
        task = functools.partial(
            _spark_task_writer,
            spec=spec,
            uri=uri,
            write_id=write_id,
            allowed=partitions if mode == "replace" else None,
            target_rows=self.target_file_rows,
            storage_options=self.storage_options,
        )
        previous = self.version(uri)
        try:
            records = [row.asDict() for row in df.mapInArrow(task, FILE_RECORD_DDL).collect()]
        except Exception:
            delete_files_of_write(uri, write_id, storage_options=self.storage_options)
            raise
        state: dict = {}

        def commit() -> WriteResult:
            try:
                run = {RUN_ID_KEY: run_id} if run_id else None
                version = commit_files(uri, spec, records, mode, partitions, write_id, self.storage_options, extra_metadata=run)
            except Exception:
                discard()
                raise
            state["committed"] = True
            # Retried task attempts may have left files that the commit does not reference.
            if any(_attempt_of(r["path"]) != "0" for r in records):
                delete_files_of_write(uri, write_id, {r["path"] for r in records}, self.storage_options)
            rows = sum(int(r["num_records"]) for r in records)
            log.info("wrote %s v%d: %d rows in %d files (%s)", spec.full_name, version, rows, len(records), mode)
            return WriteResult(spec.full_name, version, rows, len(records), mode)

        def rollback() -> None:
            if state.get("committed"):
                restore(uri, previous, self.storage_options)

        def discard() -> None:
            delete_files_of_write(uri, write_id, storage_options=self.storage_options)

        return StagedWrite(spec.full_name, commit, rollback, discard)

    def merge(self, df, uri: str, spec: TableSpec, keys: tuple[str, ...]) -> WriteResult:
        """Upsert by keys: rows of ``df`` replace rows with the same keys, others are added.

        Only the partitions that ``df`` touches are rewritten, in one commit.
        """
        from pyspark.sql import functions as F

        df = conform_spark(df, spec)
        dupes = df.groupBy(*keys).count().where(F.col("count") > 1).limit(1).collect()
        if dupes:
            key = {k: dupes[0][k] for k in keys}
            raise ValueError(f"table {spec.full_name}: merge source has several rows for key {key}")
        version = self.version(uri)
        if version is None:
            return self.stage(df, uri, spec, "overwrite").commit()
        current = self.read(uri, spec, version)
        partitions = None
        if spec.partition_by:
            values = df.select(*spec.partition_by).distinct().collect()
            partitions = {c: sorted({partition_value_str(r[c]) for r in values}) for c in spec.partition_by}
            if not values:
                return WriteResult(spec.full_name, version, 0, 0, "merge")
            for c, vals in partitions.items():
                current = current.where(F.col(c).cast("string").isin(vals))
        kept = current.join(df.select(*keys), on=list(keys), how="left_anti")
        merged = kept.unionByName(df)
        mode = "replace" if partitions else "overwrite"
        result = self.stage(merged, uri, spec, mode, partitions).commit()
        return WriteResult(result.table, result.version, result.rows, result.files, "merge")


def _attempt_of(path: str) -> str:
    # File names are part-<write_id>-<partition>-<attempt>-<seq>-<uid>.parquet.
    return path.rsplit("/", 1)[-1].split("-")[3]
