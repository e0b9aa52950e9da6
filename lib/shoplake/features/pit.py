"""Point-in-time helpers shared by every feature transform.

A feature row built for run date ``D`` may use only what was known before D's
midnight, UTC: bronze partitions of landing days before D (:func:`landed_before`) and
rows timestamped before :func:`run_midnight`. :func:`latest_copies` keeps the newest
landed copy of each key, so a re-sent row counts once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from shoplake import columns as C

MICROS_PER_DAY = 86_400 * 1_000_000


def landed_before(df: DataFrame, run_date: dt.date) -> DataFrame:
    """Bronze rows of landing days before ``run_date``: all a nightly run for that day has seen.

    A frame without the ``run_date`` landing column (a hand-made or already filtered
    one) passes unchanged, so a transform stays point-in-time when handed a whole
    bronze table and still runs on plain rows.
    """
    return df.where(F.col(C.RUN_DATE) < F.lit(run_date)) if C.RUN_DATE in df.columns else df


def run_midnight(run_date: dt.date) -> dt.datetime:
    """The start of ``run_date`` in UTC: every feature of that date uses data strictly before it.

    The datetime is timezone-aware so that Spark turns it into the same instant
    whatever the session or machine time zone is.
    """
    return dt.datetime(run_date.year, run_date.month, run_date.day, tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------------------------------------
# Spark: silver.transactions and gold.txn_features
# ---------------------------------------------------------------------------------------------

# Working columns, dropped before a transform returns.
_RANK = "_rank"


def latest_copies(df: DataFrame, keys: Sequence[str]) -> DataFrame:
    """One row per ``keys``: the copy ingested last.

    A landing file ingested twice leaves two copies of its rows in bronze; the latest
    ``_ingested_at`` wins, then the later landing day, file and record number, so the
    choice is the same on every run. Lineage columns a frame lacks are skipped; without
    any, an arbitrary copy is kept.

    Args:
        df: Bronze-like rows.
        keys: Columns that identify a row (``payment_id``; ``order_id, line_number``).

    Returns:
        ``df``'s columns, one row per key.
    """
    from pyspark.sql import functions as F

    lineage = [name for name in (C.INGESTED_AT, C.RUN_DATE, C.SOURCE_FILE, C.ROW_NUMBER) if name in df.columns]
    if not lineage:
        return df.dropDuplicates(list(keys))
    latest_first = Window.partitionBy(*keys).orderBy(*(F.col(name).desc() for name in lineage))
    return df.withColumn(_RANK, F.row_number().over(latest_first)).where(F.col(_RANK) == 1).drop(_RANK)
