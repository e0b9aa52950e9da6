"""Order lines netted against their cancellations, shared by the recommendation and forecasting features.

A cancellation removes units of the same user and item (or order) last in, first out:
:func:`net_cancellations` marks each placed line with the units it keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.ingest.landing import PLACED

# Working columns, dropped before a transform returns.
_DELTA = "_units_delta"
_RUNNING = "_units_running"
_STACK = "_units_standing"
_LATER_MIN = "_later_min_standing"
#: Columns added by :func:`net_cancellations`: whether a placed line keeps a unit, and how many it keeps.
KEPT = "_kept"
KEPT_UNITS = "_kept_units"
_STATUS_RANK = "_status_rank"


def net_cancellations(lines: DataFrame, keys: Sequence[str] = (C.USER_ID, C.ITEM_ID)) -> DataFrame:
    """Placed lines after LIFO cancellation netting, with :data:`KEPT` and :data:`KEPT_UNITS`.

    Per ``keys`` (a buyer and an item), in time order (a placement before a
    cancellation at the same instant), the units standing form a stack: a placement
    pushes its quantity, a cancellation pops its quantity, never below zero. That
    clamped running sum is ``S_j - min(0, min_{k<=j} S_k)`` where ``S`` is the plain
    running sum (placed units minus cancelled units). A placed line's units sit at the
    top ``quantity`` levels of the stack it leaves, ``(height - quantity, height]``,
    and a unit is gone once a later stack height drops below its level: the line keeps
    ``clamp(min(later heights) - (height - quantity), 0, quantity)`` units, all of
    them when nothing follows. A line of 12 with 6 cancelled later keeps 6.

    Args:
        lines: Order lines with ``order_id, line_number, quantity, order_ts, status``
            (placed and cancelled; other statuses are treated as cancellations, so
            filter them out first) and the ``keys`` columns. A null key value is a
            value like any other: nulls of a key column fall in one group.
        keys: Columns that say which cancellations may net out which placed lines.

    Returns:
        The placed lines with every input column, working columns (leading
        underscore) and ``KEPT`` (boolean: some unit remains) and ``KEPT_UNITS``
        (long: the units that remain).
    """
    per_key = Window.partitionBy(*keys).orderBy(C.ORDER_TS, _STATUS_RANK, C.ORDER_ID, C.LINE_NUMBER)
    so_far = per_key.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    after = per_key.rowsBetween(1, Window.unboundedFollowing)
    placed = F.col(C.STATUS) == PLACED
    quantity = F.col(C.QUANTITY).cast("long")
    # Units of the line still standing at the lowest later height; negative means all gone.
    surviving = F.col(_LATER_MIN) - (F.col(_STACK) - quantity)
    return (
        lines.withColumn(_STATUS_RANK, F.when(placed, F.lit(0)).otherwise(F.lit(1)))
        .withColumn(_DELTA, F.when(placed, F.col(C.QUANTITY)).otherwise(-F.col(C.QUANTITY)).cast("long"))
        .withColumn(_RUNNING, F.sum(_DELTA).over(so_far))
        .withColumn(_STACK, F.col(_RUNNING) - F.least(F.lit(0).cast("long"), F.min(_RUNNING).over(so_far)))
        .withColumn(_LATER_MIN, F.min(_STACK).over(after))
        .where(placed)
        .withColumn(
            KEPT_UNITS,
            F.when(F.col(_LATER_MIN).isNull(), quantity).otherwise(F.least(quantity, F.greatest(F.lit(0).cast("long"), surviving))),
        )
        .withColumn(KEPT, F.col(_LATER_MIN).isNull() | (surviving > 0))
    )
