"""ray job submit entry point of every use case's training step: ``python ray_apps/train.py USE_CASE [flags]``.

    python ray_apps/train.py fraud --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python ray_apps/train.py recommend --env cluster

The use case's own flags: ``shoplake train-<...> --help`` (the steps in :mod:`shoplake.pipeline`).
"""

from shoplake.entry import exit_cleanly
from shoplake.pipeline import verb_main

if __name__ == "__main__":
    exit_cleanly(verb_main("train"))
