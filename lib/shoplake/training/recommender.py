"""Collaborative filtering: matrix factorization on ``gold.user_item_matrix`` with Ray Train.

:func:`train_mf` reads one run date's partition of the matrix, maps string ids to
integers, and trains :class:`~shoplake.models.mf.MatrixFactorization` with a
``TorchTrainer`` of ``cfg.ray.num_workers`` workers running
:func:`shoplake.training.loop.train_loop_per_worker`. Each epoch is checkpointed
under ``<cfg.runs_dir>/ray_results/<name>``; a worker failure restarts the group
from the last checkpoint, up to ``cfg.training.max_failures`` times.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from shoplake.config import Config
from shoplake.models.mf import IdMap, MatrixFactorization, mf_step_loss
from shoplake.schemas import columns as C
from shoplake.schemas.recsys import USER_ITEM_MATRIX
from shoplake.training.loop import FitResult, fit

log = logging.getLogger(__name__)

#: Files of the id maps inside each checkpoint.
USERS_FILE, ITEMS_FILE = "user_ids.json", "item_ids.json"


@dataclass
class MFTask:
    """Matrix factorization as an :class:`~shoplake.training.loop.EpochTask`.

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


@dataclass(kw_only=True)
class TrainResult(FitResult):
    """What one :func:`train_mf` run produced: the Ray Train run and its inputs.

    Attributes:
        run_date: The features date trained on.
        table_version: Delta version of ``gold.user_item_matrix`` read.
        rows: Observed pairs trained on.
        n_users: Distinct users.
        n_items: Distinct items.
    """

    run_date: dt.date
    table_version: int
    rows: int
    n_users: int
    n_items: int


def read_user_item_matrix(lake, run_date: dt.date, version: int):
    """Pairs of one run date: an Arrow table with user_id, item_id, weight."""
    return lake.to_arrow(USER_ITEM_MATRIX, version, columns=[C.USER_ID, C.ITEM_ID, C.WEIGHT], run_date=run_date)


def build_task(table, cfg: Config) -> MFTask:
    """An :class:`MFTask` of the pairs in ``table`` (user_id, item_id, weight)."""
    users_col = table[C.USER_ID].to_pylist()
    items_col = table[C.ITEM_ID].to_pylist()
    user_ids, item_ids = IdMap.fit(users_col), IdMap.fit(items_col)
    return mf_task(cfg, user_ids.lookup(users_col), item_ids.lookup(items_col), table[C.WEIGHT].to_numpy(), user_ids, item_ids)


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


def train_mf(
    cfg: Config,
    lake,
    run_date: dt.date | None = None,
    epochs: int | None = None,
    *,
    name: str | None = None,
    fail_at_epoch: int | None = None,
) -> TrainResult:
    """Train matrix factorization on one run date of ``gold.user_item_matrix``.

    Args:
        cfg: Configuration: ``cfg.training`` (hyperparameters, retries), ``cfg.ray``
            (workers, CPUs per worker, GPU), ``cfg.runs_dir`` (where runs and
            checkpoints go).
        lake: The :class:`~shoplake.lake.Lake` to read from (no Spark needed).
        run_date: Features date; default the latest in the table.
        epochs: Overrides ``cfg.training.epochs``.
        name: Run name, the folder under ``<runs_dir>/ray_results`` (default:
            ``mf_<run_date>_<UTC time>``).
        fail_at_epoch: Tests only: worker 0 fails once after this epoch's checkpoint
            (needs a local ``runs_dir``).

    Returns:
        The run's metrics, checkpoint and inputs.

    Raises:
        ValueError: The table does not exist or has no rows for ``run_date``.
        ray.train.TrainingFailedError: Training failed more than ``max_failures`` times.
    """
    version = lake.version(USER_ITEM_MATRIX)
    if version is None:
        raise ValueError(f"table {USER_ITEM_MATRIX.full_name} does not exist in {lake.root}; run the features step first")
    dates = lake.run_dates(USER_ITEM_MATRIX, version)
    run_date = run_date or (dates[-1] if dates else None)
    if run_date is None:
        raise ValueError(f"table {USER_ITEM_MATRIX.full_name} v{version} has no rows")
    table = read_user_item_matrix(lake, run_date, version)
    if table.num_rows == 0:
        raise ValueError(f"table {USER_ITEM_MATRIX.full_name} v{version} has no rows for run_date {run_date}")
    task = build_task(table, cfg)
    log.info(
        "read %s v%d run_date %s: %d pairs, %d users, %d items",
        USER_ITEM_MATRIX.full_name, version, run_date, table.num_rows, len(task.user_ids), len(task.item_ids),
    )  # fmt: skip
    name = name or f"mf_{run_date.isoformat()}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
    fitted = fit(cfg, task, name, epochs, fail_at_epoch=fail_at_epoch)
    return TrainResult(
        **vars(fitted),
        run_date=run_date,
        table_version=version,
        rows=table.num_rows,
        n_users=len(task.user_ids),
        n_items=len(task.item_ids),
    )
