"""Periods of a grain: their first days, lengths, shifts and season lengths; the config's periods per grain."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake.config import ConfigError, load_config
from shoplake.forecast.grain import period_index, period_lengths, period_start, period_starts, periods_between, season_length, shift


def test_season_lengths_follow_the_grain():
    assert [season_length(g) for g in ("day", "week", "month")] == [7, 52, 12]
    with pytest.raises(ValueError, match="unknown grain 'year'"):
        season_length("year")


def test_period_start_is_the_day_the_monday_or_the_first_of_the_month():
    wednesday = dt.date(2024, 2, 28)
    assert period_start(wednesday, "day") == wednesday
    assert period_start(wednesday, "week") == dt.date(2024, 2, 26)
    assert period_start(wednesday, "month") == dt.date(2024, 2, 1)
    assert period_start(dt.date(2024, 3, 3), "week") == dt.date(2024, 2, 26)  # a Sunday ends its ISO week


def test_shift_and_periods_between_agree_across_years_and_leap_days():
    assert shift(dt.date(2023, 11, 1), 3, "month") == dt.date(2024, 2, 1)
    assert shift(dt.date(2024, 1, 1), -1, "month") == dt.date(2023, 12, 1)
    assert shift(dt.date(2024, 2, 26), 2, "week") == dt.date(2024, 3, 11)
    assert periods_between(dt.date(2023, 11, 15), dt.date(2024, 2, 2), "month") == 3
    assert periods_between(dt.date(2024, 2, 28), dt.date(2024, 3, 4), "week") == 1  # Wednesday to the next Monday
    assert periods_between(dt.date(2024, 2, 28), dt.date(2024, 3, 1), "day") == 2


def test_period_starts_and_lengths():
    np.testing.assert_array_equal(
        period_starts(dt.date(2024, 1, 1), 3, "month"), np.array(["2024-01-01", "2024-02-01", "2024-03-01"], "datetime64[D]")
    )
    np.testing.assert_array_equal(period_lengths(dt.date(2024, 1, 1), 3, "month"), [31, 29, 31])
    np.testing.assert_array_equal(period_lengths(dt.date(2024, 1, 1), 2, "week"), [7, 7])
    days = np.array(["2024-02-25", "2024-02-26", "2024-03-03", "2024-03-04"], "datetime64[D]")
    assert np.diff(period_index(days, "week")).tolist() == [1, 0, 1]
    assert np.diff(period_index(days, "month")).tolist() == [0, 1, 0]


def test_config_counts_periods_of_the_grain_and_reads_the_old_day_names_at_day():
    week = load_config("local", ["forecasting.grain=week"]).forecasting
    assert (week.horizon, week.history, week.min_history, week.moving_average_window, week.spacing) == (8, 26, 13, 8, 8)
    month = load_config("local", ["forecasting.grain=month", "forecasting.horizon=6", "forecasting.backtest_spacing=2"]).forecasting
    assert (month.horizon, month.spacing, month.history) == (6, 2, 12)
    day = load_config("local", ["forecasting.horizon_days=7", "forecasting.min_history_days=14"]).forecasting
    assert (day.horizon, day.min_history, day.history) == (7, 14, 28)
    with pytest.raises(ConfigError, match="horizon_days counts days; at grain week set horizon"):
        load_config("local", ["forecasting.grain=week", "forecasting.horizon_days=7"])
    with pytest.raises(ConfigError, match="set horizon or its old name horizon_days, not both"):
        load_config("local", ["forecasting.horizon=7", "forecasting.horizon_days=7"])
    with pytest.raises(ConfigError, match="ensemble_members must be models"):
        load_config("local", ["forecasting.models=[ets,ensemble]", "forecasting.ensemble_members=[ets,gbdt]"])
