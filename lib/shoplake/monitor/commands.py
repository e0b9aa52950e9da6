"""The entry point of the profile-tables step (``python ray_apps/profile_tables.py``, ``shoplake profile-tables``)."""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, config_from_args

DOC = """Profile lake tables with Ray Data: rows and nulls per run date and column.

Inputs:  the tables named by --table (default: every bronze table in the lake), at
         their current version, read with ray.data.read_delta.
Outputs: ops.table_profiles, one partition per profiled table, replaced on re-run.
Parameters: --table (repeatable), --env, --set key=value.

    python ray_apps/profile_tables.py --env local
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python ray_apps/profile_tables.py --env cluster
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="profile_tables", description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--table", dest="tables", action="append", help="table to profile, e.g. bronze.orders (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.lake.catalog import get_spec
    from shoplake.monitor.profile import profile_tables

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    lake = Lake(cfg)
    specs = [get_spec(t) for t in args.tables] if args.tables else [s for s in lake.tables() if s.layer == "bronze"]
    try:
        results = profile_tables(cfg, lake, specs)
    except LookupError as exc:
        raise SystemExit(str(exc)) from None
    for spec, result in zip(specs, results):
        print(f"{spec.full_name} v{lake.version(spec)}: {result.rows} column profiles -> {result.table} v{result.version}")
    return 0
