"""Adapter: PriceRunner product offers -> ``products`` landing files.

Data: "Product Classification and Clustering" (PriceRunner offers, collected by
Leonidas Akritidis), UCI Machine Learning Repository (https://archive.ics.uci.edu),
licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). The landing files this module writes
are a transformed subset of its columns, as described below.

Input: ``pricerunner_aggregate.csv.gz`` with columns ``Product ID, Product Title,
Merchant ID, Cluster ID, Cluster Label, Category ID, Category Label`` (one row per
merchant offer, 10 categories: phones, TVs, CPUs, fridges, ...).

Mapping, one product row per offer:

- ``item_id`` = ``pr-<Product ID>`` (the prefix keeps these ids apart from other
  sources' item ids in a shared lake).
- ``title`` = Product Title (whitespace collapsed, case kept: the source is lower case).
- ``description`` = null. The Cluster Label is a clean canonical product name; putting
  it anywhere in the row would leak the clustering target to models trained on titles.
- ``category`` = Category Label; the ids are dropped.
- ``brand`` = the title's first token, which is the maker on almost every offer
  ("bosch", "samsung", "intel"). A first token with a digit in it ("43in", "2tb") is
  a size or spec, not a maker, so the brand is left null there. Multi-word makers
  ("hewlett packard", "russell hobbs") keep only their first word.
- ``price`` null (the dataset has none), ``on_promotion`` false.
- ``updated_at``: midnight UTC of the row's landing day. Offers are dealt round-robin in
  file order over ``days`` days from ``start`` (default: all on ``start``), one file per
  day, so the first day is not the whole catalogue when a test wants several days.

Rows with a blank title or a repeated Product ID are set aside and counted (the
published file has neither).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.landing_writer import write_import_report, write_landing

log = logging.getLogger(__name__)

NAME = "pricerunner"
SOURCE = "products"
ITEM_PREFIX = "pr-"
DEFAULT_FILE = "pricerunner_aggregate.csv.gz"
DEFAULT_START = dt.date(2024, 1, 1)
DEFAULT_DAYS = 1

# Source column names (the PriceRunner header; some copies pad them with a space).
SRC_PRODUCT_ID = "Product ID"
SRC_TITLE = "Product Title"
SRC_CATEGORY = "Category Label"
SRC_COLUMNS = (SRC_PRODUCT_ID, SRC_TITLE, SRC_CATEGORY)

REASON_BLANK_TITLE = "blank_title"
REASON_DUPLICATE_ID = "duplicate_product_id"


def _resolve_file(src: Path) -> Path:
    path = src / DEFAULT_FILE if src.is_dir() else src
    if not path.is_file():
        raise FileNotFoundError(f"pricerunner: no file {path}")
    return path


def brand_from_title(title: str) -> str | None:
    """The maker named by a PriceRunner title: its first token, unless that is a spec.

    Args:
        title: An offer title such as ``"bosch kgn39vl35g fridge freezer"``.

    Returns:
        ``"bosch"``; ``None`` for a blank title or one starting with a token that
        contains a digit (``"43in led tv ..."``).
    """
    tokens = title.split()
    if not tokens or any(ch.isdigit() for ch in tokens[0]):
        return None
    return tokens[0]


def import_pricerunner(
    src: str | Path,
    out: str | Path,
    *,
    start: dt.date | str = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    fmt: str = "csv",
) -> dict:
    """Turn the PriceRunner offers file into ``products`` landing files.

    The mapping is in the module docstring. Deterministic: the same input and
    arguments give byte-identical files.

    Args:
        src: The ``pricerunner_aggregate.csv.gz`` file, or the folder holding it.
        out: Landing root; files go to ``<out>/products/<day>.csv`` and the report to
            ``<out>/_import_report_pricerunner.json``.
        start: Landing day of the first (or only) file; ``updated_at`` of its rows.
        days: Number of days the offers are spread over; one file per day.
        fmt: Landing format, ``csv`` (default), ``jsonl`` or ``parquet``.

    Returns:
        The import report: ``rows_read``, ``rows_written`` per landing source,
        ``rows_set_aside`` per reason, ``days_written``, ``categories`` (count per
        label) and ``rows_without_brand``.

    Raises:
        FileNotFoundError: The input file is missing.
        ValueError: ``days`` < 1, or the file lacks a column (named).
    """
    began = time.perf_counter()
    if days < 1:
        raise ValueError(f"pricerunner: days must be >= 1, got {days}")
    out = Path(out)
    path = _resolve_file(Path(src))
    first_day = start if isinstance(start, dt.date) else dt.date.fromisoformat(str(start))

    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows.columns = [c.strip() for c in rows.columns]
    missing = [c for c in SRC_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"pricerunner: {path} lacks columns {missing}")

    titles = rows[SRC_TITLE].map(lambda t: " ".join(t.split()))
    product_ids = rows[SRC_PRODUCT_ID].str.strip()
    blank = titles == ""
    duplicate = product_ids.duplicated() & ~blank
    keep = ~blank & ~duplicate
    # Deal by position in the file (set-aside rows included) so one bad row does not
    # move every later product to another day.
    day_index = pd.Series(range(len(rows)), index=rows.index)[keep] % days

    products = pd.DataFrame(
        {
            C.ITEM_ID: ITEM_PREFIX + product_ids[keep],
            C.TITLE: titles[keep],
            C.CATEGORY: rows.loc[keep, SRC_CATEGORY].str.strip(),
            C.BRAND: titles[keep].map(brand_from_title),
            "_day_index": day_index,
        }
    )

    by_day = dict(tuple(products.groupby("_day_index", sort=True)))
    for k in range(days):
        day = first_day + dt.timedelta(days=k)
        day_rows = by_day.get(k, products.iloc[0:0])
        n = len(day_rows)
        table = pa.table(
            {
                C.ITEM_ID: pa.array(day_rows[C.ITEM_ID], pa.string()),
                C.TITLE: pa.array(day_rows[C.TITLE], pa.string()),
                C.DESCRIPTION: pa.nulls(n, pa.string()),
                C.CATEGORY: pa.array(day_rows[C.CATEGORY], pa.string()),
                C.BRAND: pa.array(day_rows[C.BRAND], pa.string()),
                C.PRICE: pa.nulls(n, pa.float64()),
                C.ON_PROMOTION: pa.array([False] * n, pa.bool_()),
                C.UPDATED_AT: pa.array([dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")),
            }
        )
        write_landing(table, out, SOURCE, day, fmt)

    categories = products[C.CATEGORY].value_counts()
    report = {
        "dataset": NAME,
        "src": str(path),
        "rows_read": int(len(rows)),
        "rows_written": {SOURCE: int(len(products))},
        "rows_set_aside": {REASON_BLANK_TITLE: int(blank.sum()), REASON_DUPLICATE_ID: int(duplicate.sum())},
        "days_written": days,
        "first_day": first_day.isoformat(),
        "last_day": (first_day + dt.timedelta(days=days - 1)).isoformat(),
        "categories": {str(k): int(categories[k]) for k in sorted(categories.index)},
        "rows_without_brand": int(products[C.BRAND].isna().sum()),
        "format": fmt,
    }
    write_import_report(NAME, report, out)
    log.info(
        "pricerunner: %d offers read from %s -> %d products in %d categories over %d day(s) from %s, %d set aside, in %.1fs",
        report["rows_read"],
        path.name,
        len(products),
        len(categories),
        days,
        report["first_day"],
        int((~keep).sum()),
        time.perf_counter() - began,
    )
    return report
