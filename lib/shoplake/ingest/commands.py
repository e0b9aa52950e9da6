"""The entry point of the ingest step (``spark-submit jobs/ingest.py``, ``shoplake ingest``)."""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, add_date_args, config_from_args, run_dates

DOC = """Ingest landing files into bronze (and quarantine) Delta tables.

Inputs:  <landing.root>/<source>/<YYYY-MM-DD>.{csv,jsonl,parquet}[.gz] for each source.
Outputs: bronze.<source> (typed rows with _source_file, _row_number, _ingested_at,
         run_date) and quarantine.<source> (rejected rows with the reason), one
         partition per run date, replaced on re-run.
Parameters: --run-date D | --from D1 --to D2, --source (repeatable), --env, --set key=value.

    spark-submit jobs/ingest.py --env local --run-date 2024-03-01
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingest", description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(add_date_args(parser))
    parser.add_argument("--source", dest="sources", action="append", help="only this landing source (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shoplake.ingest.run import ingest
    from shoplake.lake import Lake
    from shoplake.spark import get_spark

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    days = run_dates(args)
    lake = Lake(cfg, get_spark(cfg))
    report = ingest(cfg, lake, days, args.sources)
    for name, result in report.bronze.items():
        quarantined = report.quarantine[name].rows
        print(f"{result.table}: v{result.version}, {result.rows} rows, {quarantined} quarantined")
    return 0
