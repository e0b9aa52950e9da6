"""spark-submit entry point of the lake maintenance step: compact small files, vacuum unreferenced ones.

    spark-submit jobs/maintain_lake.py --env local

Flags and behaviour: ``shoplake maintain-lake --help`` (:mod:`shoplake.maintain`).
"""

from shoplake.entry import exit_cleanly
from shoplake.maintain import main

if __name__ == "__main__":
    exit_cleanly(main)
