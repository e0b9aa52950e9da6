"""The run manifest: which runs of which steps committed which table versions, and whether they finished.

A step that writes several tables (ingest, features) writes them in one
:meth:`shoplake.lake.Lake.batch` run. Delta commits are atomic per table only, so a
process killed between two commits would leave some tables at the new run and some
at the old one. The manifest makes such a half-done run invisible and undoes it:

1. Before anything is written the run appends a ``started`` row to ``ops.runs``
   naming the tables it will write; every commit it makes carries its run id in the
   commit's metadata (``shoplake.run_id``), and the data files the delta-rs engine
   writes carry it in their names.
2. When the last commit is made the run appends a ``complete`` row with the version
   of each table. A run that fails cleanly restores what it committed and appends
   ``failed``.
3. Readers ask the lake for a table's version (:meth:`Lake.version`); while a run
   that touched the table is unfinished, they get the version from before that
   run's first commit: the last complete state. A run still in progress is
   unfinished too, so readers never see one half-written.
4. The next start of the same step rolls back every unfinished run of that step
   (:func:`roll_back`): tables are restored to their versions before the run, the
   data files it wrote that no commit references are deleted, and the run is
   marked ``rolled_back``.

``ops.runs`` is written by the driver with delta-rs, whichever engine writes the
data: one small append per event.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass

import pyarrow as pa

from shoplake.lake.spec import Col, TableSpec

log = logging.getLogger(__name__)

RUNS = TableSpec(
    name="runs",
    layer="ops",
    columns=(
        Col("run_id", "string", nullable=False, doc="One run of a step."),
        Col("step", "string", nullable=False, doc="The step that ran (ingest, features, ...)."),
        Col("run_date", "date", doc="The run date, where the step has one."),
        Col("status", "string", nullable=False, doc="started, complete, failed or rolled_back."),
        Col("tables", "string", doc="JSON: the tables a started run will write; the version of each that a complete run committed."),
        Col("recorded_at", "timestamp", nullable=False, doc="When this row was written."),
        Col("detail", "string", doc="Why a run failed or was rolled back."),
    ),
    keys=("run_id", "status"),
    description="The run manifest: every multi-table run of a step, its tables and versions, and whether it completed.",
)
SPECS = (RUNS,)

STARTED, COMPLETE, FAILED, ROLLED_BACK = "started", "complete", "failed", "rolled_back"
_ENDED = (COMPLETE, FAILED, ROLLED_BACK)
#: The commit metadata key that names the run a commit belongs to.
RUN_ID_KEY = "shoplake.run_id"
#: Characters of the run id at the front of the write ids (and file names) of a run's writes.
RUN_PREFIX_LEN = 12


def new_run_id() -> str:
    return uuid.uuid4().hex


def commit_run_id(entry: dict) -> str | None:
    """The run id of one commit of a table's history (either engine's), or None."""
    if entry.get(RUN_ID_KEY):
        return str(entry[RUN_ID_KEY])
    meta = entry.get("userMetadata")
    if meta:
        try:
            return json.loads(meta).get(RUN_ID_KEY)
        except (ValueError, AttributeError):
            return None
    return None


@dataclass(frozen=True)
class Run:
    """One run, as its rows in ``ops.runs`` say.

    Attributes:
        run_id: The run.
        step: Its step.
        run_date: Its run date, if any.
        status: The last status recorded.
        tables: The tables it meant to write (from ``started``).
        versions: The version of each table it committed (from ``complete``).
        started_at: When it started.
    """

    run_id: str
    step: str
    run_date: dt.date | None
    status: str
    tables: tuple[str, ...]
    versions: dict[str, int]
    started_at: dt.datetime

    @property
    def finished(self) -> bool:
        return self.status in _ENDED


class RunManifest:
    """``ops.runs`` under a lake root."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None):
        from shoplake.lake.catalog import table_uri

        self.uri = table_uri(root, RUNS)
        self.storage_options = storage_options or None
        self._cache: tuple[int | None, list[Run]] | None = None

    def record(self, run_id: str, step: str, status: str, run_date: dt.date | None = None, tables=None, detail: str | None = None) -> None:
        """Append one event of a run (one small Delta commit)."""
        from deltalake import write_deltalake

        row = {
            "run_id": run_id,
            "step": step,
            "run_date": run_date,
            "status": status,
            "tables": json.dumps(tables) if tables is not None else None,
            "recorded_at": dt.datetime.now(dt.timezone.utc),
            "detail": detail,
        }
        write_deltalake(
            self.uri,
            pa.Table.from_pylist([row], schema=RUNS.arrow_schema()),
            mode="append",
            storage_options=self.storage_options,
            configuration=None,
        )
        self._cache = None

    def _version(self) -> int | None:
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options):
            return None
        return int(DeltaTable(self.uri, storage_options=self.storage_options).version())

    def runs(self) -> list[Run]:
        """Every run, oldest first (cached until ``ops.runs`` gets a new version)."""
        from deltalake import DeltaTable

        version = self._version()
        if self._cache is not None and self._cache[0] == version:
            return self._cache[1]
        runs: dict[str, dict] = {}
        if version is not None:
            table = DeltaTable(self.uri, version=version, storage_options=self.storage_options)
            dataset = table.to_pyarrow_dataset()
            rows = dataset.to_table().sort_by("recorded_at").to_pylist()
            del dataset, table  # delta-rs objects released before the process may exit (stack notes)
            for row in rows:
                run = runs.setdefault(
                    row["run_id"],
                    {"step": row["step"], "run_date": row["run_date"], "tables": (), "versions": {}, "started_at": row["recorded_at"]},
                )
                run["status"] = row["status"]
                if row["status"] == STARTED and row["tables"]:
                    run["tables"] = tuple(json.loads(row["tables"]))
                if row["status"] == COMPLETE and row["tables"]:
                    run["versions"] = {k: int(v) for k, v in json.loads(row["tables"]).items()}
        out = [Run(run_id, **fields) for run_id, fields in runs.items()]
        self._cache = (version, out)
        return out

    def unfinished(self, step: str | None = None) -> list[Run]:
        """Runs with a ``started`` row and no end (in progress, or killed), of one step or all."""
        return [r for r in self.runs() if not r.finished and (step is None or r.step == step)]

    def last_complete(self, step: str) -> Run | None:
        done = [r for r in self.runs() if r.step == step and r.status == COMPLETE]
        return done[-1] if done else None


def version_before_runs(history: list[dict], run_ids: set[str]) -> tuple[bool, int | None]:
    """From a table's history (newest first): whether any commit belongs to ``run_ids``, and the version before the first.

    Returns:
        ``(touched, version)``: ``version`` is None when one of the runs created the table.
    """
    versions = [int(e["version"]) for e in history if commit_run_id(e) in run_ids]
    if not versions:
        return False, None
    first = min(versions)
    return True, (first - 1 if first > 0 else None)
