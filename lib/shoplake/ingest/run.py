"""The ingest step: landing files of some days -> ``bronze.<source>`` and ``quarantine.<source>``.

All files are located and their headers checked before any data is read, and every
table is written in one lake batch: after an error the lake is as it was. Each run
date's partition is replaced, so re-running a day (or a range) never duplicates rows.
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
from shoplake.ingest.landing import configured_source
from shoplake.ingest.readers import LandingError, find_files, place_on_days, read_landing, source_present
from shoplake.ingest.validate import compute_validated, split_valid
from shoplake.lake import Lake, WriteResult

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What an ingest run wrote: per source, bronze and quarantine results."""

    run_dates: list[dt.date]
    bronze: dict[str, WriteResult] = field(default_factory=dict)
    quarantine: dict[str, WriteResult] = field(default_factory=dict)
    skipped_sources: list[str] = field(default_factory=list)


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
        LandingError: A landing file is missing, unreadable or lacks a required column
            or a field declared in ``landing.extra_fields``.
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

    ingested_at = F.lit(dt.datetime.now(dt.timezone.utc)).cast("timestamp")
    cached = []
    try:
        with lake.batch() as batch:
            for name, (contract, files) in plan.items():
                rows = read_landing(spark, files, contract)
                validated = place_on_days(compute_validated(rows, contract), contract, report.run_dates)
                validated = validated.withColumn(C.INGESTED_AT, ingested_at).persist()
                cached.append(validated)
                good, bad = split_valid(validated)
                batch.write(good, configured_bronze(cfg, name), mode="replace", run_dates=report.run_dates)
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


__all__ = ["IngestReport", "LandingError", "date_range", "ingest"]
