"""The online engine of the fraud features: per-entity payment histories in memory, the same definitions as Spark.

:class:`OnlineFeatures` answers a payment's features from the payments strictly
before it, as the batch job does; the parity tests hold the two to 1e-9.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any

from shoplake import columns as C
from shoplake.fraud.declarations import (
    ACCOUNT_AGE_DAYS,
    AMOUNT_TO_MEAN,
    FEATURES,
    HOUR_OF_DAY,
    HOURS_SINCE_PREV,
    MAX_HOURS_SINCE_PREV,
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    MICROS_PER_SECOND,
    PAYMENT_FIELDS,
    PRIOR_PAYMENTS,
    SHIPPING_DIFFERS,
    WINDOW_KINDS,
    Feature,
    _hour_of_day,
    check_features,
)

if TYPE_CHECKING:
    import pyarrow as pa

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
    def from_transactions(cls, table: pa.Table, features: Sequence[Feature] = FEATURES, **kwargs: Any) -> OnlineFeatures:
        """The state holding every payment of ``table``: ``silver.transactions`` rows of one run date.

        Args:
            table: Rows with at least the columns of :data:`PAYMENT_FIELDS` the
                features use (``payment_id``, ``user_id``, ``amount``, ``payment_ts`` always),
                and the shop's own fields the features read.
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
        # The built-in fields, and the shop's own ones a feature reads (a categorical field's first_seen).
        wanted = dict.fromkeys((*PAYMENT_FIELDS, *(f.of for f in state.declared if f.of is not None)))
        fields = [name for name in wanted if name in table.column_names and name != C.PAYMENT_TS]
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
