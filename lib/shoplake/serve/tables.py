"""The latest partition of a lake table, held in memory by a replica and reloaded when the table's Delta version changes."""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException

log = logging.getLogger(__name__)


def jsonable(value: Any) -> Any:
    """Dates as ISO strings, NaN and infinities as null: what JSON can carry."""
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class _Partition:
    """One loaded run date of a table: its rows sorted by item, and where each item's rows are."""

    version: int
    run_date: dt.date
    rows: Any  # pyarrow.Table
    index: dict[str, tuple[int, int]]  # item -> (first row, row count)

    def item_rows(self, item_id: str, limit: int | None = None) -> list[dict[str, Any]] | None:
        where = self.index.get(item_id)
        if where is None:
            return None
        start, count = where
        return self.rows.slice(start, count if limit is None else min(limit, count)).to_pylist()

    def days(self, item_id: str) -> int:
        return self.index[item_id][1]


class LatestPartition:
    """The latest ``run_date`` partition of a serving table, in memory and indexed by item.

    Loaded when created; afterwards a call to :meth:`current` checks the table's Delta
    version at most every ``check_every_s`` seconds and loads the new version when it
    changed (a new run date, or a re-run of one). A check is skipped, not waited for,
    while another thread is reloading: requests keep being answered from the partition
    in memory. When a reload fails the previous partition stays, and ``problem`` says
    what went wrong.

    Args:
        lake: The lake to read.
        table: A table partitioned by ``run_date`` with an ``item_id`` column.
        order_by: Columns ordering an item's rows (after ``item_id``).
        check_every_s: Seconds between version checks (0: every call).
    """

    def __init__(self, lake, table, order_by: tuple[str, ...] = (), check_every_s: float = 30.0):
        from shoplake.lake.catalog import get_spec

        self.lake = lake
        self.spec = get_spec(table)
        self.order_by = order_by
        self.check_every_s = check_every_s
        self.partition: _Partition | None = None
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._checked = -math.inf
        self.refresh()

    def current(self) -> _Partition | None:
        """The partition in memory, after a version check when one is due."""
        if time.monotonic() - self._checked >= self.check_every_s:
            self.refresh()
        return self.partition

    def refresh(self) -> None:
        """Check the table's version now, and load it when it changed."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            name = self.spec.full_name
            try:
                version = self.lake.version(self.spec)
                if version is None:
                    self.partition, self.problem = None, f"table {name} does not exist in lake {self.lake.root}"
                elif self.partition is None or self.partition.version != version:
                    self.partition = self._load(version)
                    self.problem = None if self.partition else f"table {name} (version {version}) has no rows"
            except Exception as exc:  # a broken read must not take the endpoint down; keep what was loaded
                log.exception("could not load %s", name)
                self.problem = f"could not read table {name}: {exc}"
        finally:
            self._lock.release()

    def _load(self, version: int) -> _Partition | None:
        import numpy as np

        from shoplake import columns as C

        run_dates = self.lake.run_dates(self.spec, version=version)
        if not run_dates:
            return None
        rows = self.lake.to_arrow(self.spec, version=version, run_date=run_dates[-1])
        rows = rows.sort_by([(C.ITEM_ID, "ascending"), *((c, "ascending") for c in self.order_by)]).combine_chunks()
        items, starts, counts = np.unique(rows[C.ITEM_ID].to_numpy(zero_copy_only=False), return_index=True, return_counts=True)
        index = {item: (int(start), int(count)) for item, start, count in zip(items.tolist(), starts, counts)}
        log.info(
            "loaded %s version %d, run date %s: %d rows of %d items", self.spec.full_name, version, run_dates[-1], rows.num_rows, len(index)
        )
        return _Partition(version, run_dates[-1], rows, index)

    def status(self) -> dict[str, Any]:
        """Whether a partition is loaded, which (or why none is)."""
        part = self.current()
        if part is None:
            return {"loaded": False, "table": self.spec.full_name, "detail": self.problem}
        out = {
            "loaded": True,
            "table": self.spec.full_name,
            "version": part.version,
            "run_date": part.run_date.isoformat(),
            "items": len(part.index),
        }
        if self.problem:
            out["detail"] = self.problem
        return out

    def require(self, what: str) -> _Partition:
        """The partition in memory, or a 503 saying why there is none."""
        part = self.current()
        if part is None:
            raise HTTPException(status_code=503, detail=f"no {what} are loaded: {self.problem}")
        return part
