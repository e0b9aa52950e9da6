"""The ingest command's flags and the nightly command's --allow-shrink: the same override as --set ingest.allow_shrink=true."""

from __future__ import annotations

from shoplake.cli import build_parser as cli_parser
from shoplake.config import load_config
from shoplake.ingest.commands import build_parser


def test_allow_shrink_is_the_config_override_on_ingest_and_nightly():
    args = build_parser().parse_args(["--run-date", "2024-03-01", "--set", "ingest.duplicates=quarantine", "--allow-shrink"])
    cfg = load_config("local", args.overrides)
    assert cfg.ingest.allow_shrink and cfg.ingest.duplicates == "quarantine"
    assert not load_config("local", build_parser().parse_args(["--run-date", "2024-03-01"]).overrides).ingest.allow_shrink
    args = cli_parser().parse_args(["nightly", "--run-date", "2024-03-01", "--allow-shrink"])
    assert load_config("local", args.overrides).ingest.allow_shrink
