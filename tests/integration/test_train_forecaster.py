"""The global quantile forecaster trained with Ray Train on two workers: loss goes down, it forecasts well, it reloads."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from shoplake.forecast.metrics import coverage, pinball, rmsse
from shoplake.forecast.models.baselines import moving_average, seasonal_naive
from shoplake.forecast.models.panel import SalesPanel
from shoplake.forecast.models.quantile_net import SETTINGS_FILE, QuantileNet, QuantileNetForecaster
from shoplake.forecast.schemas import QUANTILES

HORIZON = 14
SETTINGS = (
    f"forecasting.horizon_days={HORIZON}",
    "forecasting.history_days=14",
    "forecasting.hidden=32",
    "forecasting.dropout=0",
    "forecasting.epochs=8",
    "forecasting.windows_per_epoch=3000",
    "forecasting.batch_size=64",  # per worker: 128 a step
    "forecasting.lr=0.005",
)
#: Weekly shapes: busy weekdays and closed weekends, busy weekends, flat.
PROFILES = np.array([[1.4, 1.4, 1.4, 1.4, 1.4, 0.0, 0.0], [0.5, 0.5, 0.5, 1.0, 1.0, 2.25, 2.25], [1.0] * 7])


def weekly_panel(items: int = 30, days: int = 120, seed: int = 0) -> tuple[SalesPanel, np.ndarray]:
    """Poisson sales around one of three weekly shapes at levels 3..40, items starting in the first month.

    Returns:
        The panel (starting on a Monday) and the expected units of each item and day.
    """
    rng = np.random.default_rng(seed)
    level = np.exp(rng.uniform(np.log(3), np.log(40), items))
    expected = level[:, None] * PROFILES[np.arange(items) % 3][:, np.arange(days) % 7]
    units = rng.poisson(expected).astype(float)
    units[np.arange(days)[None, :] < rng.integers(0, 30, items)[:, None]] = np.nan
    price = np.where(np.isnan(units), np.nan, 2.0)
    panel = SalesPanel(
        [f"item-{k:02d}" for k in range(items)], dt.date(2024, 1, 1), units, units * 2.0, price,
        np.zeros((items, days), bool), np.full((items, days), np.nan),
    )  # fmt: skip
    return panel, expected


def test_quantile_net_learns_weekly_shapes_on_two_workers(ray_local, make_cfg, tmp_path):
    cfg = make_cfg(*SETTINGS)
    panel, expected = weekly_panel()
    cut_off = panel.end - dt.timedelta(days=HORIZON)
    history, actual = panel.until(cut_off), panel.units[:, -HORIZON:]

    forecaster = QuantileNetForecaster.train(cfg, history, "quantile-net")
    result = forecaster.fit_result
    assert [h["epoch"] for h in result.history] == list(range(8))
    assert all(len(h["nodes"]) == cfg.ray.num_workers == 2 for h in result.history)
    assert result.losses[-1] < 0.7 * result.losses[0], result.losses
    assert json.loads((Path(result.checkpoint_path) / SETTINGS_FILE).read_text())["horizon"] == HORIZON

    forecast = forecaster.forecast(history, HORIZON)
    assert forecast.start == cut_off and forecast.mean.shape == (30, HORIZON)
    assert (forecast.p10 <= forecast.p50).all() and (forecast.p50 <= forecast.p90).all() and (forecast.p10 >= 0).all()
    # Seasonal naive repeats last week's noise, a moving average misses the weekly shape:
    # the global model should beat both clearly (measured over data seeds 0-3: 0.48-0.52 against
    # 0.60-0.66 and 0.76-0.80; knowing the expected units gives 0.44-0.46).
    net = np.nanmean(rmsse(actual, forecast.mean, history.units))
    naive = np.nanmean(rmsse(actual, seasonal_naive(history, HORIZON).mean, history.units))
    flat = np.nanmean(rmsse(actual, moving_average(history, HORIZON).mean, history.units))
    best = np.nanmean(rmsse(actual, expected[:, -HORIZON:], history.units))
    assert net < 0.95 * naive and net < 0.85 * flat, (net, naive, flat, best)
    assert 0.5 <= coverage(actual, forecast.p10, forecast.p90) <= 0.97
    # The quantiles' pinball loss on the held-out days, against the same network untrained.
    untrained = QuantileNetForecaster(forecaster.settings, QuantileNet(forecaster.settings)).forecast(history, HORIZON)

    def mean_pinball(f) -> float:
        return float(np.mean([pinball(actual, values, q) for values, q in zip((f.p10, f.p50, f.p90), QUANTILES)]))

    assert mean_pinball(forecast) < 0.8 * mean_pinball(untrained), (mean_pinball(forecast), mean_pinball(untrained))

    loaded = QuantileNetForecaster.load(forecaster.save(tmp_path / "model"))
    again = loaded.forecast(history, HORIZON)
    np.testing.assert_array_equal(again.mean, forecast.mean)
    np.testing.assert_array_equal(again.quantiles, forecast.quantiles)
    # The training checkpoint holds all it takes to serve, too.
    from_checkpoint = QuantileNetForecaster.load(result.checkpoint_path).forecast(history, HORIZON)
    np.testing.assert_array_equal(from_checkpoint.mean, forecast.mean)


def test_gbdt_trains_on_two_workers_lowers_its_loss_and_forecasts_the_weekly_shape(ray_local, make_cfg, tmp_path):
    from shoplake.forecast.models.gbdt import GBDTForecaster

    cfg = make_cfg(*SETTINGS, "forecasting.gbdt_rounds=40", "forecasting.gbdt_windows=1500", "forecasting.gbdt_eta=0.2")
    panel, expected = weekly_panel()
    cut_off = panel.end - dt.timedelta(days=HORIZON)
    history, actual = panel.until(cut_off), panel.units[:, -HORIZON:]

    model = GBDTForecaster.train(cfg, history, "gbdt-forecaster")
    assert model.info["world_size"] == cfg.ray.num_workers == 2
    assert len(model.history) == 40 and model.info["rows"] > 1500  # up to 14 leads per window
    losses = [h["rmse"] for h in model.history]
    assert losses[-1] < 0.6 * losses[0], losses
    assert model.history[-1]["quantile"] < model.history[0]["quantile"]

    forecast = model.forecast(history, HORIZON)
    assert forecast.start == cut_off and forecast.mean.shape == (30, HORIZON)
    net = np.nanmean(rmsse(actual, forecast.mean, history.units))
    flat = np.nanmean(rmsse(actual, moving_average(history, HORIZON).mean, history.units))
    assert net < 0.85 * flat, (net, flat)  # it learnt the weekly shapes a flat average misses
    again = GBDTForecaster.load(model.save(tmp_path / "gbdt")).forecast(history, HORIZON)
    np.testing.assert_allclose(again.mean, forecast.mean)
