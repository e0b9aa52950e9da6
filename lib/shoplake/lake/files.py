"""Parquet data files for Delta tables, written by parallel tasks and committed once.

Spark tasks (``mapInArrow``) and Ray tasks (``map_batches``) call
:func:`write_data_files` on the rows they hold. Each call writes Hive-style
partitioned Parquet files under the table root and returns one small record per
file (path, size, partition values, statistics). The driver gathers the records,
never the rows, and :func:`commit_files` turns them into a single Delta commit.
Until that commit the files are invisible to readers, so a failure anywhere leaves
the table at its previous version.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Iterable, Iterator
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from shoplake.lake.checks import conform_arrow
from shoplake.lake.spec import TableSpec
from shoplake.storage import pyarrow_filesystem

FILE_RECORD_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("partition_values", pa.string()),
        ("stats", pa.string()),
        ("num_records", pa.int64()),
        ("modification_time", pa.int64()),
    ]
)
FILE_RECORD_DDL = "path string, size long, partition_values string, stats string, num_records long, modification_time long"
_STAT_STRING_MAX = 64


def filesystem(uri: str, storage_options: dict[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    """PyArrow filesystem and path for a local path or URI (see :func:`shoplake.storage.pyarrow_filesystem`)."""
    return pyarrow_filesystem(uri, storage_options)


def partition_value_str(value) -> str | None:
    """A partition value as Delta stores it (dates ISO, timestamps ISO UTC)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stat_value(value):
    if value is None:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return value if len(value) <= _STAT_STRING_MAX else None
    return value


def file_stats(table: pa.Table, skip: Iterable[str] = ()) -> dict:
    """Delta per-file statistics: numRecords and min, max and null counts of scalar columns.

    Timestamps are kept at millisecond precision as Delta expects, rounded outwards so
    that min and max stay true bounds.
    """
    skip = set(skip)
    mins, maxs, nulls = {}, {}, {}
    for name in table.column_names:
        if name in skip:
            continue
        col = table[name]
        nulls[name] = col.null_count
        t = col.type
        if not (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t) or pa.types.is_date(t) or pa.types.is_timestamp(t)
        ):
            continue
        if col.null_count == len(col):
            continue
        mm = pc.min_max(col)
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        if pa.types.is_timestamp(t):
            lo = lo.replace(microsecond=lo.microsecond // 1000 * 1000)
            if hi.microsecond % 1000:
                hi = hi.replace(microsecond=hi.microsecond // 1000 * 1000) + dt.timedelta(milliseconds=1)
        lo, hi = _stat_value(lo), _stat_value(hi)
        if lo is not None and hi is not None:
            mins[name], maxs[name] = lo, hi
    return {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def write_data_files(
    batches: Iterable[pa.RecordBatch],
    spec: TableSpec,
    table_uri: str,
    write_id: str,
    allowed_partitions: dict[str, list[str]] | None = None,
    target_file_rows: int = 1_000_000,
    storage_options: dict[str, str] | None = None,
    task_tag: str = "0",
) -> list[dict]:
    """Write the rows of one task as Parquet files under the table; return their records.

    Args:
        batches: Arrow record batches with (at least) the spec's columns.
        spec: Target table spec; partition columns go to directory names, not the files.
        table_uri: Table root.
        write_id: Identifies the write; every file name starts with ``part-<write_id>``.
        allowed_partitions: When replacing partitions, the values each partition column
            may take; a row outside them is an error (it would escape the replace).
        target_file_rows: Rows per file at most.
        storage_options: Object-store credentials.
        task_tag: Distinguishes the files of tasks and task attempts.

    Returns:
        One dict per file, shaped as :data:`FILE_RECORD_SCHEMA`.
    """
    fs, root = filesystem(table_uri, storage_options)
    local = isinstance(fs, pafs.LocalFileSystem)
    part_cols = list(spec.partition_by)
    data_cols = [c for c in spec.column_names if c not in part_cols]
    buffers: dict[tuple, list[pa.Table]] = {}
    counts: dict[tuple, int] = {}
    records: list[dict] = []
    seq = 0

    def flush(key: tuple) -> None:
        nonlocal seq
        tables = buffers.pop(key, [])
        counts.pop(key, None)
        if not tables:
            return
        data = pa.concat_tables(tables)
        seq += 1
        dirs = "/".join(f"{c}={quote(v if v is not None else '__HIVE_DEFAULT_PARTITION__', safe='')}" for c, v in zip(part_cols, key))
        name = f"part-{write_id}-{task_tag}-{seq:05d}-{uuid.uuid4().hex[:8]}.parquet"
        rel = f"{dirs}/{name}" if dirs else name
        full = f"{root.rstrip('/')}/{rel}"
        # Object stores have no folders: creating them there would only add marker objects and requests.
        if local:
            fs.create_dir(f"{root.rstrip('/')}/{dirs}" if dirs else root, recursive=True)
        file_data = data.select(data_cols)
        pq.write_table(file_data, full, filesystem=fs, compression="snappy")
        info = fs.get_file_info(full)
        records.append(
            {
                "path": quote(rel, safe="/=-_."),
                "size": info.size,
                "partition_values": json.dumps(dict(zip(part_cols, key))),
                "stats": json.dumps(file_stats(file_data)),
                "num_records": file_data.num_rows,
                "modification_time": int(time.time() * 1000),
            }
        )

    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = conform_arrow(batch, spec)
        if not part_cols:
            groups = [((), table)]
        else:
            keys = table.select(part_cols).group_by(part_cols).aggregate([])
            groups = []
            for row in keys.to_pylist():
                mask = None
                for c in part_cols:
                    cond = pc.is_null(table[c]) if row[c] is None else pc.equal(table[c], pa.scalar(row[c], table[c].type))
                    mask = cond if mask is None else pc.and_(mask, cond)
                groups.append((tuple(partition_value_str(row[c]) for c in part_cols), table.filter(mask)))
        for key, part in groups:
            if allowed_partitions:
                for c, v in zip(part_cols, key):
                    if c in allowed_partitions and v not in allowed_partitions[c]:
                        raise ValueError(
                            f"table {spec.full_name}: row with {c}={v} is outside the partitions being replaced "
                            f"({', '.join(allowed_partitions[c])})"
                        )
            buffers.setdefault(key, []).append(part)
            counts[key] = counts.get(key, 0) + part.num_rows
            if counts[key] >= target_file_rows:
                flush(key)
    for key in list(buffers):
        flush(key)
    return records


def iter_write_records(records: list[dict]) -> Iterator[pa.RecordBatch]:
    """File records as Arrow batches (what a ``mapInArrow`` function yields)."""
    if records:
        yield pa.RecordBatch.from_pylist(records, schema=FILE_RECORD_SCHEMA)


def new_write_id() -> str:
    """A short unique id for one write (prefix of its file names)."""
    return uuid.uuid4().hex[:16]


def delete_files_of_write(table_uri: str, write_id: str, keep: set[str] = frozenset(), storage_options=None) -> int:
    """Delete files a write left behind that no commit references; returns how many."""
    fs, root = filesystem(table_uri, storage_options)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return 0
    removed = 0
    prefix = f"part-{write_id}-"
    keep_names = {k.rsplit("/", 1)[-1] for k in keep}
    for info in infos:
        if info.type == pafs.FileType.File and info.base_name.startswith(prefix) and info.base_name not in keep_names:
            fs.delete_file(info.path)
            removed += 1
    return removed


def data_files(uri: str, storage_options=None) -> list[pafs.FileInfo]:
    """The data files under a table's folder (not its log, not hidden or underscored files)."""
    fs, root = filesystem(uri, storage_options)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return []
    return [i for i in infos if i.type == pafs.FileType.File and "_delta_log" not in i.path and not i.base_name.startswith((".", "_"))]
