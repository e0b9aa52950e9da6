"""``gold.product_text``: the product version in effect at D with the encoder's text.

Pure Spark transforms (no I/O). :func:`product_text_str` is the same rule in plain
Python, used by the ``/categorize`` endpoint so online and batch text agree.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.categorize.schemas import PRODUCT_TEXT
from shoplake.features.pit import landed_before, latest_copies, run_midnight
from shoplake.text.features import _RANK, _conform, _optional, _present, given_split, hash_split, normalise_str


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
    whose title is blank in that version has no row. ``split`` is the version's own
    (a landing ``split`` field), else :func:`hash_split` of the item id.

    Args:
        products_df: ``bronze.products`` rows, all versions (``item_id, title,
            updated_at`` needed; a frame without ``description``, ``brand`` or
            ``category`` gets nulls).
        run_date: Day the table is built for.

    Returns:
        Exactly the columns of :data:`shoplake.categorize.schemas.PRODUCT_TEXT`, in its order and types.
    """
    end = run_midnight(run_date)
    versions = latest_copies(landed_before(products_df, run_date).where(F.col(C.UPDATED_AT) < F.lit(end)), [C.ITEM_ID, C.UPDATED_AT])
    newest_first = Window.partitionBy(C.ITEM_ID).orderBy(F.col(C.UPDATED_AT).desc())
    current = versions.withColumn(_RANK, F.row_number().over(newest_first)).where(F.col(_RANK) == 1)
    described = current.select(
        C.ITEM_ID,
        _present(F.col(C.TITLE)).alias(C.TITLE),
        _present(_optional(current, C.DESCRIPTION)).alias(C.DESCRIPTION),
        _present(_optional(current, C.BRAND)).alias(C.BRAND),
        _present(_optional(current, C.CATEGORY)).alias(C.CATEGORY),
        given_split(current).alias(C.SPLIT),
    ).where(F.col(C.TITLE).isNotNull())
    columns = {
        C.ITEM_ID: F.col(C.ITEM_ID),
        C.TITLE: F.col(C.TITLE),
        C.DESCRIPTION: F.col(C.DESCRIPTION),
        C.BRAND: F.col(C.BRAND),
        C.CATEGORY: F.col(C.CATEGORY),
        C.TEXT: product_text(F.col(C.TITLE), F.col(C.DESCRIPTION)),
        C.SPLIT: F.coalesce(F.col(C.SPLIT), hash_split(F.col(C.ITEM_ID))),
        C.RUN_DATE: F.lit(run_date),
    }
    return _conform(described, PRODUCT_TEXT, columns)
