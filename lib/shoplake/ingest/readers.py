"""Find and read landing files: every field as text, with file, record number and run date.

Reading is deliberately untyped: typing happens in :mod:`shoplake.ingest.validate`,
where a value that does not parse becomes a quarantine reason instead of a failed job.
A missing file, an unreadable file, or a file without a required column is an error
that names the file, before anything is written.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import logging
from collections import defaultdict
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from shoplake import columns as C
from shoplake.errors import InputError
from shoplake.ingest.landing import FILE_EXTENSIONS, LandingSource
from shoplake.lake.files import filesystem

log = logging.getLogger(__name__)


class LandingError(InputError):
    """A landing file is missing, unreadable or does not match the contract."""


@dataclass(frozen=True)
class LandingFile:
    source: str
    day: dt.date
    uri: str
    ext: str


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def source_present(root: str, source: str) -> bool:
    """Whether the landing root has a folder for ``source``."""
    fs, path = filesystem(_join(root, source))
    return fs.get_file_info(path).type == pafs.FileType.Directory


def find_file(root: str, source: str, day: dt.date) -> LandingFile:
    """The landing file of one source and day; an error names what was expected."""
    fs, base = filesystem(_join(root, source))
    found = []
    for ext in FILE_EXTENSIONS:
        info = fs.get_file_info(f"{base}/{day.isoformat()}{ext}")
        if info.type == pafs.FileType.File:
            found.append(ext)
    if not found:
        raise LandingError(
            f"missing landing file for source {source!r} on {day}: expected "
            f"{_join(root, source, day.isoformat())}{{{','.join(FILE_EXTENSIONS)}}}"
        )
    if len(found) > 1:
        raise LandingError(f"several landing files for source {source!r} on {day}: {', '.join(day.isoformat() + e for e in found)}")
    return LandingFile(source, day, _join(root, source, day.isoformat() + found[0]), found[0])


def _csv_header(f: LandingFile) -> list[str]:
    fs, path = filesystem(f.uri)
    try:
        with fs.open_input_stream(path) as raw:
            head = raw.read(1 << 16)
        if f.ext.endswith(".gz"):
            head = gzip.GzipFile(fileobj=io.BytesIO(head)).read1(1 << 16)
        line = head.decode("utf-8-sig").splitlines()[0] if head else ""
    except (OSError, EOFError, UnicodeDecodeError, IndexError) as exc:
        raise LandingError(f"{f.uri}: cannot read the CSV header ({exc})") from exc
    import csv

    return [c.strip() for c in next(csv.reader([line]))] if line else []


def _parquet_columns(f: LandingFile) -> list[str]:
    fs, path = filesystem(f.uri)
    try:
        return pq.read_schema(path, filesystem=fs).names
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad footer
        raise LandingError(f"{f.uri}: not a readable Parquet file ({exc})") from exc


def _check_columns(f: LandingFile, columns: list[str], contract: LandingSource) -> None:
    missing = [c for c in contract.required_fields if c not in columns]
    if missing:
        raise LandingError(f"{f.uri}: required column(s) {', '.join(missing)} missing (file has: {', '.join(columns) or 'no header'})")
    extra = [c for c in columns if c not in contract.field_names]
    if extra:
        log.warning("%s: columns not in the %s contract are ignored: %s", f.uri, contract.name, ", ".join(extra))


def read_landing(spark, files: list[LandingFile], contract: LandingSource):
    """Read landing files of one source into one DataFrame of text columns.

    Args:
        spark: SparkSession.
        files: Files of ``contract``'s source (any mix of formats and days).
        contract: The source's landing contract.

    Returns:
        A DataFrame with every contract field as a string column (null when absent),
        plus ``_source_file``, ``_row_number`` (1-based within the file), ``run_date``
        and ``_corrupt`` (text of a JSON line that could not be parsed).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    groups: dict[tuple, list[str]] = defaultdict(list)
    for f in files:
        if f.ext.startswith(".csv"):
            header = _csv_header(f)
            _check_columns(f, header, contract)
            groups[("csv", tuple(header))].append(f.uri)
        elif f.ext == ".parquet":
            cols = _parquet_columns(f)
            _check_columns(f, cols, contract)
            groups[("parquet", tuple(cols))].append(f.uri)
        else:
            groups[("json", ())].append(f.uri)

    frames = []
    for (kind, cols), uris in groups.items():
        if kind == "csv":
            schema = StructType([StructField(c, StringType()) for c in cols])
            df = spark.read.schema(schema).options(header=True, mode="PERMISSIVE", multiLine=True, escape='"').csv(uris)
            df = df.withColumn("_corrupt", F.lit(None).cast("string"))
        elif kind == "parquet":
            df = spark.read.parquet(*uris)
            df = df.select(*[F.col(c).cast("string").alias(c) for c in cols], "_metadata")
            df = df.withColumn("_corrupt", F.lit(None).cast("string"))
        else:
            schema = StructType([StructField(c, StringType()) for c in contract.field_names] + [StructField("_corrupt", StringType())])
            df = spark.read.schema(schema).options(mode="PERMISSIVE", columnNameOfCorruptRecord="_corrupt").json(uris)
        for name in contract.field_names:
            if name not in df.columns:
                df = df.withColumn(name, F.lit(None).cast("string"))
        frames.append(df.select(*contract.field_names, "_corrupt", F.col("_metadata.file_path").alias(C.SOURCE_FILE)))
    df = frames[0]
    for other in frames[1:]:
        df = df.unionByName(other)
    # Within one file, monotonically_increasing_id follows the order records are read in.
    order = Window.partitionBy(C.SOURCE_FILE).orderBy("_read_order")
    return (
        df.withColumn("_read_order", F.monotonically_increasing_id())
        .withColumn(C.ROW_NUMBER, F.row_number().over(order).cast("long"))
        .withColumn(C.RUN_DATE, F.to_date(F.regexp_extract(C.SOURCE_FILE, r"(\d{4}-\d{2}-\d{2})[^/]*$", 1)))
        .drop("_read_order")
    )
