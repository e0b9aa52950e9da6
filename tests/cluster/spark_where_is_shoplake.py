"""Submitted by the cluster tests with spark-submit: where the driver and the executors import shoplake from.

Prints one line ``WHERE {json}`` with the session's master, the driver's
``shoplake.__file__`` and, per task, the executor's ``shoplake.__file__`` and
working folder.

    spark-submit --master spark://127.0.0.1:7077 --py-files shoplake.zip tests/cluster/spark_where_is_shoplake.py --env cluster
"""

from __future__ import annotations

import argparse
import json
import os

from shoplake.entry import add_config_args, config_from_args, exit_cleanly


def _where(_) -> dict:
    import shoplake

    return {"file": os.path.abspath(shoplake.__file__), "cwd": os.getcwd(), "pid": os.getpid()}


def main(argv: list[str] | None = None) -> int:
    import shoplake
    from shoplake.spark import get_spark

    cfg = config_from_args(add_config_args(argparse.ArgumentParser()).parse_args(argv))
    sc = get_spark(cfg).sparkContext
    tasks = sc.parallelize(range(4), 4).map(_where).collect()
    print("WHERE " + json.dumps({"master": sc.master, "driver": os.path.abspath(shoplake.__file__), "executors": tasks}))
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
