"""Generic importers: a shop's own interaction log or sales table turned into landing files.

Both read one CSV (optionally gzipped) or Parquet file with the columns named on the
command line, check every row, and write one several-day landing file per source
(``<first day>_<last day>``), so years of history are a handful of files, not one
per day. A row that cannot be used stops the import with an error naming the row
and the field; nothing is written then.

* :func:`import_interactions`: ``user, item, timestamp`` and optionally a ``value``
  (kept as a purchase only at ``min_value`` or above: ratings as purchases) and an
  item text, into ``events`` (one event of ``event_type`` per row) and ``products``
  (the item text as the title, dated at the item's first interaction).
* :func:`import_sales`: ``series, date, value`` and optionally a ``price``, into
  ``orders`` (one placed line per series and day with sales, at noon UTC) and
  ``products``. With ``value_kind="units"`` (the default) the value is whole units
  sold; with ``value_kind="amount"`` it is any non-negative number (revenue, weight,
  hours), landed as one unit at a unit price of the value, so it reaches
  ``gold.item_daily_sales.revenue`` unrounded: forecast it with
  ``forecasting.target: revenue``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.datagen.landing_writer import write_import_report, write_landing
from shoplake.errors import InputError
from shoplake.ingest.landing import EVENT_TYPES, PLACED


class ImportInputError(InputError):
    """A row of the input cannot be turned into landing rows (the message names it)."""


def _read(src: str | Path, columns: dict[str, str | None]) -> pa.Table:
    """The named columns of a CSV or Parquet file, renamed to their roles; an error names a missing one."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(src)
    if not path.is_file():
        raise ImportInputError(f"{path}: no such file")
    wanted = {role: name for role, name in columns.items() if name}
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        text = pacsv.ConvertOptions(column_types={name: pa.string() for name in wanted.values()})
        table = pacsv.read_csv(path, convert_options=text)
    missing = [name for name in wanted.values() if name not in table.column_names]
    if missing:
        raise ImportInputError(f"{path}: no column(s) {', '.join(missing)} (file has: {', '.join(table.column_names)})")
    return pa.table({role: table[name] for role, name in wanted.items()})


def _bad_row(src, mask: np.ndarray, field: str, why: str) -> None:
    if mask.any():
        row = int(np.argmax(mask))
        raise ImportInputError(f"{src}: row {row + 2 if str(src).endswith(('.csv', '.gz')) else row + 1}, {field}: {why} "
                           f"({int(mask.sum()):,} row(s) in all)")  # fmt: skip


def _timestamps(src, column: pa.ChunkedArray, field: str) -> pa.ChunkedArray:
    """UTC timestamps from ISO text, dates, timestamps or epoch seconds; an error names the first bad row."""
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.timestamp("us", tz="UTC")) if column.type.tz else pc.assume_timezone(column.cast(pa.timestamp("us")), "UTC")
    if pa.types.is_date(column.type):
        return pc.assume_timezone(column.cast(pa.timestamp("us")), "UTC")
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return pa.chunked_array([pa.array((column.to_numpy(zero_copy_only=False) * 1e6).astype("int64"), pa.timestamp("us", tz="UTC"))])
    text = column.cast(pa.string())
    if text.null_count == 0 and pc.all(pc.match_substring_regex(text, r"^\d+$")).as_py():
        return _timestamps(src, text.cast(pa.int64()), field)
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(text.to_pylist()), utc=True, errors="coerce", format="mixed")
    _bad_row(src, parsed.isna().to_numpy(), field, "not a date or time")
    return pa.chunked_array([pa.array(parsed.dt.tz_convert("UTC"), pa.timestamp("us", tz="UTC"))])


def _numbers(src, column: pa.ChunkedArray, field: str) -> np.ndarray:
    """A numeric column as float64; an error names the first row that is not a number."""
    import pandas as pd

    values = pd.to_numeric(pd.Series(column.to_pylist(), dtype=object), errors="coerce").to_numpy(dtype=float)
    _bad_row(src, np.isnan(values), field, "not a number")
    return values


def _present(src, table: pa.Table, columns: dict[str, str]) -> None:
    """An error naming the first row where a column (role -> the file's name) is empty."""
    for role, name in columns.items():
        col = table[role].cast(pa.string())
        blank = pc.or_(pc.is_null(col), pc.equal(pc.utf8_trim_whitespace(col), "")).to_numpy(zero_copy_only=False)
        _bad_row(src, np.asarray(blank, dtype=bool), name, "empty")


def _days(ts: pa.ChunkedArray) -> tuple[dt.date, dt.date]:
    days = pc.cast(ts, pa.date32())
    return pc.min(days).as_py(), pc.max(days).as_py()


def _products(items: pa.Array, first_ts: pa.Array, texts: pa.Array | None) -> pa.Table:
    title = texts if texts is not None else items
    return pa.table({C.ITEM_ID: items, C.TITLE: title, C.UPDATED_AT: first_ts})


def _first_seen(item: pa.ChunkedArray, ts: pa.ChunkedArray, text: pa.ChunkedArray | None) -> pa.Table:
    """Each item's first timestamp and (first non-empty) text."""
    cols = {"item": item, "ts": ts}
    if text is not None:
        cols["text"] = text.cast(pa.string())
    t = pa.table(cols).sort_by([("item", "ascending"), ("ts", "ascending")])
    ids = t["item"].to_numpy(zero_copy_only=False)
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    taken = t.take(pa.array(first))
    return _products(taken["item"], taken["ts"], taken["text"] if text is not None else None)


def _event_ids(users: pa.ChunkedArray, items: pa.ChunkedArray, ts: pa.ChunkedArray) -> pa.Array:
    keys = zip(users.to_pylist(), items.to_pylist(), pc.cast(ts, pa.int64()).to_pylist())
    return pa.array([f"imp-{hashlib.sha1(f'{u}|{i}|{t}|{n}'.encode()).hexdigest()[:16]}" for n, (u, i, t) in enumerate(keys)])


def import_interactions(src: str | Path, out: str | Path, *, user: str, item: str, timestamp: str, value: str | None = None,
                        item_text: str | None = None, min_value: float | None = None, event_type: str = "purchase",
                        fmt: str = "parquet") -> dict:  # fmt: skip
    """Turn an interaction log into ``events`` and ``products`` landing files (see the module docstring).

    Args:
        src: CSV or Parquet file.
        out: Landing root.
        user, item, timestamp: The columns of the user, the item and the time
            (ISO text, a date, epoch seconds).
        value: A numeric column (a rating, a count); with ``min_value`` only rows at
            or above it are kept.
        item_text: A column of item text (title, description) for the products.
        event_type: The event each row becomes (``purchase`` by default).
        fmt: Landing format.

    Returns:
        The report: rows read and written per source, rows below ``min_value``, the days.

    Raises:
        ImportInputError: A missing column or a row that cannot be used (named).
    """
    if event_type not in EVENT_TYPES or event_type == "search":
        raise ImportInputError(f"event_type must be one of {', '.join(t for t in EVENT_TYPES if t != 'search')}, got {event_type!r}")
    table = _read(src, {"user": user, "item": item, "ts": timestamp, "value": value, "text": item_text})
    read = table.num_rows
    _present(src, table, {"user": user, "item": item, "ts": timestamp})
    below = 0
    if value is not None:
        values = _numbers(src, table["value"], value)
        if min_value is not None:
            keep = values >= min_value
            below = read - int(keep.sum())
            table = table.filter(pa.array(keep))
    if table.num_rows == 0:
        raise ImportInputError(f"{src}: no interactions left to import ({read:,} read, {below:,} below min_value)")
    ts = _timestamps(src, table["ts"], timestamp)
    users, items = table["user"].cast(pa.string()), table["item"].cast(pa.string())
    first, last = _days(ts)
    events = pa.table({
        C.EVENT_ID: _event_ids(users, items, ts), C.USER_ID: users, C.EVENT_TYPE: pa.array([event_type] * table.num_rows),
        C.ITEM_ID: items, C.EVENT_TS: ts,
    })  # fmt: skip
    products = _first_seen(items, ts, table["text"] if item_text else None)
    paths = [write_landing(events, out, "events", first, fmt, last=last),
             write_landing(products, out, "products", first, fmt, last=last)]  # fmt: skip
    report = {"src": str(src), "rows_read": read, "rows_below_min_value": below, "first_day": first, "last_day": last,
              "rows_written": {"events": events.num_rows, "products": products.num_rows}, "files": [str(p) for p in paths]}  # fmt: skip
    write_import_report("interactions", {k: str(v) if isinstance(v, dt.date) else v for k, v in report.items()}, out)
    return report


#: What the value column of a sales table holds: whole units, or any amount (revenue, weight).
VALUE_KINDS = ("units", "amount")


def import_sales(src: str | Path, out: str | Path, *, series: str, date: str, value: str, price: str | None = None,
                 fmt: str = "parquet", value_kind: str = "units") -> dict:  # fmt: skip
    """Turn a sales table (a value per series and day) into ``orders`` and ``products`` landing files.

    Args:
        src: CSV or Parquet file.
        out: Landing root.
        series, date, value: The columns of the series (the item), the day and the
            value sold that day; days without sales may be absent or 0.
        price: The unit price column (1.0 when absent); units only.
        fmt: Landing format.
        value_kind: ``units`` (whole units sold) or ``amount`` (any non-negative
            number, landed as one unit at that unit price: ``revenue`` in the
            forecasting tables, never rounded).

    Raises:
        ImportInputError: A missing column, a negative value, a fractional one for
            units, a price for amounts, or a bad date (named).
    """
    if value_kind not in VALUE_KINDS:
        raise ImportInputError(f"value kind {value_kind!r}: choose one of {', '.join(VALUE_KINDS)}")
    if value_kind == "amount" and price is not None:
        raise ImportInputError(f"{src}: a price column applies to units; an amount ({value}) is its own value")
    table = _read(src, {"series": series, "date": date, "value": value, "price": price})
    read = table.num_rows
    _present(src, table, {"series": series, "date": date, "value": value})
    values = _numbers(src, table["value"], value)
    _bad_row(src, values < 0, value, "negative sales")
    if value_kind == "units":
        _bad_row(src, values != np.round(values), value, "not whole units (import it with value kind amount to forecast it as revenue)")
        units = values
        prices = np.ones(read) if price is None else _numbers(src, table["price"], price)
    else:
        units, prices = np.ones(read), values
    days = pc.cast(_timestamps(src, table["date"], date), pa.date32())
    noon = pc.add(pc.assume_timezone(days.cast(pa.timestamp("us")), "UTC"), pa.scalar(dt.timedelta(hours=12)))
    _bad_row(src, prices < 0, price or "price", "negative price")
    sold = values > 0
    ids = table["series"].cast(pa.string())
    day_text = pc.strftime(days, format="%Y-%m-%d")
    orders = pa.table({
        C.ORDER_ID: pc.binary_join_element_wise(ids, day_text, "@"), C.LINE_NUMBER: pa.array(np.ones(read, np.int32)),
        C.ITEM_ID: ids, C.QUANTITY: pa.array(units.astype(np.int64)), C.UNIT_PRICE: pa.array(prices, pa.float64()),
        C.ORDER_TS: noon, C.STATUS: pa.array([PLACED] * read),
    }).filter(pa.array(sold))  # fmt: skip
    if orders.num_rows == 0:
        raise ImportInputError(f"{src}: no day with sales among {read:,} rows")
    first, last = _days(orders[C.ORDER_TS])
    products = _first_seen(orders[C.ITEM_ID], orders[C.ORDER_TS], None)
    paths = [write_landing(orders, out, "orders", first, fmt, last=last),
             write_landing(products, out, "products", first, fmt, last=last)]  # fmt: skip
    report = {"src": str(src), "rows_read": read, "value_kind": value_kind, "series": len(products), "first_day": first, "last_day": last,
              "rows_written": {"orders": orders.num_rows, "products": products.num_rows}, "files": [str(p) for p in paths]}  # fmt: skip
    write_import_report("sales", {k: str(v) if isinstance(v, dt.date) else v for k, v in report.items()}, out)
    return report
