"""``silver.transactions``: the payments of the history window with their basket and their label as known before D."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.features.pit import latest_copies

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from shoplake.lake.spec import TableSpec

_TS_US = "_ts_us"
_BASKET_LINES = "_basket_lines"
_BASKET_UNITS = "_basket_units"
_FIRST_CHARGEBACK = "_first_chargeback"
_ANY_FRAUD = "_any_fraud"


def compute_transactions(
    payments: DataFrame,
    orders: DataFrame | None,
    chargebacks: DataFrame | None,
    run_date: dt.date,
    history_days: int,
    maturity_days: int,
    fraud_reason_codes: Sequence[str],
    spec: TableSpec | None = None,
) -> DataFrame:
    """The rows of ``silver.transactions`` for ``run_date``: payments with basket size, chargeback and label.

    Rules, all as known before ``run_date`` (D):

    * **Payments.** Bronze rows of landing days before D, one per payment id (the
      latest ingested copy, :func:`latest_copies`), made before D's midnight (UTC) and
      no more than ``history_days`` before it (``midnight - history_days`` included).
    * **Basket.** ``n_lines`` counts the distinct lines and ``n_units`` sums the
      quantity of the paid order's placed lines (landed before D, timestamped before
      D's midnight, one copy per line); both 0 when the order is unknown.
    * **Chargeback.** Among the chargebacks landed before D and reported before D's
      midnight (one copy per chargeback id), the first of the payment (by report time,
      then id), whatever its reason, gives ``chargeback_ts`` and ``reason_code``.
    * **Label.** ``matured`` when ``payment_ts <= midnight - maturity_days``; ``label``
      is null until then, afterwards 1 when any of those chargebacks has a reason in
      ``fraud_reason_codes``, else 0.
    * **The shop's own fields.** Columns of ``spec`` beyond the built-in ones are the
      payment's own fields (``landing.extra_fields.payments``), taken as they are.

    Args:
        payments: ``bronze.payments`` rows (landing fields plus lineage; the ``run_date``
            landing column and ``_ingested_at``, when present, are honoured).
        orders: ``bronze.orders`` rows, or None (every basket is then 0).
        chargebacks: ``bronze.chargebacks`` rows, or None (no chargebacks: matured payments are 0).
        run_date: Day the snapshot is built for.
        history_days: Days of payments kept before D's midnight.
        maturity_days: Age at which a payment's label is final.
        fraud_reason_codes: Chargeback reasons that make a payment fraud.
        spec: The table's spec (default :data:`shoplake.fraud.schemas.TRANSACTIONS`;
            :func:`shoplake.fraud.schemas.configured_specs` adds the shop's own fields).

    Returns:
        Exactly the columns of ``spec``, in its order and types.

    Raises:
        ValueError: ``history_days`` or ``maturity_days`` is not positive.
    """
    from pyspark.sql import functions as F

    from shoplake.features.pit import landed_before, run_midnight
    from shoplake.fraud.schemas import TRANSACTIONS
    from shoplake.ingest.landing import PLACED
    from shoplake.lake.spec import spark_type

    spec = spec or TRANSACTIONS

    if history_days < 1 or maturity_days < 1:
        raise ValueError(f"history_days and maturity_days must be >= 1, got {history_days} and {maturity_days}")
    end = run_midnight(run_date)
    start = end - dt.timedelta(days=history_days)
    matured_until = end - dt.timedelta(days=maturity_days)

    # Dedupe first: the latest copy's timestamp decides whether a payment is in the snapshot.
    paid = latest_copies(landed_before(payments, run_date), [C.PAYMENT_ID]).where(
        (F.col(C.PAYMENT_TS) < F.lit(end)) & (F.col(C.PAYMENT_TS) >= F.lit(start))
    )
    fields = [c.name for c in spec.columns if c.name in payments.columns and c.name != C.RUN_DATE]
    rows = paid.select(*fields)

    if orders is not None:
        lines = latest_copies(
            landed_before(orders, run_date).where((F.col(C.STATUS) == PLACED) & (F.col(C.ORDER_TS) < F.lit(end))),
            [C.ORDER_ID, C.LINE_NUMBER],
        )
        baskets = lines.groupBy(C.ORDER_ID).agg(
            F.count_distinct(C.LINE_NUMBER).alias(_BASKET_LINES),
            F.sum(F.col(C.QUANTITY).cast("long")).alias(_BASKET_UNITS),
        )
        rows = rows.join(baskets, C.ORDER_ID, "left")
    else:
        rows = rows.withColumn(_BASKET_LINES, F.lit(None)).withColumn(_BASKET_UNITS, F.lit(None))

    if chargebacks is not None:
        reported = latest_copies(landed_before(chargebacks, run_date).where(F.col(C.CHARGEBACK_TS) < F.lit(end)), [C.CHARGEBACK_ID])
        codes = list(fraud_reason_codes)
        is_fraud = F.coalesce(F.col(C.REASON_CODE).isin(*codes), F.lit(False)) if codes else F.lit(False)
        disputes = reported.groupBy(C.PAYMENT_ID).agg(
            F.min_by(
                F.struct(F.col(C.CHARGEBACK_TS), F.col(C.REASON_CODE)),
                F.struct(F.col(C.CHARGEBACK_TS), F.col(C.CHARGEBACK_ID)),
            ).alias(_FIRST_CHARGEBACK),
            F.max(is_fraud).alias(_ANY_FRAUD),
        )
        rows = rows.join(disputes, C.PAYMENT_ID, "left")
        first_ts = F.col(f"{_FIRST_CHARGEBACK}.{C.CHARGEBACK_TS}")
        first_reason = F.col(f"{_FIRST_CHARGEBACK}.{C.REASON_CODE}")
        any_fraud = F.coalesce(F.col(_ANY_FRAUD), F.lit(False))
    else:
        first_ts, first_reason, any_fraud = F.lit(None), F.lit(None), F.lit(False)

    matured = F.col(C.PAYMENT_TS) <= F.lit(matured_until)
    derived = {
        C.N_LINES: F.coalesce(F.col(_BASKET_LINES), F.lit(0)),
        C.N_UNITS: F.coalesce(F.col(_BASKET_UNITS), F.lit(0)),
        C.CHARGEBACK_TS: first_ts,
        C.REASON_CODE: first_reason,
        C.MATURED: matured,
        C.LABEL: F.when(matured, F.when(any_fraud, F.lit(1)).otherwise(F.lit(0))),
        C.RUN_DATE: F.lit(run_date),
    }
    return rows.select(
        *((derived[c.name] if c.name in derived else F.col(c.name)).cast(spark_type(c.dtype)).alias(c.name) for c in spec.columns)
    )
