"""Collaborative filtering: matrix factorization on the user-item matrix as a Ray Train task.

:func:`mf_task` turns indexed, weighted user-item pairs (a snapshot of
``gold.user_item_matrix``, see :mod:`shoplake.recommend.holdout`) into an
:class:`MFTask`; :func:`shoplake.train.loop.fit` trains it with
``cfg.ray.num_workers`` workers, a checkpoint every epoch (with the id maps) and a
restart from the last one after a worker failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from shoplake.config import Config
from shoplake.recommend.models.mf import IdMap, MatrixFactorization, mf_step_loss

#: Files of the id maps inside each checkpoint.
USERS_FILE, ITEMS_FILE = "user_ids.json", "item_ids.json"


@dataclass
class MFTask:
    """Matrix factorization as an :class:`~shoplake.train.loop.EpochTask`.

    Attributes:
        users: User index of each observed pair.
        items: Item index of each observed pair.
        weights: Implicit-feedback weight of each pair.
        user_ids: The user :class:`IdMap` (saved in checkpoints).
        item_ids: The item :class:`IdMap`.
        dim: Embedding size.
        batch_size: Positive pairs per step and worker.
        negatives: Sampled negatives per positive.
        weight_decay: L2 penalty on the rows a batch touches.
        seed: Shuffling seed (with the epoch number).
    """

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    user_ids: IdMap
    item_ids: IdMap
    dim: int = 32
    batch_size: int = 1024
    negatives: int = 4
    weight_decay: float = 0.0
    seed: int = 0

    def build_model(self) -> nn.Module:
        return MatrixFactorization(len(self.user_ids), len(self.item_ids), self.dim)

    def batches(self, epoch: int, rank: int, world_size: int):
        """A shuffled, equal-sized slice per rank (padded by wrapping, like DistributedSampler).

        Equal slices matter: with DDP every rank must take the same number of steps,
        or the last all-reduce waits forever.
        """
        n = len(self.users)
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        per_rank = math.ceil(n / world_size)
        order = np.resize(order, per_rank * world_size)  # repeats the start to pad
        mine = order[rank * per_rank : (rank + 1) * per_rank]
        for start in range(0, len(mine), self.batch_size):
            idx = mine[start : start + self.batch_size]
            yield (
                torch.from_numpy(self.users[idx]),
                torch.from_numpy(self.items[idx]),
                torch.from_numpy(self.weights[idx]),
            )

    def loss(self, model: nn.Module, batch, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        users, items, weights = batch
        loss = mf_step_loss(model, users, items, weights, len(self.item_ids), self.negatives, self.weight_decay, generator)
        return loss, len(users)

    def artifacts(self) -> dict[str, str]:
        return {USERS_FILE: self.user_ids.to_json(), ITEMS_FILE: self.item_ids.to_json()}


def mf_task(cfg: Config, users: np.ndarray, items: np.ndarray, weights: np.ndarray, user_ids: IdMap, item_ids: IdMap) -> MFTask:
    """An :class:`MFTask` of indexed pairs with ``cfg.training``'s settings."""
    tc = cfg.training
    return MFTask(
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        weights=np.asarray(weights, dtype=np.float32),
        user_ids=user_ids,
        item_ids=item_ids,
        dim=tc.embedding_dim,
        batch_size=tc.batch_size,
        negatives=tc.negatives,
        weight_decay=tc.weight_decay,
        seed=tc.seed,
    )
