"""The recommendation run says which history features.lookback_days leaves out."""

from __future__ import annotations

import datetime as dt

from shoplake.config import load_config
from shoplake.recommend.train import history_outside_lookback


class FakeLake:
    """Bronze tables with landing days, as their Delta logs would list them."""

    def __init__(self, days: dict[str, list[dt.date]]):
        self.days = days

    def exists(self, spec) -> bool:
        return spec.name in self.days

    def run_dates(self, spec) -> list[dt.date]:
        return self.days[spec.name]


def test_older_landing_days_are_named_and_none_when_all_are_used(tmp_path):
    cfg = load_config("local", [f"lake.root={tmp_path}", f"landing.root={tmp_path}", "features.lookback_days=30"])
    run_date = dt.date(2024, 3, 1)
    old = [dt.date(2023, 12, 1), dt.date(2024, 1, 15)]
    lake = FakeLake({"orders": [*old, dt.date(2024, 2, 20)], "events": [dt.date(2024, 1, 15), dt.date(2024, 2, 29)]})
    line = history_outside_lookback(cfg, lake, run_date)
    assert line.startswith("2 landing days of orders and events (2023-12-01..2024-01-15) are older than features.lookback_days (30)")
    assert history_outside_lookback(cfg, FakeLake({"orders": [dt.date(2024, 2, 20)]}), run_date) is None
