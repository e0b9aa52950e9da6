"""Read landing files: every field as text, with file, record number and run date.

Reading is deliberately untyped: typing happens in :mod:`shoplake.ingest.validate`,
where a value that does not parse becomes a quarantine reason instead of a failed job.
A missing file (unless ``landing.missing_day`` is ``empty``), an unreadable file (a
gzip stream damaged or cut short among them), or a file without a required column is
an error that names the file, before anything is written. A damaged record inside a
readable file is not: it is marked with why (``_damage``) and quarantined, and the
rest of the file lands.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import json
import logging
import re
import zlib
from collections import defaultdict

import pyarrow.parquet as pq

from shoplake import columns as C
from shoplake.errors import InputError
from shoplake.ingest.discover import LandingError, LandingFile
from shoplake.ingest.landing import LandingSource
from shoplake.lake.files import filesystem

log = logging.getLogger(__name__)


def _open(f: LandingFile):
    """A binary stream of the file's bytes, gunzipped for a ``.gz`` file.

    Decompression is ours rather than pyarrow's (which guesses it from the extension),
    so a damaged gzip stream fails here with an error this module names the file in.
    """
    fs, path = filesystem(f.uri)
    raw = fs.open_input_stream(path, compression=None)
    return gzip.GzipFile(fileobj=raw) if f.ext.endswith(".gz") else raw


#: What reading a damaged or unreadable file raises: I/O errors (``gzip.BadGzipFile``
#: among them), a gzip stream cut short (``EOFError``) or a broken deflate stream.
_READ_ERRORS = (OSError, EOFError, zlib.error)


def _csv_header(f: LandingFile) -> list[str]:
    try:
        with _open(f) as stream:
            head = stream.read(1 << 16)
        # Only the header line must decode: a bad byte further down is one damaged record, quarantined later.
        line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig")
    except (*_READ_ERRORS, UnicodeDecodeError) as exc:
        raise LandingError(f"{f.uri}: cannot read the CSV header ({exc})") from exc
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
    decode or parse is skipped here and quarantined by the reader.
    """
    keys: dict[str, None] = {}
    records = 0
    try:
        with _open(f) as stream:
            for line in _lines(stream):
                try:
                    record = json.loads(line.decode("utf-8-sig"))
                except ValueError:  # UnicodeDecodeError included
                    continue
                if isinstance(record, dict):
                    keys.update(dict.fromkeys(record))
                    records += 1
                if records >= JSON_RECORDS_CHECKED:
                    break
    except _READ_ERRORS as exc:
        raise LandingError(f"{f.uri}: cannot read the JSON lines ({exc})") from exc
    return list(keys) if records else None


def _lines(stream):
    """The lines of a binary stream, read a block at a time."""
    rest = b""
    while chunk := stream.read(1 << 16):
        *lines, rest = (rest + chunk).split(b"\n")
        yield from lines
    if rest:
        yield rest


def _ends_with_line_break(f: LandingFile) -> bool:
    """Whether the file's last byte ends a line (true for an empty file); a damaged gzip file is an error naming it.

    A plain file costs one byte read from its end. A gzip file is read whole: its
    last byte is only known after inflating it, and a stream cut short only shows
    at its end. Spark reads a gzip file in one task anyway (it cannot be split), so
    this pass costs at most what that task costs, and a damaged file stops the run
    with one line here instead of failing a Spark task.
    """
    fs, path = filesystem(f.uri)
    last = b""
    try:
        if f.ext.endswith(".gz"):
            with _open(f) as stream:
                while chunk := stream.read(1 << 20):
                    last = chunk[-1:]
        else:
            size = fs.get_file_info(path).size or 0
            if size:
                with fs.open_input_file(path) as handle:
                    handle.seek(size - 1)
                    last = handle.read(1)
    except _READ_ERRORS as exc:
        raise LandingError(f"{f.uri}: unreadable, the gzip data is damaged or cut short ({exc})") from exc
    return last in (b"", b"\n", b"\r")


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


# ---------------------------------------------------------------------------------------------
# Damaged records
# ---------------------------------------------------------------------------------------------

#: Text of a record that could not be parsed, as it arrived (the quarantine's ``_raw``).
CORRUPT = "_corrupt"
#: Why a record is damaged (null when it is whole); the first of the quarantine reasons.
DAMAGE = "_damage"
#: Records in the record's file (as read), to know which record is the last one.
RECORDS = "_records"
#: How the reasons of damage to a whole record start (a damaged field's start with the field's name).
RECORD_DAMAGE = "record: "
CUT_SHORT = "record: cut short, the file ends inside it (no line break after the last record)"
CSV_MALFORMED = "record: its fields do not match the header (too few or too many)"
JSON_MALFORMED = "record: malformed, cannot be parsed"
NOT_UTF8 = "record: not valid UTF-8"
HEADER_AGAIN = "record: repeats the header (the file holds another file appended to it?)"
_BLOCK, _ID = "_block", "_read_id"


def _numbered(df):
    """Add ``_row_number`` (1-based position of each record in its file) and ``_records`` (records in the file).

    ``df`` is a file scan with ``_source_file``, ``_block`` (the byte offset where the
    record's split of the file starts, ``_metadata.file_block_start``) and ``_read_id``
    (``monotonically_increasing_id`` taken right at the scan). A split is read by one
    task in file order, so its records have consecutive ids; a record's number is the
    records of the file's earlier splits plus its place in its own split. Only the
    per-split counts are aggregated and broadcast back: no shuffle of the records, and
    a large file split over many tasks is numbered as exactly as a small one. The file
    is scanned twice (counts, then records); both scans split it the same way.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    blocks = df.groupBy(C.SOURCE_FILE, _BLOCK).agg(F.min(_ID).alias("_first_id"), F.count(F.lit(1)).alias("_in_block"))
    earlier = Window.partitionBy(C.SOURCE_FILE).orderBy(_BLOCK).rowsBetween(Window.unboundedPreceding, -1)
    blocks = blocks.select(
        C.SOURCE_FILE,
        _BLOCK,
        "_first_id",
        F.coalesce(F.sum("_in_block").over(earlier), F.lit(0)).alias("_before"),
        F.sum("_in_block").over(Window.partitionBy(C.SOURCE_FILE)).alias(RECORDS),
    )
    number = F.col("_before") + F.col(_ID) - F.col("_first_id") + 1
    return (
        df.join(F.broadcast(blocks), [C.SOURCE_FILE, _BLOCK])
        .withColumn(C.ROW_NUMBER, number.cast("long"))
        .drop(_BLOCK, _ID, "_first_id", "_before")
    )


def _scan_columns():
    from pyspark.sql import functions as F

    return (
        F.col("_metadata.file_path").alias(C.SOURCE_FILE),
        F.col("_metadata.file_block_start").alias(_BLOCK),
        F.monotonically_increasing_id().alias(_ID),
    )


def _bad_text(name: str):
    """True when a text column holds bytes that are not UTF-8, or the replacement character a decoder put in their place."""
    from pyspark.sql import functions as F

    return F.expr(f"NOT is_valid_utf8(`{name}`)") | (F.instr(F.col(name), "\ufffd") > 0)


def _damaged(*reasons):
    from pyspark.sql import functions as F

    joined = F.concat_ws("; ", *reasons)
    return F.when(F.length(joined) > 0, joined)


def _read_csv(spark, uris: list[str], header: tuple[str, ...], contract: LandingSource, cut_files: set[str]):
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    # The header's names (columns outside the contract are read too, so the fields keep their places) ...
    schema = StructType([StructField(c, StringType()) for c in (*header, CORRUPT)])
    # ... but only the contract's are kept and judged.
    fields = [c for c in header if c in contract.field_names]
    # multiLine: a quoted field may hold line breaks; each file is then read whole, in order, by one task.
    options = {"header": True, "mode": "PERMISSIVE", "multiLine": True, "escape": '"', "columnNameOfCorruptRecord": CORRUPT}
    df = _numbered(spark.read.schema(schema).options(**options).csv(uris).select(*fields, CORRUPT, *_scan_columns()))
    name = F.element_at(F.split(C.SOURCE_FILE, "/"), -1)
    cut = name.isin(sorted(cut_files)) & (F.col(C.ROW_NUMBER) == F.col(RECORDS))
    header_again = F.lit(True)
    for column in fields:
        header_again = header_again & (F.trim(F.col(column)) == F.lit(column))
    damage = _damaged(
        F.when(cut, F.lit(CUT_SHORT)),
        F.when(F.col(CORRUPT).isNotNull() & ~cut, F.lit(CSV_MALFORMED)),
        F.when(header_again, F.lit(HEADER_AGAIN)),
        *[F.when(_bad_text(c), F.lit(f"{c}: not valid UTF-8")) for c in fields],
    )
    return df.withColumn(DAMAGE, damage)


def _read_json_lines(spark, uris: list[str], contract: LandingSource):
    """JSON lines read as lines, then parsed: the line number survives, and a line that is not UTF-8 is one damaged record."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    lines = _numbered(spark.read.text(uris).select("value", *_scan_columns()))
    lines = lines.where(F.length(F.trim(F.col("value"))) > 0)  # blank lines are no records, but keep the numbering
    utf8 = F.expr("is_valid_utf8(value)")
    text = F.regexp_replace(F.expr("make_valid_utf8(value)"), "^\ufeff", "")
    schema = StructType([StructField(c, StringType()) for c in (*contract.field_names, CORRUPT)])
    parsed = F.from_json(text, schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    df = lines.select("*", text.alias("_text"), utf8.alias("_utf8"), parsed.alias("_parsed"))
    damage = F.when(~F.col("_utf8"), F.lit(NOT_UTF8)).when(F.col(f"_parsed.{CORRUPT}").isNotNull(), F.lit(JSON_MALFORMED))
    return df.select(
        *[F.col(f"_parsed.`{c}`").alias(c) for c in contract.field_names],
        F.when(damage.isNotNull(), F.col("_text")).alias(CORRUPT),
        damage.alias(DAMAGE),
        C.SOURCE_FILE,
        C.ROW_NUMBER,
    )


def _read_parquet(spark, uris: list[str], columns: tuple[str, ...], contract: LandingSource):
    from pyspark.sql import functions as F

    df = spark.read.parquet(*uris)
    columns = tuple(c for c in columns if c in contract.field_names)
    df = df.select(
        *[F.col(c).cast("string").alias(c) for c in columns],
        F.col("_metadata.file_path").alias(C.SOURCE_FILE),
        (F.col("_metadata.row_index") + 1).cast("long").alias(C.ROW_NUMBER),
    )
    damage = _damaged(*[F.when(_bad_text(c), F.lit(f"{c}: not valid UTF-8")) for c in columns])
    return df.withColumn(CORRUPT, F.lit(None).cast("string")).withColumn(DAMAGE, damage)


def read_landing(spark, files: list[LandingFile], contract: LandingSource):
    """Read landing files of one source into one DataFrame of text columns.

    Every file is checked before Spark reads it: a required column missing, a header
    or Parquet footer that cannot be read, or a gzip stream that is damaged or cut
    short stops here with an error naming the file. Inside a readable file, a damaged
    record does not stop anything: it is marked (``_damage``) and quarantined, and the
    file's other records land. Damaged are a record that does not parse (a JSON line
    that is not an object, a CSV record with more or fewer fields than the header), a
    line that is not UTF-8 (or a field a decoder had to replace characters of), a
    CSV record repeating the header, and the last record of a CSV file that does not
    end with a line break (a file cut mid-record: its last field may be cut too).

    Args:
        spark: SparkSession.
        files: Files of ``contract``'s source (any mix of formats and days).
        contract: The source's landing contract.

    Returns:
        A DataFrame with every contract field as a string column (null when absent),
        plus ``_source_file``, ``_row_number`` (1-based: the line for JSON lines, the
        record after the header for CSV, the row for Parquet), ``run_date`` (the
        file's day), ``_corrupt`` (the text of a record that could not be parsed),
        ``_damage`` (why the record is damaged, null when it is whole) and the days of
        a several-day file (:data:`FIRST_DAY`, :data:`LAST_DAY`, null for a one-day
        file; :func:`place_on_days` puts its rows on their days).

    Raises:
        LandingError: A file is unreadable or lacks a required or declared column.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    groups: dict[tuple, list[str]] = defaultdict(list)
    cut_files: set[str] = set()
    for f in files:
        if f.ext.startswith(".csv"):
            # The whole-stream check first: a damaged gzip file is named as such, not as a bad header.
            if not _ends_with_line_break(f):
                cut_files.add(f.uri.rsplit("/", 1)[-1])
            header = _csv_header(f)
            _check_columns(f, header, contract)
            groups[("csv", tuple(header))].append(f.uri)
        elif f.ext == ".parquet":
            cols = _parquet_columns(f)
            _check_columns(f, cols, contract)
            groups[("parquet", tuple(cols))].append(f.uri)
        else:
            if f.ext.endswith(".gz"):
                _ends_with_line_break(f)  # a damaged gzip stream is an error naming the file
            keys = _json_keys(f)
            if keys is not None:
                # JSON records may leave out an optional key, so only the declared fields are checked.
                _check_columns(f, keys, _without_required(contract))
            groups[("json", ())].append(f.uri)

    fields = [*contract.field_names, CORRUPT, DAMAGE, C.SOURCE_FILE, C.ROW_NUMBER]
    frames = []
    for (kind, cols), uris in groups.items():
        if kind == "csv":
            df = _read_csv(spark, uris, cols, contract, cut_files)
        elif kind == "parquet":
            df = _read_parquet(spark, uris, cols, contract)
        else:
            df = _read_json_lines(spark, uris, contract)
        for name in contract.field_names:
            if name not in df.columns:
                df = df.withColumn(name, F.lit(None).cast("string"))
        frames.append(df.select(*fields))
    if not frames:  # every day missing and read as empty
        schema = StructType([StructField(c, StringType()) for c in fields[:-1]] + [StructField(C.ROW_NUMBER, StringType())])
        frames.append(spark.createDataFrame([], schema).withColumn(C.ROW_NUMBER, F.col(C.ROW_NUMBER).cast("long")))
    df = frames[0]
    for other in frames[1:]:
        df = df.unionByName(other)

    def day(pattern: str):
        text = F.regexp_extract(C.SOURCE_FILE, pattern, 1)
        return F.when(text != F.lit(""), F.to_date(text))

    date = r"\d{4}-\d{2}-\d{2}"
    return (
        df.withColumn(C.RUN_DATE, day(rf"({date})[^/]*$"))
        .withColumn(FIRST_DAY, day(rf"/({date})_{date}[^/]*$"))
        .withColumn(LAST_DAY, day(rf"/{date}_({date})[^/]*$"))
    )


#: ``[FAILED_READ_FILE...] Encountered error while reading file <path>.``: how Spark names a file a task could not read.
_FAILED_READ = re.compile(r"Encountered error while reading file (\S+?)\.?\s")
_CAUSE = re.compile(r"Caused by: ([^\n]+)")


@contextlib.contextmanager
def naming_unreadable_files():
    """Turn Spark's failure to read a landing file into a :class:`LandingError` that names the file.

    The checks of :func:`read_landing` catch the damage they know of before Spark
    starts; this covers the rest (a Parquet page that does not decode, a file that
    changed while it was read), so the run still ends with one line naming the file.
    """
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        text = str(exc)
        match = _FAILED_READ.search(text)
        if match is None:
            raise
        causes = _CAUSE.findall(text)
        why = causes[-1].strip() if causes else text.strip().splitlines()[0]
        raise LandingError(f"{match.group(1)}: unreadable ({why})") from exc


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
