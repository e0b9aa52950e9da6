"""Transaction features for fraud detection: one definition, a Spark and an online engine.

Every feature of a payment is a declared :class:`Feature` in :data:`FEATURES`. The
nightly Spark job (:func:`compute_txn_features`) and the real-time scorer
(:class:`OnlineFeatures`) both derive their computation from these declarations, so
what a model was trained on is what it is served with.

Point in time. A payment at time ``t`` (microseconds, UTC) sees only *earlier*
payments: those with ``payment_ts < t``. The payment itself, payments at the very same
microsecond and everything after are excluded. A window of ``w`` seconds holds the
earlier payments with ``t - w <= payment_ts < t``.

Kinds of features:

* ``window_count`` / ``window_amount``: number and amount sum of the earlier
  payments in the window that share the payment's ``entity`` value (user, card,
  device or IP address). A payment whose entity value is null gets 0.
* ``window_distinct``: distinct ``of`` values (cards) among those payments.
* ``user_history``: what the user's earlier payments (all of them in the snapshot)
  say: their number, account age, amount relative to their mean, hours since the
  previous one.
* ``first_seen``: 1 when the payment's ``of`` value (device, IP, card, shipping
  country) is not among the user's earlier payments, else 0; 0 when the value is null.
* ``payment``: the payment itself: amount, basket size, hour of day, shipping
  country differing from the billing country. Besides the statistics
  ``hour_of_day`` and ``shipping_differs``, ``of`` names a numeric column taken as
  it is (null: 0): the shop's own payment fields of role ``feature`` are such features.

The payments come from ``silver.transactions``, which :func:`compute_transactions`
builds from bronze payments, orders and chargebacks: one snapshot per run date, with
the labels known then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.fraud.declarations import (
    ACCOUNT_AGE_DAYS,
    AMOUNT_TO_MEAN,
    FEATURES,
    HOUR_OF_DAY,
    MAX_HOURS_SINCE_PREV,
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    MICROS_PER_SECOND,
    PRIOR_PAYMENTS,
    SHIPPING_DIFFERS,
    Feature,
    check_features,
)
from shoplake.fraud.transactions import _TS_US

# Spark is imported inside the Spark transforms only: the table specs import the
# declarations, and the online engine runs in processes without a JVM.
if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def _spark_window(f: Feature) -> Column:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    frame = (
        Window.partitionBy(C.RUN_DATE, f.entity)
        .orderBy(_TS_US)
        .rangeBetween(-f.window_s * MICROS_PER_SECOND, -1)  # strictly earlier, t - w included
    )
    if f.kind == "window_count":
        value = F.count(F.lit(1)).over(frame)
    elif f.kind == "window_amount":
        value = F.coalesce(F.sum(C.AMOUNT).over(frame), F.lit(0.0))
    else:
        value = F.size(F.collect_set(f.of).over(frame))
    return F.when(F.col(f.entity).isNull(), F.lit(0.0)).otherwise(value.cast("double"))


def _spark_user_history(f: Feature) -> Column:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    earlier = Window.partitionBy(C.RUN_DATE, C.USER_ID).orderBy(_TS_US).rangeBetween(Window.unboundedPreceding, -1)
    now = F.col(_TS_US)
    if f.of == PRIOR_PAYMENTS:
        return F.count(F.lit(1)).over(earlier).cast("double")
    if f.of == ACCOUNT_AGE_DAYS:
        return F.coalesce((now - F.min(_TS_US).over(earlier)) / F.lit(float(MICROS_PER_DAY)), F.lit(0.0))
    if f.of == AMOUNT_TO_MEAN:
        return F.coalesce(F.col(C.AMOUNT) / F.avg(C.AMOUNT).over(earlier), F.lit(1.0))
    since = (now - F.max(_TS_US).over(earlier)) / F.lit(float(MICROS_PER_HOUR))
    return F.coalesce(F.least(since, F.lit(MAX_HOURS_SINCE_PREV)), F.lit(MAX_HOURS_SINCE_PREV))


def _spark_first_seen(f: Feature) -> Column:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # New unless the (user, value) pair's earliest payment is strictly earlier.
    earliest = F.min(_TS_US).over(Window.partitionBy(C.RUN_DATE, C.USER_ID, f.of))
    return F.when(F.col(f.of).isNull(), F.lit(0.0)).when(F.col(_TS_US) <= earliest, F.lit(1.0)).otherwise(F.lit(0.0))


def _spark_payment(f: Feature) -> Column:
    from pyspark.sql import functions as F

    if f.of == HOUR_OF_DAY:
        # Integer arithmetic on the microseconds: UTC whatever the session time zone.
        seconds = F.pmod(F.col(_TS_US), F.lit(MICROS_PER_DAY))
        seconds = (seconds - F.pmod(seconds, F.lit(MICROS_PER_SECOND))) / F.lit(MICROS_PER_SECOND)
        minutes_left = F.pmod(seconds, F.lit(3_600))
        hour = (seconds - minutes_left) / F.lit(3_600)
        minute = (minutes_left - F.pmod(minutes_left, F.lit(60))) / F.lit(60)
        second = F.pmod(minutes_left, F.lit(60))
        return hour + minute / F.lit(60.0) + second / F.lit(3_600.0)
    if f.of == SHIPPING_DIFFERS:
        billing, shipping = F.col(C.BILLING_COUNTRY), F.col(C.SHIPPING_COUNTRY)
        differs = billing.isNotNull() & shipping.isNotNull() & (billing != shipping)
        return F.when(differs, F.lit(1.0)).otherwise(F.lit(0.0))
    return F.coalesce(F.col(f.of).cast("double"), F.lit(0.0))


_SPARK_KINDS: dict[str, Callable[[Feature], Column]] = {
    "window_count": _spark_window,
    "window_amount": _spark_window,
    "window_distinct": _spark_window,
    "user_history": _spark_user_history,
    "first_seen": _spark_first_seen,
    "payment": _spark_payment,
}


def compute_txn_features(transactions: DataFrame, features: Sequence[Feature] = FEATURES) -> DataFrame:
    """The rows of ``gold.txn_features``: every feature of every payment, point in time.

    Each feature is computed from its declaration (the kinds are in the module
    docstring), over the payments of the same ``run_date`` only, so that a frame of
    several snapshots never mixes them. Time is ``unix_micros(payment_ts)``: a window
    of ``w`` seconds is the range ``[t - w, t - 1]`` microseconds of the same entity,
    the user history is everything of the user up to ``t - 1``.

    Args:
        transactions: ``silver.transactions`` rows of one or more run dates.
        features: The declarations; :data:`FEATURES` gives the table's columns.

    Returns:
        ``payment_id, order_id, user_id, payment_ts``, one double column per feature
        (never null), ``matured, label, run_date``: the columns of
        :func:`shoplake.fraud.schemas.txn_features_spec` of ``features``.
    """
    from pyspark.sql import functions as F

    check_features(features)
    timed = transactions.withColumn(_TS_US, F.unix_micros(F.col(C.PAYMENT_TS)))
    values = [_SPARK_KINDS[f.kind](f).cast("double").alias(f.name) for f in features]
    return timed.select(C.PAYMENT_ID, C.ORDER_ID, C.USER_ID, C.PAYMENT_TS, *values, C.MATURED, C.LABEL, C.RUN_DATE)
