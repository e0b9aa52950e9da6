"""Profile lake tables with Ray Data: rows and nulls per run date and column.

Inputs:  the tables named by --table (default: every bronze table in the lake), at
         their current version, read with ray.data.read_delta.
Outputs: ops.table_profiles, one partition per profiled table, replaced on re-run.
Parameters: --table (repeatable), --env, --set key=value.

    python ray_apps/profile_tables.py --env local
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python ray_apps/profile_tables.py --env cluster
"""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, config_from_args, exit_cleanly


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="profile_tables", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--table", dest="tables", action="append", help="table to profile, e.g. bronze.orders (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shoplake.lake import Lake
    from shoplake.lake.catalog import get_spec
    from shoplake.quality.profile import TABLE_PROFILES, profile_dataset
    from shoplake.ray_runtime import init_ray

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    ray = init_ray(cfg)
    lake = Lake(cfg)
    specs = [get_spec(t) for t in args.tables] if args.tables else [s for s in lake.tables() if s.layer == "bronze"]
    for spec in specs:
        version = lake.version(spec)
        if version is None:
            raise SystemExit(f"table {spec.full_name} does not exist in {cfg.lake.root}")
        profile = profile_dataset(lake.ray_read(spec, version=version), spec, version, cfg.ray.cpus_per_data_task)
        result = lake.ray_write(ray.data.from_arrow(profile), TABLE_PROFILES, mode="replace", partitions={"table_name": [spec.full_name]})
        print(f"{spec.full_name} v{version}: {result.rows} column profiles -> {result.table} v{result.version}")
    return 0


if __name__ == "__main__":
    exit_cleanly(main)
