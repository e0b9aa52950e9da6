"""The gradient-boosted forecaster's rows: one per (window, lead), the lead a feature, targets inside the panel only."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from shoplake.forecast.models.gbdt import GBDTForecaster, feature_names, gbdt_rows
from shoplake.forecast.models.panel import SalesPanel
from shoplake.forecast.models.windows import NetSettings, PanelFrame, window_features

SETTINGS = NetSettings(horizon=3, history=7, grain="day")


def panel(days: int = 40) -> SalesPanel:
    units = np.tile(np.arange(1.0, 8.0), (2, days // 7 + 1))[:, :days]
    units[1, :10] = np.nan
    ones = np.ones_like(units)
    return SalesPanel(["a", "b"], dt.date(2024, 1, 1), units, units, ones, np.zeros_like(units, bool), ones * np.nan)


def test_rows_repeat_the_window_per_lead_with_the_lead_and_its_calendar():
    frame = PanelFrame(panel(), SETTINGS)
    x, scale, y = gbdt_rows(frame, np.array([0, 1]), np.array([20, 38]), with_targets=True)
    names = feature_names(SETTINGS)
    assert x.shape == (2 * 3, len(names)) and names[0] == "lag_7" and names[6] == "lag_1" and names[-1] == "lead"
    np.testing.assert_array_equal(x[:, -1], [1, 2, 3, 1, 2, 3])
    win = window_features(frame, np.array([0, 1]), np.array([20, 38]), with_targets=True)
    np.testing.assert_array_equal(x[:3, : SETTINGS.encoder_dim], np.repeat(win.encoder[:1], 3, axis=0))
    np.testing.assert_array_equal(scale, np.repeat(win.scale, 3))
    # Origin 38 of a 40-day panel: the third lead lies beyond it, its target unknown.
    assert np.isnan(y[5]) and not np.isnan(y[:5]).any()
    np.testing.assert_allclose(y[:3] * scale[:3], [7.0, 1.0, 2.0])  # days 20, 21, 22 sell 7, 1, 2
    # Calendar: day 20 is Sunday 21 January 2024 (weekday one-hot index 6).
    calendar = x[:, SETTINGS.encoder_dim : SETTINGS.encoder_dim + SETTINGS.calendar_dim]
    assert calendar[0, :7].argmax() == 6 and calendar[1, :7].argmax() == 0


def test_a_forecaster_of_local_boosters_forecasts_and_round_trips(tmp_path):
    import xgboost

    p = panel()
    frame = PanelFrame(p, SETTINGS)
    items, origins = frame.candidates(1)
    x, _, y = gbdt_rows(frame, items, origins, with_targets=True)
    known = ~np.isnan(y)
    params = {"tree_method": "hist", "max_depth": 3, "nthread": 1, "seed": 0}
    mean = xgboost.train({**params, "objective": "reg:squarederror"}, xgboost.DMatrix(x[known], label=y[known]), 20)
    q = xgboost.train({**params, "objective": "reg:quantileerror", "quantile_alpha": [0.1, 0.5, 0.9]},
                      xgboost.DMatrix(x[known], label=y[known]), 20)  # fmt: skip
    model = GBDTForecaster(SETTINGS, mean, q, {"rows": int(known.sum())})
    forecast = model.forecast(p)
    assert forecast.mean.shape == (2, 3) and forecast.start == dt.date(2024, 2, 10) and forecast.grain == "day"
    assert (forecast.p10 <= forecast.p50).all() and (forecast.p50 <= forecast.p90).all()
    loaded = GBDTForecaster.load(model.save(tmp_path / "gbdt"))
    assert loaded.settings == SETTINGS and loaded.info == {"rows": int(known.sum())}
    np.testing.assert_allclose(loaded.forecast(p).mean, forecast.mean)
    assert model.forecast(p, 2).horizon == 2
    with pytest.raises(ValueError, match="horizon must lie in 1..3"):
        model.forecast(p, 4)
    with pytest.raises(ValueError, match="cannot read a panel of grain week"):
        model.forecast(p.to_grain("week"))
