"""spark-submit entry point of the ingest step: landing files -> bronze and quarantine.

    spark-submit jobs/ingest.py --env local --run-date 2024-03-01

Flags and behaviour: ``shoplake ingest --help`` (:mod:`shoplake.ingest.commands`).
"""

from shoplake.entry import exit_cleanly
from shoplake.ingest.commands import main

if __name__ == "__main__":
    exit_cleanly(main)
