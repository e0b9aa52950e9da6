"""The volume guards: a shrinking day and a day far outside the recent days stop ingest, naming the file and the counts."""

from __future__ import annotations

import datetime as dt

from shoplake.config import load_config
from shoplake.ingest.guard import DayVolume, stop_message, volume_problems

D = dt.date(2024, 3, 10)
SETTINGS = load_config("local").ingest
FILE = "landing/ad_events/2024-03-10.jsonl"


def _days(*rows: int) -> dict[dt.date, int]:
    """Rows of the days before D, the last one first."""
    return {D - dt.timedelta(days=i + 1): n for i, n in enumerate(rows)}


def _problems(rows: int, held: dict[dt.date, int], exempt: bool = False, settings=SETTINGS) -> list[str]:
    return volume_problems("bronze.ad_events", [DayVolume(D, rows, (FILE,))], held, settings, exempt)


def test_replacing_a_day_with_far_fewer_rows_names_the_file_and_both_counts():
    assert _problems(0, {D: 112}) == [
        f"{FILE}: 0 rows would replace the 112 rows bronze.ad_events holds for {D} (less than ingest.shrink_ratio=0.5 of them)"
    ]
    assert _problems(55, {D: 112})  # under half
    assert _problems(56, {D: 112}) == []  # half is enough
    assert _problems(0, {}) == []  # nothing held, too few recent days


def test_a_day_far_outside_the_median_of_the_recent_days_stops():
    held = _days(110, 112, 120, 100, 115)
    assert _problems(118, held) == []
    (problem,) = _problems(11_200, held)
    assert problem == (
        f"{FILE}: 11200 rows for {D}, far outside the recent days of bronze.ad_events "
        "(median 112 rows over 5 days with rows from 2024-03-05 to 2024-03-09; ingest.volume_factor=10)"
    )
    assert _problems(10, held)  # a tenth of the median is as far out as ten times it
    # A day without rows is a closed shop by the contract, unless the shop says it never closes.
    assert _problems(0, held) == []
    assert _problems(0, held, settings=load_config("local", ["ingest.volume_empty_days=stop"]).ingest)
    # Closed days are no measure of open ones.
    assert "median 115 rows over 3 days" in _problems(11_200, _days(0, 0, 0, 0, 110, 115, 120))[0]
    assert _problems(11_200, held, exempt=True) == []
    # A shrinking day is told as such, once.
    assert len(_problems(0, {**held, D: 112})) == 1 and "would replace" in _problems(0, {**held, D: 112})[0]


def test_sparse_sources_short_histories_and_old_days_are_not_judged():
    assert _problems(40, _days(2, 1, 3, 0, 2)) == []  # a day and a median under volume_min_rows
    assert _problems(500, _days(2, 1, 3, 0, 2))  # unless the day is not
    assert _problems(11_200, _days(112, 112)) == []  # two recent days: too few to judge
    old = {D - dt.timedelta(days=20 + i): 112 for i in range(5)}
    assert _problems(11_200, old) == []  # outside volume_days
    loose = load_config("local", ["ingest.volume_factor=200"]).ingest
    assert _problems(11_200, _days(110, 112, 120), settings=loose) == []


def test_the_days_of_the_run_count_as_recent_days():
    days = [DayVolume(D - dt.timedelta(days=i), n, (f"f{i}",)) for i, n in enumerate([5000, 100, 100, 100])]
    (problem,) = volume_problems("bronze.events", days, {}, SETTINGS)
    assert problem.startswith(f"f0: 5000 rows for {D}")


def test_the_stop_message_says_how_to_write_anyway():
    assert stop_message(["a: x"]) == "a: x; nothing was written; to write anyway, run with --allow-shrink or set ingest.allow_shrink=true"
    assert stop_message(["a: x", "b: y"]).splitlines()[1:] == ["  a: x", "  b: y"]
