"""The fraud run on a shop's own labelled feature table alone: trained, evaluated, registered and scored without the lake's features.

A tiny Parquet table of payments with a planted signal that separates fraud, a noise
column and amounts; the last day is unlabelled and is what batch scoring scores.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from helpers import TEST_OVERRIDES
from shoplake import columns as C
from shoplake.config import load_config
from shoplake.fraud import metrics as M
from shoplake.fraud.bundle import FraudBundle
from shoplake.fraud.feature_table import SOURCE_TABLE
from shoplake.fraud.schemas import FRAUD_SCORES, TASK_FRAUD
from shoplake.fraud.score import score_fraud
from shoplake.fraud.train import run_fraud
from shoplake.lake import Lake
from shoplake.registry import list_versions
from shoplake.train.model_metrics import read_model_metrics


def _own_table(path: Path, days: int = 40, per_day: int = 30, seed: int = 3) -> pa.Table:
    """A labelled payments table: a planted signal that separates fraud, a noise column, amounts; the last day unlabelled."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    start = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    ts = [start + dt.timedelta(days=i // per_day, minutes=int(rng.integers(0, 1440))) for i in range(n)]
    label = (rng.random(n) < 0.1).astype(np.int64)
    label[[5, 400, 900]] = 1  # fraud in every split
    signal = np.where(label == 1, rng.normal(3.0, 0.3, n), rng.normal(0.0, 0.3, n))
    table = pa.table({
        "txn": [f"x{i}" for i in range(n)], "at": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "is_fraud": pa.array([None if i >= n - per_day else int(v) for i, v in enumerate(label)], pa.int64()),
        "customer": [f"c{i % 50}" for i in range(n)], "amount": rng.uniform(5, 300, n).round(2),
        "signal": signal, "noise": rng.normal(size=n), "note": ["x"] * n,
    })  # fmt: skip
    pq.write_table(table, path)
    return table


def test_the_shops_own_table_alone_is_trained_evaluated_registered_and_scored(tmp_path, ray_local):
    path = tmp_path / "own.parquet"
    table = _own_table(path)
    cfg = load_config("local", [
        *TEST_OVERRIDES, f"lake.root={tmp_path}/lake", f"runs_dir={tmp_path}/runs", "lake.engine=delta-rs", "fraud.gbt_rounds=20",
        "fraud.models=[rules, gbt]", "fraud.review_capacity_per_day=5",
        f"fraud.feature_table={{uri: {path}, format: parquet, payment_id: txn, timestamp: at, label: is_fraud, user_id: customer}}",
    ])  # fmt: skip
    lake = Lake(cfg)  # no Spark: the table is read with pyarrow, the results written by Ray and delta-rs
    result = run_fraud(cfg, lake, name="fraud-table")
    newest = max(table["at"].to_pylist())
    assert result.run_date == newest.date() + dt.timedelta(days=1)
    assert set(result.evaluations) == {"gbt"}  # the rules need the lake's velocity features: left out
    assert result.pr_auc("gbt") > 0.95 and result.evaluations["gbt"].metrics["test"][M.PR_AUC] <= 1.0
    assert result.splits["train"][2] < result.splits["validation"][2] < result.splits["test"][2]
    ev = result.evaluations[result.champion].metrics["test"]
    assert ev["pr_auc_low"] <= ev[M.PR_AUC] <= ev["pr_auc_high"]
    bundle = FraudBundle.load(result.bundle_path)
    assert bundle.feature_names == ("amount", "signal", "noise")
    assert bundle.metadata["feature_source"] == SOURCE_TABLE and bundle.metadata["feature_table"]["uri"] == str(path)
    assert {r[C.MODEL_NAME] for r in read_model_metrics(lake, result.run_date, TASK_FRAUD).to_pylist()} == {"gbt"}
    assert [v.version for v in list_versions(cfg, registered_model=cfg.fraud.registered_model)] == [result.model_version]

    scored = score_fraud(cfg, lake)
    rows = lake.to_arrow(FRAUD_SCORES, run_date=result.run_date)
    last_day = {r["txn"] for r in table.to_pylist() if r["at"].date() == newest.date()}
    assert scored.rows == rows.num_rows == len(last_day) and set(rows[C.PAYMENT_ID].to_pylist()) == last_day
