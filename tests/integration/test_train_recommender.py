"""Matrix factorization trained with Ray Train on a tiny gold.user_item_matrix: loss goes down, a crash resumes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest

from shoplake.lake import Lake
from shoplake.schemas import columns as C
from shoplake.schemas.recsys import USER_ITEM_MATRIX
from shoplake.training.recommender import ITEMS_FILE, USERS_FILE, train_mf

D1, D2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
TRAIN_SETTINGS = ("training.batch_size=32", "training.lr=0.05", "training.embedding_dim=8", "training.negatives=2")


def matrix_rows(run_date: dt.date, users: int = 24, items: int = 16) -> pa.Table:
    """Two taste groups: even users interact with even items, odd users with odd items."""
    ts = dt.datetime.combine(run_date, dt.time(), dt.timezone.utc) - dt.timedelta(hours=1)
    rows = [
        {
            C.USER_ID: f"u{u}", C.ITEM_ID: f"i{i}", C.WEIGHT: float(1 + (u + i) % 4),
            C.N_VIEWS: 1, C.N_CLICKS: 0, C.N_CARTS: 0, C.N_PURCHASES: 0, C.LAST_INTERACTION_TS: ts, C.RUN_DATE: run_date,
        }  # fmt: skip
        for u in range(users)
        for i in range(items)
        if u % 2 == i % 2 and (u + i) % 3 != 0
    ]
    return pa.Table.from_pylist(rows, schema=USER_ITEM_MATRIX.arrow_schema())


@pytest.fixture
def matrix_lake(ray_local, make_cfg):
    """A lake with gold.user_item_matrix for two run dates, written through Lake.ray_write."""
    cfg = make_cfg("lake.engine=delta-rs", *TRAIN_SETTINGS)
    lake = Lake(cfg)
    older = matrix_rows(D1, users=6, items=4)
    lake.ray_write(ray_local.data.from_arrow(pa.concat_tables([older, matrix_rows(D2)])), USER_ITEM_MATRIX)
    return cfg, lake


def test_train_mf_lowers_the_loss_on_two_workers(matrix_lake):
    cfg, lake = matrix_lake
    result = train_mf(cfg, lake, epochs=3, name="mf-loss")

    assert result.run_date == D2  # the latest run date by default
    assert result.rows == matrix_rows(D2).num_rows and (result.n_users, result.n_items) == (24, 16)
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert all(len(h["nodes"]) == cfg.ray.num_workers == 2 for h in result.history)
    assert result.losses[-1] < result.losses[0], result.losses
    checkpoint = Path(result.checkpoint_path)
    assert json.loads((checkpoint / "meta.json").read_text())["epoch"] == 2
    assert len(json.loads((checkpoint / USERS_FILE).read_text())["ids"]) == 24
    assert len(json.loads((checkpoint / ITEMS_FILE).read_text())["ids"]) == 16
    # A second run under the same name would resume from this one's checkpoint: refused.
    with pytest.raises(ValueError, match="run 'mf-loss' already exists"):
        train_mf(cfg, lake, epochs=1, name="mf-loss")


def test_a_failed_worker_resumes_from_the_last_checkpoint(matrix_lake):
    cfg, lake = matrix_lake
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_failures": 1})})
    result = train_mf(cfg, lake, run_date=D2, epochs=4, name="mf-crash", fail_at_epoch=1)

    assert (Path(result.run_path) / ".failure-injected").is_file()
    # Epochs 0 and 1 ran in the first attempt; the second started from epoch 1's checkpoint.
    assert [(h["epoch"], h["resumed_from"]) for h in result.history] == [(0, None), (1, None), (2, 1), (3, 1)]
    assert result.metrics["epoch"] == 3 and result.metrics["resumed_from"] == 1
    assert json.loads((Path(result.checkpoint_path) / "meta.json").read_text())["epoch"] == 3
