"""Forecaster bundles: grain, target, calibration and an ensemble's members survive a save and load."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake.forecast.bundle import ForecasterBundle, average_forecasts
from shoplake.forecast.conformal import BandCalibration, item_scale
from shoplake.forecast.models.baselines import moving_average, seasonal_naive
from shoplake.forecast.models.panel import SalesPanel


def weekly_panel() -> SalesPanel:
    rng = np.random.default_rng(0)
    units = rng.poisson(rng.uniform(2, 30, (6, 1)), size=(6, 40)).astype(float)
    units[0, :10] = np.nan
    ones = np.ones_like(units)
    return SalesPanel([f"i{k}" for k in range(6)], dt.date(2024, 1, 1), units, units * 2.5, ones * 2.5, np.zeros_like(units, bool),
                      ones * np.nan, grain="week")  # fmt: skip


def test_an_ensemble_averages_its_members_and_is_calibrated_after_a_round_trip(tmp_path):
    panel = weekly_panel()
    members = [ForecasterBundle("seasonal_naive", 4, grain="week"), ForecasterBundle("moving_average", 4, {"window": 8}, grain="week")]
    band = BandCalibration(low=-0.2, high=0.3, cells=100)
    bundle = ForecasterBundle("ensemble", 4, metadata={"run_date": "2024-10-07"}, members=members, grain="week", calibration=band)
    loaded = ForecasterBundle.load(bundle.save(tmp_path / "bundle"))
    assert (loaded.kind, loaded.grain, loaded.target, loaded.calibration) == ("ensemble", "week", "units", band)
    assert [m.kind for m in loaded.members] == ["seasonal_naive", "moving_average"] and loaded.members[1].params == {"window": 8}

    raw = loaded.raw_forecast(panel)
    expected = average_forecasts([seasonal_naive(panel, 4), moving_average(panel, 4, window=8)])
    np.testing.assert_allclose(raw.mean, (seasonal_naive(panel, 4).mean + moving_average(panel, 4, window=8).mean) / 2)
    np.testing.assert_allclose(raw.quantiles, expected.quantiles)
    served = loaded.forecast(panel)
    scale = item_scale(panel.y, 4)[:, None]
    np.testing.assert_allclose(served.p90, np.maximum(raw.p90 + 0.3 * scale, raw.p50))
    np.testing.assert_allclose(served.p10, np.clip(np.minimum(raw.p10 - 0.2 * scale, raw.p50), 0, None))
    np.testing.assert_array_equal(served.mean, raw.mean)
    assert served.start == dt.date(2024, 10, 7) and served.grain == "week"


def test_a_bundle_reads_its_own_grain_and_target_from_a_daily_panel():
    days = 63  # nine weeks from a Wednesday: eight whole weeks
    units = np.tile([1.0, 2, 3, 4, 5, 6, 7], (2, 9))
    ones = np.ones_like(units)
    daily = SalesPanel(["a", "b"], dt.date(2024, 1, 3), units, units * 0.5, ones * 0.5, np.zeros_like(units, bool), ones * np.nan)
    bundle = ForecasterBundle("moving_average", 2, {"window": 4}, grain="week", target="revenue")
    panel = bundle.prepare(daily)
    assert (panel.grain, panel.target, panel.n_periods, panel.start) == ("week", "revenue", days // 7 - 1, dt.date(2024, 1, 8))
    forecast = bundle.forecast(panel)
    np.testing.assert_allclose(forecast.mean, 14.0)  # 28 units a week at 0.5
    with pytest.raises(ValueError, match="a week forecaster cannot read a day panel"):
        bundle.forecast(daily)
    legacy = ForecasterBundle("ets", 7)
    assert (legacy.grain, legacy.target, legacy.calibration) == ("day", "units", None)
