"""Train the collaborative-filtering recommender (matrix factorization) with Ray Train.

Inputs:  gold.user_item_matrix, the partition of --run-date (default: the latest
         run_date in the table), at the table's current Delta version.
Outputs: a Ray Train run under <runs_dir>/ray_results/<name>: one checkpoint per
         epoch (the last training.checkpoints_to_keep kept), each with the model
         and optimizer state (state.pt), the epoch and loss history (meta.json)
         and the user and item id maps (user_ids.json, item_ids.json).
         Prints the loss of every epoch, the final checkpoint's path and a line
         `history: <json>` (epoch, loss, resumed_from, nodes of the workers).
Parameters: --run-date, --epochs (default training.epochs), --name (run folder),
         --env, --set key=value. Workers and CPUs come from ray.num_workers,
         ray.cpus_per_worker and ray.use_gpu; hyperparameters and retries
         (training.max_failures) from the training section.

    python ray_apps/train_recommender.py --env local --run-date 2024-03-01
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python ray_apps/train_recommender.py --env cluster --set training.epochs=20
"""

from __future__ import annotations

import argparse
import json

from shoplake.entry import add_config_args, config_from_args, exit_cleanly, parse_date


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_recommender", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--run-date", type=parse_date, help="features date to train on (default: the latest in gold.user_item_matrix)")
    parser.add_argument("--epochs", type=int, help="epochs (default: training.epochs)")
    parser.add_argument("--name", help="run name, the folder under <runs_dir>/ray_results (default: mf_<run date>_<time>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.training.recommender import train_mf

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    init_ray(cfg)
    result = train_mf(cfg, Lake(cfg), run_date=args.run_date, epochs=args.epochs, name=args.name)
    print(
        f"trained on gold.user_item_matrix v{result.table_version} run_date {result.run_date}: "
        f"{result.rows} pairs, {result.n_users} users, {result.n_items} items, {result.seconds:.1f} s"
    )
    previous = None
    for h in result.history:
        # A restarted attempt is marked once, at its first epoch.
        restarted = h["resumed_from"] is not None and h["resumed_from"] != previous
        previous = h["resumed_from"]
        note = f" (restarted from the checkpoint of epoch {h['resumed_from']})" if restarted else ""
        print(f"epoch {h['epoch']}: loss {h['loss']:.5f}{note}")
    print(f"checkpoint: {result.checkpoint_path}")
    # One machine-readable line for schedulers and tests: every epoch with the Ray node of each worker.
    print("history: " + json.dumps(result.history))
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
