"""ray job submit entry point of every use case's planning step: ``python ray_apps/plan.py USE_CASE [flags]``.

    python ray_apps/plan.py ads --env local --run-date 2024-03-31
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python ray_apps/plan.py ads --env cluster

The use case's own flags: ``shoplake plan-<...> --help`` (the steps in :mod:`shoplake.pipeline`).
"""

from shoplake.entry import exit_cleanly
from shoplake.pipeline import verb_main

if __name__ == "__main__":
    exit_cleanly(verb_main("plan"))
