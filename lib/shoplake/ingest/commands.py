"""The entry point of the ingest step (``spark-submit jobs/ingest.py``, ``shoplake ingest``)."""

from __future__ import annotations

import argparse

from shoplake.entry import add_config_args, add_date_args, config_from_args, run_dates

DOC = """Ingest landing files into bronze (and quarantine) Delta tables.

Inputs:  <landing.root>/<source>/<YYYY-MM-DD>.{csv,jsonl,parquet}[.gz] for each source.
Outputs: bronze.<source> (typed rows with _source_file, _row_number, _ingested_at,
         run_date) and quarantine.<source> (rejected rows with the reason: damaged,
         off the contract, or repeating a key), one partition per run date, replaced
         on re-run.
Parameters: --run-date D | --from D1 --to D2, --source (repeatable), --allow-shrink,
         --env, --set key=value.

A run date whose rows would shrink what bronze holds for it, or lie far outside the
recent days' range, stops the run before anything is written (ingest.shrink_ratio,
ingest.volume_*); --allow-shrink writes it anyway.

    spark-submit jobs/ingest.py --env local --run-date 2024-03-01
"""

#: The override ``--allow-shrink`` stands for.
ALLOW_SHRINK = "ingest.allow_shrink=true"


def add_allow_shrink_arg(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--allow-shrink``: the same as ``--set ingest.allow_shrink=true`` (call after :func:`add_config_args`)."""
    parser.add_argument(
        "--allow-shrink",
        dest="overrides",
        action="append_const",
        const=ALLOW_SHRINK,
        help="write run dates the volume guards would stop: a day shrinking what bronze holds, or far outside the recent days",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingest", description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_allow_shrink_arg(add_config_args(add_date_args(parser)))
    parser.add_argument("--source", dest="sources", action="append", help="only this landing source (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.markup import escape

    from shoplake.ingest.run import ingest
    from shoplake.lake import Lake
    from shoplake.spark import get_spark

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    days = run_dates(args)
    lake = Lake(cfg, get_spark(cfg))
    report = ingest(cfg, lake, days, args.sources)
    console = Console()
    for note in report.notes:
        console.print(f"[yellow]{escape(note)}[/yellow]")
    for name, result in report.bronze.items():
        quarantined = report.quarantine[name].rows
        console.print(f"{result.table}: v{result.version}, {result.rows} rows, {quarantined} quarantined")
    return 0
