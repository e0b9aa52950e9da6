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
    parser.add_argument("--env", default=os.environ.get("SHOPLAKE_ENV", "local"), help="conf/<env>.yaml overlay (default: local)")
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


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
