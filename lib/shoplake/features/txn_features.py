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
  it is (null: 0).

The payments come from ``silver.transactions``, which :func:`compute_transactions`
builds from bronze payments, orders and chargebacks: one snapshot per run date, with
the labels known then.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any

from shoplake.schemas import columns as C

# Spark is imported inside the Spark transforms only: the table specs import the
# declarations, and the online engine runs in processes without a JVM.
if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

#: Windows of the velocity features: suffix and length in seconds.
WINDOWS: tuple[tuple[str, int], ...] = (("1h", 3_600), ("24h", 86_400), ("7d", 604_800))
#: Entities the velocity features are counted per: feature prefix and column.
ENTITIES: tuple[tuple[str, str], ...] = (
    ("user", C.USER_ID), ("card", C.CARD_ID), ("device", C.DEVICE_ID), ("ip", C.IP_ADDRESS),
)  # fmt: skip
#: The longest window: how much per-entity history the online engine keeps.
MAX_WINDOW_S = max(seconds for _, seconds in WINDOWS)
#: Cap of ``hours_since_user_prev`` (and its value for a user without earlier payments).
MAX_HOURS_SINCE_PREV = 720.0

KINDS = ("window_count", "window_amount", "window_distinct", "user_history", "first_seen", "payment")


@dataclass(frozen=True)
class Feature:
    """One transaction feature.

    Attributes:
        name: Column of ``gold.txn_features`` and model input name.
        kind: One of :data:`KINDS`.
        description: What it is, for the table spec and the reasons of a score.
        entity: Column the payments are grouped by (window kinds).
        window_s: Window length in seconds (window kinds).
        of: Column counted or checked (``window_distinct``, ``first_seen``) or the
            statistic (``user_history``, ``payment``).
    """

    name: str
    kind: str
    description: str
    entity: str | None = None
    window_s: int | None = None
    of: str | None = None


def _window_features() -> list[Feature]:
    out = []
    for prefix, column in ENTITIES:
        for suffix, seconds in WINDOWS:
            out.append(Feature(f"{prefix}_count_{suffix}", "window_count",
                               f"Earlier payments with the same {column} in the last {suffix}.", column, seconds))
            out.append(Feature(f"{prefix}_amount_{suffix}", "window_amount",
                               f"Amount of the earlier payments with the same {column} in the last {suffix}.", column, seconds))
    for prefix, column in ENTITIES[2:]:
        out.append(Feature(f"{prefix}_cards_24h", "window_distinct",
                           f"Distinct cards among the earlier payments with the same {column} in the last 24h.",
                           column, 86_400, C.CARD_ID))
    return out  # fmt: skip


#: Statistics of ``user_history`` features (the value of :attr:`Feature.of`).
PRIOR_PAYMENTS, ACCOUNT_AGE_DAYS, AMOUNT_TO_MEAN, HOURS_SINCE_PREV = (
    "prior_payments", "account_age_days", "amount_to_mean", "hours_since_prev",
)  # fmt: skip
#: Values of ``payment`` features (the value of :attr:`Feature.of`).
AMOUNT, HOUR_OF_DAY, SHIPPING_DIFFERS = C.AMOUNT, "hour_of_day", "shipping_differs"

FEATURES: tuple[Feature, ...] = (
    *_window_features(),
    Feature("user_prior_payments", "user_history", "The user's earlier payments.", of=PRIOR_PAYMENTS),
    Feature("user_age_days", "user_history", "Days since the user's first payment (0 without one).", of=ACCOUNT_AGE_DAYS),
    Feature("amount_to_user_mean", "user_history",
            "Amount divided by the mean amount of the user's earlier payments (1 without any).", of=AMOUNT_TO_MEAN),
    Feature("hours_since_user_prev", "user_history",
            f"Hours since the user's previous payment, capped at {MAX_HOURS_SINCE_PREV:g} (the cap without one).",
            of=HOURS_SINCE_PREV),
    Feature("new_device_for_user", "first_seen", "The device is not among the user's earlier payments.", of=C.DEVICE_ID),
    Feature("new_ip_for_user", "first_seen", "The IP address is not among the user's earlier payments.", of=C.IP_ADDRESS),
    Feature("new_card_for_user", "first_seen", "The card is not among the user's earlier payments.", of=C.CARD_ID),
    Feature("new_shipping_country_for_user", "first_seen",
            "The shipping country is not among the user's earlier payments.", of=C.SHIPPING_COUNTRY),
    Feature("amount", "payment", "Amount charged.", of=AMOUNT),
    Feature("n_lines", "payment", "Order lines of the paid order.", of=C.N_LINES),
    Feature("n_units", "payment", "Units of the paid order.", of=C.N_UNITS),
    Feature("hour_of_day", "payment", "Hour of the payment (UTC, with minutes and seconds as a fraction).", of=HOUR_OF_DAY),
    Feature("shipping_differs", "payment", "Shipping and billing countries differ (0 when either is null).",
            of=SHIPPING_DIFFERS),
)  # fmt: skip
#: Model input order.
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


# ---------------------------------------------------------------------------------------------
# Both engines
# ---------------------------------------------------------------------------------------------

WINDOW_KINDS = ("window_count", "window_amount", "window_distinct")
MICROS_PER_SECOND = 1_000_000
MICROS_PER_HOUR = 3_600 * MICROS_PER_SECOND
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND
USER_STATISTICS = (PRIOR_PAYMENTS, ACCOUNT_AGE_DAYS, AMOUNT_TO_MEAN, HOURS_SINCE_PREV)
#: Columns of ``silver.transactions`` (and of a payment mapping) the features read.
PAYMENT_FIELDS = (
    C.PAYMENT_ID, C.USER_ID, C.AMOUNT, C.CARD_ID, C.DEVICE_ID, C.IP_ADDRESS, C.BILLING_COUNTRY, C.SHIPPING_COUNTRY,
    C.PAYMENT_TS, C.N_LINES, C.N_UNITS,
)  # fmt: skip


def check_features(features: Sequence[Feature]) -> None:
    """Raise ``ValueError`` when a declaration lacks what its kind needs or names an unknown statistic."""
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ValueError(f"feature names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    for f in features:
        if f.kind not in KINDS:
            raise ValueError(f"feature {f.name}: unknown kind {f.kind!r}; known: {', '.join(KINDS)}")
        if f.kind in WINDOW_KINDS and (f.entity is None or f.window_s is None or f.window_s <= 0):
            raise ValueError(f"feature {f.name}: a {f.kind} feature needs an entity and a positive window_s")
        if f.kind in ("window_distinct", "first_seen", "payment") and f.of is None:
            raise ValueError(f"feature {f.name}: a {f.kind} feature needs `of`")
        if f.kind == "user_history" and f.of not in USER_STATISTICS:
            raise ValueError(f"feature {f.name}: unknown user statistic {f.of!r}; known: {', '.join(USER_STATISTICS)}")


def _hour_of_day(seconds_of_day: int) -> float:
    hour, rest = divmod(seconds_of_day, 3_600)
    minute, second = divmod(rest, 60)
    return hour + minute / 60 + second / 3_600


# ---------------------------------------------------------------------------------------------
# Spark: silver.transactions and gold.txn_features
# ---------------------------------------------------------------------------------------------

# Working columns, dropped before a transform returns.
_RANK = "_rank"
_TS_US = "_ts_us"
_BASKET_LINES = "_basket_lines"
_BASKET_UNITS = "_basket_units"
_FIRST_CHARGEBACK = "_first_chargeback"
_ANY_FRAUD = "_any_fraud"


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
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    lineage = [name for name in (C.INGESTED_AT, C.RUN_DATE, C.SOURCE_FILE, C.ROW_NUMBER) if name in df.columns]
    if not lineage:
        return df.dropDuplicates(list(keys))
    latest_first = Window.partitionBy(*keys).orderBy(*(F.col(name).desc() for name in lineage))
    return df.withColumn(_RANK, F.row_number().over(latest_first)).where(F.col(_RANK) == 1).drop(_RANK)


def compute_transactions(
    payments: DataFrame,
    orders: DataFrame | None,
    chargebacks: DataFrame | None,
    run_date: dt.date,
    history_days: int,
    maturity_days: int,
    fraud_reason_codes: Sequence[str],
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

    Args:
        payments: ``bronze.payments`` rows (landing fields plus lineage; the ``run_date``
            landing column and ``_ingested_at``, when present, are honoured).
        orders: ``bronze.orders`` rows, or None (every basket is then 0).
        chargebacks: ``bronze.chargebacks`` rows, or None (no chargebacks: matured payments are 0).
        run_date: Day the snapshot is built for.
        history_days: Days of payments kept before D's midnight.
        maturity_days: Age at which a payment's label is final.
        fraud_reason_codes: Chargeback reasons that make a payment fraud.

    Returns:
        Exactly the columns of :data:`shoplake.schemas.fraud.TRANSACTIONS`, in its order and types.

    Raises:
        ValueError: ``history_days`` or ``maturity_days`` is not positive.
    """
    from pyspark.sql import functions as F

    from shoplake.features.interactions import landed_before, run_midnight
    from shoplake.schemas.fraud import TRANSACTIONS
    from shoplake.schemas.recsys import PLACED
    from shoplake.schemas.spec import spark_type

    if history_days < 1 or maturity_days < 1:
        raise ValueError(f"history_days and maturity_days must be >= 1, got {history_days} and {maturity_days}")
    end = run_midnight(run_date)
    start = end - dt.timedelta(days=history_days)
    matured_until = end - dt.timedelta(days=maturity_days)

    # Dedupe first: the latest copy's timestamp decides whether a payment is in the snapshot.
    paid = latest_copies(landed_before(payments, run_date), [C.PAYMENT_ID]).where(
        (F.col(C.PAYMENT_TS) < F.lit(end)) & (F.col(C.PAYMENT_TS) >= F.lit(start))
    )
    fields = [c.name for c in TRANSACTIONS.columns if c.name in payments.columns and c.name != C.RUN_DATE]
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
        reported = latest_copies(
            landed_before(chargebacks, run_date).where(F.col(C.CHARGEBACK_TS) < F.lit(end)), [C.CHARGEBACK_ID]
        )
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
        *(
            (derived[c.name] if c.name in derived else F.col(c.name)).cast(spark_type(c.dtype)).alias(c.name)
            for c in TRANSACTIONS.columns
        )
    )


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

    earlier = (
        Window.partitionBy(C.RUN_DATE, C.USER_ID).orderBy(_TS_US).rangeBetween(Window.unboundedPreceding, -1)
    )
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
    return (
        F.when(F.col(f.of).isNull(), F.lit(0.0))
        .when(F.col(_TS_US) <= earliest, F.lit(1.0))
        .otherwise(F.lit(0.0))
    )


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
        (never null), ``matured, label, run_date``: exactly the columns of
        :data:`shoplake.schemas.fraud.TXN_FEATURES` for the default ``features``.
    """
    from pyspark.sql import functions as F

    check_features(features)
    timed = transactions.withColumn(_TS_US, F.unix_micros(F.col(C.PAYMENT_TS)))
    values = [_SPARK_KINDS[f.kind](f).cast("double").alias(f.name) for f in features]
    return timed.select(
        C.PAYMENT_ID, C.ORDER_ID, C.USER_ID, C.PAYMENT_TS, *values, C.MATURED, C.LABEL, C.RUN_DATE
    )


# ---------------------------------------------------------------------------------------------
# Online: one payment at a time
# ---------------------------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_ONE_MICRO = dt.timedelta(microseconds=1)


def payment_micros(ts: dt.datetime) -> int:
    """Microseconds since the epoch of a timezone-aware datetime (what ``unix_micros`` gives in Spark)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{C.PAYMENT_TS} must be timezone-aware, got {ts!r}")
    return (ts - _EPOCH) // _ONE_MICRO


class _Series:
    """Payments of one entity value, in time order: times, amounts and the counted columns."""

    __slots__ = ("amounts", "times", "values")

    def __init__(self, n_values: int):
        self.times: list[int] = []
        self.amounts: list[float] = []
        self.values: tuple[list, ...] = tuple([] for _ in range(n_values))

    def insert(self, t: int, amount: float, values: Sequence) -> None:
        times = self.times
        if not times or times[-1] <= t:
            times.append(t)
            self.amounts.append(amount)
            for column, value in zip(self.values, values, strict=True):
                column.append(value)
            return
        i = bisect_right(times, t)
        times.insert(i, t)
        self.amounts.insert(i, amount)
        for column, value in zip(self.values, values, strict=True):
            column.insert(i, value)

    def drop_before(self, cutoff: int) -> None:
        i = bisect_left(self.times, cutoff)
        if i:
            del self.times[:i], self.amounts[:i]
            for column in self.values:
                del column[:i]


class _History:
    """All payments of one user in time order, with running amount sums (``sums[i]``: of the first ``i``)."""

    __slots__ = ("amounts", "sums", "times")

    def __init__(self):
        self.times: list[int] = []
        self.amounts: list[float] = []
        self.sums: list[float] = [0.0]

    def insert(self, t: int, amount: float) -> None:
        times, amounts, sums = self.times, self.amounts, self.sums
        if not times or times[-1] <= t:
            times.append(t)
            amounts.append(amount)
            sums.append(sums[-1] + amount)
            return
        # A late payment: the sums from it on are added up again in time order, as Spark adds them.
        i = bisect_right(times, t)
        times.insert(i, t)
        amounts.insert(i, amount)
        del sums[i + 1 :]
        for a in amounts[i:]:
            sums.append(sums[-1] + a)


class _Query:
    """One payment being scored: its fields and the state's answers, each looked up once."""

    __slots__ = ("_spans", "_user", "payment", "state", "t")

    def __init__(self, state: OnlineFeatures, payment: Mapping[str, Any]):
        self.state, self.payment = state, payment
        self.t = payment_micros(payment[C.PAYMENT_TS])
        self._spans: dict[tuple[str, int], tuple[_Series | None, int, int]] = {}
        self._user: tuple[_History | None, int] | None = None

    def span(self, entity: str, window_us: int) -> tuple[_Series | None, int, int]:
        """The entity's series and the slice of its payments in ``[t - window, t)``."""
        key = (entity, window_us)
        found = self._spans.get(key)
        if found is None:
            value = self.payment.get(entity)
            series = None if value is None else self.state._series[entity].get(value)
            if series is None:
                found = (None, 0, 0)
            else:
                times = series.times
                found = (series, bisect_left(times, self.t - window_us), bisect_left(times, self.t))
            self._spans[key] = found
        return found

    def user(self) -> tuple[_History | None, int]:
        """The user's history and how many of its payments are earlier than ``t``."""
        if self._user is None:
            history = self.state._users.get(self.payment.get(C.USER_ID))
            self._user = (history, 0 if history is None else bisect_left(history.times, self.t))
        return self._user


def _online_window(f: Feature, state: OnlineFeatures) -> Callable[[_Query], float]:
    entity, window_us = f.entity, f.window_s * MICROS_PER_SECOND
    if f.kind == "window_count":

        def count(q: _Query) -> float:
            _, lo, hi = q.span(entity, window_us)
            return float(hi - lo)

        return count
    if f.kind == "window_amount":

        def amount(q: _Query) -> float:
            series, lo, hi = q.span(entity, window_us)
            return float(sum(series.amounts[lo:hi])) if hi > lo else 0.0

        return amount
    slot = state._counted[entity].index(f.of)

    def distinct(q: _Query) -> float:
        series, lo, hi = q.span(entity, window_us)
        if hi <= lo:
            return 0.0
        return float(len({v for v in series.values[slot][lo:hi] if v is not None}))

    return distinct


def _online_user_history(f: Feature, state: OnlineFeatures) -> Callable[[_Query], float]:
    def prior_payments(q: _Query) -> float:
        return float(q.user()[1])

    def account_age_days(q: _Query) -> float:
        history, n = q.user()
        return (q.t - history.times[0]) / MICROS_PER_DAY if n else 0.0

    def amount_to_mean(q: _Query) -> float:
        history, n = q.user()
        return float(q.payment[C.AMOUNT]) / (history.sums[n] / n) if n else 1.0

    def hours_since_prev(q: _Query) -> float:
        history, n = q.user()
        return min((q.t - history.times[n - 1]) / MICROS_PER_HOUR, MAX_HOURS_SINCE_PREV) if n else MAX_HOURS_SINCE_PREV

    statistics = {
        PRIOR_PAYMENTS: prior_payments,
        ACCOUNT_AGE_DAYS: account_age_days,
        AMOUNT_TO_MEAN: amount_to_mean,
        HOURS_SINCE_PREV: hours_since_prev,
    }
    return statistics[f.of]


def _online_first_seen(f: Feature, state: OnlineFeatures) -> Callable[[_Query], float]:
    column, earliest = f.of, state._earliest

    def first_seen(q: _Query) -> float:
        value = q.payment.get(column)
        if value is None:
            return 0.0
        first = earliest.get((column, q.payment.get(C.USER_ID), value))
        return 1.0 if first is None or first >= q.t else 0.0

    return first_seen


def _online_payment(f: Feature, state: OnlineFeatures) -> Callable[[_Query], float]:
    if f.of == HOUR_OF_DAY:

        def hour_of_day(q: _Query) -> float:
            return _hour_of_day((q.t // MICROS_PER_SECOND) % 86_400)

        return hour_of_day
    if f.of == SHIPPING_DIFFERS:

        def shipping_differs(q: _Query) -> float:
            billing, shipping = q.payment.get(C.BILLING_COUNTRY), q.payment.get(C.SHIPPING_COUNTRY)
            return 1.0 if billing is not None and shipping is not None and billing != shipping else 0.0

        return shipping_differs
    column = f.of

    def value(q: _Query) -> float:
        found = q.payment.get(column)
        return 0.0 if found is None else float(found)

    return value


_ONLINE_KINDS: dict[str, Callable[[Feature, OnlineFeatures], Callable[[_Query], float]]] = {
    "window_count": _online_window,
    "window_amount": _online_window,
    "window_distinct": _online_window,
    "user_history": _online_user_history,
    "first_seen": _online_first_seen,
    "payment": _online_payment,
}


class OnlineFeatures:
    """The real-time engine: the features of one payment from the payments seen so far.

    The state holds, per entity value of the window features (user, card, device, IP),
    the payments of the longest window (:data:`MAX_WINDOW_S`) in time order; per user, every
    payment's time and running amount sum; per (column, user, value) of the
    ``first_seen`` features, the earliest payment time. :meth:`features` answers with
    binary searches, so a payment arriving late (an older ``payment_ts`` than some
    payments already added) gets exactly what Spark computes for it, as long as it is
    no more than ``late_s`` older than the newest payment seen: window history older
    than ``newest - longest window - late_s`` is dropped to bound memory. The user
    history and the first-seen times are kept whole, like the Spark snapshot.

    Not thread-safe: callers serialise :meth:`features` and :meth:`add` on one state.

    Args:
        features: The declarations (default :data:`FEATURES`); adding one of an
            existing kind needs no change here.
        late_s: How much older than the newest payment seen a payment may be and
            still be scored exactly; None keeps all window history.
    """

    def __init__(self, features: Sequence[Feature] = FEATURES, *, late_s: int | None = 86_400):
        check_features(features)
        self.declared: tuple[Feature, ...] = tuple(features)
        self.names: tuple[str, ...] = tuple(f.name for f in features)
        # Per entity column of a window feature: the columns counted distinct over it.
        self._counted: dict[str, tuple[str, ...]] = {}
        for f in features:
            if f.kind in WINDOW_KINDS:
                counted = self._counted.setdefault(f.entity, ())
                if f.kind == "window_distinct" and f.of not in counted:
                    self._counted[f.entity] = (*counted, f.of)
        self._first_columns = tuple(dict.fromkeys(f.of for f in features if f.kind == "first_seen"))
        self._series: dict[str, dict[Any, _Series]] = {entity: {} for entity in self._counted}
        self._users: dict[Any, _History] = {}
        self._earliest: dict[tuple[str, Any, Any], int] = {}
        self._ids: set[Any] = set()
        longest = max((f.window_s for f in features if f.kind in WINDOW_KINDS), default=0)
        self._keep_us = None if late_s is None else (longest + late_s) * MICROS_PER_SECOND
        self._newest: int | None = None
        # (time, sequence, entity column, value) of each window entry, to drop it once too old.
        self._expiry: list[tuple[int, int, str, Any]] = []
        self._sequence = 0
        self._plan = tuple((f.name, _ONLINE_KINDS[f.kind](f, self)) for f in features)

    @classmethod
    def from_transactions(
        cls, table: pa.Table, features: Sequence[Feature] = FEATURES, **kwargs: Any
    ) -> OnlineFeatures:
        """The state holding every payment of ``table``: ``silver.transactions`` rows of one run date.

        Args:
            table: Rows with at least the columns of :data:`PAYMENT_FIELDS` the
                features use (``payment_id``, ``user_id``, ``amount``, ``payment_ts`` always).
            features: The declarations.
            **kwargs: Passed on to the constructor (``late_s``).

        Raises:
            ValueError: The table holds several run dates (snapshots must not mix).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        if C.RUN_DATE in table.column_names:
            dates = pc.unique(table[C.RUN_DATE].drop_null()).to_pylist()
            if len(dates) > 1:
                raise ValueError(f"from_transactions takes one run date's rows; this table has {sorted(dates)}")
        state = cls(features, **kwargs)
        if table.num_rows == 0:
            return state
        table = table.sort_by([(C.PAYMENT_TS, "ascending")])
        micros = pc.cast(pc.cast(table[C.PAYMENT_TS], pa.timestamp("us", tz="UTC")), pa.int64()).to_pylist()
        fields = [name for name in PAYMENT_FIELDS if name in table.column_names and name != C.PAYMENT_TS]
        columns = [table[name].to_pylist() for name in fields]
        for t, values in zip(micros, zip(*columns, strict=True), strict=True):
            state._add(t, dict(zip(fields, values, strict=True)))
        return state

    def __len__(self) -> int:
        """Payments held."""
        return len(self._ids)

    def __contains__(self, payment_id: object) -> bool:
        return payment_id in self._ids

    def features(self, payment: Mapping[str, Any]) -> dict[str, float]:
        """Every feature of ``payment`` from the payments held, without adding it.

        Args:
            payment: ``payment_id, user_id, amount, card_id, device_id, ip_address,
                billing_country, shipping_country, payment_ts`` (timezone-aware),
                ``n_lines, n_units``; optional ones may be None or missing.

        Returns:
            Feature name -> value, in declaration order.
        """
        q = _Query(self, payment)
        return {name: compute(q) for name, compute in self._plan}

    def vector(self, payment: Mapping[str, Any]) -> list[float]:
        """:meth:`features` as a list in declaration order (:data:`FEATURE_NAMES` by default)."""
        q = _Query(self, payment)
        return [compute(q) for _, compute in self._plan]

    def add(self, payment: Mapping[str, Any]) -> bool:
        """Add ``payment`` to the state; a payment id already held is not added again.

        Returns:
            Whether it was added.
        """
        if payment[C.PAYMENT_ID] in self._ids:
            return False
        self._add(payment_micros(payment[C.PAYMENT_TS]), payment)
        return True

    def _add(self, t: int, payment: Mapping[str, Any]) -> None:
        self._ids.add(payment[C.PAYMENT_ID])
        amount = float(payment[C.AMOUNT])
        user = payment.get(C.USER_ID)
        for entity, counted in self._counted.items():
            value = payment.get(entity)
            if value is None:
                continue
            by_value = self._series[entity]
            series = by_value.get(value)
            if series is None:
                series = by_value[value] = _Series(len(counted))
            series.insert(t, amount, [payment.get(column) for column in counted])
            if self._keep_us is not None:
                self._sequence += 1
                heappush(self._expiry, (t, self._sequence, entity, value))
        history = self._users.get(user)
        if history is None:
            history = self._users[user] = _History()
        history.insert(t, amount)
        for column in self._first_columns:
            value = payment.get(column)
            if value is not None:
                key = (column, user, value)
                first = self._earliest.get(key)
                if first is None or t < first:
                    self._earliest[key] = t
        if self._newest is None or t > self._newest:
            self._newest = t
            if self._keep_us is not None:
                self._expire(t - self._keep_us)

    def _expire(self, cutoff: int) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] < cutoff:
            _, _, entity, value = heappop(expiry)
            by_value = self._series[entity]
            series = by_value.get(value)
            if series is not None:
                series.drop_before(cutoff)
                if not series.times:
                    del by_value[value]

    def window_entries(self) -> int:
        """Payments held in the per-entity window history, over all entities (what pruning bounds)."""
        return sum(len(s.times) for by_value in self._series.values() for s in by_value.values())


__all__ = [
    "ENTITIES", "FEATURES", "FEATURE_NAMES", "KINDS", "MAX_HOURS_SINCE_PREV", "MAX_WINDOW_S", "WINDOWS",
    "Feature", "OnlineFeatures", "check_features", "compute_transactions", "compute_txn_features", "latest_copies",
    "payment_micros",
]  # fmt: skip
