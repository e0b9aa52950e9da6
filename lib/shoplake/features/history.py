"""History tables: every fact stored once, with the run dates between which it was known.

A snapshot table stores, for every run date D, all the rows known before D: a night
adds a copy of the whole history. A history table stores each fact (an interaction,
a transaction) once, partitioned by the day it happened (``event_date``), with the
first run date whose snapshot holds it (``known_from``) and the first that no longer
does (``known_until``, null while it stands: a purchase netted out by a cancellation
that landed later is closed, not deleted). The snapshot of run date D is then a
filter (:func:`as_of_filter`, :func:`as_of_condition`): ``known_from <= D <
known_until``, within the window the table's readers use. Point-in-time reads stay
exact: a fact retracted on a later night is still in every earlier night's view. A
date that was never built reads as the last build before it.

A night only recomputes the facts of the groups its new landing rows touch
(:attr:`History.touched`: the user-item pairs of the day's events and order lines,
for interactions) and compares them with the open facts of those groups: new ones
are inserted with ``known_from = D``, vanished ones get ``known_until = D``. The
lake batch then replaces only the ``event_date`` partitions that changed. Facts of a
group depend on that group's landing rows alone (the netting of a cancellation, the
match of a purchase event with its order line are per user and item), which is what
makes the restriction exact: a night-by-night build and a backfill of the same run
dates store the same rows.

Re-running a date D that is not after the last change re-opens what was closed on or
after D, drops what was added on or after D, and replays D and every later date at
which something changed (:meth:`HistoryState.rewind`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.features.pit import run_midnight
from shoplake.lake.spec import TableSpec

if TYPE_CHECKING:
    from shoplake.config import Config
    from shoplake.features.run import FeatureContext
    from shoplake.lake import Lake

log = logging.getLogger(__name__)

_CLOSED = "_closed_on"


@dataclass(frozen=True)
class History:
    """How a feature node keeps one history table.

    Attributes:
        spec: The stored table: :attr:`identity`, then :func:`history_columns`,
            partitioned by ``event_date``.
        identity: Columns that identify a fact (two facts equal on them are one).
        group: Columns within which facts depend only on the group's own landing
            rows (``user_id, item_id``).
        ts: The event time column; ``event_date`` is its UTC day.
        facts: ``facts(ctx, groups, D)``: every fact known before D (no window), of
            the groups in ``groups`` (a frame of :attr:`group` columns) or of all
            groups when it is None; :attr:`identity` columns.
        touched: ``touched(ctx, since, D)``: the groups whose facts may differ
            between the snapshots of ``since`` and D: those with landing rows of
            days ``since`` .. D-1, or with rows landed before and timestamped in
            that span (:func:`touched_groups`).
        window_days: Days before D that D's readers see (``features.lookback_days``).
    """

    spec: TableSpec
    identity: tuple[str, ...]
    group: tuple[str, ...]
    ts: str
    facts: Callable[[FeatureContext, DataFrame | None, dt.date], DataFrame]
    touched: Callable[[FeatureContext, dt.date, dt.date], DataFrame]
    window_days: Callable[[Config], int]


def touched_groups(frames: Sequence[tuple[DataFrame | None, str]], group: Sequence[str], since: dt.date, day: dt.date) -> DataFrame:
    """The ``group`` values of landing rows new between the snapshots of ``since`` and ``day``.

    Args:
        frames: ``(bronze rows landed before day, their event time column)``; None
            entries (a source the shop lacks) are skipped.
        group: The group columns, present in every frame.
        since: The run date of the previous snapshot.
        day: The run date being built.
    """
    start, end = run_midnight(since), run_midnight(day)
    parts = []
    for df, ts in frames:
        if df is None:
            continue
        new = (F.col(C.RUN_DATE) >= F.lit(since)) | ((F.col(ts) >= F.lit(start)) & (F.col(ts) < F.lit(end)))
        parts.append(df.where(new & F.col(ts).isNotNull()).select(*group))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    known = functools.reduce(lambda a, b: a & b, (F.col(g).isNotNull() for g in group))
    return out.where(known).distinct()


def _last_change_from_stats(files) -> dt.date | None:
    """The latest ``known_from`` or ``known_until`` of a version, from its files' statistics; None when a file has none."""
    import pyarrow.compute as pc

    since, until, open_rows = f"max.{C.KNOWN_FROM}", f"max.{C.KNOWN_UNTIL}", f"null_count.{C.KNOWN_UNTIL}"
    counted = [since, open_rows, "num_records"]
    if not files.num_rows or until not in files.column_names or any(c not in files.column_names or files[c].null_count for c in counted):
        return None
    # A file's known_until maximum is null when every row of it is open, and only then.
    open_only = pc.equal(files[open_rows], files["num_records"])
    if not pc.all(pc.or_(pc.is_valid(files[until]), open_only)).as_py():
        return None
    dates = [pc.max(files[since]).as_py(), pc.max(files[until]).as_py()]
    dates = [d if isinstance(d, dt.date) or d is None else dt.date.fromisoformat(str(d)) for d in dates]
    return max(d for d in dates if d is not None)


def as_of_filter(history: History, day: dt.date, window_days: int):
    """A ``pyarrow.dataset`` filter selecting D's snapshot: known on D, within the window (no Spark needed)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    end = run_midnight(day)
    start = end - dt.timedelta(days=window_days)
    return (
        (ds.field(C.EVENT_DATE) >= pa.scalar(start.date(), pa.date32()))
        & (ds.field(C.EVENT_DATE) <= pa.scalar(day, pa.date32()))
        & (ds.field(C.KNOWN_FROM) <= pa.scalar(day, pa.date32()))
        & (ds.field(C.KNOWN_UNTIL).is_null() | (ds.field(C.KNOWN_UNTIL) > pa.scalar(day, pa.date32())))
        & (ds.field(history.ts) >= pa.scalar(start, pa.timestamp("us", tz="UTC")))
        & (ds.field(history.ts) < pa.scalar(end, pa.timestamp("us", tz="UTC")))
    )


def as_of_condition(history: History, day: dt.date, window_days: int):
    """:func:`as_of_filter` as a Spark condition."""
    end = run_midnight(day)
    start = end - dt.timedelta(days=window_days)
    return (
        (F.col(C.EVENT_DATE) >= F.lit(start.date()))
        & (F.col(C.EVENT_DATE) <= F.lit(day))
        & (F.col(C.KNOWN_FROM) <= F.lit(day))
        & (F.col(C.KNOWN_UNTIL).isNull() | (F.col(C.KNOWN_UNTIL) > F.lit(day)))
        & (F.col(history.ts) >= F.lit(start))
        & (F.col(history.ts) < F.lit(end))
    )


def read_as_of(lake: Lake, history: History, day: dt.date, window_days: int, columns: list[str] | None = None, version: int | None = None):
    """D's snapshot of a history table as Arrow (only the partitions in its window are read)."""
    return lake.to_arrow(history.spec, version, columns=columns, where=as_of_filter(history, day, window_days))


class OldLayoutError(RuntimeError):
    """A history table was written in the per-run-date layout of an earlier version."""


class HistoryState:
    """One history table during a feature run: what is stored, plus the changes of this run's nights."""

    def __init__(self, history: History, lake: Lake, spark):
        self.history = history
        spec = history.spec
        version = lake.version(spec)
        self.exists = version is not None
        self.last = None
        if self.exists:
            files = lake.add_actions(spec, version)
            if files.num_rows and f"partition.{C.EVENT_DATE}" not in files.column_names:
                raise OldLayoutError(
                    f"{spec.full_name} in {lake.root} holds a snapshot per run date, the layout of an earlier shoplake; "
                    f"it is now stored once by event date: delete {lake.uri(spec)} and build the features again"
                )
            # Pinned: the batch commits this table before the frames computed from it are written.
            stored = lake.read(spec, version)
            self.last = _last_change_from_stats(files)
            if self.last is None and files.num_rows:
                self.last = self._last_change(stored)
        else:
            stored = spark.createDataFrame([], spec.spark_schema())
        self._stored = stored
        self._added: DataFrame | None = None
        self._closed: DataFrame | None = None
        self.changed: set[dt.date] = set()

    @staticmethod
    def _last_change(stored: DataFrame) -> dt.date | None:
        """The latest run date on which a fact was added or closed."""
        row = stored.agg(F.max(F.greatest(C.KNOWN_FROM, F.coalesce(C.KNOWN_UNTIL, C.KNOWN_FROM)))).first()
        return row[0] if row else None

    def rewind(self, first: dt.date) -> list[dt.date]:
        """Undo what changed on or after ``first``; the later change dates, to be built again."""
        if self.last is None or first > self.last:
            return []
        stored = self._stored
        later = (F.col(C.KNOWN_FROM) >= F.lit(first)) | (F.col(C.KNOWN_UNTIL) >= F.lit(first))
        touched = stored.where(later).select(C.EVENT_DATE, C.KNOWN_FROM, C.KNOWN_UNTIL).distinct().collect()
        again = sorted({d for r in touched for d in (r[C.KNOWN_FROM], r[C.KNOWN_UNTIL]) if d is not None and d >= first})
        self.changed |= {r[C.EVENT_DATE] for r in touched}
        self._stored = stored.where(F.col(C.KNOWN_FROM) < F.lit(first)).withColumn(
            C.KNOWN_UNTIL, F.when(F.col(C.KNOWN_UNTIL) >= F.lit(first), F.lit(None).cast("date")).otherwise(F.col(C.KNOWN_UNTIL))
        )
        self.last = self._last_change(self._stored)
        log.info("%s: rewound to before %s; %d later change date(s) built again", self.history.spec.full_name, first, len(again))
        return again

    def current(self) -> DataFrame:
        """Every stored fact with this run's changes applied."""
        rows = self._stored if self._added is None else self._stored.unionByName(self._added)
        if self._closed is None:
            return rows
        keys = [*self.history.identity, C.KNOWN_FROM]
        return (
            rows.join(self._closed, keys, "left")
            .withColumn(C.KNOWN_UNTIL, F.coalesce(F.col(C.KNOWN_UNTIL), F.col(_CLOSED)))
            .select(*self.history.spec.column_names)
        )

    def advance(self, ctx: FeatureContext, day: dt.date) -> None:
        """Bring the table to run date ``day``: facts of the touched groups compared with the open ones."""
        h = self.history
        if self.last is not None and day <= self.last:
            raise ValueError(f"{h.spec.full_name}: {day} is not after the last change ({self.last}); rewind first")
        groups = None if self.last is None else ctx.persist(h.touched(ctx, self.last, day))
        # Kept: both the added and the closed facts are computed from it.
        facts = ctx.persist(h.facts(ctx, groups, day).select(*h.identity))
        open_ = self.current().where(F.col(C.KNOWN_UNTIL).isNull())
        if groups is not None:
            open_ = open_.join(groups, list(h.group), "left_semi")
        added = (
            facts.join(open_.select(*h.identity), list(h.identity), "left_anti")
            .withColumn(C.EVENT_DATE, F.to_date(F.col(h.ts)))
            .withColumn(C.KNOWN_FROM, F.lit(day))
            .withColumn(C.KNOWN_UNTIL, F.lit(None).cast("date"))
            .select(*h.spec.column_names)
        )
        closed = open_.join(facts, list(h.identity), "left_anti").select(*h.identity, C.KNOWN_FROM, C.EVENT_DATE)
        added, closed = ctx.persist(added), ctx.persist(closed)
        dates = {r[0] for r in added.select(C.EVENT_DATE).union(closed.select(C.EVENT_DATE)).distinct().collect()}
        if dates:
            self.changed |= dates
            self.last = day
        closed = closed.drop(C.EVENT_DATE).withColumn(_CLOSED, F.lit(day))
        self._added = added if self._added is None else self._added.unionByName(added)
        self._closed = closed if self._closed is None else self._closed.unionByName(closed)
        log.info("%s: %s, %d event day(s) changed", h.spec.full_name, day, len(dates))

    def as_of(self, day: dt.date, cfg: Config) -> DataFrame:
        """D's snapshot: the facts known on D within the readers' window, with a ``run_date`` column."""
        condition = as_of_condition(self.history, day, self.history.window_days(cfg))
        return self.current().where(condition).select(*self.history.identity).withColumn(C.RUN_DATE, F.lit(day))

    def output(self) -> tuple[DataFrame, str, dict[str, list[str]] | None] | None:
        """``(rows, mode, partitions)`` to write, or None when nothing changed.

        The rows are shuffled by ``event_date`` first, so that each event day is
        written as one file rather than one per task of the last stage.
        """
        if not self.exists:
            return self.current().repartition(C.EVENT_DATE), "overwrite", None
        if not self.changed:
            return None
        days = sorted(self.changed)
        rows = self.current().where(F.col(C.EVENT_DATE).isin(*days)).repartition(C.EVENT_DATE)
        return rows, "replace", {C.EVENT_DATE: [d.isoformat() for d in days]}


__all__ = ["History", "HistoryState", "OldLayoutError", "as_of_condition", "as_of_filter", "read_as_of", "touched_groups"]
