"""Catalogue helpers shared by the use cases' feature transforms: price bands and the text an item is encoded from."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F


def price_band(price: Column, bounds: Sequence[float]) -> Column:
    """Index of the first band whose upper bound is >= ``price``; ``len(bounds)`` above the last; null for null.

    Raises:
        ValueError: The bounds are not strictly increasing.
    """
    bounds = [float(b) for b in bounds]
    if any(lo >= hi for lo, hi in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"price_bands must be strictly increasing upper bounds, got {bounds}")
    band: Column = F.lit(len(bounds))
    for index in reversed(range(len(bounds))):
        band = F.when(price <= F.lit(bounds[index]), F.lit(index)).otherwise(band)
    return F.when(price.isNotNull(), band).cast("int")


def item_text(title: Column, description: Column) -> Column:
    """The text encoder's input of an item: ``title. description``, the title alone without a description; null without a title."""
    # Online Retail repeats the title as description; "X. X" would only add noise to the encoder input.
    title_only = description.isNull() | (F.trim(description) == F.lit("")) | (description == title)
    return F.when(title.isNull(), F.lit(None).cast("string")).when(title_only, title).otherwise(F.concat(title, F.lit(". "), description))
