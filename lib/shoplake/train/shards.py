"""Ray Datasets into Ray Train workers: each worker reads its own shard, the driver holds no rows.

A trainer gets its data as ``datasets={"train": ..., "valid": ...}`` (usually from
:meth:`shoplake.lake.Lake.ray_read`, read by Ray Data tasks of
``ray.cpus_per_data_task`` CPUs) with :func:`dataset_config`; inside the worker loop
:func:`collect_shard` turns ``ray.train.get_dataset_shard(name)`` into arrays.

The CPUs are split between the two kinds of processes by configuration: each
training worker asks for ``ray.cpus_per_worker`` and each read task for
``ray.cpus_per_data_task``. Ray Train reserves the workers' CPUs first and Ray Data
runs its tasks in what is left, so ``ray.num_workers * ray.cpus_per_worker`` must
stay below the node's CPUs by at least one read task: with whole CPUs on a 2-core
machine the read tasks never start and training waits for ever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Rows per Arrow batch a worker converts at a time.
SHARD_BATCH_ROWS = 65_536


def dataset_config(split: Sequence[str] = ("train",)):
    """Ray Train's ``DataConfig``: the datasets named in ``split`` are shared out among the workers, the others go whole to each.

    A split dataset is streamed to the workers in blocks (``streaming_split`` with
    equal shares: at most ``num_workers - 1`` rows are left out to even them).
    """
    from ray.train import DataConfig

    return DataConfig(datasets_to_split=list(split))


def check_cpus(cfg, cpus: float) -> None:
    """Refuse a Ray Train run with ``datasets=`` whose workers would leave the read tasks no CPU.

    Args:
        cfg: ``ray.num_workers``, ``ray.cpus_per_worker``, ``ray.cpus_per_data_task``.
        cpus: The CPUs of the Ray cluster (``ray.cluster_resources()["CPU"]``).

    Raises:
        ValueError: The workers' CPUs plus one read task's exceed ``cpus``.
    """
    rc = cfg.ray
    workers = rc.num_workers * rc.cpus_per_worker
    if workers + rc.cpus_per_data_task > cpus:
        raise ValueError(
            f"ray.num_workers * ray.cpus_per_worker ({rc.num_workers} x {rc.cpus_per_worker}) leaves less than "
            f"ray.cpus_per_data_task ({rc.cpus_per_data_task}) of the cluster's {cpus:g} CPUs for the read tasks: "
            "training would wait for its data for ever; lower ray.cpus_per_worker or ray.num_workers"
        )


def collect_shard(
    name: str, convert: Callable[[Any], tuple[np.ndarray, ...]], empty: tuple[np.ndarray, ...], batch_rows: int = SHARD_BATCH_ROWS
) -> tuple[np.ndarray, ...]:
    """This worker's shard of dataset ``name`` as arrays, converted a batch at a time.

    Call inside a Ray Train worker loop. Only this worker's rows pass through it,
    as Arrow tables of at most ``batch_rows`` rows that ``convert`` turns into
    arrays; the arrays of all batches are concatenated.

    Args:
        name: A key of the trainer's ``datasets``.
        convert: An Arrow table to a tuple of arrays of its rows (as many arrays every call).
        empty: What a shard without rows gives.
        batch_rows: Rows per batch.
    """
    import ray.train

    shard = ray.train.get_dataset_shard(name)
    parts = [convert(batch) for batch in shard.iter_batches(batch_size=batch_rows, batch_format="pyarrow")]
    if not parts:
        return tuple(empty)
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))
