"""Undo a run that did not finish: restore its tables, delete the files no commit references.

A run of a multi-table step (:meth:`shoplake.lake.Lake.batch`) that was killed may
have committed some of its tables and written data files for others. The next
start of the same step calls :func:`roll_back` for it:

- each table the run declared, whose newest commit is the run's, goes back to its
  version before the run's first commit (a table the run created is removed);
- data files written since the run started that no version from then on
  references are deleted: the files of writes the kill cut short, which no Delta
  reader would ever see but which would otherwise stay on disk for good;
- the run is recorded as ``rolled_back``.

A table another run has committed to since is left as it is, with a warning: its
newer state is not this run's to undo.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from shoplake.lake.catalog import get_spec
from shoplake.lake.files import data_files, filesystem
from shoplake.lake.manifest import ROLLED_BACK, Run, commit_run_id

if TYPE_CHECKING:
    from shoplake.lake import Lake

log = logging.getLogger(__name__)

#: Commits of a table's history searched for a run's commits (a run makes one per table).
HISTORY_SCAN = 50
#: Files modified this long before a run's start still count as possibly its own (clock granularity).
_MTIME_SLACK = dt.timedelta(seconds=1)


def _referenced(uri: str, versions: range, storage_options) -> set[str]:
    from deltalake import DeltaTable

    names: set[str] = set()
    for v in versions:
        table = DeltaTable(uri, version=v, storage_options=storage_options)
        names.update(f.rsplit("/", 1)[-1] for f in table.file_uris())
    return names


def delete_orphans(uri: str, since: dt.datetime, first_version: int, storage_options=None) -> int:
    """Delete data files modified since ``since`` that no version from ``first_version`` on references; returns how many."""
    from shoplake.lake.delta_rs import table_version

    current = table_version(uri, storage_options)
    keep = _referenced(uri, range(max(first_version, 0), current + 1), storage_options) if current is not None else set()
    fs, _ = filesystem(uri, storage_options)
    removed = 0
    for info in data_files(uri, storage_options):
        if info.base_name in keep or info.mtime is None:
            continue
        mtime = info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=dt.timezone.utc)
        if mtime >= since - _MTIME_SLACK:
            fs.delete_file(info.path)
            removed += 1
    return removed


def roll_back(lake: Lake, run: Run) -> None:
    """Undo the unfinished ``run`` (see the module docstring) and record it as rolled back."""
    from shoplake.lake.delta_rs import remove_table

    notes = []
    for name in run.tables:
        spec = get_spec(name)
        uri = lake.uri(spec)
        current = lake.current_version(spec)
        if current is None:
            removed = delete_orphans(uri, run.started_at, 0, lake.storage_options)
            if removed:
                notes.append(f"{name}: {removed} orphan file(s) deleted")
            continue
        history = lake.engine.history(uri, HISTORY_SCAN)
        own = sorted(int(e["version"]) for e in history if commit_run_id(e) == run.run_id)
        if own and own[-1] != current:
            log.warning("%s: run %s committed v%d but the table has moved on to v%d; left as it is", name, run.run_id, own[-1], current)
            notes.append(f"{name}: left at v{current}")
            continue
        if own:
            before = own[0] - 1
            if before < 0:
                remove_table(uri, lake.storage_options)
                notes.append(f"{name}: created by the run, removed")
                continue
            lake.engine.restore(uri, before)
            notes.append(f"{name}: v{current} -> v{before} restored")
            first = before
        else:
            first = current
        removed = delete_orphans(uri, run.started_at, first, lake.storage_options)
        if removed:
            notes.append(f"{name}: {removed} orphan file(s) deleted")
    detail = "; ".join(notes) or "nothing had been committed"
    log.warning("rolled back unfinished run %s of %s (%s): %s", run.run_id, run.step, run.run_date, detail)
    lake.manifest.record(run.run_id, run.step, ROLLED_BACK, run.run_date, detail=detail)
