"""What every entry point shares: standard flags, logging, and a clean exit.

Jobs (``spark-submit jobs/*.py``), Ray apps and the ``shoplake`` CLI all accept
``--env``, ``--set key=value`` and, where a step works on days, ``--run-date`` or
``--from/--to``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable

from shoplake.config import Config, load_config
from shoplake.errors import InputError


def add_config_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--env``, ``--set`` and ``--log-level``."""
    parser.add_argument(
        "--env",
        default=os.environ.get("SHOPLAKE_ENV", "local"),
        help="<env>.yaml overlay of the configuration (default: local; folder: $SHOPLAKE_CONF_DIR or the shipped one)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. lake.engine=delta-rs"
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def add_date_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--run-date`` or ``--from``/``--to`` (a backfill)."""
    parser.add_argument("--run-date", type=parse_date, help="the day to process (YYYY-MM-DD)")
    parser.add_argument("--from", dest="date_from", type=parse_date, help="first day of a backfill")
    parser.add_argument("--to", dest="date_to", type=parse_date, help="last day of a backfill (inclusive)")
    return parser


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every day from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ValueError(f"date range ends ({end}) before it starts ({start})")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def run_dates(args: argparse.Namespace) -> list[dt.date]:
    """The days named by ``--run-date`` or ``--from/--to``."""
    if args.run_date and (args.date_from or args.date_to):
        raise SystemExit("give --run-date or --from/--to, not both")
    if args.run_date:
        return [args.run_date]
    if args.date_from and args.date_to:
        return date_range(args.date_from, args.date_to)
    raise SystemExit("give --run-date D, or --from D1 --to D2")


def _not_py4j_retry(record: logging.LogRecord) -> bool:
    # Py4J logs a retried (and then answered) call to the JVM at INFO on the root logger, with a traceback.
    return not (record.levelno < logging.WARNING and f"{os.sep}py4j{os.sep}" in record.pathname)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if _not_py4j_retry not in handler.filters:
            handler.addFilter(_not_py4j_retry)


def config_from_args(args: argparse.Namespace) -> Config:
    setup_logging(args.log_level)
    return load_config(args.env, args.overrides)


def exit_cleanly(main: Callable[[list[str] | None], int]) -> None:
    """Run ``main`` as a process entry point and exit with its code.

    Known input errors print one line instead of a traceback. The process ends with
    ``os._exit`` after Spark is stopped and output flushed, because native
    libraries (delta-rs, Arrow) can abort during interpreter teardown and would turn
    a successful run into a failed one.
    """
    try:
        code = main(None) or 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            code = 2
        else:
            code = exc.code or 0
    except BaseException:  # noqa: BLE001 - any failure must become exit code 1 with its traceback
        import traceback

        traceback.print_exc()
        code = 1
    try:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _parser(prog: str, doc: str) -> argparse.ArgumentParser:
    return add_config_args(argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter))


def train_parser(prog: str, doc: str, run_date_help: str, name_default: str) -> argparse.ArgumentParser:
    """The flags of a training entry point: the config flags, ``--run-date``, ``--name`` and ``--no-register``.

    Args:
        prog: The program name in its usage line (``train.py fraud``).
        doc: The entry point's description.
        run_date_help: What ``--run-date`` means for it.
        name_default: The run folder prefix used without ``--name``.
    """
    parser = _parser(prog, doc)
    parser.add_argument("--run-date", type=parse_date, help=run_date_help)
    parser.add_argument("--name", help=f"prefix of the run's folders (default: {name_default})")
    parser.add_argument("--no-register", action="store_true", help="do not log to MLflow or move the serving alias")
    return parser


def score_parser(prog: str, doc: str, run_date_help: str) -> argparse.ArgumentParser:
    """The flags of a batch-scoring entry point: the config flags, ``--run-date`` and ``--model-version``."""
    parser = _parser(prog, doc)
    parser.add_argument("--run-date", type=parse_date, help=run_date_help)
    parser.add_argument("--model-version", help="registered version to score with (default: the serving alias)")
    return parser


def run_training(args: argparse.Namespace, label: str, run: Callable, errors: tuple[type[Exception], ...]):
    """Run ``run(cfg, lake, run_date, name=..., register=..., on_step=...)`` for parsed training flags, its steps shown as it goes.

    Returns:
        ``(cfg, console, result)``; ``result`` is None when the run raised one of
        ``errors`` (the message is printed).
    """
    from rich.console import Console

    from shoplake.lake import Lake
    from shoplake.ray_runtime import init_ray

    cfg = config_from_args(args)
    console = Console()
    init_ray(cfg)
    try:
        with console.status(f"{label} run") as status:
            result = run(
                cfg, Lake(cfg), args.run_date, name=args.name, register=not args.no_register,
                on_step=lambda text: status.update(f"{label} run: {text}"),
            )  # fmt: skip
    except errors as exc:
        console.print(f"error: {exc}")
        return cfg, console, None
    return cfg, console, result
