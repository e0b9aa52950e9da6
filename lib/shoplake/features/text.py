"""Text tables for the customer-service and product-categorization models.

Pure Spark transforms (no I/O). Built for a run date ``D``, each uses only what was
known before D's midnight, UTC: bronze rows of landing days (``run_date``) before D
and rows timestamped before D's midnight.

* :func:`compute_support_tickets`: ``silver.support_tickets``, one row per ticket id
  (the latest ingested copy, :func:`~shoplake.features.txn_features.latest_copies`)
  created before D's midnight, text normalised, blank messages left out.
* :func:`compute_support_training`: ``gold.support_training``, its labelled rows.
* :func:`compute_product_text`: ``gold.product_text``, per item the product version in
  effect at D and the text the encoder reads.

:func:`normalise_str` and :func:`product_text_str` are the same rules for one Python
string, for the serving endpoints: a model must read a request's text exactly as it
read its training rows.

Splits. A ticket id of the Bitext adapter, ``bitext-<split>-<n>``, keeps Bitext's own
train/validation/test split, so results compare with published ones. Every other
ticket, and every product, gets its split from a hash of its id (:func:`hash_split`:
Spark's ``xxhash64``, 80/10/10): stable across run dates, engines and machines, so a
row never moves from test to train as the tables grow.

Text. Runs of whitespace (Unicode included: tabs, newlines, no-break spaces) become
one space and the ends are trimmed; a text field that is then empty counts as absent.
"""

from __future__ import annotations

import datetime as dt
import re

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from shoplake.features.interactions import landed_before, run_midnight
from shoplake.features.txn_features import latest_copies
from shoplake.schemas import columns as C
from shoplake.schemas.spec import TableSpec, spark_type
from shoplake.schemas.text import PRODUCT_TEXT, SPLITS, SUPPORT_TICKETS, SUPPORT_TRAINING, TEST, TRAIN, VALIDATION

#: Hash buckets of :func:`hash_split`; buckets below the first bound are train, below the second validation.
HASH_BUCKETS = 100
TRAIN_BUCKETS, VALIDATION_BUCKETS = 80, 10
#: Ticket ids of the Bitext adapter carry their split: ``bitext-<split>-<row number>``.
BITEXT_ID_PATTERN = rf"^bitext-({'|'.join(SPLITS)})-"

# Any run of whitespace, Unicode whitespace included ((?U): no-break spaces, line separators).
_WHITESPACE = r"(?U)\s+"
# What that pattern matches in Java: the Unicode White_Space characters. Python's own \s
# also matches the ASCII separators U+001C-U+001F, which Spark keeps.
_WHITESPACE_RUN = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_RANK = "_rank"


def normalise_text(text: Column) -> Column:
    """``text`` with every whitespace run collapsed to one space and the ends trimmed; null stays null."""
    return F.trim(F.regexp_replace(text, _WHITESPACE, " "))


def normalise_str(text: str | None) -> str | None:
    """One string normalised as :func:`normalise_text` does it in Spark; a blank or null one becomes None.

    Args:
        text: A title, description or message as a person typed it.

    Returns:
        ``text`` with every run of Unicode whitespace turned into one space and the ends
        trimmed, or None when nothing is left.
    """
    if text is None:
        return None
    return _WHITESPACE_RUN.sub(" ", text).strip(" ") or None


def _present(text: Column) -> Column:
    # An empty field of a landing file means "absent", whatever the file format made of it.
    return F.nullif(normalise_text(text), F.lit(""))


def hash_split(key: Column) -> Column:
    """``train`` / ``validation`` / ``test`` (80/10/10) from Spark's ``xxhash64`` of ``key``.

    The same key gets the same split on every run, engine and machine (the hash is
    seeded with Spark's fixed seed, 42).
    """
    bucket = F.pmod(F.xxhash64(key), F.lit(HASH_BUCKETS))
    return (
        F.when(bucket < F.lit(TRAIN_BUCKETS), F.lit(TRAIN))
        .when(bucket < F.lit(TRAIN_BUCKETS + VALIDATION_BUCKETS), F.lit(VALIDATION))
        .otherwise(F.lit(TEST))
    )


def ticket_split(ticket_id: Column) -> Column:
    """The split of a ticket: Bitext's from a ``bitext-<split>-`` id, else :func:`hash_split` of the id."""
    bitext = F.regexp_extract(ticket_id, BITEXT_ID_PATTERN, 1)
    return F.when(bitext != F.lit(""), bitext).otherwise(hash_split(ticket_id))


def _optional(df: DataFrame, name: str) -> Column:
    return F.col(name) if name in df.columns else F.lit(None).cast("string")


def _conform(df: DataFrame, spec: TableSpec, columns: dict[str, Column]) -> DataFrame:
    return df.select(*(columns[c.name].cast(spark_type(c.dtype)).alias(c.name) for c in spec.columns))


def compute_support_tickets(tickets_df: DataFrame, run_date: dt.date) -> DataFrame:
    """The rows of ``silver.support_tickets`` for ``run_date``.

    Rules, all as known before ``run_date`` (D): bronze rows of landing days before D,
    one per ticket id (the latest ingested copy: its ``created_ts`` decides), created
    before D's midnight (UTC). ``text`` is normalised (module docstring) and a ticket
    whose text is then empty is left out; a blank ``intent``, ``resolution`` or
    ``channel`` becomes null; ``split`` comes from :func:`ticket_split`.

    Args:
        tickets_df: ``bronze.support_tickets`` rows (landing fields plus lineage; the
            ``run_date`` landing column and ``_ingested_at``, when present, are
            honoured). ``ticket_id``, ``text`` and ``created_ts`` are needed; other
            landing fields a frame lacks are null.
        run_date: Day the table is built for.

    Returns:
        Exactly the columns of :data:`shoplake.schemas.text.SUPPORT_TICKETS`, in its order and types.
    """
    end = run_midnight(run_date)
    # Dedupe first: the latest copy's created_ts decides whether a ticket is in the snapshot.
    tickets = latest_copies(landed_before(tickets_df, run_date), [C.TICKET_ID]).where(
        F.col(C.CREATED_TS) < F.lit(end)
    )
    tickets = tickets.withColumn(C.TEXT, _present(F.col(C.TEXT))).where(F.col(C.TEXT).isNotNull())
    columns = {
        C.TICKET_ID: F.col(C.TICKET_ID),
        C.USER_ID: _optional(tickets, C.USER_ID),
        C.ORDER_ID: _optional(tickets, C.ORDER_ID),
        C.CHANNEL: _present(_optional(tickets, C.CHANNEL)),
        C.TEXT: F.col(C.TEXT),
        C.INTENT: _present(_optional(tickets, C.INTENT)),
        C.RESOLUTION: _present(_optional(tickets, C.RESOLUTION)),
        C.CREATED_TS: F.col(C.CREATED_TS),
        C.SPLIT: ticket_split(F.col(C.TICKET_ID)),
        C.RUN_DATE: F.lit(run_date),
    }
    return _conform(tickets, SUPPORT_TICKETS, columns)


def compute_support_training(support_tickets_df: DataFrame) -> DataFrame:
    """The rows of ``gold.support_training``: the labelled tickets (intent not null).

    Args:
        support_tickets_df: ``silver.support_tickets`` rows (of one or more run dates).

    Returns:
        Exactly the columns of :data:`shoplake.schemas.text.SUPPORT_TRAINING`, in its order and types.
    """
    labelled = support_tickets_df.where(F.col(C.INTENT).isNotNull())
    return _conform(labelled, SUPPORT_TRAINING, {name: F.col(name) for name in SUPPORT_TRAINING.column_names})


def product_text(title: Column, description: Column) -> Column:
    """The encoder input of a product: the title, then ``". "`` and the description.

    The description is left out when it is null or equal to the title (Online Retail
    repeats the title as description; ``"X. X"`` only adds noise). Both are expected
    normalised (:func:`normalise_text`, blank as null).
    """
    title_only = description.isNull() | (description == title)
    return F.when(title_only, title).otherwise(F.concat(title, F.lit(". "), description))


def product_text_str(title: str, description: str | None = None) -> str:
    """The encoder input of one product, as ``gold.product_text.text`` holds it.

    Title and description are normalised first (:func:`normalise_str`), as
    :func:`compute_product_text` does before :func:`product_text`; then the rules of
    :func:`product_text` apply.

    Args:
        title: The product's title.
        description: Its description, if any.

    Raises:
        ValueError: The title is blank.
    """
    clean_title, clean_description = normalise_str(title), normalise_str(description)
    if clean_title is None:
        raise ValueError("a product title must contain text")
    if clean_description is None or clean_description == clean_title:
        return clean_title
    return f"{clean_title}. {clean_description}"


def compute_product_text(products_df: DataFrame, run_date: dt.date) -> DataFrame:
    """The rows of ``gold.product_text`` for ``run_date``: per item the version in effect at D.

    Each ``bronze.products`` row is a version of the item in effect from its
    ``updated_at``. The version in effect at D is the one with the latest
    ``updated_at`` before D's midnight (UTC) among rows of landing days before D; of a
    version ingested more than once, the latest ingested copy. Title, description,
    brand and category are normalised (module docstring), blank ones null; an item
    whose title is blank in that version has no row. ``split`` is :func:`hash_split`
    of the item id.

    Args:
        products_df: ``bronze.products`` rows, all versions (``item_id, title,
            updated_at`` needed; a frame without ``description``, ``brand`` or
            ``category`` gets nulls).
        run_date: Day the table is built for.

    Returns:
        Exactly the columns of :data:`shoplake.schemas.text.PRODUCT_TEXT`, in its order and types.
    """
    end = run_midnight(run_date)
    versions = latest_copies(
        landed_before(products_df, run_date).where(F.col(C.UPDATED_AT) < F.lit(end)), [C.ITEM_ID, C.UPDATED_AT]
    )
    newest_first = Window.partitionBy(C.ITEM_ID).orderBy(F.col(C.UPDATED_AT).desc())
    current = versions.withColumn(_RANK, F.row_number().over(newest_first)).where(F.col(_RANK) == 1)
    described = current.select(
        C.ITEM_ID,
        _present(F.col(C.TITLE)).alias(C.TITLE),
        _present(_optional(current, C.DESCRIPTION)).alias(C.DESCRIPTION),
        _present(_optional(current, C.BRAND)).alias(C.BRAND),
        _present(_optional(current, C.CATEGORY)).alias(C.CATEGORY),
    ).where(F.col(C.TITLE).isNotNull())
    columns = {
        C.ITEM_ID: F.col(C.ITEM_ID),
        C.TITLE: F.col(C.TITLE),
        C.DESCRIPTION: F.col(C.DESCRIPTION),
        C.BRAND: F.col(C.BRAND),
        C.CATEGORY: F.col(C.CATEGORY),
        C.TEXT: product_text(F.col(C.TITLE), F.col(C.DESCRIPTION)),
        C.SPLIT: hash_split(F.col(C.ITEM_ID)),
        C.RUN_DATE: F.lit(run_date),
    }
    return _conform(described, PRODUCT_TEXT, columns)


__all__ = [
    "BITEXT_ID_PATTERN", "HASH_BUCKETS", "TRAIN_BUCKETS", "VALIDATION_BUCKETS",
    "compute_product_text", "compute_support_tickets", "compute_support_training", "hash_split",
    "normalise_str", "normalise_text", "product_text", "product_text_str", "ticket_split",
]  # fmt: skip
