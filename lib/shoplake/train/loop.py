"""A reusable Ray Train loop: resume from the last checkpoint, checkpoint every epoch.

:func:`train_loop_per_worker` runs on every worker of a ``TorchTrainer``. What is
trained comes from an :class:`EpochTask` in ``config["task"]``: it builds the
model, yields each worker's batches of an epoch and computes a batch's loss. The
loop owns what every model shares:

- **Resume.** ``ray.train.get_checkpoint()`` is the latest checkpoint the run has
  registered (after a worker failure, Ray Train restarts the worker group and hands
  it over). Model, optimizer, the last finished epoch and the metric history come
  back from it, so the new attempt continues with the next epoch.
- **Checkpoint every epoch.** Rank 0 writes the state to a temporary folder and
  every rank calls ``ray.train.report(metrics, checkpoint=...)``. Reporting with a
  checkpoint is also what fills ``result.metrics`` in Ray Train V2.
- **Fault injection for tests.** ``config["fail_at_epoch"] = k`` makes rank 0 raise
  once epoch k's checkpoint is reported and registered. A marker file (``config["failure_marker"]``,
  under the run's storage folder) records that it happened, so the restarted
  attempt does not fail again.

Data reaches the workers inside the task (through ``train_loop_config``) rather
than as a Ray Dataset shard: the inputs this loop is used for so far (the
user-item matrix) are small enough to ship whole, and a Ray Dataset would need CPUs
for its read tasks beside the training workers, which on 1-2 CPU nodes with
fractional worker CPUs starves one or the other (see the stack notes). Each worker
takes its own slice of the rows by rank. A training set too large to ship goes to
the workers as Ray Datasets instead (:mod:`shoplake.train.shards`, as fraud's trees do).

Optimisation. Adam by default; with ``weight_decay`` AdamW. With ``warmup_ratio`` the
learning rate rises linearly from 0 over that share of all steps and then falls
linearly to 0 at the last step (the schedule fine-tuning a pretrained transformer
wants); its position is part of every checkpoint, so a resumed run continues the
schedule. With ``amp`` the forward pass runs in bfloat16 autocast on a GPU (no
effect on CPU, where it would be slower). ``max_grad_norm`` clips gradients.

Config keys: ``task`` (an :class:`EpochTask`), ``epochs``, ``lr``, ``seed``,
``epoch_sleep_s``, ``fail_at_epoch``, ``failure_marker``, ``weight_decay``,
``warmup_ratio``, ``amp``, ``max_grad_norm``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

log = logging.getLogger(__name__)

FAILURE_MARKER = ".failure-injected"

STATE_FILE = "state.pt"
META_FILE = "meta.json"


class EpochTask(Protocol):
    """What a model family plugs into :func:`train_loop_per_worker`."""

    def build_model(self) -> nn.Module:
        """A fresh model (the same initial weights on every rank for a given seed)."""
        ...

    def batches(self, epoch: int, rank: int, world_size: int) -> Iterable[Any]:
        """This rank's batches of one epoch; every rank must yield the same number."""
        ...

    def loss(self, model: nn.Module, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """Loss of one batch and the number of examples it averages over."""
        ...

    def artifacts(self) -> dict[str, str]:
        """Text files saved in every checkpoint beside the weights (id maps, settings)."""
        ...


def _steps_per_epoch(task: EpochTask, rank: int, world_size: int) -> int:
    counter = getattr(task, "steps_per_epoch", None)
    if counter is not None:
        return int(counter(world_size))
    return sum(1 for _ in task.batches(0, rank, world_size))


def warmup_linear(total_steps: int, warmup_ratio: float):
    """The learning-rate factor of step ``s``: linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0."""
    warmup = max(int(round(total_steps * warmup_ratio)), 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(total_steps - step, 0) / max(total_steps - warmup, 1)

    return factor


def load_checkpoint_state() -> tuple[dict | None, dict]:
    """The state and metadata of the checkpoint this attempt starts from.

    Returns:
        ``(state, meta)``: the ``torch.load``-ed state (``model``, ``optimizer``) or
        None when the run starts fresh, and the metadata (``epoch``, ``history``),
        empty when fresh.
    """
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None, {}
    with checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)
        meta = json.loads((Path(folder) / META_FILE).read_text())
    log.info("resuming from the checkpoint of epoch %d (%s)", meta["epoch"], checkpoint.path)
    return state, meta


def report_epoch(metrics: dict, state: dict | None, meta: dict, artifacts: dict[str, str]) -> None:
    """Report one epoch's metrics with a checkpoint (rank 0 writes it; others pass None).

    Args:
        metrics: Plain Python values (no tensors), shown as the run's metrics.
        state: ``torch.save``-able state on rank 0; None on other ranks.
        meta: JSON-able metadata stored with the state (epoch, history).
        artifacts: Extra text files of the checkpoint, by file name.
    """
    import ray.train
    from ray.train import Checkpoint

    if state is None:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="shoplake-ckpt-") as folder:
        torch.save(state, Path(folder) / STATE_FILE)
        (Path(folder) / META_FILE).write_text(json.dumps(meta))
        for name, text in artifacts.items():
            (Path(folder) / name).write_text(text)
        # Report copies the folder into the run's storage before it returns (sync upload).
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))


def maybe_inject_failure(config: dict, epoch: int, rank: int) -> None:
    """Raise in rank 0 after epoch ``config["fail_at_epoch"]``, once per run.

    Raises:
        RuntimeError: The injected failure.
    """
    fail_at, marker = config.get("fail_at_epoch"), config.get("failure_marker")
    if fail_at is None or epoch != fail_at or rank != 0:
        return
    if not marker:
        raise ValueError("fail_at_epoch needs failure_marker (a path under the run's storage folder)")
    path = Path(marker)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"failure injected after epoch {epoch}\n")
    # The controller collects the ranks' reports in polls every health-check interval and
    # registers the checkpoint once it has all of them; failing before that would resume
    # from the epoch before. Two intervals make "resume from epoch k" deterministic.
    time.sleep(2 * float(os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "2")))
    raise RuntimeError(f"injected failure after epoch {epoch} (fail_at_epoch)")


def _all_sum(values: list[float]) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def _all_nodes(node_id: str) -> list[str]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        nodes: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(nodes, node_id)
        return nodes
    return [node_id]


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _quiet_report_log() -> None:
    """Keep Ray Train from logging every report with its whole metrics dict (the history grows each epoch)."""
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:  # another Ray Train version: its logging is left as it is
        return
    # Ray names this module's logger by its file path.
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def train_loop_per_worker(config: dict) -> None:
    """Train ``config["task"]`` for ``config["epochs"]`` epochs, resuming if a checkpoint exists.

    Every epoch's metrics are ``epoch``, ``loss`` (mean over all workers' examples),
    ``resumed_from`` (the checkpoint epoch this attempt started from, or None) and
    ``history``: one entry per finished epoch of the whole run (``epoch``,
    ``loss``, ``resumed_from``, ``nodes``: the Ray node of each rank, ``examples``
    over all ranks, ``seconds`` of the epoch on rank 0, ``lr`` the learning rate after
    its last step), carried
    through checkpoints, so the final metrics show whether a restart continued
    where it stopped.

    Args:
        config: See the module docstring.
    """
    import ray.train
    import ray.train.torch

    _quiet_report_log()
    task: EpochTask = config["task"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    node_id = ray.get_runtime_context().get_node_id()
    seed = int(config.get("seed", 0))

    torch.manual_seed(seed)
    state, meta = load_checkpoint_state()
    model = task.build_model()
    if state is not None:
        model.load_state_dict(state["model"])
    model = ray.train.torch.prepare_model(model)  # to this worker's device, wrapped in DDP when world_size > 1
    device = ray.train.torch.get_device()
    optimizer, scheduler = make_optimizer(model, task, config, rank, world_size)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
    resumed_from = meta.get("epoch")
    history: list[dict] = list(meta.get("history", []))
    start = 0 if resumed_from is None else resumed_from + 1
    log.info("rank %d of %d on node %s: epochs %d..%d", rank, world_size, node_id, start, config["epochs"] - 1)

    for epoch in range(start, int(config["epochs"])):
        started = time.monotonic()
        loss_sum, count = train_epoch(model, optimizer, scheduler, task, config, epoch, rank, world_size, device)
        total_loss, total_count = _all_sum([loss_sum, float(count)])
        nodes = _all_nodes(node_id)
        if config.get("epoch_sleep_s"):
            time.sleep(float(config["epoch_sleep_s"]))
        epoch_loss = total_loss / max(total_count, 1.0)
        history.append({
            "epoch": epoch, "loss": epoch_loss, "resumed_from": resumed_from, "nodes": nodes,
            "examples": int(total_count), "seconds": time.monotonic() - started, "lr": optimizer.param_groups[0]["lr"],
        })  # fmt: skip
        metrics = {"epoch": epoch, "loss": epoch_loss, "resumed_from": resumed_from, "history": history}
        log.info(
            "epoch %d rank %d node %s pid %d: loss %.5f (%.1f s)", epoch, rank, node_id, os.getpid(), epoch_loss, time.monotonic() - started
        )
        save = None
        if rank == 0:
            core = model.module if hasattr(model, "module") else model
            save = {"model": core.state_dict(), "optimizer": optimizer.state_dict()}
            if scheduler is not None:
                save["scheduler"] = scheduler.state_dict()
        report_epoch(metrics, save, {"epoch": epoch, "history": history}, task.artifacts() if rank == 0 else {})
        maybe_inject_failure(config, epoch, rank)


def make_optimizer(model: nn.Module, task: EpochTask, config: dict, rank: int = 0, world_size: int = 1):
    """The optimizer of ``model`` and its learning-rate schedule (None without ``warmup_ratio``).

    Adam at ``config["lr"]``; AdamW with ``weight_decay``; with ``warmup_ratio`` the
    warm-up and linear decay of :func:`warmup_linear` over all steps of the run.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config.get("weight_decay"):
        optimizer = torch.optim.AdamW(params, lr=float(config["lr"]), weight_decay=float(config["weight_decay"]))
    else:
        optimizer = torch.optim.Adam(params, lr=float(config["lr"]))
    scheduler = None
    if config.get("warmup_ratio") is not None:
        total = _steps_per_epoch(task, rank, world_size) * int(config["epochs"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(total, float(config["warmup_ratio"])))
    return optimizer, scheduler


def train_epoch(
    model: nn.Module,
    optimizer,
    scheduler,
    task: EpochTask,
    config: dict,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | None = None,
) -> tuple[float, int]:
    """One epoch of this rank's batches: ``(sum of batch losses times their examples, examples)``.

    Sampling (negatives, dropout) is seeded by ``config["seed"]``, the epoch and the
    rank, so it differs per epoch and rank yet repeats on a re-run. ``amp`` autocasts
    to bfloat16 on a GPU; ``max_grad_norm`` clips the gradients.
    """
    device = device or torch.device("cpu")
    autocast = bool(config.get("amp")) and device.type == "cuda"
    max_grad_norm = config.get("max_grad_norm")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    model.train()
    generator = torch.Generator().manual_seed(int(config.get("seed", 0)) * 1_000_003 + epoch * 1_009 + rank)
    loss_sum, count = 0.0, 0
    for batch in task.batches(epoch, rank, world_size):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, n = task.loss(model, _to_device(batch, device), generator)
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, float(max_grad_norm))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += float(loss.detach()) * n
        count += n
    return loss_sum, count


def local_epochs(task: EpochTask, config: dict) -> Iterator[tuple[nn.Module, float]]:
    """Train ``task`` in this process, one epoch at a time: yields ``(model, mean loss)`` after each epoch.

    The same optimisation as :func:`train_loop_per_worker` (``config`` takes the same
    keys) without Ray Train, workers or checkpoints: what a search trial runs
    (:mod:`shoplake.train.tune`), where every trial is one small process and a trial
    stopped early simply stops asking for the next epoch.
    """
    torch.manual_seed(int(config.get("seed", 0)))
    model = task.build_model()
    optimizer, scheduler = make_optimizer(model, task, config)
    for epoch in range(int(config["epochs"])):
        loss_sum, count = train_epoch(model, optimizer, scheduler, task, config, epoch)
        yield model, loss_sum / max(count, 1)


@dataclass
class FitResult:
    """What one :func:`fit` produced.

    Attributes:
        name: The run name, its folder under ``<runs_dir>/ray_results``.
        run_path: That folder.
        checkpoint_path: The last checkpoint (``state.pt``, ``meta.json``, the task's artifacts).
        metrics: Final metrics of rank 0 (``epoch``, ``loss``, ``history``, ...).
        seconds: Wall time of the trainer.
    """

    name: str
    run_path: str
    checkpoint_path: str | None
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def history(self) -> list[dict]:
        """One entry per epoch: ``epoch``, ``loss``, ``resumed_from``, ``nodes``."""
        return list(self.metrics.get("history", []))

    @property
    def losses(self) -> list[float]:
        return [h["loss"] for h in self.history]

    def load_state(self) -> dict:
        """The model and optimizer state of the last checkpoint (``torch.load``-ed on CPU)."""
        if self.checkpoint_path is None:
            raise RuntimeError(f"run {self.name} produced no checkpoint")
        return torch.load(Path(self.checkpoint_path) / STATE_FILE, map_location="cpu", weights_only=True)


def storage_path(cfg) -> str:
    """Where Ray Train keeps runs: ``<runs_dir>/ray_results``, absolute.

    Absolute, because Ray Train would put a relative path under ~/ray_results; on a
    multi-node cluster on one host (or a shared mount) every node sees this folder.
    """
    if "://" in cfg.runs_dir:
        return f"{cfg.runs_dir}/ray_results"
    return str(Path(cfg.runs_dir, "ray_results").resolve())


def run_configs(cfg, name: str):
    """Ray Train's ``(ScalingConfig, RunConfig)`` for a new run ``name``, from ``cfg.ray`` and ``cfg.training``.

    Every trainer of the project (this loop's ``TorchTrainer``, the fraud model's
    ``XGBoostTrainer``) runs with these: ``ray.num_workers`` workers of
    ``ray.cpus_per_worker`` CPUs, the run folder under :func:`storage_path`, the
    checkpoints kept and the retries of ``training``.

    Raises:
        ValueError: The run folder exists already (on a local ``runs_dir``).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig

    tc, rc = cfg.training, cfg.ray
    storage = storage_path(cfg)
    # Ray Train resumes a run whose folder exists from its last checkpoint, whatever data
    # it was trained on; a new run must not pick up an older one's weights.
    if "://" not in storage and Path(storage, name).exists():
        raise ValueError(f"run {name!r} already exists in {storage}: choose another name or remove that folder")
    scaling = ScalingConfig(
        num_workers=rc.num_workers,
        use_gpu=rc.use_gpu,
        resources_per_worker={"CPU": rc.cpus_per_worker},
        placement_strategy=tc.placement_strategy,
    )
    run = RunConfig(
        name=name,
        storage_path=storage,
        checkpoint_config=CheckpointConfig(num_to_keep=tc.checkpoints_to_keep),
        failure_config=FailureConfig(max_failures=tc.max_failures),
    )
    return scaling, run


def fit(
    cfg,
    task: EpochTask,
    name: str,
    epochs: int | None = None,
    *,
    lr: float | None = None,
    fail_at_epoch: int | None = None,
    optimisation: dict | None = None,
) -> FitResult:
    """Train ``task`` with a ``TorchTrainer`` running :func:`train_loop_per_worker`.

    Args:
        cfg: Configuration: ``cfg.ray`` (workers, CPUs per worker, GPU),
            ``cfg.training`` (epochs, lr, seed, retries, checkpoints kept,
            placement), ``cfg.runs_dir``.
        task: What to train.
        name: Run name, its folder under ``<runs_dir>/ray_results``; it must not exist
            yet (on a local ``runs_dir``).
        epochs: Overrides ``cfg.training.epochs``.
        lr: Overrides ``cfg.training.lr``.
        fail_at_epoch: Tests only: rank 0 fails once after this epoch's checkpoint
            (needs a local ``runs_dir``).
        optimisation: ``weight_decay``, ``warmup_ratio``, ``amp``, ``max_grad_norm``
            (module docstring); none of them by default.

    Raises:
        ValueError: The run folder exists already.
        ray.train.TrainingFailedError: Training failed more than ``max_failures`` times.
    """
    from ray.train.torch import TorchTrainer

    from shoplake.ray_runtime import init_ray

    tc = cfg.training
    scaling, run = run_configs(cfg, name)
    storage = run.storage_path
    if fail_at_epoch is not None and "://" in storage:
        raise ValueError("fail_at_epoch needs a local runs_dir: its marker file is written with plain file I/O")
    train_config = {
        "task": task,
        "epochs": epochs or tc.epochs,
        "lr": lr or tc.lr,
        "seed": tc.seed,
        "epoch_sleep_s": tc.epoch_sleep_s,
        "fail_at_epoch": fail_at_epoch,
        "failure_marker": str(Path(storage, name, FAILURE_MARKER)) if fail_at_epoch is not None else None,
        **(optimisation or {}),
    }
    trainer = TorchTrainer(train_loop_per_worker, train_loop_config=train_config, scaling_config=scaling, run_config=run)
    init_ray(cfg)
    started = time.monotonic()
    result = trainer.fit()
    seconds = time.monotonic() - started
    metrics = dict(result.metrics or {})
    checkpoint = result.checkpoint.path if result.checkpoint else None
    log.info("trained %s in %.1f s: final loss %s, checkpoint %s", name, seconds, metrics.get("loss"), checkpoint)
    return FitResult(name=name, run_path=str(result.path), checkpoint_path=checkpoint, metrics=metrics, seconds=seconds)
