"""Table maintenance, a declared step of the nightly run: expire old snapshots, compact small files, vacuum what no reader needs.

For every table of the lake:

* **expire**: a silver or gold table is a dated snapshot per run date; the latest
  ``lake.keep_run_dates`` of them are kept and the older ones deleted (one commit;
  time travel still reaches them until they are vacuumed). Bronze keeps every
  landing day, and the serving and ops tables every run's outputs.
* **compact**: a table whose current version holds at least
  ``lake.compact_min_files`` data files is rewritten into fewer, larger ones
  (``OPTIMIZE`` through the engine: Spark's Delta ``optimize().executeCompaction()`` or
  delta-rs ``optimize.compact()``); readers see the same rows, time travel still
  reaches the versions before.
* **vacuum**: data files that no version younger than ``lake.vacuum_retention_hours``
  references are deleted, and so are files no commit ever referenced (the files of a
  write that failed or was killed before its commit) once they are that old. Time
  travel reaches back as far as the retention.

The step runs last in the night (:mod:`shoplake.maintain`); ``shoplake maintain-lake`` runs it by hand.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from shoplake import columns as C

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Maintained:
    """What maintenance did to one table."""

    table: str
    files_before: int
    compacted: bool
    files_after: int
    vacuumed: int
    expired: tuple[dt.date, ...] = ()  # run dates deleted


def maintain(lake, tables=None) -> list[Maintained]:
    """Compact and vacuum ``tables`` (default: every table of the lake); see the module docstring."""
    cfg = lake.cfg.lake
    out = []
    for spec in tables if tables is not None else lake.tables():
        uri = lake.uri(spec)
        expired = expire_snapshots(lake, spec)
        before = lake.file_count(spec)
        compacted = before >= cfg.compact_min_files
        if compacted:
            lake.engine.optimize(uri)
        after = lake.file_count(spec)
        vacuumed = lake.engine.vacuum(uri, cfg.vacuum_retention_hours)
        log.info("%s: %s%d files%s, %d vacuumed", spec.full_name, f"{len(expired)} run dates expired, " if expired else "", before,
                 f" compacted to {after}" if compacted else "", vacuumed)  # fmt: skip
        out.append(Maintained(spec.full_name, before, compacted, after, vacuumed, tuple(expired)))
    return out


#: Layers whose tables are dated snapshots that maintenance expires.
SNAPSHOT_LAYERS = ("silver", "gold")


def expire_snapshots(lake, spec) -> list[dt.date]:
    """Delete a silver or gold table's run-date partitions older than the latest ``lake.keep_run_dates``; the dates deleted."""
    keep = lake.cfg.lake.keep_run_dates
    if keep is None or spec.layer not in SNAPSHOT_LAYERS or spec.partition_by != (C.RUN_DATE,) or not lake.exists(spec):
        return []
    dates = lake.run_dates(spec)
    if len(dates) <= keep:
        return []
    lake.engine.delete_before(lake.uri(spec), C.RUN_DATE, dates[-keep])
    return dates[:-keep]
