"""The labelled payments a fraud run learns from, and their time-ordered training, validation and test splits.

:func:`training_data` reads the matured payments of ``gold.txn_features`` (or the
shop's own labelled table, ``fraud.feature_table``), :func:`feature_matrix` turns rows
into the model input in a bundle's feature order, and :func:`time_split` cuts
time-ordered rows on day boundaries so that every split holds payments after all
those it learns from.
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
from shoplake.fraud.models.base import FeatureMismatchError
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
    dates = lake.run_dates(TXN_FEATURES)
    if not dates:
        raise MissingTxnFeaturesError(f"{TXN_FEATURES.full_name} does not exist or is empty in {lake.root}: build the features first")
    run_date = run_date or max(dates)
    if run_date not in dates:
        raise MissingTxnFeaturesError(f"{TXN_FEATURES.full_name} has no run date {run_date} in {lake.root}")
    version = lake.version(TXN_FEATURES)
    import pyarrow.dataset as ds

    rows = lake.to_arrow(TXN_FEATURES, run_date=run_date, where=ds.field(C.MATURED) == pa.scalar(True))
    rows = rows.sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])
    return rows, run_date, version


def feature_matrix(rows: pa.Table, feature_names: Sequence[str] = FEATURE_NAMES, what: str = TXN_FEATURES.full_name) -> np.ndarray:
    """The model input of ``rows``: the ``feature_names`` columns as a float64 matrix.

    Args:
        rows: Rows with a column per feature.
        feature_names: The model's inputs, in order.
        what: Where the rows come from, for the error.

    Raises:
        FeatureMismatchError: A feature has no column in ``rows``, or is null in some
            (a table built before a shop's own field was declared).
    """
    names = list(feature_names)
    missing = [n for n in names if n not in rows.column_names]
    if missing:
        raise FeatureMismatchError(
            f"{what} has no column for the feature(s) {', '.join(missing)} the model reads: the features were built, or the "
            "model trained, under another configuration (landing.extra_fields.payments, fraud.feature_table); build the "
            "features again or retrain"
        )
    if not rows.num_rows:
        return np.zeros((0, len(names)))
    X = np.column_stack([rows[name].to_numpy(zero_copy_only=False).astype(np.float64) for name in names])
    empty = [n for j, n in enumerate(names) if np.isnan(X[:, j]).any()]
    if empty:
        raise FeatureMismatchError(
            f"{what}: the feature(s) {', '.join(empty)} are null in some rows, which were built before the field was "
            "declared; build the features of those run dates again"
        )
    return X


def _held_out_start(y: np.ndarray, days: np.ndarray, end: int, n_total: int, frauds_total: int, share: float) -> int:
    """First row of the newest whole days before row ``end`` that hold ``share`` of all payments and of all frauds."""
    by_payments = end - max(int(round(n_total * share)), 1)
    fraud_rows = np.flatnonzero(y[:end])
    wanted = max(int(math.ceil(frauds_total * share)), 1)
    by_frauds = int(fraud_rows[-wanted]) if len(fraud_rows) >= wanted else (int(fraud_rows[0]) if len(fraud_rows) else by_payments)
    first = max(min(by_payments, by_frauds), 0)
    # Back to the first payment of that day: a day is never cut in two.
    return int(np.searchsorted(days[:end], days[first], side="left"))


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

    Args:
        rows: Matured rows in time order: ``payment_id, payment_ts, amount, label`` and the features.
        validation_share: Least share of the payments and frauds in validation.
        test_share: Least share in test.
        feature_names: The columns of the model input, in order.
        what: Where the rows come from, for errors.

    Raises:
        TooFewLabelsError: A split would be empty, or one has no fraud label.
    """
    n = rows.num_rows
    X = feature_matrix(rows, feature_names, what)
    y = rows[C.LABEL].to_numpy(zero_copy_only=False).astype(np.int64) if n else np.zeros(0, np.int64)
    days = pc.cast(rows[C.PAYMENT_TS], pa.timestamp("us", tz="UTC")).cast(pa.date32()).to_numpy(zero_copy_only=False)
    amounts = rows[C.AMOUNT].to_numpy(zero_copy_only=False).astype(np.float64)
    ids = rows[C.PAYMENT_ID].to_numpy(zero_copy_only=False)
    if n < 3:
        raise TooFewLabelsError(f"{n} matured payments cannot be split into training, validation and test")
    frauds = int(y.sum())
    test_start = _held_out_start(y, days, n, n, frauds, test_share)
    valid_start = _held_out_start(y, days, test_start, n, frauds, validation_share)
    bounds = {"train": slice(0, valid_start), VALIDATION: slice(valid_start, test_start), TEST: slice(test_start, n)}
    splits = tuple(Split(name, X[s], y[s], days[s], amounts[s], ids[s]) for name, s in bounds.items())
    for split in splits:
        if len(split.y) == 0 or split.frauds == 0:
            what = "no payments" if len(split.y) == 0 else f"{len(split.y)} matured payments from {split.first_day}, no fraud label"
            raise TooFewLabelsError(
                f"the {split.name} split has {what} ({n} matured payments, {frauds} fraud in all): "
                "the shop needs more history (fraud.maturity_days before the run date) or more chargebacks"
            )
    return splits  # type: ignore[return-value]


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
