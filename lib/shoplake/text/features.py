"""Text normalisation and the stable hash split, shared by the support and categorization tables."""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.lake.spec import TableSpec, spark_type
from shoplake.text.splits import TEST, TRAIN, VALIDATION

#: Hash buckets of :func:`hash_split`; buckets below the first bound are train, below the second validation.
HASH_BUCKETS = 100
TRAIN_BUCKETS, VALIDATION_BUCKETS = 80, 10

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


def given_split(df: DataFrame) -> Column:
    """The shop's own ``split`` of a row where the landing file gave one, else null."""
    return _present(_optional(df, C.SPLIT))


def _optional(df: DataFrame, name: str) -> Column:
    return F.col(name) if name in df.columns else F.lit(None).cast("string")


def _conform(df: DataFrame, spec: TableSpec, columns: dict[str, Column]) -> DataFrame:
    return df.select(*(columns[c.name].cast(spark_type(c.dtype)).alias(c.name) for c in spec.columns))
