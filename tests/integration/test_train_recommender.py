"""Matrix factorization trained with Ray Train on a tiny user-item matrix: loss goes down, a crash resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoplake.recommend.mf_train import ITEMS_FILE, USERS_FILE, mf_task
from shoplake.recommend.models.mf import IdMap
from shoplake.train.loop import fit

TRAIN_SETTINGS = ("training.batch_size=32", "training.lr=0.05", "training.embedding_dim=8", "training.negatives=2")


def pairs(users: int = 24, items: int = 16) -> list[tuple[str, str, float]]:
    """Two taste groups: even users interact with even items, odd users with odd items."""
    return [(f"u{u}", f"i{i}", float(1 + (u + i) % 4)) for u in range(users) for i in range(items) if u % 2 == i % 2 and (u + i) % 3 != 0]


@pytest.fixture
def task_cfg(ray_local, make_cfg):
    cfg = make_cfg(*TRAIN_SETTINGS)
    rows = pairs()
    user_ids, item_ids = IdMap.fit(u for u, _, _ in rows), IdMap.fit(i for _, i, _ in rows)
    task = mf_task(cfg, user_ids.lookup(u for u, _, _ in rows), item_ids.lookup(i for _, i, _ in rows),
                   [w for _, _, w in rows], user_ids, item_ids)  # fmt: skip
    return task, cfg


def test_mf_lowers_the_loss_on_two_workers(task_cfg):
    task, cfg = task_cfg
    result = fit(cfg, task, "mf-loss", epochs=3)

    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert all(len(h["nodes"]) == cfg.ray.num_workers == 2 for h in result.history)
    assert all(h["examples"] >= len(pairs()) for h in result.history)  # every pair, padded to equal slices
    assert result.losses[-1] < result.losses[0], result.losses
    checkpoint = Path(result.checkpoint_path)
    assert json.loads((checkpoint / "meta.json").read_text())["epoch"] == 2
    assert len(json.loads((checkpoint / USERS_FILE).read_text())["ids"]) == 24
    assert len(json.loads((checkpoint / ITEMS_FILE).read_text())["ids"]) == 16
    assert result.load_state()["model"]["item_emb.weight"].shape == (16, 8)
    # A second run under the same name would resume from this one's checkpoint: refused.
    with pytest.raises(ValueError, match="run 'mf-loss' already exists"):
        fit(cfg, task, "mf-loss", epochs=1)


def test_a_failed_worker_resumes_from_the_last_checkpoint(task_cfg):
    task, cfg = task_cfg
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_failures": 1})})
    result = fit(cfg, task, "mf-crash", epochs=4, fail_at_epoch=1)

    assert (Path(result.run_path) / ".failure-injected").is_file()
    # Epochs 0 and 1 ran in the first attempt; the second started from epoch 1's checkpoint.
    assert [(h["epoch"], h["resumed_from"]) for h in result.history] == [(0, None), (1, None), (2, 1), (3, 1)]
    assert result.metrics["epoch"] == 3 and result.metrics["resumed_from"] == 1
    assert json.loads((Path(result.checkpoint_path) / "meta.json").read_text())["epoch"] == 3
