"""The splits of a fraud run: validation and test in this process, the training split where a model reads it.

:func:`fraud_splits` cuts the matured payments in time (:func:`~shoplake.fraud.dataset.time_split`'s
rule) and gives:

* the validation and test splits as :class:`~shoplake.fraud.dataset.Split` arrays in the
  driver: thresholds, calibration, metrics and the chart need them, and they are the
  smaller, newest share of the payments;
* the training split as Ray Datasets (:meth:`FraudSplits.datasets`) that the
  gradient-boosted trees' workers read shard by shard;
* the training split in the driver (:attr:`FraudSplits.train`) only when a model
  asks for it: the tabular network (its loop ships the rows through
  ``train_loop_config``) and the settings searches.

From the lake (``gold.txn_features``, no ``fraud.feature_table``) nothing is loaded
whole to make the cut: Ray Data tasks count the matured payments and frauds of each
day (:func:`day_counts`), the day boundaries follow from those counts
(:func:`~shoplake.fraud.dataset.split_days`) and each split is read by its time range.
A shop's own feature table (``fraud.feature_table``) is read whole as before.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.config import Config
from shoplake.evaluation import TEST, VALIDATION
from shoplake.fraud.dataset import (
    DaySplit,
    Split,
    make_split,
    matured_partition,
    matured_where,
    payment_days,
    read_matured,
    split_days,
    time_split,
    training_data,
)
from shoplake.fraud.declarations import configured_feature_names
from shoplake.fraud.feature_table import SOURCE_LAKE
from shoplake.fraud.schemas import TXN_FEATURES

log = logging.getLogger(__name__)

TRAIN = "train"
#: The key of the validation split among a trainer's datasets.
VALID = "valid"
#: Columns of the per-day counts :func:`day_counts` gathers.
DAY, PAYMENTS, FRAUDS = "day", "payments", "frauds"


def _count_days(batch: pa.Table) -> pa.Table:
    """Matured payments and frauds per UTC day of one batch of rows."""
    table = pa.table({DAY: pa.array(payment_days(batch), pa.date32()), C.LABEL: batch[C.LABEL].cast(pa.int64())})
    counts = table.group_by(DAY).aggregate([(C.LABEL, "count"), (C.LABEL, "sum")])
    return counts.rename_columns({f"{C.LABEL}_count": PAYMENTS, f"{C.LABEL}_sum": FRAUDS})


def day_counts(cfg: Config, lake, run_date: dt.date, version: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matured payments and frauds of each day of a ``gold.txn_features`` partition, counted by Ray Data tasks.

    The tasks read two columns of the partition's files (:meth:`shoplake.lake.Lake.ray_read`)
    and return one row per day each; only those rows reach the driver.

    Returns:
        ``(days, payments, frauds)``: the days with matured payments (``datetime64[D]``,
        oldest first) and their counts.
    """
    from shoplake.ray_runtime import init_ray

    init_ray(cfg)
    ds = lake.ray_read(TXN_FEATURES, version, run_date=run_date, where=matured_where(), columns=[C.PAYMENT_TS, C.LABEL])
    parts = ds.map_batches(_count_days, batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.cpus_per_data_task).take_all()
    if not parts:
        return np.zeros(0, "datetime64[D]"), np.zeros(0, np.int64), np.zeros(0, np.int64)
    table = pa.Table.from_pylist(parts).group_by(DAY).aggregate([(PAYMENTS, "sum"), (FRAUDS, "sum")]).sort_by(DAY)
    days = table[DAY].cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    return days, table[f"{PAYMENTS}_sum"].to_numpy().astype(np.int64), table[f"{FRAUDS}_sum"].to_numpy().astype(np.int64)


def read_split(cfg: Config, lake, run_date: dt.date, version: int | None, days: tuple[dt.date | None, dt.date | None]) -> pa.Table:
    """The matured rows of ``gold.txn_features`` between two days, in this process, oldest first.

    Ray Data tasks read the partition's files and filter them; only the rows of
    the split reach the driver (a scan here would hold whole files at a time).
    """
    import ray

    from shoplake.ray_runtime import init_ray

    init_ray(cfg)
    ds = lake.ray_read(TXN_FEATURES, version, run_date=run_date, where=matured_where(*days))
    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    if not tables:
        return read_matured(lake, run_date, version, *days)
    return pa.concat_tables(tables, promote_options="permissive").sort_by([(C.PAYMENT_TS, "ascending"), (C.PAYMENT_ID, "ascending")])


@dataclass
class FraudSplits:
    """The time split of a fraud run and where its rows come from.

    Attributes:
        run_date: The run date.
        feature_names: The model input, in order.
        table_versions: ``{table: version}`` read, for the bundle's lineage.
        source: Where the rows come from (:data:`~shoplake.fraud.feature_table.SOURCE_LAKE` and others).
        what: Where the rows come from, for messages.
        table: What the bundle records of the shop's feature table, if one was read.
        cut: The first days of validation and test and each split's size.
        valid: The validation split, in this process.
        test: The test split, in this process.
    """

    run_date: dt.date
    feature_names: tuple[str, ...]
    table_versions: dict[str, int]
    source: str
    what: str
    table: dict | None
    cut: DaySplit
    valid: Split
    test: Split
    cfg: Config | None = None
    lake: object | None = None
    version: int | None = None
    _train: Split | None = field(default=None, repr=False)

    @property
    def sizes(self) -> dict[str, tuple[int, int, dt.date]]:
        """Per split (train, validation, test): payments, frauds, first payment day."""
        return self.cut.sizes

    @property
    def streamed(self) -> bool:
        """The training rows stay in the lake until a model reads them."""
        return self._train is None

    @property
    def train(self) -> Split:
        """The training split in this process, read from the lake on first use."""
        if self._train is None:
            payments, frauds, _ = self.sizes[TRAIN]
            log.info("reading the training split into the driver: %d payments (%d fraud) of %s", payments, frauds, self.what)
            rows = read_split(self.cfg, self.lake, self.run_date, self.version, self.cut.days(TRAIN))
            self._train = make_split(TRAIN, rows, self.feature_names, self.what)
        return self._train

    def datasets(self, cfg: Config) -> dict:
        """``{"train": ..., "valid": ...}`` (validation): Ray Datasets of the feature columns and ``label``, read by Ray Data tasks.

        From the lake each is read by its time range from the partition's files; from
        a shop's feature table (held in this process) they are made from the arrays.
        """
        from shoplake.fraud.models.gbt import arrays_dataset

        if not self.streamed:
            blocks = cfg.ray.num_workers
            return {TRAIN: arrays_dataset(self._train.X, self._train.y, self.feature_names, blocks),
                    VALID: arrays_dataset(self.valid.X, self.valid.y, self.feature_names, 1)}  # fmt: skip
        columns = [*self.feature_names, C.LABEL]

        def read(name: str):
            where = matured_where(*self.cut.days(name))
            return self.lake.ray_read(TXN_FEATURES, self.version, run_date=self.run_date, where=where, columns=columns)

        return {TRAIN: read(TRAIN), VALID: read(VALIDATION)}


def _held_in_driver(names: Sequence[str], what: str, train: Split, valid: Split, test: Split, **meta) -> FraudSplits:
    sizes = {s.name: (len(s.y), s.frauds, s.first_day) for s in (train, valid, test)}
    cut = DaySplit(valid.first_day, test.first_day, sizes)
    return FraudSplits(feature_names=tuple(names), what=what, cut=cut, valid=valid, test=test, _train=train, **meta)


def fraud_splits(cfg: Config, lake, run_date: dt.date | None = None) -> FraudSplits:
    """The splits of a fraud run on ``run_date`` (see the module docstring).

    Raises:
        MissingTxnFeaturesError: The lake's features are needed and missing.
        TooFewLabelsError: A split would be empty, or one has no fraud label.
        shoplake.fraud.feature_table.FeatureTableError: ``fraud.feature_table`` cannot be read as configured.
    """
    fc = cfg.fraud
    if fc.feature_table is not None:
        data = training_data(cfg, lake, run_date)
        train, valid, test = time_split(data.rows, fc.validation_share, fc.test_share, data.feature_names, data.what)
        return _held_in_driver(data.feature_names, data.what, train, valid, test, run_date=data.run_date,
                               table_versions=data.table_versions, source=data.source, table=data.table)  # fmt: skip
    run_date, version = matured_partition(lake, run_date)
    names = configured_feature_names(cfg)
    what = f"{TXN_FEATURES.full_name}@{run_date}"
    cut = split_days(*day_counts(cfg, lake, run_date, version), fc.validation_share, fc.test_share)
    held_out = {
        name: make_split(name, read_split(cfg, lake, run_date, version, cut.days(name)), names, what) for name in (VALIDATION, TEST)
    }
    return FraudSplits(
        run_date, names, {what: version}, SOURCE_LAKE, what, None, cut, held_out[VALIDATION], held_out[TEST], cfg=cfg, lake=lake,
        version=version,
    )  # fmt: skip
