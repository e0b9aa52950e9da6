"""Table maintenance, a declared step of the nightly run: compact small files, vacuum what no reader needs.

For every table of the lake:

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

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Maintained:
    """What maintenance did to one table."""

    table: str
    files_before: int
    compacted: bool
    files_after: int
    vacuumed: int


def maintain(lake, tables=None) -> list[Maintained]:
    """Compact and vacuum ``tables`` (default: every table of the lake); see the module docstring."""
    cfg = lake.cfg.lake
    out = []
    for spec in tables if tables is not None else lake.tables():
        uri = lake.uri(spec)
        before = lake.file_count(spec)
        compacted = before >= cfg.compact_min_files
        if compacted:
            lake.engine.optimize(uri)
        after = lake.file_count(spec)
        vacuumed = lake.engine.vacuum(uri, cfg.vacuum_retention_hours)
        log.info("%s: %d files%s, %d vacuumed", spec.full_name, before, f" compacted to {after}" if compacted else "", vacuumed)
        out.append(Maintained(spec.full_name, before, compacted, after, vacuumed))
    return out
