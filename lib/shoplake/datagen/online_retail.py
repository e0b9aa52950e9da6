"""Adapter: the UCI "Online Retail" invoices -> ``orders`` and ``products`` landing files.

Data: "Online Retail" (Chen, Sain & Guo 2012), UCI Machine Learning Repository
(https://archive.ics.uci.edu), licensed under CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/). Used here as split by day in
databricks/Spark-The-Definitive-Guide (``data/retail-data/by-day``). The landing files
this module writes are a transformed version of that data: lines are renumbered,
re-typed and filtered as described below.

Input: ``<src>/<YYYY-MM-DD>.csv.gz``, one file per day, columns ``InvoiceNo, StockCode,
Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country``. Every source
day becomes one ``orders`` and one ``products`` landing file for that day (a products
file may be empty: the contract wants a file per source per day).

Orders (one row per kept invoice line):

- ``order_id`` is the InvoiceNo as written (cancellations keep their ``C`` prefix and
  get ``status = "cancelled"``; netting them against the original sale is left to the
  features step, which knows the customer and item history).
- ``line_number`` is the line's 1-based position within its invoice in the source file,
  counting *every* source line, so it has gaps where a line was set aside. That keeps
  each landing row and each audit row traceable to exactly one source line.
- ``user_id`` is the CustomerID without its ``.0`` float suffix; empty CustomerID
  means a guest checkout and stays null (about a quarter of lines).
- ``item_id`` is the StockCode, stripped and upper-cased (the source mixes ``85123A``
  and ``85123a`` for the same product).
- ``quantity`` is ``abs(Quantity)``: a cancellation states the units cancelled.
- ``order_ts`` is the InvoiceDate. The source does not state a time zone (the shop is
  in the UK); it is labelled UTC as is, so every line stays on its file's day.
- Exact duplicate source lines (about 5,300 on the full data) are kept: they are
  distinct lines with distinct line numbers, and nothing in the source says they
  are mistakes.

Set-aside rules, applied in this order; the first that matches names the reason. Every
set-aside line is counted in the report and written, with its reason, to
``<out>/_set_aside/`` for audit:

1. ``non_product_code``: the StockCode is not a product code. Product codes are five
   digits plus at most two letters (``22423``, ``85123A``, ``15056BL``). Everything
   else is a fee, a service line or a manual entry: POST / DOT (postage), C2
   (carriage), M (manual), D (discount), S (samples), B (adjust bad debt), BANK
   CHARGES, AMAZONFEE, CRUK (commission), PADS, GIFT_0001_* (gift vouchers) and
   DCGS* (marketplace-channel SKUs, mostly eBay stock corrections). Counted per
   code; written to ``online_retail_non_product_lines.csv``.
2. ``quantity_zero``: Quantity is 0 (none in the published data; kept for safety).
3. ``unit_price_negative``: UnitPrice < 0 (the "Adjust bad debt" entries; on the
   published data those also carry code B, so rule 1 catches them first).
4. ``negative_quantity_not_cancelled``: negative Quantity on an invoice that is not a
   cancellation. On the full data all 1,324 such lines have UnitPrice 0 and no
   customer, and their descriptions are stock notes ("damaged", "check", "thrown
   away", blank): inventory write-offs, not sales.
5. ``zero_price_guest``: UnitPrice 0, positive Quantity and no customer. 1,128 of the
   1,161 free lines are like this: blank or note-like descriptions ("check", "found",
   "amazon", "adjustment") or whole invoices priced at 0, i.e. stock
   movements, or dotcom lines whose price was never entered. Counting them as free
   sales would distort revenue and price features. The other 33 free lines belong to
   known customers, look like genuine giveaways, and are kept with ``unit_price`` 0.

Rules 2-5 are written to ``online_retail_data_quality_lines.csv``.

Products (one row per kept StockCode, on the day it first appears in the kept orders,
placed or cancelled, so every ordered item is in the catalogue no later than its
first order):

- ``title`` and ``description``: the most frequent Description of the code over the
  kept lines of the whole input (ties broken alphabetically), whitespace collapsed
  and title-cased ("WHITE HANGING HEART T-LIGHT HOLDER" -> "White Hanging Heart
  T-Light Holder").
- ``category``: the source has none, so a coarse one is derived from the title's last
  meaningful noun (see :func:`derive_categories`): "... T-LIGHT HOLDER" -> "holder".
- ``brand`` empty; ``on_promotion`` false; ``updated_at`` the first appearance.
- ``price``: the median unit price of the code's placed lines, or of its cancelled
  lines when it was never placed in the input.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.landing_writer import write_import_report, write_landing

log = logging.getLogger(__name__)

NAME = "online_retail"

# Source column names (the UCI file's header).
SRC_INVOICE = "InvoiceNo"
SRC_STOCK_CODE = "StockCode"
SRC_DESCRIPTION = "Description"
SRC_QUANTITY = "Quantity"
SRC_INVOICE_DATE = "InvoiceDate"
SRC_UNIT_PRICE = "UnitPrice"
SRC_CUSTOMER = "CustomerID"
SRC_COUNTRY = "Country"
SRC_COLUMNS = (
    SRC_INVOICE,
    SRC_STOCK_CODE,
    SRC_DESCRIPTION,
    SRC_QUANTITY,
    SRC_INVOICE_DATE,
    SRC_UNIT_PRICE,
    SRC_CUSTOMER,
    SRC_COUNTRY,
)

# Audit columns added to set-aside lines.
AUDIT_SOURCE_FILE = "source_file"
AUDIT_LINE_NUMBER = "line_number"
AUDIT_REASON = "reason"

PRODUCT_CODE_PATTERN = r"^\d{5}[A-Z]{0,2}$"
CANCELLATION_PREFIX = "C"
STATUS_PLACED = "placed"
STATUS_CANCELLED = "cancelled"

REASON_NON_PRODUCT = "non_product_code"
REASON_QUANTITY_ZERO = "quantity_zero"
REASON_PRICE_NEGATIVE = "unit_price_negative"
REASON_NEGATIVE_QTY = "negative_quantity_not_cancelled"
REASON_ZERO_PRICE_GUEST = "zero_price_guest"
REASONS = (REASON_NON_PRODUCT, REASON_QUANTITY_ZERO, REASON_PRICE_NEGATIVE, REASON_NEGATIVE_QTY, REASON_ZERO_PRICE_GUEST)

SET_ASIDE_DIR = "_set_aside"
NON_PRODUCT_FILE = "online_retail_non_product_lines.csv"
DATA_QUALITY_FILE = "online_retail_data_quality_lines.csv"

_FILE_SUFFIX = ".csv.gz"
_TS_FORMAT = "%Y-%m-%d %H:%M:%S"

# Words that describe a product rather than name what it is: colours, sizes, patterns,
# materials and filler. Stripped from the end of a title before picking its noun.
_MODIFIERS = frozenset(
    """
    pink blue red green white black cream ivory gold silver purple orange yellow grey gray
    brown turquoise lilac aqua beige natural clear copper bronze multicolour colour colours
    coloured pastel dark
    large small medium mini jumbo big tiny giant tall long round square
    retrospot polkadot polka dot spotty spot paisley spaceboy vintage assorted asstd
    design designs set pack and with the for
    metal glass zinc wood wooden ceramic enamel hanging christmas
    """.split()
)
_DESIGN = "design"
# A final noun seen on fewer titles than this is probably a design or place name
# ("PANTRY", "WOODLAND"); an earlier, commoner noun is preferred.
_MIN_NOUN_SUPPORT = 5
_OTHER_CATEGORY = "other"


def _select_files(
    src: Path,
    days: Iterable[dt.date | str] | None,
    start: dt.date | str | None,
    end: dt.date | str | None,
    limit_days: int | None,
) -> list[tuple[dt.date, Path]]:
    files = sorted(src.glob(f"*{_FILE_SUFFIX}"))
    if not files:
        raise FileNotFoundError(f"online_retail: no *{_FILE_SUFFIX} files in {src}")
    dated = []
    for f in files:
        stem = f.name[: -len(_FILE_SUFFIX)]
        try:
            dated.append((dt.date.fromisoformat(stem), f))
        except ValueError:
            raise ValueError(f"online_retail: {f} is not named <YYYY-MM-DD>{_FILE_SUFFIX}") from None
    wanted = {_as_date(d) for d in days} if days is not None else None
    lo, hi = _as_date(start) if start else None, _as_date(end) if end else None
    selected = [(d, f) for d, f in dated if (wanted is None or d in wanted) and (lo is None or d >= lo) and (hi is None or d <= hi)]
    if limit_days is not None:
        selected = selected[:limit_days]
    if not selected:
        raise ValueError(f"online_retail: no day files in {src} match days={days} start={start} end={end}")
    return selected


def _as_date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _read_day(day: dt.date, path: Path) -> pd.DataFrame:
    # Strings everywhere: CustomerID, StockCode and Description must not be guessed
    # into floats or NaN before the rules below look at them.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in SRC_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"online_retail: {path} lacks columns {missing}")
    frame = frame[list(SRC_COLUMNS)]
    frame[AUDIT_SOURCE_FILE] = path.name
    frame["_day"] = day
    return frame


def _classify(frame: pd.DataFrame) -> pd.Series:
    """The set-aside reason of each line, or None for a kept line."""
    code = frame["_item"]
    qty = frame["_qty"]
    price = frame["_price"]
    cancelled = frame["_cancelled"]
    guest = frame["_guest"]
    rules = [
        (~code.str.match(PRODUCT_CODE_PATTERN), REASON_NON_PRODUCT),
        (qty == 0, REASON_QUANTITY_ZERO),
        (price < 0, REASON_PRICE_NEGATIVE),
        ((qty < 0) & ~cancelled, REASON_NEGATIVE_QTY),
        ((price == 0) & guest, REASON_ZERO_PRICE_GUEST),
    ]
    reason = pd.Series(None, index=frame.index, dtype=object)
    # Reverse order so that the first matching rule is the one left standing.
    for mask, name in reversed(rules):
        reason = reason.mask(mask, name)
    return reason


def title_case(text: str) -> str:
    """Collapse whitespace and capitalise each word, keeping apostrophes inside words.

    Args:
        text: A raw Online Retail description such as ``"CHILDREN'S APRON  DOLLY GIRL"``.

    Returns:
        ``"Children's Apron Dolly Girl"``; ``str.title`` would give ``"Children'S"``.
    """
    collapsed = " ".join(text.split())
    return re.sub(r"[A-Za-z]+(?:'[A-Za-z]+)?", lambda m: m.group(0).capitalize(), collapsed)


def _noun_tokens(title: str) -> list[str]:
    tokens = [w for w in re.split(r"[^a-z]+", title.lower()) if len(w) > 2]
    if _DESIGN in tokens:
        # "JUMBO BAG SPACEBOY DESIGN", "FLOWER DESIGN BIG MUG": the word before
        # "design" names the pattern, not the product.
        i = len(tokens) - 1 - tokens[::-1].index(_DESIGN)
        tokens = tokens[: max(i - 1, 0)] + tokens[i + 1 :]
    while tokens and tokens[-1] in _MODIFIERS:
        tokens.pop()
    return tokens


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if re.search(r"(?:x|ch|sh)es$", word):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def derive_categories(titles: Iterable[str]) -> list[str]:
    """Coarse categories for Online Retail titles, which come without any.

    The category is the title's last meaningful noun, singular: trailing colours,
    sizes, patterns and materials are dropped, and a "<pattern> DESIGN" phrase is
    removed. Because product names often end in a design or place name, a noun is
    only trusted when at least ``_MIN_NOUN_SUPPORT`` titles of the same catalogue end
    in it; otherwise the rightmost trusted word wins, then the last word. Titles with
    no usable word get ``"other"``. The result depends on the whole list, so pass the
    whole catalogue at once.

    Args:
        titles: Product titles, any case.

    Returns:
        One lower-case category per title, in order.
    """
    token_lists = [_noun_tokens(t) for t in titles]
    support = collections.Counter(_singular(toks[-1]) for toks in token_lists if toks)
    categories = []
    for toks in token_lists:
        if not toks:
            categories.append(_OTHER_CATEGORY)
            continue
        trusted = [w for w in (_singular(t) for t in reversed(toks)) if support[w] >= _MIN_NOUN_SUPPORT]
        categories.append(trusted[0] if trusted else _singular(toks[-1]))
    return categories


def _mode_text(values: pd.Series) -> str:
    counts = values.value_counts()
    top = counts[counts == counts.max()].index
    return sorted(top)[0]


def _build_products(kept: pd.DataFrame) -> pd.DataFrame:
    grouped = kept.groupby("_item", sort=True)
    first_ts = grouped["_ts"].min()
    descriptions = kept[kept[SRC_DESCRIPTION].str.strip() != ""].groupby("_item")[SRC_DESCRIPTION].agg(_mode_text)
    placed_price = kept[~kept["_cancelled"]].groupby("_item")["_price"].median()
    any_price = grouped["_price"].median()
    products = pd.DataFrame(index=first_ts.index)
    products[C.UPDATED_AT] = first_ts
    raw_title = descriptions.reindex(products.index)
    # A code whose lines all lack a description still needs a title (required).
    raw_title = raw_title.fillna(pd.Series(products.index, index=products.index))
    products[C.TITLE] = raw_title.map(title_case)
    products[C.DESCRIPTION] = products[C.TITLE]
    products[C.CATEGORY] = derive_categories(products[C.TITLE])
    products[C.PRICE] = placed_price.reindex(products.index).fillna(any_price)
    products[C.ON_PROMOTION] = False
    products[C.ITEM_ID] = products.index
    products["_day"] = first_ts.dt.date
    return products.reset_index(drop=True)


def _orders_table(rows: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            C.ORDER_ID: pa.array(rows[SRC_INVOICE], pa.string()),
            C.LINE_NUMBER: pa.array(rows["_line"], pa.int32()),
            C.USER_ID: pa.array(rows["_user"], pa.string()),
            C.ITEM_ID: pa.array(rows["_item"], pa.string()),
            C.QUANTITY: pa.array(rows["_qty"].abs(), pa.int32()),
            C.UNIT_PRICE: pa.array(rows["_price"], pa.float64()),
            C.ORDER_TS: pa.array(rows["_ts"], pa.timestamp("us", tz="UTC")),
            C.STATUS: pa.array(rows["_status"], pa.string()),
            C.COUNTRY: pa.array(rows[SRC_COUNTRY], pa.string()),
        }
    )


def _products_table(rows: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            C.ITEM_ID: pa.array(rows[C.ITEM_ID], pa.string()),
            C.TITLE: pa.array(rows[C.TITLE], pa.string()),
            C.DESCRIPTION: pa.array(rows[C.DESCRIPTION], pa.string()),
            C.CATEGORY: pa.array(rows[C.CATEGORY], pa.string()),
            C.PRICE: pa.array(rows[C.PRICE], pa.float64()),
            C.ON_PROMOTION: pa.array(rows[C.ON_PROMOTION], pa.bool_()),
            C.UPDATED_AT: pa.array(rows[C.UPDATED_AT], pa.timestamp("us", tz="UTC")),
        }
    )


def _write_audit(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [AUDIT_SOURCE_FILE, AUDIT_LINE_NUMBER, AUDIT_REASON, *SRC_COLUMNS]
    audit = frame.rename(columns={"_line": AUDIT_LINE_NUMBER, "_reason": AUDIT_REASON})[cols]
    tmp = path.with_name(f".{path.name}.tmp")
    audit.to_csv(tmp, index=False)
    tmp.replace(path)


def import_online_retail(
    src: str | Path,
    out: str | Path,
    *,
    days: Iterable[dt.date | str] | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    limit_days: int | None = None,
    fmt: str = "csv",
) -> dict:
    """Turn Online Retail day files into ``orders`` and ``products`` landing files.

    The rules (what is kept, how fields map, what is set aside and why) are in the
    module docstring. The output is deterministic: the same input and arguments give
    byte-identical files.

    Args:
        src: Folder of ``<YYYY-MM-DD>.csv.gz`` day files.
        out: Landing root; files go to ``<out>/orders/<day>.csv`` and
            ``<out>/products/<day>.csv``, the audit of set-aside lines to
            ``<out>/_set_aside/`` and the report to ``<out>/_import_report_online_retail.json``.
        days: Only these days, when given.
        start: First day to import (inclusive), when given.
        end: Last day to import (inclusive), when given.
        limit_days: At most this many days (the earliest that pass the other filters).
        fmt: Landing format, ``csv`` (default), ``jsonl`` or ``parquet``.

    Returns:
        The import report: ``rows_read``, ``rows_written`` per landing source,
        ``rows_set_aside`` per reason, ``non_product_codes`` (count per code),
        ``guest_order_lines``, ``cancelled_lines``, ``free_lines_kept``,
        ``duplicate_lines_kept``, ``days_written`` and the first and last day. Every
        line read is either an order row or set aside:
        ``rows_read == rows_written["orders"] + sum(rows_set_aside.values())``.

    Raises:
        FileNotFoundError: ``src`` holds no day files.
        ValueError: No day matches the filters, or a file lacks a column (named).
    """
    began = time.perf_counter()
    src, out = Path(src), Path(out)
    selected = _select_files(src, days, start, end, limit_days)
    lines = pd.concat([_read_day(d, f) for d, f in selected], ignore_index=True)

    lines["_line"] = lines.groupby([AUDIT_SOURCE_FILE, SRC_INVOICE], sort=False).cumcount() + 1
    lines["_item"] = lines[SRC_STOCK_CODE].str.strip().str.upper()
    try:
        lines["_qty"] = lines[SRC_QUANTITY].astype("int64")
        lines["_price"] = lines[SRC_UNIT_PRICE].astype("float64")
        lines["_ts"] = pd.to_datetime(lines[SRC_INVOICE_DATE], format=_TS_FORMAT).dt.tz_localize("UTC")
    except ValueError as exc:
        raise ValueError(f"online_retail: unparseable Quantity, UnitPrice or InvoiceDate in {src}: {exc}") from exc
    customer = lines[SRC_CUSTOMER].str.strip()
    lines["_guest"] = customer == ""
    # "17850.0" -> "17850": the file stores the id as a float.
    lines["_user"] = customer.str.replace(r"\.0+$", "", regex=True).where(~lines["_guest"], None)
    lines["_cancelled"] = lines[SRC_INVOICE].str.startswith(CANCELLATION_PREFIX)
    lines["_status"] = lines["_cancelled"].map({True: STATUS_CANCELLED, False: STATUS_PLACED})
    lines["_reason"] = _classify(lines)

    set_aside = lines[lines["_reason"].notna()]
    kept = lines[lines["_reason"].isna()]
    non_product = set_aside[set_aside["_reason"] == REASON_NON_PRODUCT]
    _write_audit(non_product, out / SET_ASIDE_DIR / NON_PRODUCT_FILE)
    _write_audit(set_aside[set_aside["_reason"] != REASON_NON_PRODUCT], out / SET_ASIDE_DIR / DATA_QUALITY_FILE)

    products = _build_products(kept)
    orders_by_day = dict(tuple(kept.groupby("_day", sort=True)))
    products_by_day = dict(tuple(products.groupby("_day", sort=True)))
    empty_orders, empty_products = kept.iloc[0:0], products.iloc[0:0]
    # The contract has a file for every calendar day; days the shop had no sales
    # (weekends, holidays) get files without rows.
    first, last = selected[0][0], selected[-1][0]
    calendar = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    for day in calendar:
        write_landing(_orders_table(orders_by_day.get(day, empty_orders)), out, "orders", day, fmt)
        write_landing(_products_table(products_by_day.get(day, empty_products)), out, "products", day, fmt)

    reason_counts = set_aside["_reason"].value_counts()
    code_counts = non_product["_item"].value_counts()
    report = {
        "dataset": NAME,
        "src": str(src),
        "rows_read": int(len(lines)),
        "rows_written": {"orders": int(len(kept)), "products": int(len(products))},
        "rows_set_aside": {r: int(reason_counts.get(r, 0)) for r in REASONS},
        "non_product_codes": {str(k): int(code_counts[k]) for k in sorted(code_counts.index)},
        "guest_order_lines": int(kept["_guest"].sum()),
        "cancelled_lines": int(kept["_cancelled"].sum()),
        "free_lines_kept": int((kept["_price"] == 0).sum()),
        "duplicate_lines_kept": int(kept.duplicated(subset=[AUDIT_SOURCE_FILE, *SRC_COLUMNS]).sum()),
        "days_written": len(calendar),
        "days_without_sales": len(calendar) - len(selected),
        "first_day": selected[0][0].isoformat(),
        "last_day": selected[-1][0].isoformat(),
        "format": fmt,
    }
    write_import_report(NAME, report, out)
    log.info(
        "online_retail: %d lines read from %d days (%s..%s) -> %d order lines, %d products, %d set aside %s in %.1fs",
        report["rows_read"],
        report["days_written"],
        report["first_day"],
        report["last_day"],
        report["rows_written"]["orders"],
        report["rows_written"]["products"],
        int(len(set_aside)),
        {k: v for k, v in report["rows_set_aside"].items() if v},
        time.perf_counter() - began,
    )
    return report
