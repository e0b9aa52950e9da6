"""Fraud's trees train from shards read out of the lake: the driver never holds the training rows.

A ``gold.txn_features`` partition of about 200 MiB (in memory, 600,000 rows) is written by
Ray tasks, so this process never builds it. The fraud run's path then cuts it in time
from daily counts, reads validation and test into the driver (a few per cent of the
payments here) and trains the gradient-boosted trees on Ray Datasets read by Ray Data
tasks. A thread samples this process's resident memory all along: its growth must stay
below the table's in-memory size. Loading the training split into the driver
afterwards, under the same watch, shows that the measure would see it.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.fraud.declarations import FEATURE_NAMES
from shoplake.fraud.schemas import TXN_FEATURES
from shoplake.lake import Lake

RUN_DATE = dt.date(2024, 3, 1)
DAYS = 50
BLOCKS, ROWS_PER_BLOCK = 12, 50_000
FRAUD_RATE = 0.05
#: The driver may grow by at most this share of the table's in-memory size.
BOUND_SHARE = 1.0
SETTINGS = (
    "lake.engine=delta-rs", "fraud.gbt_rounds=3", "fraud.gbt_max_depth=3",
    "fraud.validation_share=0.03", "fraud.test_share=0.03", "lake.target_file_rows=100000",
)  # fmt: skip


def txn_features_block(seed: int, rows: int = ROWS_PER_BLOCK) -> pa.Table:
    """``rows`` matured payments of ``gold.txn_features`` (``RUN_DATE``), over ``DAYS`` days; fraud raises ``device_count_1h``."""
    rng = np.random.default_rng(seed)
    schema = TXN_FEATURES.arrow_schema()
    label = (rng.random(rows) < FRAUD_RATE).astype(np.int32)
    start = dt.datetime.combine(RUN_DATE - dt.timedelta(days=DAYS), dt.time(), dt.timezone.utc)
    offsets = np.sort(rng.integers(0, DAYS * 86_400 * 1_000_000, rows))
    ids = [f"p{seed}-{i}" for i in range(rows)]
    columns = {
        C.PAYMENT_ID: ids, C.ORDER_ID: ids, C.USER_ID: [f"u{i % 5000}" for i in range(rows)],
        C.PAYMENT_TS: pa.array(np.datetime64(start.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")),
        C.MATURED: np.ones(rows, bool), C.LABEL: label, C.RUN_DATE: [RUN_DATE] * rows,
    }  # fmt: skip
    for name in FEATURE_NAMES:
        columns[name] = rng.poisson(1.0, rows).astype(np.float64)
    columns["device_count_1h"] += 4 * label * (rng.random(rows) < 0.7)
    return pa.table({f.name: pa.array(columns[f.name]).cast(f.type) for f in schema}, schema=schema)


class PeakRss:
    """The largest resident memory of this process while the block runs, sampled every 10 ms in a thread."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.baseline = self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self.baseline = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.fixture
def big_table(make_cfg, ray_local):
    """``(cfg, lake, in-memory bytes)``: a ``gold.txn_features`` partition written by Ray tasks, never held by this process."""
    cfg = make_cfg(*SETTINGS)
    lake = Lake(cfg)
    # The tasks run this module's generator: Ray's workers cannot import a test module, so it travels by value.
    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    blocks = ray_local.data.range(BLOCKS, override_num_blocks=BLOCKS).map_batches(
        lambda batch: txn_features_block(int(batch["id"][0])), batch_size=1, batch_format="numpy", num_cpus=cfg.ray.cpus_per_data_task
    )
    result = lake.ray_write(blocks, TXN_FEATURES, mode="overwrite")
    assert result.rows == BLOCKS * ROWS_PER_BLOCK
    table_bytes = txn_features_block(0, 10_000).nbytes * BLOCKS * ROWS_PER_BLOCK // 10_000
    return cfg, lake, table_bytes


@pytest.mark.slow  # a 205 MiB table and two trainings of it, about 90 s; the fraud run's trees train from shards in the default suite
def test_the_trees_train_from_shards_without_the_driver_holding_the_table(big_table):
    # Imported before the baseline: Ray Train's first run imports torch into the driver (about 450 MB of
    # code and module state, once per process), which is not data.
    import ray.train.xgboost  # noqa: F401
    import torch  # noqa: F401
    import xgboost  # noqa: F401

    from shoplake.fraud.models.gbt import train_gbt_datasets
    from shoplake.fraud.splits import TRAIN, fraud_splits

    cfg, lake, table_bytes = big_table
    bound = int(table_bytes * BOUND_SHARE)
    with PeakRss() as streamed:
        splits = fraud_splits(cfg, lake, RUN_DATE)
        model = train_gbt_datasets(cfg, splits.datasets(cfg), "streamed-gbt", feature_names=splits.feature_names)
    payments, frauds, _ = splits.sizes[TRAIN]
    print(
        f"table {table_bytes / 2**20:.0f} MiB in memory, {BLOCKS * ROWS_PER_BLOCK:,} rows ({payments:,} training); "
        f"driver peak RSS growth {streamed.growth / 2**20:.0f} MiB (bound {bound / 2**20:.0f} MiB)"
    )
    assert splits.streamed, "the training split was loaded into the driver"
    assert payments > 0.9 * BLOCKS * ROWS_PER_BLOCK and frauds > 0
    # Each worker drops at most one row to even the shards.
    assert payments - cfg.ray.num_workers < model.info["train_rows"] <= payments
    assert model.info["world_size"] == cfg.ray.num_workers
    assert model.info["best_valid_aucpr"] > 0.3
    assert streamed.growth < bound, f"the driver grew by {streamed.growth / 2**20:.0f} MiB streaming a {table_bytes / 2**20:.0f} MiB table"

    with PeakRss() as loaded:
        train = splits.train
    print(f"loading the training split into the driver: peak RSS growth {loaded.growth / 2**20:.0f} MiB")
    assert len(train.y) == payments
    assert loaded.growth > bound, "the memory watch does not see a table loaded into the driver"
