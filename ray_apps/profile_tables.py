"""ray job submit entry point of the table profiles: rows and nulls per column into ops.table_profiles.

    python ray_apps/profile_tables.py --env local
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python ray_apps/profile_tables.py --env cluster

Flags and behaviour: ``shoplake profile-tables --help`` (:mod:`shoplake.monitor.commands`).
"""

from shoplake.entry import exit_cleanly
from shoplake.monitor.commands import main

if __name__ == "__main__":
    exit_cleanly(main)
