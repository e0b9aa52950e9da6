"""Find and read landing files: every field as text, with file, record number and run date.

Reading is deliberately untyped: typing happens in :mod:`shoplake.ingest.validate`,
where a value that does not parse becomes a quarantine reason instead of a failed job.
A missing file (unless ``landing.missing_day`` is ``empty``), an unreadable file, or a
file without a required column is an error that names the file, before anything is
written.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import logging
import re
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
    """One landing file: of one day, or of the days ``day`` to ``last`` (a several-day file)."""

    source: str
    day: dt.date
    uri: str
    ext: str
    last: dt.date | None = None

    def days(self) -> tuple[dt.date, dt.date]:
        return self.day, self.last or self.day


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def source_present(root: str, source: str) -> bool:
    """Whether the landing root has a folder for ``source``."""
    fs, path = filesystem(_join(root, source))
    return fs.get_file_info(path).type == pafs.FileType.Directory


def _daily_file(root: str, source: str, day: dt.date) -> LandingFile | None:
    fs, base = filesystem(_join(root, source))
    found = []
    for ext in FILE_EXTENSIONS:
        info = fs.get_file_info(f"{base}/{day.isoformat()}{ext}")
        if info.type == pafs.FileType.File:
            found.append(ext)
    if len(found) > 1:
        raise LandingError(f"several landing files for source {source!r} on {day}: {', '.join(day.isoformat() + e for e in found)}")
    return LandingFile(source, day, _join(root, source, day.isoformat() + found[0]), found[0]) if found else None


def find_file(root: str, source: str, day: dt.date) -> LandingFile:
    """The landing file of one source and day; an error names what was expected."""
    found = _daily_file(root, source, day)
    if found is None:
        raise LandingError(
            f"missing landing file for source {source!r} on {day}: expected "
            f"{_join(root, source, day.isoformat())}{{{','.join(FILE_EXTENSIONS)}}}"
        )
    return found


#: ``<first day>_<last day>`` of a several-day file.
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})$")


def _range_files(root: str, source: str) -> list[LandingFile]:
    """The several-day files of a source folder; a bad range is an error naming the file."""
    fs, base = filesystem(_join(root, source))
    out = []
    for info in fs.get_file_info(pafs.FileSelector(base)):
        if info.type != pafs.FileType.File:
            continue
        ext = next((e for e in sorted(FILE_EXTENSIONS, key=len, reverse=True) if info.base_name.endswith(e)), None)
        match = _RANGE.match(info.base_name[: -len(ext)]) if ext else None
        if not match:
            continue
        uri = _join(root, source, info.base_name)
        try:
            first, last = (dt.date.fromisoformat(g) for g in match.groups())
        except ValueError as exc:
            raise LandingError(f"{uri}: not a range of days <first>_<last> ({exc})") from exc
        if last < first:
            raise LandingError(f"{uri}: the last day {last} is before the first {first}")
        out.append(LandingFile(source, first, uri, ext, last))
    return sorted(out, key=lambda f: f.day)


def find_files(root: str, source: str, days: list[dt.date], missing_day: str = "error") -> list[LandingFile]:
    """The landing files that hold ``days`` of a source: one per day, or several-day files covering them.

    A day covered twice (its own file and a several-day one, or two several-day files)
    is an error; so is a day covered by none, unless ``missing_day`` is ``empty``
    (the day then has no rows, with a warning).
    """
    ranges = _range_files(root, source)
    out: dict[str, LandingFile] = {}
    for day in days:
        covering = [f for f in ranges if f.day <= day <= f.last]
        daily = _daily_file(root, source, day)
        found = ([daily] if daily else []) + covering
        if not found:
            if missing_day != "empty":
                find_file(root, source, day)  # raises the error that names the file expected
            log.warning("no landing file for source %r on %s: read as a day without rows (landing.missing_day)", source, day)
        if len(found) > 1:
            raise LandingError(f"source {source!r}: {day} is in several landing files: {', '.join(f.uri for f in found)}")
        for f in found:
            out[f.uri] = f
    return list(out.values())


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


#: Records of a JSON lines file whose keys are checked against the declared fields.
JSON_RECORDS_CHECKED = 100


def _json_keys(f: LandingFile) -> list[str] | None:
    """The keys of the first records of a JSON lines file, in order of appearance; None when it has no record.

    Only the first :data:`JSON_RECORDS_CHECKED` records are read (a writer may leave
    out a key whose value is null, so one record is not enough); a line that does not
    parse is skipped here and quarantined by the reader.
    """
    import json

    fs, path = filesystem(f.uri)
    keys: dict[str, None] = {}
    records = 0
    try:
        with fs.open_input_stream(path) as raw:
            stream = gzip.GzipFile(fileobj=raw) if f.ext.endswith(".gz") else raw
            for line in io.TextIOWrapper(stream, encoding="utf-8-sig"):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    keys.update(dict.fromkeys(record))
                    records += 1
                if records >= JSON_RECORDS_CHECKED:
                    break
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise LandingError(f"{f.uri}: cannot read the JSON lines ({exc})") from exc
    return list(keys) if records else None


def _check_columns(f: LandingFile, columns: list[str], contract: LandingSource) -> None:
    missing = [c for c in contract.required_fields if c not in columns]
    if missing:
        raise LandingError(f"{f.uri}: required column(s) {', '.join(missing)} missing (file has: {', '.join(columns) or 'no header'})")
    declared = [x.name for x in contract.extra_fields if x.name not in columns]
    if declared:
        raise LandingError(
            f"{f.uri}: field(s) {', '.join(declared)} declared in landing.extra_fields.{contract.name} missing "
            f"(file has: {', '.join(columns) or 'no header'})"
        )
    extra = [c for c in columns if c not in contract.field_names]
    if extra:
        log.warning("%s: columns not in the %s contract or landing.extra_fields are ignored: %s", f.uri, contract.name, ", ".join(extra))


def _without_required(contract: LandingSource) -> LandingSource:
    from dataclasses import replace

    # A JSON record without a required key is quarantined row by row, as before.
    return replace(contract, fields=tuple(replace(f, required=False) for f in contract.fields))


def read_landing(spark, files: list[LandingFile], contract: LandingSource):
    """Read landing files of one source into one DataFrame of text columns.

    Args:
        spark: SparkSession.
        files: Files of ``contract``'s source (any mix of formats and days).
        contract: The source's landing contract.

    Returns:
        A DataFrame with every contract field as a string column (null when absent),
        plus ``_source_file``, ``_row_number`` (1-based within the file), ``run_date``
        (the file's day), ``_corrupt`` (text of a JSON line that could not be parsed)
        and the days of a several-day file (:data:`FIRST_DAY`, :data:`LAST_DAY`, null
        for a one-day file; :func:`place_on_days` puts its rows on their days).
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
            keys = _json_keys(f)
            if keys is not None:
                # JSON records may leave out an optional key, so only the declared fields are checked.
                _check_columns(f, keys, _without_required(contract))
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
    if not frames:  # every day missing and read as empty
        fields = [*contract.field_names, "_corrupt", C.SOURCE_FILE]
        frames.append(spark.createDataFrame([], StructType([StructField(c, StringType()) for c in fields])))
    df = frames[0]
    for other in frames[1:]:
        df = df.unionByName(other)
    # Within one file, monotonically_increasing_id follows the order records are read in.
    order = Window.partitionBy(C.SOURCE_FILE).orderBy("_read_order")

    def day(pattern: str):
        text = F.regexp_extract(C.SOURCE_FILE, pattern, 1)
        return F.when(text != F.lit(""), F.to_date(text))

    date = r"\d{4}-\d{2}-\d{2}"
    return (
        df.withColumn("_read_order", F.monotonically_increasing_id())
        .withColumn(C.ROW_NUMBER, F.row_number().over(order).cast("long"))
        .withColumn(C.RUN_DATE, day(rf"({date})[^/]*$"))
        .withColumn(FIRST_DAY, day(rf"/({date})_{date}[^/]*$"))
        .withColumn(LAST_DAY, day(rf"/{date}_({date})[^/]*$"))
        .drop("_read_order")
    )


#: The days of a several-day file on each of its rows (null for a one-day file).
FIRST_DAY, LAST_DAY = "_first_day", "_last_day"


def place_on_days(validated, contract: LandingSource, days: list[dt.date]):
    """Rows of several-day files on the day of their ``day_field``; only the rows of ``days`` kept.

    A row of a several-day file whose day is missing or outside the file's days is
    quarantined on the file's first day, with the reason.
    """
    from pyspark.sql import functions as F

    ranged = F.col(FIRST_DAY).isNotNull()
    own = F.to_date(F.col(contract.day_field))
    inside = own.isNotNull() & (own >= F.col(FIRST_DAY)) & (own <= F.col(LAST_DAY))
    outside = F.when(ranged & own.isNotNull() & ~inside, F.concat(
        F.lit(f"{contract.day_field}: "), own.cast("string"), F.lit(" is outside the file's days ("),
        F.col(FIRST_DAY).cast("string"), F.lit(".."), F.col(LAST_DAY).cast("string"), F.lit(")"),
    ))  # fmt: skip
    reason = F.concat_ws("; ", F.when(F.length(C.REASON) > 0, F.col(C.REASON)), outside)
    run_date = F.when(~ranged, F.col(C.RUN_DATE)).when(inside, own).otherwise(F.col(FIRST_DAY))
    placed = validated.withColumn(C.REASON, reason).withColumn(C.RUN_DATE, run_date)
    return placed.where(F.col(C.RUN_DATE).isin(list(days))).drop(FIRST_DAY, LAST_DAY)
