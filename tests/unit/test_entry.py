"""shoplake.entry: the flags and logging every entry point shares."""

from __future__ import annotations

import logging
import os

from shoplake.entry import setup_logging, train_parser


def _record(level: int, pathname: str) -> logging.LogRecord:
    return logging.LogRecord("root", level, pathname, 1, "Exception while sending command.", None, None)


def test_py4j_retries_are_not_logged_but_its_warnings_and_our_lines_are():
    setup_logging("INFO")
    handler = logging.getLogger().handlers[0]
    py4j = os.path.join("site-packages", "py4j", "java_gateway.py")
    assert not handler.filter(_record(logging.INFO, py4j))
    assert handler.filter(_record(logging.ERROR, py4j))
    assert handler.filter(_record(logging.INFO, os.path.join("shoplake", "pipeline.py")))
    setup_logging("INFO")  # a second call adds no second filter
    assert sum(1 for f in handler.filters if getattr(f, "__name__", "") == "_not_py4j_retry") == 1


def test_train_flags():
    args = train_parser("train.py x", "doc", "features date", "x_<run date>").parse_args(["--run-date", "2024-03-01", "--no-register"])
    assert (str(args.run_date), args.name, args.no_register, args.env) == (
        "2024-03-01",
        None,
        True,
        os.environ.get("SHOPLAKE_ENV", "local"),
    )
