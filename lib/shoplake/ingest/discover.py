"""Find a source's landing files for the days of a run: one file a day, or several-day files covering them.

A day's file is ``<root>/<source>/<YYYY-MM-DD><ext>``; a several-day file is
``<root>/<source>/<first>_<last><ext>`` and holds the days ``first`` to ``last``. A
day covered twice, or by no file (unless ``landing.missing_day`` is ``empty``), is a
:class:`LandingError` that names the files.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

import pyarrow.fs as pafs

from shoplake.errors import InputError
from shoplake.ingest.landing import FILE_EXTENSIONS
from shoplake.lake.files import filesystem

log = logging.getLogger(__name__)


class LandingError(InputError):
    """A landing file is missing, unreadable or does not match the contract."""


@dataclass(frozen=True)
class LandingFile:
    """One landing file: of one day, or of the days ``day`` to ``last`` (a several-day file)."""

    source: str
    day: dt.date
    uri: str
    ext: str
    last: dt.date | None = None

    def days(self) -> tuple[dt.date, dt.date]:
        return self.day, self.last or self.day


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def source_present(root: str, source: str) -> bool:
    """Whether the landing root has a folder for ``source``."""
    fs, path = filesystem(_join(root, source))
    return fs.get_file_info(path).type == pafs.FileType.Directory


def _daily_file(root: str, source: str, day: dt.date) -> LandingFile | None:
    fs, base = filesystem(_join(root, source))
    found = []
    for ext in FILE_EXTENSIONS:
        info = fs.get_file_info(f"{base}/{day.isoformat()}{ext}")
        if info.type == pafs.FileType.File:
            found.append(ext)
    if len(found) > 1:
        raise LandingError(f"several landing files for source {source!r} on {day}: {', '.join(day.isoformat() + e for e in found)}")
    return LandingFile(source, day, _join(root, source, day.isoformat() + found[0]), found[0]) if found else None


def find_file(root: str, source: str, day: dt.date) -> LandingFile:
    """The landing file of one source and day; an error names what was expected."""
    found = _daily_file(root, source, day)
    if found is None:
        raise LandingError(
            f"missing landing file for source {source!r} on {day}: expected "
            f"{_join(root, source, day.isoformat())}{{{','.join(FILE_EXTENSIONS)}}}"
        )
    return found


#: ``<first day>_<last day>`` of a several-day file.
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})$")


def _range_files(root: str, source: str) -> list[LandingFile]:
    """The several-day files of a source folder; a bad range is an error naming the file."""
    fs, base = filesystem(_join(root, source))
    out = []
    for info in fs.get_file_info(pafs.FileSelector(base)):
        if info.type != pafs.FileType.File:
            continue
        ext = next((e for e in sorted(FILE_EXTENSIONS, key=len, reverse=True) if info.base_name.endswith(e)), None)
        match = _RANGE.match(info.base_name[: -len(ext)]) if ext else None
        if not match:
            continue
        uri = _join(root, source, info.base_name)
        try:
            first, last = (dt.date.fromisoformat(g) for g in match.groups())
        except ValueError as exc:
            raise LandingError(f"{uri}: not a range of days <first>_<last> ({exc})") from exc
        if last < first:
            raise LandingError(f"{uri}: the last day {last} is before the first {first}")
        out.append(LandingFile(source, first, uri, ext, last))
    return sorted(out, key=lambda f: f.day)


def find_files(root: str, source: str, days: list[dt.date], missing_day: str = "error") -> list[LandingFile]:
    """The landing files that hold ``days`` of a source: one per day, or several-day files covering them.

    A day covered twice (its own file and a several-day one, or two several-day files)
    is an error; so is a day covered by none, unless ``missing_day`` is ``empty``
    (the day then has no rows, with a warning).
    """
    ranges = _range_files(root, source)
    out: dict[str, LandingFile] = {}
    for day in days:
        covering = [f for f in ranges if f.day <= day <= f.last]
        daily = _daily_file(root, source, day)
        found = ([daily] if daily else []) + covering
        if not found:
            if missing_day != "empty":
                find_file(root, source, day)  # raises the error that names the file expected
            log.warning("no landing file for source %r on %s: read as a day without rows (landing.missing_day)", source, day)
        if len(found) > 1:
            raise LandingError(f"source {source!r}: {day} is in several landing files: {', '.join(f.uri for f in found)}")
        for f in found:
            out[f.uri] = f
    return list(out.values())
