"""spark-submit entry point of the feature step: bronze -> silver and gold, every use case's feature nodes.

    spark-submit jobs/build_features.py --env local --run-date 2024-03-30

Flags and behaviour: ``shoplake features --help`` (:mod:`shoplake.features.commands`).
"""

from shoplake.entry import exit_cleanly
from shoplake.features.commands import main

if __name__ == "__main__":
    exit_cleanly(main)
