"""Benchmark: training throughput through Ray Train vs the same loop in plain PyTorch.

Both sides train the same task on the same data (one features snapshot of a lake):
the task's batches, loss and Adam optimizer, for the same number of epochs.

* **plain torch**: one process, ``task.batches(epoch, rank=0, world_size=1)``, the
  machine's default torch threads; no checkpoints;
* **ray train**: :func:`shoplake.train.loop.fit`, a ``TorchTrainer`` with
  ``ray.num_workers`` workers (DDP, gloo on CPU) at ``ray.cpus_per_worker`` each,
  a checkpoint every epoch; what the platform runs.

Throughput is training examples per second (sequence positions for the sequence
model, positive pairs for matrix factorization). Two figures per side: **steady**,
the median epoch after the first (Ray: epoch times reported by rank 0), and **end
to end**, all epochs over the wall time (for Ray including worker start-up and
checkpoints). The ratio is Ray / plain (above 1 = Ray faster).

Run::

    .venv/bin/python bench/train_throughput.py                       # demo lake, both models
    .venv/bin/python bench/train_throughput.py --model sasrec --epochs 3 \\
        --set lake.root=data/lake-online-retail
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from shoplake.entry import add_config_args, config_from_args, exit_cleanly


def make_task(kind: str, data, cfg):
    """The Ray Train task of a model family on a snapshot."""
    if kind == "mf":
        from shoplake.recommend.mf_train import mf_task

        return mf_task(cfg, data.pair_users, data.pair_items, data.pair_weights, data.user_ids, data.item_ids)
    from shoplake.recommend.sequence import build_task
    from shoplake.text.encoder import encode_texts

    return build_task(cfg, data.sequences, encode_texts(data.texts, cfg.text_encoder), data.times)


def plain_torch(task, epochs: int, lr: float, seed: int) -> tuple[list[float], int, float]:
    """Epoch seconds, examples per epoch and wall seconds of the loop in one process."""
    import torch

    torch.manual_seed(seed)
    started = time.monotonic()
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    times, examples = [], 0
    for epoch in range(epochs):
        t0 = time.monotonic()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 1_009)
        model.train()
        examples = 0
        for batch in task.batches(epoch, 0, 1):
            optimizer.zero_grad(set_to_none=True)
            loss, n = task.loss(model, batch, generator)
            loss.backward()
            optimizer.step()
            examples += n
        times.append(time.monotonic() - t0)
    return times, examples, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["mf", "sasrec"], action="append", help="model family (repeatable; default both)")
    parser.add_argument("--epochs", type=int, default=4)
    add_config_args(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    logging.getLogger("ray").setLevel(logging.WARNING)

    from rich.console import Console
    from rich.table import Table

    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.recommend.holdout import load_training_data
    from shoplake.recommend.schemas import USER_ITEM_MATRIX
    from shoplake.train.loop import fit

    console = Console(width=160)
    lake = Lake(cfg)
    run_date = lake.run_dates(USER_ITEM_MATRIX)[-1]
    data = load_training_data(lake, run_date, cfg)
    init_ray(cfg)
    out = Table(title=f"training throughput on {cfg.lake.root} ({run_date}): {args.epochs} epochs, "
                      f"Ray Train {cfg.ray.num_workers} workers x {cfg.ray.cpus_per_worker} CPU vs one plain PyTorch process")  # fmt: skip
    for col in ("model", "examples/epoch", "plain steady/s", "ray steady/s", "steady ratio", "plain e2e/s", "ray e2e/s", "e2e ratio"):
        out.add_column(col, justify="left" if col == "model" else "right")
    for kind in args.model or ["mf", "sasrec"]:
        task = make_task(kind, data, cfg)
        lr = cfg.sequence_model.lr if kind == "sasrec" else cfg.training.lr
        times, examples, wall = plain_torch(task, args.epochs, lr, cfg.training.seed)
        started = time.monotonic()
        run = fit(cfg, task, f"bench_{kind}_{int(time.time())}", args.epochs, lr=lr)
        ray_wall = time.monotonic() - started
        ray_times = [h["seconds"] for h in run.history]
        ray_examples = run.history[-1]["examples"]
        steady_plain = examples / statistics.median(times[1:] or times)
        steady_ray = ray_examples / statistics.median(ray_times[1:] or ray_times)
        e2e_plain = examples * args.epochs / wall
        e2e_ray = ray_examples * args.epochs / ray_wall
        out.add_row(kind, f"{examples:,}", f"{steady_plain:,.0f}", f"{steady_ray:,.0f}", f"{steady_ray / steady_plain:.2f}x",
                    f"{e2e_plain:,.0f}", f"{e2e_ray:,.0f}", f"{e2e_ray / e2e_plain:.2f}x")  # fmt: skip
    console.print(out)
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
