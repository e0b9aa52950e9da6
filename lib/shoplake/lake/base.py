"""What the lake engines share: write modes, results and staged writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

WRITE_MODES = ("overwrite", "append", "replace")


@dataclass(frozen=True)
class WriteResult:
    """One committed write.

    Attributes:
        table: Full table name.
        version: Delta version the commit created.
        rows: Rows written.
        files: Data files added.
        mode: ``overwrite``, ``append``, ``replace`` or ``merge``.
    """

    table: str
    version: int
    rows: int
    files: int
    mode: str


@dataclass
class StagedWrite:
    """A write whose data is in place but whose effect is not final yet.

    ``commit`` makes it visible: the single Delta commit of the files the delta-rs
    engine wrote, or Spark's Delta write (data and commit) for the delta-spark engine.
    ``rollback`` undoes a committed write by restoring the previous version, and
    ``discard`` removes the files of a write that will never be committed.
    """

    table: str
    commit: Callable[[], WriteResult]
    rollback: Callable[[], None]
    discard: Callable[[], None] = lambda: None
    committed: bool = field(default=False)


def partition_filters(partitions: dict[str, list[str]] | None) -> list[tuple] | None:
    """Delta partition filters selecting the given values of each partition column."""
    if not partitions:
        return None
    return [(col, "in", list(values)) for col, values in partitions.items()]


def check_mode(mode: str, partitions: dict[str, list[str]] | None, table: str, partition_by: tuple[str, ...]) -> None:
    """Validate a write mode and its partitions against the table's layout."""
    if mode not in WRITE_MODES:
        raise ValueError(f"unknown write mode {mode!r}; use one of {', '.join(WRITE_MODES)}")
    if mode == "replace":
        if not partitions:
            raise ValueError(f"table {table}: mode 'replace' needs the partition values to replace")
        outside = [c for c in partitions if c not in partition_by]
        if outside:
            raise ValueError(f"table {table}: {outside} are not partition columns (partitioned by {list(partition_by)})")
    elif partitions:
        raise ValueError(f"table {table}: partition values only apply to mode 'replace'")
