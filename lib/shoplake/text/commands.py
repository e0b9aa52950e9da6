"""The entry point the text use cases share: fine-tune, compare and register one task's models."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from shoplake import entry


def train_parser(prog: str, doc: str, table: str) -> argparse.ArgumentParser:
    """The flags of a text training entry point."""
    return entry.train_parser(prog, doc, f"features date (default: the latest in {table})", "<task>_<run date>_<time>")


def train_text(argv: list[str] | None, parser: argparse.ArgumentParser, run: Callable, label: str) -> int:
    """Parse ``argv``, run ``run(cfg, lake, run_date, name=..., register=..., on_step=...)`` and print its metrics table."""
    import datetime as dt

    from shoplake.text.report import text_metrics_table, text_run_lines
    from shoplake.text.run import MissingTextTableError, TooFewTextsError, metrics_rows

    _, console, result = entry.run_training(parser.parse_args(argv), label, run, (MissingTextTableError, TooFewTextsError))
    if result is None:
        return 2
    console.print(text_metrics_table(metrics_rows(result, dt.datetime.now(dt.timezone.utc)), result.task))
    for line in text_run_lines(result):
        console.print(line)
    return 0
