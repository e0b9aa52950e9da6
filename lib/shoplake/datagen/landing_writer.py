"""Write landing files in the contract's layout: ``<root>/<source>/<YYYY-MM-DD>.<ext>``.

Used by the synthetic shop and by the adapters for public data, so every producer of
landing files agrees on names, column order and value formats.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shoplake.ingest.landing import get_source
from shoplake.lake.spec import arrow_type

FORMATS = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def landing_path(root: str | Path, source: str, day: dt.date | str, fmt: str, last: dt.date | None = None) -> Path:
    """Where the file of one source and day goes (of the days ``day`` to ``last``, with ``last``)."""
    day_str = day if isinstance(day, str) else day.isoformat()
    if last is not None:
        day_str = f"{day_str}_{last.isoformat()}"
    return Path(root) / source / f"{day_str}{FORMATS[fmt]}"


def conform(source: str, table: pa.Table) -> pa.Table:
    """Order and type a table's columns as the contract of ``source`` says.

    Missing optional fields are added as nulls; a missing required field or an extra
    column is an error naming it.
    """
    contract = get_source(source)
    extra = [c for c in table.column_names if c not in contract.field_names]
    if extra:
        raise ValueError(f"{source}: columns not in the landing contract: {extra}")
    arrays = []
    for f in contract.fields:
        if f.name in table.column_names:
            arrays.append(table[f.name].cast(arrow_type(f.dtype)))
        elif f.required:
            raise ValueError(f"{source}: required field {f.name!r} is missing")
        else:
            arrays.append(pa.nulls(table.num_rows, arrow_type(f.dtype)))
    return pa.table(arrays, names=contract.field_names)


def _as_text(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 UTC strings, dates as YYYY-MM-DD, for CSV and JSON lines."""
    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col.cast(pa.timestamp("s", tz="UTC")), format=TIMESTAMP_FORMAT)
        elif pa.types.is_date(col.type):
            col = pc.strftime(col, format="%Y-%m-%d")
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write_landing(table: pa.Table, root: str | Path, source: str, day: dt.date | str, fmt: str = "csv",
                  last: dt.date | None = None) -> Path:  # fmt: skip
    """Write one day of one source (or, with ``last``, one file of several days); the file appears whole or not at all.

    Args:
        table: Rows with contract field names (optional fields may be absent).
        root: Landing root folder.
        source: Landing source name.
        day: The landing day.
        fmt: ``csv``, ``jsonl`` or ``parquet``.
        last: The last day of a several-day file (its rows land on their own days).

    Returns:
        The path written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown landing format {fmt!r}; use one of {', '.join(FORMATS)}")
    table = conform(source, table)
    path = landing_path(root, source, day, fmt, last)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        pq.write_table(table, tmp)
    elif fmt == "csv":
        pacsv.write_csv(_as_text(table), tmp, write_options=pacsv.WriteOptions(quoting_style="needed"))
    else:
        text = _as_text(table)
        frame = pa.table([c.cast(pa.string()) for c in text.columns], names=text.column_names).to_pandas()
        frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        if table.num_rows == 0:
            tmp.write_text("")
    os.replace(tmp, path)
    return path


def write_import_report(name: str, report: dict, root: str | Path) -> Path:
    """Write an adapter's report beside the landing files as ``_import_report_<name>.json``."""
    path = Path(root) / f"_import_report_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
