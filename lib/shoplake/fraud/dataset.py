"""The labelled payments a fraud run learns from, and their time-ordered training, validation and test splits.

:func:`training_data` reads the matured payments of ``gold.txn_features`` (or the
shop's own labelled table, ``fraud.feature_table``), :func:`feature_matrix` (from
:mod:`shoplake.fraud.models.base`) turns rows into the model input in a bundle's
feature order, and :func:`time_split` cuts time-ordered rows on day boundaries so
that every split holds payments after all those it learns from, by the payments and
frauds of each day alone (:func:`split_days`), which is how
:mod:`shoplake.fraud.splits` cuts a table it does not load.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.config import Config
from shoplake.evaluation import TEST, VALIDATION
from shoplake.fraud.declarations import FEATURE_NAMES, configured_feature_names
from shoplake.fraud.feature_table import ALONE, KEY, SOURCE_JOINED, SOURCE_LAKE, SOURCE_TABLE
from shoplake.fraud.models.base import feature_matrix, labels
from shoplake.fraud.schemas import TXN_FEATURES


class MissingTxnFeaturesError(LookupError):
    """``gold.txn_features`` has no partition for the run date."""


class TooFewLabelsError(ValueError):
    """The matured payments cannot train and validate a model (no fraud in a split, too few payments)."""


@dataclass
class Split:
    """One time-ordered share of the matured payments: features, labels, days, amounts, first day."""

    name: str
    X: np.ndarray
    y: np.ndarray
    days: np.ndarray
    amounts: np.ndarray
    payment_ids: np.ndarray

    @property
    def first_day(self) -> dt.date:
        return dt.date.fromisoformat(str(self.days.min()))

    @property
    def frauds(self) -> int:
        return int(self.y.sum())


def load_matured(lake, run_date: dt.date | None = None) -> tuple[pa.Table, dt.date, int]:
    """The matured rows of ``gold.txn_features`` for ``run_date`` (default the latest), oldest first.

    Returns:
        ``(rows, run_date, table_version)``.

    Raises:
        MissingTxnFeaturesError: No partition for the run date.
    """
    run_date, version = matured_partition(lake, run_date)
    return read_matured(lake, run_date, version), run_date, version


def matured_partition(lake, run_date: dt.date | None = None) -> tuple[dt.date, int]:
    """``(run_date, version)``: the ``gold.txn_features`` partition a fraud run reads (default the latest run date).

    Raises:
        MissingTxnFeaturesError: No partition for the run date.
    """
    dates = lake.run_dates(TXN_FEATURES)
    if not dates:
        raise MissingTxnFeaturesError(f"{TXN_FEATURES.full_name} does not exist or is empty in {lake.root}: build the features first")
    run_date = run_date or max(dates)
    if run_date not in dates:
        raise MissingTxnFeaturesError(f"{TXN_FEATURES.full_name} has no run date {run_date} in {lake.root}")
    return run_date, lake.version(TXN_FEATURES)


def matured_where(first_day: dt.date | None = None, end_day: dt.date | None = None):
    """The ``pyarrow.dataset`` filter of matured payments made from ``first_day`` to before ``end_day`` (UTC days; None: unbounded)."""
    import pyarrow.dataset as ds

    def midnight(day: dt.date):
        return pa.scalar(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc), pa.timestamp("us", tz="UTC"))

    where = ds.field(C.MATURED) == pa.scalar(True)
    if first_day is not None:
        where = where & (ds.field(C.PAYMENT_TS) >= midnight(first_day))
    if end_day is not None:
        where = where & (ds.field(C.PAYMENT_TS) < midnight(end_day))
    return where


def read_matured(lake, run_date: dt.date, version: int | None = None, first_day: dt.date | None = None, end_day: dt.date | None = None):
    """The matured rows of one ``gold.txn_features`` partition (between two days, if given) in this process, oldest first."""
    rows = lake.to_arrow(TXN_FEATURES, version=version, run_date=run_date, where=matured_where(first_day, end_day))
    return rows.sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])


def _held_out_day(cum_payments: np.ndarray, cum_frauds: np.ndarray, end: int, n_total: int, frauds_total: int, share: float) -> int:
    """First of the newest whole days before day ``end`` that hold ``share`` of all payments and of all frauds.

    ``cum_payments[k]`` and ``cum_frauds[k]`` count the payments and frauds of the days
    before day ``k``. Reaching back by payments from the end gives one payment, by
    frauds the ``ceil(frauds_total * share)``-th newest fraud (or the oldest one);
    the split starts with the day of the older of the two: a day is never cut in two.
    """
    by_payments = int(cum_payments[end]) - max(int(round(n_total * share)), 1)
    day = int(np.searchsorted(cum_payments, max(by_payments, 0), side="right")) - 1
    frauds_before = int(cum_frauds[end])
    if frauds_before:
        wanted = max(int(math.ceil(frauds_total * share)), 1)
        nth_fraud = max(frauds_before - wanted, 0)
        day = min(day, int(np.searchsorted(cum_frauds, nth_fraud, side="right")) - 1)
    return day


@dataclass(frozen=True)
class DaySplit:
    """Where the time split cuts matured payments: the first days of validation and test, and each split's size.

    Attributes:
        valid_start: First day of the validation split (training is every day before it).
        test_start: First day of the test split.
        sizes: Per split (train, validation, test): payments, frauds, first payment day.
    """

    valid_start: dt.date
    test_start: dt.date
    sizes: dict[str, tuple[int, int, dt.date]]

    def days(self, name: str) -> tuple[dt.date | None, dt.date | None]:
        """``(first day, day after the last)`` of split ``name``; None: unbounded."""
        return {"train": (None, self.valid_start), VALIDATION: (self.valid_start, self.test_start), TEST: (self.test_start, None)}[name]


def split_days(days, payments, frauds, validation_share: float, test_share: float) -> DaySplit:
    """The time split of matured payments counted per day (see :func:`time_split`).

    Args:
        days: The days with payments, oldest first (dates or ``datetime64[D]``).
        payments: Matured payments of each day.
        frauds: Fraud labels of each day.
        validation_share: Least share of the payments and frauds in validation.
        test_share: Least share in test.

    Raises:
        TooFewLabelsError: A split would be empty, or one has no fraud label.
    """
    days = np.asarray(days, dtype="datetime64[D]")
    cum_payments = np.concatenate([[0], np.cumsum(np.asarray(payments, dtype=np.int64))])
    cum_frauds = np.concatenate([[0], np.cumsum(np.asarray(frauds, dtype=np.int64))])
    n, total_frauds = int(cum_payments[-1]), int(cum_frauds[-1])
    if n < 3:
        raise TooFewLabelsError(f"{n} matured payments cannot be split into training, validation and test")
    test_day = _held_out_day(cum_payments, cum_frauds, len(days), n, total_frauds, test_share)
    valid_day = _held_out_day(cum_payments, cum_frauds, test_day, n, total_frauds, validation_share)
    sizes = {}
    for name, (first, end) in {"train": (0, valid_day), VALIDATION: (valid_day, test_day), TEST: (test_day, len(days))}.items():
        count, fraud = int(cum_payments[end] - cum_payments[first]), int(cum_frauds[end] - cum_frauds[first])
        first_day = dt.date.fromisoformat(str(days[first])) if count else None
        if count == 0 or fraud == 0:
            what = "no payments" if count == 0 else f"{count} matured payments from {first_day}, no fraud label"
            raise TooFewLabelsError(
                f"the {name} split has {what} ({n} matured payments, {total_frauds} fraud in all): "
                "the shop needs more history (fraud.maturity_days before the run date) or more chargebacks"
            )
        sizes[name] = (count, fraud, first_day)

    def day(k: int) -> dt.date:
        return dt.date.fromisoformat(str(days[k]))

    return DaySplit(day(valid_day), day(test_day), sizes)


def payment_days(rows: pa.Table) -> np.ndarray:
    """The UTC day of each row's payment, ``datetime64[D]``."""
    return pc.cast(rows[C.PAYMENT_TS], pa.timestamp("us", tz="UTC")).cast(pa.date32()).to_numpy(zero_copy_only=False)


def make_split(name: str, rows: pa.Table, feature_names: Sequence[str] = FEATURE_NAMES, what: str = TXN_FEATURES.full_name) -> Split:
    """Split ``name`` of time-ordered matured ``rows``: the feature matrix (:func:`feature_matrix`), labels, days, amounts, ids."""
    return Split(
        name, feature_matrix(rows, feature_names, what), labels(rows), payment_days(rows),
        rows[C.AMOUNT].to_numpy(zero_copy_only=False).astype(np.float64), rows[C.PAYMENT_ID].to_numpy(zero_copy_only=False),
    )  # fmt: skip


def time_split(
    rows: pa.Table,
    validation_share: float,
    test_share: float,
    feature_names: Sequence[str] = FEATURE_NAMES,
    what: str = TXN_FEATURES.full_name,
) -> tuple[Split, Split, Split]:
    """Training, validation and test splits of time-ordered matured rows.

    The test split is the newest whole days that hold at least ``test_share`` of the
    payments and of the fraud labels; the validation split the whole days before it
    that hold at least ``validation_share`` of each; training is everything older. So
    every held-out split has fraud to measure whenever the labels allow it, even when
    fraud comes in bursts, and every split holds payments after all those it learns from.
    Only the payments and frauds of each day decide the cut (:func:`split_days`), so a
    table too large to load can be split the same way from its daily counts.

    Args:
        rows: Matured rows in time order: ``payment_id, payment_ts, amount, label`` and the features.
        validation_share: Least share of the payments and frauds in validation.
        test_share: Least share in test.
        feature_names: The columns of the model input, in order.
        what: Where the rows come from, for errors.

    Raises:
        TooFewLabelsError: A split would be empty, or one has no fraud label.
    """
    feature_matrix(rows.slice(0, 0), feature_names, what)
    days, y = payment_days(rows), labels(rows)
    unique, first_rows = np.unique(days, return_index=True)
    payments = np.diff(np.append(first_rows, len(days)))
    frauds = np.add.reduceat(y, first_rows) if len(y) else np.zeros(0, np.int64)
    cut = split_days(unique, payments, frauds, validation_share, test_share)
    valid_start, test_start = (int(np.searchsorted(days, np.datetime64(d), side="left")) for d in (cut.valid_start, cut.test_start))
    bounds = {"train": (0, valid_start), VALIDATION: (valid_start, test_start), TEST: (test_start, len(days))}
    return tuple(make_split(name, rows.slice(a, b - a), feature_names, what) for name, (a, b) in bounds.items())  # type: ignore[return-value]


@dataclass
class TrainingData:
    """The labelled rows a fraud run learns from, and where they came from.

    Attributes:
        rows: Time-ordered rows: ``payment_id, payment_ts, amount, label`` and the features.
        run_date: The run date (only payments before its midnight).
        feature_names: The model input, in order.
        table_versions: ``{table: version}`` read, for the bundle's lineage.
        source: :data:`~shoplake.fraud.feature_table.SOURCE_LAKE`, ``SOURCE_TABLE`` or ``SOURCE_JOINED``.
        what: Where the rows come from, for messages.
        table: What the bundle records of the shop's feature table, if one was read.
    """

    rows: pa.Table
    run_date: dt.date
    feature_names: tuple[str, ...]
    table_versions: dict[str, int]
    source: str
    what: str
    table: dict | None = None


def training_data(cfg: Config, lake, run_date: dt.date | None = None) -> TrainingData:
    """The labelled rows of ``run_date`` under ``cfg``.

    * Without ``fraud.feature_table``: the matured payments of ``gold.txn_features``
      with the built-in features and those of the shop's own payment fields.
    * ``fraud.feature_table`` in ``alone`` mode: the table's labelled rows made before
      ``run_date``'s midnight (default: the day after its newest payment), its features.
    * In ``join`` mode: the matured payments of ``gold.txn_features`` that have a row in
      the table, with the lake's features and then the table's.

    Raises:
        MissingTxnFeaturesError: The lake's features are needed and missing.
        shoplake.fraud.feature_table.FeatureTableError: The table is wrong.
    """
    from shoplake.features.pit import run_midnight
    from shoplake.fraud.feature_table import default_run_date, join_features, read_feature_table, rows_between

    ft = cfg.fraud.feature_table
    if ft is not None and ft.mode == ALONE:
        table = read_feature_table(cfg)
        run_date = run_date or default_run_date(table)
        rows = rows_between(table, None, run_midnight(run_date))
        rows = rows.filter(pc.is_valid(rows[C.LABEL]))
        return TrainingData(rows, run_date, table.feature_names, table.lineage, SOURCE_TABLE, f"{KEY} {table.uri}", table.describe())
    rows, run_date, version = load_matured(lake, run_date)
    names = configured_feature_names(cfg)
    versions = {f"{TXN_FEATURES.full_name}@{run_date}": version}
    what = f"{TXN_FEATURES.full_name}@{run_date}"
    if ft is None:
        return TrainingData(rows, run_date, names, versions, SOURCE_LAKE, what)
    table = read_feature_table(cfg, reserved=rows.column_names)
    rows = join_features(rows, table, f"matured payments of {what}")
    return TrainingData(rows, run_date, (*names, *table.feature_names), {**versions, **table.lineage}, SOURCE_JOINED,
                        f"{what} joined with {table.uri}", table.describe())  # fmt: skip
