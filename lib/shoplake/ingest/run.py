"""The ingest step: landing files of some days -> ``bronze.<source>`` and ``quarantine.<source>``.

All files are located and checked (headers, gzip streams) before any data is read;
every source is then read, typed and counted, the volume guards judge the counts
(:mod:`shoplake.ingest.guard`), and only then are the tables written, in one lake
batch: after an error the lake is as it was. Each run date's partition is replaced,
so re-running a day (or a range) never duplicates rows, and rows repeating a key
within a day are dropped or quarantined (``ingest.duplicates``), never doubled.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from shoplake import columns as C
from shoplake.config import Config
from shoplake.entry import date_range
from shoplake.ingest.bronze import QUARANTINE, configured_bronze
from shoplake.ingest.discover import LandingError, LandingFile, find_files, source_present
from shoplake.ingest.guard import DayVolume, VolumeError, held_rows, stop_message, volume_problems
from shoplake.ingest.landing import configured_source
from shoplake.ingest.readers import DAMAGE, naming_unreadable_files, place_on_days, read_landing
from shoplake.ingest.validate import DROPPED, DUPLICATE, QUARANTINED, compute_deduplicated, compute_validated, split_valid
from shoplake.lake import Lake, WriteResult

log = logging.getLogger(__name__)

#: The step's name in the pipeline and in the run manifest.
INGEST_STEP = "ingest"


@dataclass
class IngestReport:
    """What an ingest run wrote: per source, bronze and quarantine results, and what a person should know.

    Attributes:
        notes: One line per landing file with damaged records quarantined or rows
            repeating an earlier row's key, naming the file (also logged as warnings).
    """

    run_dates: list[dt.date]
    bronze: dict[str, WriteResult] = field(default_factory=dict)
    quarantine: dict[str, WriteResult] = field(default_factory=dict)
    skipped_sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _FileCounts:
    """Counts of one landing file over the run dates read from it."""

    valid: int = 0
    damaged: int = 0
    first_damaged: tuple[int, str] | None = None
    dropped: int = 0
    repeats_quarantined: int = 0


def _count(validated) -> tuple[dict[str, _FileCounts], dict[dt.date, int]]:
    """Per file: valid, damaged and repeated rows; per run date: valid rows. One Spark job on the persisted rows."""
    from pyspark.sql import functions as F

    bad = F.length(F.col(C.REASON)) > 0
    dropped = F.coalesce(F.col(DUPLICATE) == F.lit(DROPPED), F.lit(False))
    damaged = F.col(DAMAGE).isNotNull()
    rows = (
        validated.groupBy(C.SOURCE_FILE, C.RUN_DATE)
        .agg(
            F.sum(F.when(~bad & ~dropped, 1).otherwise(0)).alias("valid"),
            F.sum(F.when(damaged, 1).otherwise(0)).alias("damaged"),
            F.min(F.when(damaged, F.struct(C.ROW_NUMBER, DAMAGE))).alias("first_damaged"),
            F.sum(F.when(dropped, 1).otherwise(0)).alias("dropped"),
            F.sum(F.when(F.col(DUPLICATE) == F.lit(QUARANTINED), 1).otherwise(0)).alias("repeats"),
        )
        .collect()
    )
    files: dict[str, _FileCounts] = {}
    days: dict[dt.date, int] = {}
    for r in rows:
        c = files.setdefault(r[C.SOURCE_FILE], _FileCounts())
        c.valid += r["valid"]
        c.damaged += r["damaged"]
        c.dropped += r["dropped"]
        c.repeats_quarantined += r["repeats"]
        if r["first_damaged"] is not None:
            c.first_damaged = min(filter(None, [c.first_damaged, tuple(r["first_damaged"])]))
        days[r[C.RUN_DATE]] = days.get(r[C.RUN_DATE], 0) + r["valid"]
    return files, days


def _notes(files: dict[str, _FileCounts], duplicates: str) -> list[str]:
    notes = []
    for uri, c in sorted(files.items()):
        if c.damaged:
            number, why = c.first_damaged
            more = f", and {c.damaged - 1} more" if c.damaged > 1 else ""
            notes.append(f"{uri}: {c.damaged} damaged record(s) quarantined (record {number}: {why}{more}); the file's other rows landed")
        if c.dropped:
            notes.append(
                f"{uri}: {c.dropped} row(s) repeating an earlier row of their day, key and values, dropped (ingest.duplicates: {duplicates})"
            )
        if c.repeats_quarantined:
            notes.append(f"{uri}: {c.repeats_quarantined} row(s) repeating the key of an earlier row of their day quarantined")
    return notes


def _day_volumes(root: str, source: str, files: list[LandingFile], days: dict[dt.date, int], run_dates: list[dt.date]) -> list[DayVolume]:
    """What the run would write to bronze per run date, with the file(s) each day comes from."""
    out = []
    for day in run_dates:
        named = tuple(f.uri for f in files if f.days()[0] <= day <= f.days()[1])
        # A day without a file was read as empty (landing.missing_day: empty).
        out.append(DayVolume(day, days.get(day, 0), named or (f"{root.rstrip('/')}/{source}/{day}.* (missing, read as empty)",)))
    return out


def ingest(
    cfg: Config,
    lake: Lake,
    run_dates: list[dt.date],
    sources: list[str] | None = None,
    on_source_done: Callable[[str], None] | None = None,
) -> IngestReport:
    """Ingest the landing files of ``run_dates`` for each configured source.

    Args:
        cfg: Configuration (landing root, sources, the shop's own fields of each source).
        lake: The lake to write to.
        run_dates: Days to ingest; each day's partitions are replaced.
        sources: Sources to ingest (default ``cfg.ingest.sources``). A source with no
            folder under the landing root is skipped with a warning; a source folder
            without the file of a requested day is an error (a day without rows with
            ``landing.missing_day: empty``). Several-day files are read for the
            requested days they cover.
        on_source_done: Called with the source name once its files are written
            (the commits of all sources follow together).

    Returns:
        The report of tables written.

    Raises:
        LandingError: A landing file is missing, unreadable (a damaged gzip stream
            among them) or lacks a required column or a field declared in
            ``landing.extra_fields``; nothing is written.
        VolumeError: Without ``ingest.allow_shrink``, a run date's valid rows would
            replace far more rows than they are, or lie far outside the recent days'
            range (:mod:`shoplake.ingest.guard`); nothing is written.
    """
    root = cfg.landing.root
    wanted = list(sources or cfg.ingest.sources)
    report = IngestReport(run_dates=sorted(run_dates))
    plan = {}
    for name in wanted:
        contract = configured_source(cfg, name)
        if contract.extra_fields:
            log.info("%s: the shop's own fields %s", name, ", ".join(f"{f.name} ({f.dtype}, {f.role})" for f in contract.extra_fields))
        if not source_present(root, name):
            log.warning("landing root %s has no folder for source %r; skipped", root, name)
            report.skipped_sources.append(name)
            continue
        plan[name] = (contract, find_files(root, name, report.run_dates, cfg.landing.missing_day))
    if not plan:
        raise LandingError(f"no landing source folders found under {root} (looked for: {', '.join(wanted)})")

    spark = lake.spark
    from pyspark.sql import functions as F

    settings = cfg.ingest
    ingested_at = F.lit(dt.datetime.now(dt.timezone.utc)).cast("timestamp")
    cached = []
    problems: list[str] = []
    try:
        with naming_unreadable_files():
            prepared = {}
            for name, (contract, files) in plan.items():
                rows = read_landing(spark, files, contract)
                validated = place_on_days(compute_validated(rows, contract), contract, report.run_dates)
                validated = compute_deduplicated(validated, contract, settings.duplicates)
                validated = validated.withColumn(C.INGESTED_AT, ingested_at).persist()
                cached.append(validated)
                file_counts, day_rows = _count(validated)
                for note in _notes(file_counts, settings.duplicates):
                    log.warning("%s", note)
                    report.notes.append(note)
                spec = configured_bronze(cfg, name)
                prepared[name] = (validated, spec)
                if not settings.allow_shrink:
                    volumes = _day_volumes(root, name, files, day_rows, report.run_dates)
                    problems += volume_problems(spec.full_name, volumes, held_rows(lake, spec), settings, name in settings.volume_exempt)
            if problems:
                raise VolumeError(stop_message(problems))
            tables = [t for name, (_, spec) in prepared.items() for t in (spec, QUARANTINE[name])]
            with lake.batch(step=INGEST_STEP, tables=tables, run_date=report.run_dates[-1]) as batch:
                for name, (validated, spec) in prepared.items():
                    good, bad = split_valid(validated)
                    batch.write(good, spec, mode="replace", run_dates=report.run_dates)
                    batch.write(bad, QUARANTINE[name], mode="replace", run_dates=report.run_dates)
                    if on_source_done:
                        on_source_done(name)
        for result in batch.results:
            layer, name = result.table.split(".", 1)
            (report.bronze if layer == "bronze" else report.quarantine)[name] = result
    finally:
        for df in cached:
            df.unpersist()
    for name, result in report.bronze.items():
        q = report.quarantine[name]
        log.info("ingested %s: %d rows to bronze v%d, %d quarantined", name, result.rows, result.version, q.rows)
    return report


__all__ = ["IngestReport", "LandingError", "VolumeError", "date_range", "ingest"]
