"""The entry point of the lake maintenance step (``spark-submit jobs/maintain_lake.py``, ``shoplake maintain-lake``)."""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, config_from_args

DOC = """Compact tables with many small files and vacuum the files no reader needs.

Inputs:  every table of the lake.
Outputs: the same tables, compacted where they hold at least lake.compact_min_files
         data files; files older than lake.vacuum_retention_hours that no retained
         version references (and files of writes that never committed) deleted.
Parameters: --env, --set key=value.

    spark-submit jobs/maintain_lake.py --env local
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maintain-lake", description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_config_args(parser)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from shoplake.lake import Lake
    from shoplake.lake.maintenance import maintain
    from shoplake.spark import get_spark

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    results = maintain(Lake(cfg, get_spark(cfg)))
    table = Table(title=f"lake maintenance (retention {cfg.lake.vacuum_retention_hours} h)")
    for col in ("table", "files", "compacted to", "vacuumed"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for r in results:
        table.add_row(r.table, str(r.files_before), str(r.files_after) if r.compacted else "-", str(r.vacuumed))
    Console().print(table)
    return 0
