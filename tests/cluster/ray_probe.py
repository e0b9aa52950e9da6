"""Submitted by the cluster tests with ``ray job submit``: proof that the job ran on the multi-node cluster.

Joins the cluster (``ray.address: auto`` under ``ray job submit``), runs one task on
each alive node, and prints one line ``PROBE {json}`` with the alive nodes, the node
each task ran on and where the task imported shoplake from.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python tests/cluster/ray_probe.py --env cluster
"""

from __future__ import annotations

import argparse
import json
import os

from shoplake.entry import add_config_args, config_from_args, exit_cleanly


def main(argv: list[str] | None = None) -> int:
    from shoplake.ray_runtime import init_ray

    cfg = config_from_args(add_config_args(argparse.ArgumentParser(prog="ray_probe")).parse_args(argv))
    ray = init_ray(cfg)

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=cfg.ray.cpus_per_data_task)
    def where() -> dict:
        import shoplake

        return {"node": ray.get_runtime_context().get_node_id(), "shoplake": os.path.abspath(shoplake.__file__)}

    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    pinned = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)) for node in nodes]
    tasks = ray.get([task.remote() for task in pinned], timeout=120)
    print("PROBE " + json.dumps({"nodes": nodes, "tasks": tasks, "cpus": ray.cluster_resources().get("CPU")}))
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
