"""``silver.support_tickets`` and ``gold.support_training``: customer messages as known before D.

Pure Spark transforms (no I/O). A ticket keeps the ``split`` its landing row gives;
without one, Bitext tickets keep Bitext's own split and every other ticket gets a
stable split from a hash of its id.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shoplake import columns as C
from shoplake.features.pit import landed_before, latest_copies, run_midnight
from shoplake.support.schemas import SUPPORT_TICKETS, SUPPORT_TRAINING
from shoplake.text.features import _conform, _optional, _present, given_split, hash_split
from shoplake.text.splits import SPLITS

#: Ticket ids of the Bitext adapter carry their split: ``bitext-<split>-<row number>``.
BITEXT_ID_PATTERN = rf"^bitext-({'|'.join(SPLITS)})-"


def ticket_split(ticket_id: Column, given: Column | None = None) -> Column:
    """The split of a ticket: ``given`` (the landing row's), else Bitext's from a ``bitext-<split>-`` id, else :func:`hash_split` of the id."""
    bitext = F.regexp_extract(ticket_id, BITEXT_ID_PATTERN, 1)
    derived = F.when(bitext != F.lit(""), bitext).otherwise(hash_split(ticket_id))
    return derived if given is None else F.coalesce(given, derived)


def compute_support_tickets(tickets_df: DataFrame, run_date: dt.date) -> DataFrame:
    """The rows of ``silver.support_tickets`` for ``run_date``.

    Rules, all as known before ``run_date`` (D): bronze rows of landing days before D,
    one per ticket id (the latest ingested copy: its ``created_ts`` decides), created
    before D's midnight (UTC). ``text`` is normalised (module docstring) and a ticket
    whose text is then empty is left out; a blank ``intent``, ``resolution`` or
    ``channel`` becomes null; ``split`` comes from :func:`ticket_split` (the landing
    row's own ``split`` first).

    Args:
        tickets_df: ``bronze.support_tickets`` rows (landing fields plus lineage; the
            ``run_date`` landing column and ``_ingested_at``, when present, are
            honoured). ``ticket_id``, ``text`` and ``created_ts`` are needed; other
            landing fields a frame lacks are null.
        run_date: Day the table is built for.

    Returns:
        Exactly the columns of :data:`shoplake.support.schemas.SUPPORT_TICKETS`, in its order and types.
    """
    end = run_midnight(run_date)
    # Dedupe first: the latest copy's created_ts decides whether a ticket is in the snapshot.
    tickets = latest_copies(landed_before(tickets_df, run_date), [C.TICKET_ID]).where(F.col(C.CREATED_TS) < F.lit(end))
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
        C.SPLIT: ticket_split(F.col(C.TICKET_ID), given_split(tickets)),
        C.RUN_DATE: F.lit(run_date),
    }
    return _conform(tickets, SUPPORT_TICKETS, columns)


def compute_support_training(support_tickets_df: DataFrame) -> DataFrame:
    """The rows of ``gold.support_training``: the labelled tickets (intent not null).

    Args:
        support_tickets_df: ``silver.support_tickets`` rows (of one or more run dates).

    Returns:
        Exactly the columns of :data:`shoplake.support.schemas.SUPPORT_TRAINING`, in its order and types.
    """
    labelled = support_tickets_df.where(F.col(C.INTENT).isNotNull())
    return _conform(labelled, SUPPORT_TRAINING, {name: F.col(name) for name in SUPPORT_TRAINING.column_names})
