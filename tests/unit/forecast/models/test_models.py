"""The sales panel, the classic baselines and the quantile net's windows on hand-made series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
import torch

from shoplake import columns as C
from shoplake.forecast.models.baselines import BASELINES, adida, auto_theta, ets, moving_average, seasonal_naive
from shoplake.forecast.models.panel import Forecast, SalesPanel
from shoplake.forecast.models.quantile_net import QuantileNet, QuantileNetForecaster, QuantileNetTask, quantile_loss
from shoplake.forecast.models.windows import ENCODER_STATS, NetSettings, PanelFrame, window_features
from shoplake.forecast.schemas import ITEM_DAILY_SALES

MONDAY = dt.date(2024, 1, 1)
#: Every baseline as a test parameter; AutoARIMA's stepwise search takes seconds even on these series.
EVERY_BASELINE = [
    pytest.param(model, id=name, marks=pytest.mark.slow) if name == "auto_arima" else pytest.param(model, id=name)
    for name, model in BASELINES.items()
]


def sales_rows(rows: list[tuple]) -> pa.Table:
    """Rows of (item, day offset, units, price, promo, stock_out) as an item_daily_sales partition."""
    run_date = MONDAY + dt.timedelta(days=10)
    data = {c: [] for c in ITEM_DAILY_SALES.column_names}
    for item, offset, units, price, promo, stock_out in rows:
        day = MONDAY + dt.timedelta(days=offset)
        values = {
            C.ITEM_ID: item, C.SALE_DATE: day, C.UNITS: units, C.REVENUE: units * (price or 0.0), C.AVG_PRICE: price,
            C.ON_PROMOTION: promo, C.STOCK_OUT: stock_out, C.DAY_OF_WEEK: day.isoweekday(), C.DAY_OF_MONTH: day.day,
            C.WEEK_OF_YEAR: day.isocalendar()[1], C.MONTH: day.month, C.IS_WEEKEND: day.isoweekday() >= 6,
            C.DAYS_SINCE_FIRST_SALE: 0, C.RUN_DATE: run_date,
        }  # fmt: skip
        for c in data:
            data[c].append(values[c])
    return pa.Table.from_pydict(data, schema=ITEM_DAILY_SALES.arrow_schema())


def panel_of(units: np.ndarray, start: dt.date = MONDAY) -> SalesPanel:
    """A panel of units only (price 1, no promotion, stock unknown), NaN kept before first sales."""
    units = np.atleast_2d(np.asarray(units, dtype=float))
    n, t = units.shape
    price = np.where(np.isnan(units), np.nan, 1.0)
    return SalesPanel([f"i{k:02d}" for k in range(n)], start, units, units * 1.0, price, np.zeros((n, t), bool), np.full((n, t), np.nan))


# ---------------------------------------------------------------------------
# SalesPanel


def test_from_arrow_builds_sorted_items_with_nan_before_the_first_sale():
    table = sales_rows([
        ("b", 2, 3, 2.0, False, None), ("b", 3, 0, None, True, True), ("b", 4, 1, 2.0, False, False),
        ("a", 0, 5, 1.0, False, False), ("a", 1, 0, 1.0, False, None), ("a", 2, 2, 1.5, True, False),
        ("a", 3, 4, 1.0, False, False), ("a", 4, 0, 1.0, False, True),
    ])  # fmt: skip
    panel = SalesPanel.from_arrow(table)

    assert list(panel.item_ids) == ["a", "b"]
    assert panel.start == MONDAY and panel.n_periods == 5 and panel.end == MONDAY + dt.timedelta(days=5)
    np.testing.assert_array_equal(panel.dates, np.arange("2024-01-01", "2024-01-06", dtype="datetime64[D]"))
    np.testing.assert_array_equal(panel.units, [[5, 0, 2, 4, 0], [np.nan, np.nan, 3, 0, 1]])
    np.testing.assert_array_equal(panel.revenue, [[5, 0, 3, 4, 0], [np.nan, np.nan, 6, 0, 2]])
    np.testing.assert_array_equal(panel.price, [[1, 1, 1.5, 1, 1], [np.nan, np.nan, 2, np.nan, 2]])
    np.testing.assert_array_equal(panel.promo, [[0, 0, 1, 0, 0], [0, 0, 0, 1, 0]])
    np.testing.assert_array_equal(panel.stock_out, [[0, np.nan, 0, 0, 1], [np.nan, np.nan, np.nan, 1, 0]])
    np.testing.assert_array_equal(panel.first_sale, [0, 2])
    np.testing.assert_array_equal(panel.observed_periods, [5, 3])


def test_from_arrow_refuses_repeated_days_and_several_run_dates():
    rows = [("a", 0, 1, 1.0, False, None), ("a", 0, 2, 1.0, False, None)]
    with pytest.raises(ValueError, match="repeat"):
        SalesPanel.from_arrow(sales_rows(rows))
    table = sales_rows([("a", 0, 1, 1.0, False, None), ("a", 1, 2, 1.0, False, None)])
    table = table.set_column(table.schema.get_field_index(C.RUN_DATE), C.RUN_DATE, pa.array([MONDAY, MONDAY + dt.timedelta(days=1)]))
    with pytest.raises(ValueError, match="several run dates"):
        SalesPanel.from_arrow(table)
    with pytest.raises(ValueError, match="lack the column"):
        SalesPanel.from_arrow(pa.table({C.ITEM_ID: ["a"]}))


def test_until_drops_the_cut_off_day_and_after_so_forecasts_cannot_leak():
    units = np.tile([3.0, 5, 7, 9, 4, 1, 0], (3, 6))
    units[2, :30] = np.nan  # first sold on the cut-off: nothing to see before it
    full = panel_of(units)
    cut = MONDAY + dt.timedelta(days=30)
    past = full.until(cut)

    assert past.n_periods == 30 and past.end == cut and list(past.item_ids) == list(full.item_ids)
    np.testing.assert_array_equal(past.units, full.units[:, :30])
    assert past.observed_periods[2] == 0
    assert full.until(MONDAY - dt.timedelta(days=3)).n_periods == 0 and full.until("2030-01-01").n_periods == full.n_periods

    changed = panel_of(np.where(np.arange(units.shape[1]) >= 30, 1000.0, units))
    for model in BASELINES.values():
        a, b = model(past, 14), model(changed.until(cut), 14)
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.quantiles, b.quantiles)
        assert a.start == cut
        np.testing.assert_array_equal(a.mean[2], 0.0)  # never sold before the cut-off


def test_select_by_mask_and_indices():
    panel = panel_of(np.arange(12.0).reshape(3, 4))
    assert list(panel.select([2, 0]).item_ids) == ["i02", "i00"]
    np.testing.assert_array_equal(panel.select(np.array([False, True, False])).units, [[4, 5, 6, 7]])


# ---------------------------------------------------------------------------
# Baselines


def test_seasonal_naive_repeats_the_last_week():
    rng = np.random.default_rng(0)
    units = rng.poisson(5, size=(4, 30)).astype(float)
    forecast = seasonal_naive(panel_of(units), 17)
    last_week = units[:, -7:]
    np.testing.assert_array_equal(forecast.mean, last_week[:, np.arange(17) % 7])
    assert forecast.start == MONDAY + dt.timedelta(days=30) and forecast.horizon == 17


def test_moving_average_is_the_mean_of_the_window():
    units = np.array([[1.0, 2, 3, 4, 5, 6], [np.nan, np.nan, np.nan, np.nan, 2, 6]])
    forecast = moving_average(panel_of(units), 5, window=3)
    np.testing.assert_allclose(forecast.mean, [[5.0] * 5, [4.0] * 5])  # (4+5+6)/3; the second only has 2 days


def test_ets_forecasts_a_pure_weekly_pattern():
    pattern = np.array([10.0, 14, 18, 15, 12, 4, 2])
    units = np.tile(pattern, (2, 12))
    units[1] = units[1] * 3 + 5
    forecast = ets(panel_of(units), 28)
    np.testing.assert_allclose(forecast.mean[0], np.tile(pattern, 4), atol=0.1)
    np.testing.assert_allclose(forecast.mean[1], np.tile(pattern * 3 + 5, 4), atol=0.1)


def test_ets_follows_a_weekly_pattern_through_noise_and_a_level_shift():
    rng = np.random.default_rng(3)
    pattern = np.array([10.0, 14, 18, 15, 12, 4, 2])
    level = np.where(np.arange(84) < 56, 0.0, 6.0)
    units = np.tile(pattern, 12) + level + rng.normal(0, 1, 84)
    forecast = ets(panel_of(units), 14)
    assert np.abs(forecast.mean[0] - (np.tile(pattern, 2) + 6)).mean() < 1.5


def test_theta_follows_a_weekly_pattern():
    pattern = np.array([10.0, 14, 18, 15, 12, 4, 2])
    units = np.tile(pattern, 12) + np.random.default_rng(5).normal(0, 0.5, 84)
    forecast = auto_theta(panel_of(units), 14)
    assert np.abs(forecast.mean[0] - np.tile(pattern, 2)).mean() < 1.5


def test_adida_gives_an_intermittent_item_a_flat_rate_and_a_lapsed_one_almost_none():
    units = np.zeros((2, 90))
    units[0, ::9] = 4.0  # 4 units every ninth day: about 0.44 a day
    units[1, 0] = 3.0  # one sale, then nothing for 89 days
    forecast = adida(panel_of(units), 10)
    assert np.ptp(forecast.mean[0]) == pytest.approx(0.0) and 0.3 < forecast.mean[0, 0] < 0.6
    assert (forecast.p90 >= forecast.p50).all() and forecast.p90[0, 0] >= 1
    assert forecast.mean[1, 0] < 0.05


def test_the_interval_of_a_noisy_item_is_wider_than_that_of_a_steady_one():
    rng = np.random.default_rng(6)
    units = np.vstack([np.full(70, 5.0) + rng.normal(0, 0.1, 70), 5.0 + rng.normal(0, 3, 70)]).clip(0)
    for model in (seasonal_naive, ets, auto_theta):
        forecast = model(panel_of(units), 7)
        width = (forecast.p90 - forecast.p10).mean(axis=1)
        assert width[1] > 3 * width[0], model.__name__


@pytest.mark.parametrize("model", EVERY_BASELINE)
def test_quantiles_are_ordered_and_non_negative(model):
    rng = np.random.default_rng(2)
    units = rng.poisson(rng.uniform(0.1, 20, (20, 1)), size=(20, 120)).astype(float)
    units[:5, :60] = np.nan
    forecast = model(panel_of(units), 28)
    for part in (forecast.mean, forecast.p10, forecast.p50, forecast.p90):
        assert part.shape == (20, 28) and np.isfinite(part).all() and (part >= 0).all()
    assert (forecast.p10 <= forecast.p50).all() and (forecast.p50 <= forecast.p90).all()
    assert (forecast.p90 > forecast.p10).mean() > 0.9  # not degenerate


@pytest.mark.parametrize("model", EVERY_BASELINE)
def test_short_histories_do_not_crash(model):
    units = np.full((5, 20), np.nan)
    units[0, -1:] = 4.0  # one day
    units[1, -3:] = [1.0, 0.0, 2.0]
    units[2, -10:] = np.arange(10.0)
    units[3] = 3.0  # constant
    # item 4 never sold
    forecast = model(panel_of(units), 14)
    assert np.isfinite(forecast.quantiles).all() and (forecast.p10 <= forecast.p90).all()
    np.testing.assert_array_equal(forecast.quantiles[4], 0.0)
    np.testing.assert_array_equal(forecast.mean[4], 0.0)
    assert forecast.mean[0].mean() == pytest.approx(4.0)
    # A panel of no days at all forecasts zeros.
    empty = model(panel_of(units).until(MONDAY), 3)
    assert empty.mean.shape == (5, 3) and (empty.mean == 0).all()


def test_forecast_build_clips_and_sorts():
    forecast = Forecast.build(["a"], MONDAY, np.array([[-1.0, 2.0]]), np.array([[[3.0, 1.0, 2.0], [-2.0, 5.0, 4.0]]]))
    np.testing.assert_array_equal(forecast.mean, [[0.0, 2.0]])
    np.testing.assert_array_equal(forecast.quantiles, [[[1, 2, 3], [0, 4, 5]]])


# ---------------------------------------------------------------------------
# Quantile net windows


SETTINGS = NetSettings(horizon=3, history=7, hidden=16, layers=1, dropout=0.0)


def hand_panel() -> SalesPanel:
    """One item first sold on day 5 with units = day number, price 2 then 3 from day 18, promo on day 19."""
    units = np.arange(40.0)
    units[:5] = np.nan
    panel = panel_of(units)
    panel.price[0, 18:] = 3.0
    panel.price[0, 5:18] = 2.0
    panel.promo[0, 19] = True
    panel.stock_out[0, 15:20] = [1, 0, np.nan, 1, 0]
    return panel


def test_window_features_match_hand_computed_values():
    frame = PanelFrame(hand_panel(), SETTINGS)
    win = window_features(frame, np.array([0]), np.array([20]), with_targets=True)
    scale = np.mean(np.arange(13.0, 20)) + 1  # 17
    assert win.scale[0] == pytest.approx(scale)
    np.testing.assert_allclose(win.lags[0], np.arange(13.0, 20) / scale, rtol=1e-6)
    np.testing.assert_allclose(win.target[0], np.arange(20.0, 23) / scale, rtol=1e-6)
    assert win.encoder.shape == (1, SETTINGS.encoder_dim) == (1, 7 + len(ENCODER_STATS))
    expect = {
        "mean_short": 16 / scale,
        "std_short": np.std(np.arange(13.0, 20)) / scale,
        "mean_long": np.mean(np.arange(5.0, 20)) / scale,  # 15 observed days of the 28
        "zero_share_long": 0.0,
        "observed_share_long": 15 / 28,
        "log_scale": np.log(scale),
        "price_ratio": 3.0 / np.mean([2.0] * 5 + [3.0] * 2) - 1,
        "promo_last": 1.0,
        "promo_share": 1 / 7,
        "stock_out_share": 2 / 7,
        "age": 15 / 365,
    }
    for name, value in expect.items():
        assert win.stat(name)[0] == pytest.approx(value, rel=1e-5), name
    # 2024-01-21 is a Sunday; the next two days are Monday and Tuesday.
    dec = win.decoder[0]
    np.testing.assert_array_equal(dec[:, :7].argmax(axis=1), [6, 0, 1])
    np.testing.assert_allclose(dec[:, 7], np.array([20, 21, 22]) / 30)
    # Same weekday a week before each forecast day (days 13, 14, 15) and the mean with the
    # weeks before that were observed (days 6, 7, 8; days -1 .. 1 are before the first sale).
    np.testing.assert_allclose(dec[:, 10], np.array([13, 14, 15]) / scale, rtol=1e-6)
    np.testing.assert_allclose(dec[:, 11], np.array([9.5, 10.5, 11.5]) / scale, rtol=1e-6)
    np.testing.assert_array_equal(dec[:, 12:], np.eye(3))


def test_window_inputs_never_see_the_targets():
    panel = hand_panel()
    frame = PanelFrame(panel, SETTINGS)
    before = window_features(frame, np.array([0, 0]), np.array([20, 6]))
    panel.units[0, 20:] = 1e6
    panel.price[0, 20:] = 1e6
    panel.promo[0, 20:] = True
    after = window_features(PanelFrame(panel, SETTINGS), np.array([0, 0]), np.array([20, 6]))
    np.testing.assert_array_equal(before.encoder, after.encoder)
    np.testing.assert_array_equal(before.decoder, after.decoder)
    np.testing.assert_array_equal(before.scale, after.scale)


def test_training_windows_and_targets_stay_inside_the_panel():
    panel = hand_panel()
    task = QuantileNetTask(panel, SETTINGS, windows_per_epoch=1000, batch_size=8)
    items, origins = task.candidates
    np.testing.assert_array_equal(origins, np.arange(6, 40))  # one day after the first sale .. the last day
    batches = [list(task.batches(0, rank, 2)) for rank in (0, 1)]
    assert len(batches[0]) == len(batches[1]) == 3  # 34 windows: 17 per rank
    target = torch.cat([b["target"] for b in batches[0] + batches[1]])
    assert torch.isnan(target).sum() == 3  # origin 38 misses 1 day, origin 39 misses 2 (beyond the panel)


def test_quantile_loss_by_hand():
    output = torch.zeros(1, 2, 4)
    target = torch.tensor([[1.0, float("nan")]])
    # Pinball at 0.1 + 0.5 + 0.9 of an under-forecast by 1, plus the squared error 1; the NaN day is left out.
    assert float(quantile_loss(output, target)) == pytest.approx(1.5 + 1.0)
    assert float(quantile_loss(output, target, mean_weight=0.0)) == pytest.approx(1.5)
    assert float(quantile_loss(output, target * 5, target_clip=2.0)) == pytest.approx(7.5 + 4.0)
    output = torch.full((1, 2, 4), 2.0)  # over-forecast by 1
    assert float(quantile_loss(output, target)) == pytest.approx(0.9 + 0.5 + 0.1 + 1.0)


def test_untrained_forecaster_is_well_formed_and_round_trips(tmp_path):
    torch.manual_seed(0)
    panel = panel_of(np.vstack([hand_panel().units, np.full(40, np.nan)]))
    forecaster = QuantileNetForecaster(SETTINGS, QuantileNet(SETTINGS))
    forecast = forecaster.forecast(panel)
    assert forecast.mean.shape == (2, 3) and forecast.start == panel.end
    assert (forecast.p10 <= forecast.p50).all() and (forecast.p50 <= forecast.p90).all() and (forecast.p10 >= 0).all()
    np.testing.assert_array_equal(forecast.quantiles[1], 0.0)  # never sold
    assert forecaster.forecast(panel, 2).horizon == 2
    with pytest.raises(ValueError, match="horizon"):
        forecaster.forecast(panel, 4)
    loaded = QuantileNetForecaster.load(forecaster.save(tmp_path / "model"))
    assert loaded.settings == SETTINGS
    again = loaded.forecast(panel)
    np.testing.assert_array_equal(again.mean, forecast.mean)
    np.testing.assert_array_equal(again.quantiles, forecast.quantiles)


def test_training_without_any_window_is_refused_before_ray_starts(make_cfg):
    with pytest.raises(ValueError, match="no training windows"):
        QuantileNetForecaster.train(make_cfg(), panel_of(np.full((2, 10), np.nan)), "quantile-net-empty")


def test_count_quantiles_widen_with_the_items_own_variance():
    from shoplake.forecast.models.baselines import count_quantiles

    point = np.full((2, 3), 4.0)
    q = count_quantiles(point, np.array([2.0, 40.0]))  # under-dispersed: Poisson; over-dispersed: negative binomial
    np.testing.assert_array_equal(q[0], [[2.0, 4.0, 7.0]] * 3)  # the deciles and median of Poisson(4)
    assert (q[1, :, 2] - q[1, :, 0] > q[0, :, 2] - q[0, :, 0]).all()
    assert (q[1, :, 0] <= q[1, :, 1]).all() and (q[1, :, 1] <= q[1, :, 2]).all()


# ---------------------------------------------------------------------------
# Grains and targets


def test_the_season_follows_the_grain():
    months = np.arange(30.0)[None, :] % 12 * 10 + 5  # a yearly shape of months
    panel = SalesPanel(["a"], dt.date(2021, 1, 1), months, months, np.ones_like(months), np.zeros_like(months, bool),
                       np.full_like(months, np.nan), grain="month")  # fmt: skip
    forecast = seasonal_naive(panel, 14)
    np.testing.assert_array_equal(forecast.mean[0], months[0, -12:][np.arange(14) % 12])  # the last twelve months repeated
    assert forecast.start == dt.date(2023, 7, 1) and forecast.grain == "month"
    assert str(forecast.dates[1]) == "2023-08-01"


def test_weekly_models_fit_a_year_of_weeks_without_a_season():
    rng = np.random.default_rng(4)
    units = rng.poisson(40, size=(3, 53)).astype(float)
    weeks = SalesPanel([f"i{k}" for k in range(3)], MONDAY, units, units, np.ones_like(units), np.zeros_like(units, bool),
                       np.full_like(units, np.nan), grain="week")  # fmt: skip
    for model in (ets, auto_theta):
        forecast = model(weeks, 8)
        assert forecast.start == MONDAY + dt.timedelta(weeks=53) and forecast.grain == "week"
        # Less than two years: no week-of-year shape is estimated, a level near the mean of 40.
        assert np.all(np.abs(forecast.mean - 40) < 8), model.__name__
    # Seasonal naive needs one year only: the same weeks of last year.
    np.testing.assert_array_equal(seasonal_naive(weeks, 8).mean, units[:, 1:9])


def test_intermittent_models_and_a_non_integer_target():
    from shoplake.forecast.models.baselines import croston, imapa

    units = np.zeros((1, 90))
    units[0, ::9] = 4.0
    for model in (croston, imapa):
        forecast = model(panel_of(units), 10)
        assert np.ptp(forecast.mean[0]) == pytest.approx(0.0) and 0.3 < forecast.mean[0, 0] < 0.6, model.__name__
    # Revenue of 0.37 a unit: a gamma band around the mean, not whole numbers.
    revenue = panel_of(units).with_target("revenue")
    revenue.revenue[:] = revenue.units * 0.37
    forecast = moving_average(revenue, 5, window=27)
    assert forecast.mean[0, 0] == pytest.approx(3 * 4 * 0.37 / 27)
    assert forecast.p10[0, 0] < forecast.mean[0, 0] < forecast.p90[0, 0]
    assert forecast.p90[0, 0] != round(forecast.p90[0, 0])
