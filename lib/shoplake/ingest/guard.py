"""Volume guards: a day's new rows judged against what the lake holds for it and what the recent days had.

An empty or cut file is still a readable file, so the readers let it through; what
gives it away is its volume. Before ingest writes anything it compares, per source
and run date, the valid rows it would write to bronze with:

- the rows bronze already holds for that run date (a re-run replaces them): fewer
  than ``ingest.shrink_ratio`` of them stops the run;
- the median rows of the recent days with rows (run dates within
  ``ingest.volume_days`` before it, the days of this run included; a day without
  rows, a closed shop, is no measure of an open one): more than
  ``ingest.volume_factor`` times it, or under that median divided by it, stops the
  run. Fewer than ``ingest.volume_min_days`` recent days, or a day and median both
  under ``ingest.volume_min_rows`` rows (a sparse source), are not judged; nor is a
  day without rows, which the landing contract allows, unless
  ``ingest.volume_empty_days`` is ``stop`` (a shop with rows every day).

Sources in ``ingest.volume_exempt`` skip the second (a shop that sends its whole
catalogue now and then). ``ingest.allow_shrink`` (``--allow-shrink``) writes anyway. The counts of the rows
held come from the Delta log's file statistics: no data is read.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.ingest.discover import LandingError

if TYPE_CHECKING:
    from shoplake.config import IngestConfig
    from shoplake.lake import Lake
    from shoplake.lake.spec import TableSpec


class VolumeError(LandingError):
    """A day's landing rows would shrink what the lake holds, or lie far outside the recent days' range."""


@dataclass(frozen=True)
class DayVolume:
    """What one run would write to a bronze table for one run date.

    Attributes:
        day: The run date.
        rows: Valid rows for bronze (after repeats are dropped).
        files: The landing file(s) the day's rows come from, as they are named to a person.
    """

    day: dt.date
    rows: int
    files: tuple[str, ...]

    @property
    def named(self) -> str:
        return ", ".join(self.files)


def held_rows(lake: Lake, spec: TableSpec) -> dict[dt.date, int]:
    """Rows per run date of a table, from the Delta log (empty when the table does not exist).

    A run date with a file whose statistics lack a row count is left out (not judged).
    """
    if not lake.exists(spec):
        return {}
    actions = lake.add_actions(spec)
    column = f"partition.{C.RUN_DATE}"
    if not actions.num_rows or column not in actions.column_names or "num_records" not in actions.column_names:
        return {}
    counts: dict[dt.date, int] = {}
    unknown: set[dt.date] = set()
    for value, rows in zip(actions[column].to_pylist(), actions["num_records"].to_pylist(), strict=True):
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if rows is None:
            unknown.add(day)
        counts[day] = counts.get(day, 0) + int(rows or 0)
    return {d: n for d, n in counts.items() if d not in unknown}


def volume_problems(
    table: str,
    new: Sequence[DayVolume],
    held: Mapping[dt.date, int],
    settings: IngestConfig,
    exempt: bool = False,
) -> list[str]:
    """Why the new days of one bronze table must not be written without ``ingest.allow_shrink``; empty when they may.

    Args:
        table: The bronze table's full name (named in the messages).
        new: What this run would write, one entry per run date.
        held: Rows per run date the table holds now (:func:`held_rows`).
        settings: ``ingest.*``: the ratios, factor, days and floors.
        exempt: Judge only the shrink, not the volume against the recent days.

    Returns:
        One line per run date that trips a guard, naming the file(s) and the counts.
    """
    problems = []
    # The recent days: what the table holds, with this run's days as they will be.
    volumes = {**held, **{v.day: v.rows for v in new}}
    for v in sorted(new, key=lambda v: v.day):
        before = held.get(v.day, 0)
        if before > 0 and v.rows < settings.shrink_ratio * before:
            problems.append(
                f"{v.named}: {v.rows} rows would replace the {before} rows {table} holds for {v.day} "
                f"(less than ingest.shrink_ratio={settings.shrink_ratio:g} of them)"
            )
            continue
        if exempt or (v.rows == 0 and settings.volume_empty_days == "allow"):
            continue
        first = v.day - dt.timedelta(days=settings.volume_days)
        recent = sorted(d for d, n in volumes.items() if first <= d < v.day and n > 0)
        if len(recent) < settings.volume_min_days:
            continue
        median = statistics.median(volumes[d] for d in recent)
        if max(v.rows, median) < settings.volume_min_rows:
            continue
        factor = settings.volume_factor
        if v.rows > factor * median or v.rows * factor < median:
            problems.append(
                f"{v.named}: {v.rows} rows for {v.day}, far outside the recent days of {table} (median {median:g} rows "
                f"over {len(recent)} days with rows from {recent[0]} to {recent[-1]}; ingest.volume_factor={factor:g})"
            )
    return problems


def stop_message(problems: Sequence[str]) -> str:
    """The error of a run stopped by the guards: every problem, and how to write anyway."""
    how = "nothing was written; to write anyway, run with --allow-shrink or set ingest.allow_shrink=true"
    if len(problems) == 1:
        return f"{problems[0]}; {how}"
    return "\n".join([f"{len(problems)} landing days stopped by the volume guards ({how}):", *(f"  {p}" for p in problems)])
