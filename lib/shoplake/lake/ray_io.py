"""Ray Datasets and Delta tables: tasks read a version's files, or write Parquet in parallel that the driver commits once."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import pyarrow as pa

from shoplake.lake.base import WriteResult
from shoplake.lake.delta_rs import commit_files
from shoplake.lake.files import delete_files_of_write, new_write_id, write_data_files
from shoplake.lake.spec import TableSpec
from shoplake.storage import LakeStorage

if TYPE_CHECKING:
    from shoplake.config import Config

log = logging.getLogger(__name__)


def read_dataset(
    uri: str,
    version: int | None,
    storage_options: dict[str, str] | None,
    *,
    where=None,
    columns: list[str] | None = None,
    num_cpus: float = 1.0,
):
    """The rows of a Delta table version that match ``where``, as a Ray Dataset read by Ray Data tasks.

    The driver reads only the Delta log: the version's files whose partition values
    and column statistics (min, max, nulls) cannot match ``where`` are left out
    before any task starts, and each read task applies ``where`` to the rows of its
    file. No row passes through the driver.

    Args:
        uri: The table's location.
        version: The version to read; None: the newest.
        storage_options: delta-rs and pyarrow options of the store.
        where: A ``pyarrow.dataset`` filter expression; None: every row.
        columns: Columns to read, in order; None: all of them.
        num_cpus: CPUs each read task asks for (``ray.cpus_per_data_task``).
    """
    import pyarrow.dataset as ds
    import ray.data
    from deltalake import DeltaTable
    from ray.data._internal.datasource.parquet_datasource import ParquetDatasource

    dataset = DeltaTable(uri, version=version, storage_options=storage_options).to_pyarrow_dataset()
    if where is not None:
        # delta-rs gives each file an expression of its partition values and statistics; pyarrow prunes on it.
        fragments = list(dataset.get_fragments(filter=where))
        dataset = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    # The datasource ray.data.read_delta builds, here from the pruned file list and with the row filter per task.
    source = ParquetDatasource.from_pyarrow_dataset(
        dataset, columns=columns, to_batch_kwargs={"filter": where} if where is not None else None
    )
    return ray.data.read_datasource(source, num_cpus=num_cpus)


def _ray_task_writer(batch: pa.Table, *, spec, uri, write_id, allowed, target_rows, storage_options) -> pa.Table:
    import uuid

    from shoplake.lake.files import FILE_RECORD_SCHEMA

    # Ray may run a batch again after a failure, so each call gets its own tag.
    records = write_data_files([batch], spec, uri, write_id, allowed, target_rows, storage_options, uuid.uuid4().hex[:6] + "-0")
    return pa.Table.from_pylist(records, schema=FILE_RECORD_SCHEMA)


def write_dataset(ds, uri: str, spec: TableSpec, mode: str, partitions: dict[str, list[str]] | None, cfg: Config) -> WriteResult:
    """Write a Ray Dataset to the Delta table at ``uri`` in one commit.

    The data is checked against ``spec`` in each task (a missing or mistyped column
    fails the write, naming the column); only file metadata reaches the driver.
    """
    # Resolved here, on the driver: the tasks may run on nodes without the driver's environment.
    storage_options = LakeStorage.from_config(cfg.lake).options
    write_id = new_write_id()
    task = functools.partial(
        _ray_task_writer,
        spec=spec,
        uri=uri,
        write_id=write_id,
        allowed=partitions if mode == "replace" else None,
        target_rows=cfg.lake.target_file_rows,
        storage_options=storage_options,
    )
    try:
        records = ds.map_batches(task, batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.cpus_per_data_task).take_all()
        version = commit_files(uri, spec, records, mode, partitions, write_id, storage_options)
    except Exception:
        delete_files_of_write(uri, write_id, storage_options=storage_options)
        raise
    rows = sum(int(r["num_records"]) for r in records)
    log.info("wrote %s v%d from Ray: %d rows in %d files (%s)", spec.full_name, version, rows, len(records), mode)
    return WriteResult(spec.full_name, version, rows, len(records), mode)
