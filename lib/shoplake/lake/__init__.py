"""The lake: one interface to Delta tables, whichever engine writes them.

>>> lake = Lake(cfg, spark)
>>> lake.write(df, "bronze.orders", mode="replace", run_dates=["2024-03-01"])
>>> lake.read("bronze.orders", version=3)

Writes are checked against the table's spec, atomic (one Delta commit), and a
``replace`` of run dates makes re-runs idempotent. :meth:`Lake.batch` groups writes
to several tables so that either all of them land or none does. Ray reads and
writes the same tables through :meth:`Lake.ray_read` and :meth:`Lake.ray_write`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.lake.base import WRITE_MODES, StagedWrite, WriteResult, check_mode
from shoplake.lake.catalog import all_specs, get_spec, table_uri
from shoplake.lake.checks import SchemaMismatchError
from shoplake.lake.manifest import COMPLETE, FAILED, STARTED, RunManifest, new_run_id, version_before_runs
from shoplake.lake.recovery import HISTORY_SCAN, roll_back
from shoplake.lake.spec import TableSpec
from shoplake.storage import LakeStorage

if TYPE_CHECKING:
    from shoplake.config import Config

log = logging.getLogger(__name__)

__all__ = ["Lake", "LakeBatch", "SchemaMismatchError", "WriteResult", "WRITE_MODES"]


def _run_date_partitions(spec: TableSpec, run_dates: Iterable) -> dict[str, list[str]]:
    if C.RUN_DATE not in spec.partition_by:
        raise ValueError(f"table {spec.full_name} is not partitioned by {C.RUN_DATE}")
    values = sorted({d.isoformat() if isinstance(d, dt.date) else str(d) for d in run_dates})
    if not values:
        raise ValueError(f"table {spec.full_name}: no run dates to replace")
    return {C.RUN_DATE: values}


class Lake:
    """Delta tables under ``cfg.lake.root``, read and written through one engine.

    Args:
        cfg: Configuration (lake root, engine, storage options, Spark settings).
        spark: A SparkSession; built with :func:`shoplake.spark.get_spark` when an
            operation needs one and none was given.

    Raises:
        shoplake.config.ConfigError: The root is in an object store and its credentials are missing.
    """

    def __init__(self, cfg: Config, spark=None):
        self.cfg = cfg
        self.root = cfg.lake.root
        self.storage = LakeStorage.from_config(cfg.lake)
        self.storage.check()
        self._spark = spark
        self._engine = None
        self._manifest: RunManifest | None = None

    @property
    def spark(self):
        if self._spark is None:
            from shoplake.spark import get_spark

            self._spark = get_spark(self.cfg)
        return self._spark

    @property
    def engine(self):
        """The engine chosen by ``lake.engine`` (``auto``: delta-spark when its classes load)."""
        if self._engine is None:
            from shoplake.lake.delta_rs import DeltaRsEngine
            from shoplake.lake.delta_spark import DeltaSparkEngine
            from shoplake.spark import DELTA_PACKAGE, delta_classes_available

            # The session may have been built for another lake (or by spark-submit): give it this lake's store.
            self.storage.check_spark(self.spark)
            self.storage.apply_to_spark(self.spark)
            choice = self.cfg.lake.engine
            if choice == "auto":
                available = delta_classes_available(self.spark)
                choice = "delta-spark" if available else "delta-rs"
                log.info(
                    "lake.engine auto: %s (%s)",
                    choice,
                    "Delta Lake's classes are on Spark's classpath" if available else "Delta Lake's classes are not on Spark's classpath",
                )
            if choice == "delta-spark":
                if not delta_classes_available(self.spark):
                    raise RuntimeError(
                        "lake.engine is delta-spark but Delta Lake's classes are not on Spark's classpath; "
                        f"add --packages {DELTA_PACKAGE} or set lake.engine=delta-rs"
                    )
                self._engine = DeltaSparkEngine(self.spark, self.storage_options)
            else:
                self._engine = DeltaRsEngine(self.spark, self.storage_options, self.cfg.lake.target_file_rows)
            log.info("lake %s with engine %s", self.root, self._engine.name)
        return self._engine

    @property
    def storage_options(self) -> dict[str, str] | None:
        """The storage options delta-rs, pyarrow and Ray get: ``lake.storage_options`` completed from the environment."""
        return self.storage.options

    def uri(self, table: str | TableSpec) -> str:
        """Location of a table."""
        return table_uri(self.root, get_spec(table))

    @property
    def manifest(self) -> RunManifest:
        """``ops.runs``: the runs of the steps that write several tables at once."""
        if self._manifest is None:
            self._manifest = RunManifest(self.root, self.storage_options)
        return self._manifest

    def current_version(self, table: str | TableSpec) -> int | None:
        """The table's newest Delta version, finished runs or not; None when there is no table."""
        from shoplake.lake.delta_rs import table_version

        return table_version(self.uri(table), self.storage_options)

    def _pinned_version(self, spec: TableSpec) -> tuple[bool, int | None]:
        """``(pinned, version)``: pinned when an unfinished run has committed to the table; version is then the one before it."""
        pending = {r.run_id for r in self.manifest.unfinished() if spec.full_name in r.tables}
        if not pending:
            return False, None
        return version_before_runs(self.history(spec, limit=HISTORY_SCAN), pending)

    def version(self, table: str | TableSpec) -> int | None:
        """The version readers see: the newest, unless an unfinished run has committed to the table.

        While a run of a multi-table step (:meth:`batch`) is in progress, or after it
        was killed before its last commit, readers get the version from before that
        run's first commit, so the tables they read belong to complete runs only.
        None when the table does not exist (for readers) yet.
        """
        spec = get_spec(table)
        current = self.current_version(spec)
        if current is None:
            return None
        pinned, before = self._pinned_version(spec)
        return before if pinned else current

    def _read_version(self, spec: TableSpec, version: int | None) -> int | None:
        if version is not None:
            return version
        pinned, before = self._pinned_version(spec)
        if pinned and before is None:
            raise FileNotFoundError(f"table {spec.full_name} has no complete version yet: the run creating it has not finished")
        return before if pinned else None

    def exists(self, table: str | TableSpec) -> bool:
        return self.version(table) is not None

    def read(self, table: str | TableSpec, version: int | None = None):
        """The table as a Spark DataFrame, at the version readers see (:meth:`version`) or a given one."""
        spec = get_spec(table)
        return self.engine.read(self.uri(spec), spec, self._read_version(spec, version))

    def _partitions(self, spec: TableSpec, mode: str, run_dates, partitions):
        if run_dates is not None:
            if partitions:
                raise ValueError("give run_dates or partitions, not both")
            partitions = _run_date_partitions(spec, run_dates)
        check_mode(mode, partitions, spec.full_name, spec.partition_by)
        return partitions

    def _evolve(self, spec: TableSpec, mode: str) -> None:
        """Give an existing table the nullable columns its spec gained, unless the write replaces the whole table."""
        if mode != "overwrite":
            self.engine.add_columns(self.uri(spec), spec)

    def stage(
        self, df, table: str | TableSpec, mode: str = "overwrite", run_dates=None, partitions=None, run_id: str | None = None
    ) -> StagedWrite:
        """Write the data files of ``df`` without committing (see :meth:`batch`); ``run_id`` marks its commit."""
        spec = get_spec(table)
        parts = self._partitions(spec, mode, run_dates, partitions)
        self._evolve(spec, mode)
        return self.engine.stage(df, self.uri(spec), spec, mode, parts, run_id=run_id)

    def write(self, df, table: str | TableSpec, mode: str = "overwrite", run_dates=None, partitions=None) -> WriteResult:
        """Write a Spark DataFrame to a table in one atomic commit.

        Args:
            df: The data; must have the spec's columns (extra ones are ignored).
            table: Full table name or spec.
            mode: ``overwrite`` (whole table), ``append``, or ``replace`` (only the
                partitions named by ``run_dates`` / ``partitions``).
            run_dates: Run dates to replace (tables partitioned by ``run_date``).
            partitions: Partition values to replace, ``{column: [values]}``.

        Returns:
            The commit's version, row and file counts.

        Raises:
            SchemaMismatchError: A column is missing or mistyped.
            ValueError: A row falls outside the partitions being replaced.
        """
        return self.stage(df, table, mode, run_dates, partitions).commit()

    def merge(self, df, table: str | TableSpec, keys: Iterable[str] | None = None) -> WriteResult:
        """Upsert ``df`` into a table by its keys (the spec's keys by default)."""
        spec = get_spec(table)
        keys = tuple(keys or spec.keys)
        if not keys:
            raise ValueError(f"table {spec.full_name} has no keys to merge on")
        self._evolve(spec, "merge")
        return self.engine.merge(df, self.uri(spec), spec, keys)

    def history(self, table: str | TableSpec, limit: int | None = None) -> list[dict]:
        """Commits of a table, newest first: ``version``, ``timestamp`` (ms), ``operation`` and shoplake's ``shoplake.*`` keys."""
        return self.engine.history(self.uri(table), limit)

    def restore(self, table: str | TableSpec, version: int) -> None:
        """Make ``version`` the table's current content again (a new commit)."""
        self.engine.restore(self.uri(table), version)

    def row_count(self, table: str | TableSpec, version: int | None = None) -> int:
        """Rows in the table, from the Delta log's file statistics (no data is read)."""
        import pyarrow as pa

        actions = self.add_actions(table, version)
        return int(pa.compute.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0

    def add_actions(self, table: str | TableSpec, version: int | None = None):
        """The Delta log's data files of a version as Arrow, one row each: path, size, row count,
        partition values and column statistics flattened (``partition.<col>``, ``min.<col>``,
        ``max.<col>``, ``null_count.<col>``); no data is read."""
        import pyarrow as pa
        from deltalake import DeltaTable

        version = self._read_version(get_spec(table), version)
        return pa.table(DeltaTable(self.uri(table), version=version, storage_options=self.storage_options).get_add_actions(flatten=True))

    def file_count(self, table: str | TableSpec, version: int | None = None) -> int:
        """Data files of the table's version readers see (from the Delta log; no data is read)."""
        from deltalake import DeltaTable

        version = self._read_version(get_spec(table), version)
        return len(DeltaTable(self.uri(table), version=version, storage_options=self.storage_options).file_uris())

    def run_dates(self, table: str | TableSpec, version: int | None = None) -> list[dt.date]:
        """The ``run_date`` partitions of a table, sorted (from the Delta log; no data is read).

        Empty for a table that does not exist or has no rows; a table not partitioned
        by ``run_date`` is an error.
        """
        spec = get_spec(table)
        if C.RUN_DATE not in spec.partition_by:
            raise ValueError(f"table {spec.full_name} is not partitioned by {C.RUN_DATE}")
        if version is None:
            version = self.version(spec)
            if version is None:
                return []
        actions = self.add_actions(spec, version)
        column = f"partition.{C.RUN_DATE}"
        if not actions.num_rows:
            return []
        values = {v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in actions[column].to_pylist()}
        return sorted(values)

    def to_arrow(
        self,
        table: str | TableSpec,
        version: int | None = None,
        columns: list[str] | None = None,
        run_date: dt.date | None = None,
        where=None,
    ):
        """Read a (small) table, or one ``run_date`` partition of it, into Arrow on this process, without Spark.

        ``where`` is a further ``pyarrow.dataset`` filter expression (partitions and
        files it excludes are not read).
        """
        import pyarrow as pa
        import pyarrow.dataset as ds
        from deltalake import DeltaTable

        version = self._read_version(get_spec(table), version)
        dt_ = DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)
        dataset = dt_.to_pyarrow_dataset()
        # pyarrow prunes the other partitions' files by the filter.
        if run_date is not None:
            on_date = ds.field(C.RUN_DATE) == pa.scalar(run_date, pa.date32())
            where = on_date if where is None else on_date & where
        result = dataset.to_table(columns=columns, filter=where)
        del dataset, dt_  # delta-rs objects released before the process may exit (stack notes)
        return result

    @contextlib.contextmanager
    def batch(
        self, step: str | None = None, tables: Iterable[str | TableSpec] = (), run_date: dt.date | None = None
    ) -> Iterator[LakeBatch]:
        """Group writes to several tables: all commit at the end, or none does.

        Every write is checked first (and the delta-rs engine writes its data files);
        the commits follow only when all of them succeeded (Spark's Delta writer
        writes and commits each table in one go then). If a commit fails, the ones
        made before it are restored.

        With ``step`` the run is recorded in the run manifest (:mod:`shoplake.lake.manifest`):
        unfinished runs of the same step are rolled back first, readers keep seeing
        the ``tables`` as they were until the last commit, and a process killed
        between two commits leaves nothing half-visible.

        Args:
            step: The step writing (``ingest``, ``features``); None: not recorded.
            tables: Every table the run may write (with ``step``; a run naming none writes nothing).
            run_date: The run date, recorded with the run.
        """
        names = [get_spec(t).full_name for t in tables]
        batch = LakeBatch(self, step, names, run_date)
        batch.begin()
        try:
            yield batch
        except BaseException as exc:
            batch.abort(exc)
            raise
        batch.commit()

    def roll_back_unfinished(self, step: str) -> list[str]:
        """Roll back every unfinished run of ``step`` (see :mod:`shoplake.lake.manifest`); returns their ids."""
        rolled = []
        for run in self.manifest.unfinished(step):
            roll_back(self, run)
            rolled.append(run.run_id)
        return rolled

    def tables(self) -> list[TableSpec]:
        """Specs of the tables that exist in this lake."""
        return [s for s in all_specs() if self.exists(s)]

    def ray_read(
        self,
        table: str | TableSpec,
        version: int | None = None,
        *,
        run_date: dt.date | None = None,
        where=None,
        columns: list[str] | None = None,
    ):
        """The table, or the rows of one ``run_date`` partition that match ``where``, as a Ray Dataset.

        Ray Data tasks of ``ray.cpus_per_data_task`` CPUs each read the files of the
        version readers see (:meth:`version`) or of a given one; the driver reads
        only the Delta log, which leaves out the files whose partition or column
        statistics cannot match (:func:`shoplake.lake.ray_io.read_dataset`). So a
        table larger than the driver's memory can feed Ray Train workers
        (``datasets=`` and ``ray.train.get_dataset_shard``) or a scoring job.

        Args:
            table: Full table name or spec.
            version: The version to read; None: the one readers see.
            run_date: Only this ``run_date`` partition.
            where: A further ``pyarrow.dataset`` filter expression, applied in the read tasks.
            columns: Columns to read; None: all of them.
        """
        import pyarrow as pa
        import pyarrow.dataset as ds

        from shoplake.lake.ray_io import read_dataset

        version = self._read_version(get_spec(table), version)
        if run_date is not None:
            on_date = ds.field(C.RUN_DATE) == pa.scalar(run_date, pa.date32())
            where = on_date if where is None else on_date & where
        return read_dataset(
            self.uri(table), version, self.storage_options, where=where, columns=columns, num_cpus=self.cfg.ray.cpus_per_data_task
        )

    def ray_write(self, ds, table: str | TableSpec, mode: str = "overwrite", run_dates=None, partitions=None) -> WriteResult:
        """Write a Ray Dataset: tasks write the files in parallel, the driver commits once."""
        from shoplake.lake.delta_rs import add_missing_columns
        from shoplake.lake.ray_io import write_dataset

        spec = get_spec(table)
        parts = self._partitions(spec, mode, run_dates, partitions)
        if mode != "overwrite":
            # Ray commits with delta-rs whatever the engine: a Ray job needs no Spark session, not even to grow a table.
            add_missing_columns(self.uri(spec), spec, self.storage_options)
        return write_dataset(ds, self.uri(spec), spec, mode, parts, self.cfg)


class LakeBatch:
    """Writes collected by :meth:`Lake.batch`: one run of a step."""

    def __init__(self, lake: Lake, step: str | None = None, tables: list[str] | None = None, run_date: dt.date | None = None):
        self.lake = lake
        self.step = step
        self.tables = list(tables or [])
        self.run_date = run_date
        self.run_id = new_run_id()
        self.staged: list[StagedWrite] = []
        self.results: list[WriteResult] = []

    def begin(self) -> None:
        """Roll back unfinished runs of the step and record this one as started."""
        if self.step is None:
            return
        rolled = self.lake.roll_back_unfinished(self.step)
        if rolled:
            log.warning("%s: rolled back %d unfinished run(s) before this one: %s", self.step, len(rolled), ", ".join(rolled))
        self.lake.manifest.record(self.run_id, self.step, STARTED, self.run_date, tables=self.tables)

    def write(self, df, table: str | TableSpec, mode: str = "overwrite", run_dates=None, partitions=None) -> None:
        name = get_spec(table).full_name
        if any(s.table == name for s in self.staged):
            raise ValueError(f"table {name} is written twice in one batch")
        if self.step is not None and name not in self.tables:
            raise ValueError(f"step {self.step}: table {name} is not among the tables its run declared ({', '.join(self.tables)})")
        self.staged.append(self.lake.stage(df, table, mode, run_dates, partitions, run_id=self.run_id))

    def _after_commit(self, staged: StagedWrite) -> None:
        """Called after each table's commit (a seam for tests that kill the process between commits)."""

    def commit(self) -> list[WriteResult]:
        try:
            for staged in self.staged:
                self.results.append(staged.commit())
                staged.committed = True
                self._after_commit(staged)
        except BaseException as exc:
            self.abort(exc)
            raise
        if self.step is not None:
            self.lake.manifest.record(self.run_id, self.step, COMPLETE, self.run_date, tables={r.table: r.version for r in self.results})
        return self.results

    def abort(self, error: BaseException | None = None) -> None:
        for staged in reversed(self.staged):
            if staged.committed:
                staged.rollback()
            else:
                staged.discard()
        if self.step is not None:
            detail = f"{type(error).__name__}: {error}" if error is not None else None
            self.lake.manifest.record(self.run_id, self.step, FAILED, self.run_date, detail=detail)
