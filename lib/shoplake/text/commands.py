"""The entry point the text use cases share: fine-tune, compare and register one task's models."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from shoplake.entry import add_config_args, config_from_args, parse_date


def train_parser(prog: str, doc: str, table: str) -> argparse.ArgumentParser:
    """The flags of a text training entry point."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    parser.add_argument("--run-date", type=parse_date, help=f"features date (default: the latest in {table})")
    parser.add_argument("--name", help="prefix of the run's folders (default: <task>_<run date>_<time>)")
    parser.add_argument("--no-register", action="store_true", help="do not log to MLflow or move the serving alias")
    return parser


def train_text(argv: list[str] | None, parser: argparse.ArgumentParser, run: Callable, label: str) -> int:
    """Parse ``argv``, run ``run(cfg, lake, run_date, name=..., register=..., on_step=...)`` and print its metrics table."""
    import datetime as dt

    from rich.console import Console

    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray
    from shoplake.text.report import text_metrics_table, text_run_lines
    from shoplake.text.run import MissingTextTableError, TooFewTextsError, metrics_rows

    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    console = Console()
    init_ray(cfg)
    try:
        with console.status(f"{label} run") as status:
            result = run(
                cfg, Lake(cfg), args.run_date, name=args.name, register=not args.no_register,
                on_step=lambda text: status.update(f"{label} run: {text}"),
            )  # fmt: skip
    except (MissingTextTableError, TooFewTextsError) as exc:
        console.print(f"error: {exc}")
        return 2
    console.print(text_metrics_table(metrics_rows(result, dt.datetime.now(dt.timezone.utc)), result.task))
    for line in text_run_lines(result):
        console.print(line)
    return 0
