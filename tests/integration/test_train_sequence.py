"""The sequence recommender trained with Ray Train on two workers: loss goes down, the result scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shoplake.recommend.models.sasrec import SasrecScorer
from shoplake.recommend.sequence import MODEL_CONFIG_FILE, train_sequence_model

N_ITEMS = 30
SETTINGS = (
    "sequence_model.max_len=8",
    "sequence_model.dim=16",
    "sequence_model.layers=1",
    "sequence_model.heads=2",
    "sequence_model.batch_size=8",  # per worker: 16 a step
    "sequence_model.lr=0.01",
    "sequence_model.dedupe=first",
)


def tiny_sequences(users: int = 300, seed: int = 0) -> list[np.ndarray]:
    """Each user walks a cycle of items (i, i+1, i+2, ...) within one of three groups of 10."""
    rng = np.random.default_rng(seed)
    sequences = []
    for u in range(users):
        group, start = u % 3, rng.integers(10)
        sequences.append(10 * group + (start + np.arange(int(rng.integers(4, 10)))) % 10)
    return sequences


def test_train_sequence_model_lowers_the_loss_on_two_workers(ray_local, make_cfg):
    cfg = make_cfg(*SETTINGS)
    text = np.random.default_rng(1).normal(size=(N_ITEMS, 8)).astype(np.float32)
    sequences = tiny_sequences()
    result, model_config = train_sequence_model(cfg, sequences, text, "sasrec-loss", epochs=6)

    assert [h["epoch"] for h in result.history] == list(range(6))
    assert all(len(h["nodes"]) == cfg.ray.num_workers == 2 for h in result.history)
    assert result.losses[-1] < result.losses[0] - 1.0, result.losses
    assert model_config["n_items"] == N_ITEMS and model_config["dedupe"] == "first"
    assert json.loads((Path(result.checkpoint_path) / MODEL_CONFIG_FILE).read_text()) == model_config

    scorer = SasrecScorer(model_config, result.load_state()["model"], text)
    scores = scorer.score(np.arange(3), [np.array([0, 1, 2]), np.array([13, 14]), np.array([], dtype=np.int64)])
    assert scores.shape == (3, N_ITEMS) and np.isfinite(scores).all()
    # The walks are learnt: after 0, 1, 2 comes 3; after 13, 14 comes 15.
    assert scores[0].argmax() == 3 and scores[1].argmax() == 15


def test_an_empty_input_is_refused(make_cfg):
    with pytest.raises(ValueError, match="no sequence"):
        train_sequence_model(make_cfg(*SETTINGS), [np.array([], dtype=np.int64)], np.zeros((N_ITEMS, 8), np.float32), "sasrec-empty")
