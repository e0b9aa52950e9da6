"""The classic forecasting baselines, from statsforecast, on a :class:`~shoplake.forecast.models.panel.SalesPanel`.

Each baseline is ``fn(panel, horizon, ...) -> Forecast`` and is fit per item on the
periods from its first sale to the panel's end (statsforecast, one process), at the
panel's grain with its season length (:func:`shoplake.forecast.grain.season_length`:
7 for days, 52 for weeks, 12 for months):

* :func:`seasonal_naive`: ``SeasonalNaive``, the last season repeated (an item with less than
  a season of history gets its mean).
* :func:`moving_average`: ``WindowAverage``, the mean of the last ``window`` periods, flat.
* :func:`ets`: ``AutoETS``, exponential smoothing with a season, the model
  (error, trend, season) chosen per item by AICc. statsforecast's ETS handles
  seasons of at most 24 periods, so at week grain (52) it is fit without one.
* :func:`auto_theta`: ``AutoTheta``, the theta method with a seasonal
  decomposition, the variant chosen per item.
* :func:`auto_arima`: ``AutoARIMA``, seasonal ARIMA chosen per item by a stepwise
  search: the slowest by far (not in the default models; measure it first).
* :func:`adida`, :func:`croston` and :func:`imapa`: intermittent demand, for items
  with many periods without a sale: ``ADIDA`` (aggregate-disaggregate),
  ``CrostonOptimized`` (sizes and intervals smoothed separately) and ``IMAPA``
  (ADIDA over several aggregation levels, averaged). ADIDA and IMAPA lower their
  forecast as the periods since the last sale grow; a Croston forecast of an item
  that sold once and never again stays at that one sale's size.

**Quantiles.** Where statsforecast gives prediction intervals (seasonal naive,
ETS, theta, ARIMA), P10 and P90 are the bounds of its 80 % interval and P50 the point
forecast. The moving average and the intermittent models give none; their
P10/P50/P90 are those of a distribution with the point forecast as mean and the
item's own variance over its last :data:`SPREAD_DAYS` periods: for counts, a
negative binomial where that variance exceeds the mean (sales usually are
over-dispersed), Poisson otherwise; for a non-integer target (revenue, weight), a
gamma. Everything is clipped at 0. The backtest then calibrates every model's band
(:mod:`shoplake.forecast.conformal`).

**Short histories.** An item with fewer observed periods than a model needs (a season
for seasonal naive, two for the other seasonal ones, the window for the moving average) is forecast the
mean of its observed periods, flat. At week grain a season is a year: ETS, theta and
ARIMA are fit from ten periods on, without a season where the history is short. An item without any observed period (first sold
on or after the cut-off) is forecast 0 with all quantiles 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from shoplake.forecast.grain import season_length
from shoplake.forecast.models.panel import Forecast, SalesPanel, nanmean
from shoplake.forecast.schemas import QUANTILES

#: The longest season statsforecast's ETS models (a longer one is fit without season).
ETS_MAX_SEASON = 24
#: Periods of an item's recent past whose variance sizes the distribution quantiles.
SPREAD_DAYS = 56
#: The prediction interval whose bounds are P10 and P90.
_LEVEL = round((QUANTILES[2] - QUANTILES[0]) * 100)


def _check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")


def count_quantiles(point: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """``[n, H, 3]`` P10/P50/P90 of counts with mean ``point`` (``[n, H]``) and per-item ``variance`` (``[n]``).

    Negative binomial with that mean and variance where the variance exceeds the mean,
    Poisson where it does not (or is unknown).
    """
    mean = np.maximum(point, 1e-9)[..., None]
    var = np.nan_to_num(np.asarray(variance, dtype=np.float64), nan=0.0)[:, None, None]
    over = var > mean
    size = np.where(over, mean**2 / np.where(over, var - mean, 1.0), 1.0)
    negbin = stats.nbinom.ppf(np.asarray(QUANTILES), size, size / (size + mean))
    return np.where(over, negbin, stats.poisson.ppf(np.asarray(QUANTILES), mean))


def gamma_quantiles(point: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """``[n, H, 3]`` P10/P50/P90 of a gamma with mean ``point`` (``[n, H]``) and per-item ``variance`` (``[n]``).

    For a non-integer target; an unknown or zero variance gives the point itself.
    """
    mean = np.maximum(point, 1e-9)[..., None]
    var = np.nan_to_num(np.asarray(variance, dtype=np.float64), nan=0.0)[:, None, None]
    shape = np.where(var > 0, mean**2 / np.where(var > 0, var, 1.0), np.inf)
    with np.errstate(all="ignore"):
        q = stats.gamma.ppf(
            np.asarray(QUANTILES), np.where(np.isinf(shape), 1.0, shape), scale=np.where(np.isinf(shape), 1.0, mean / shape)
        )
    return np.where(np.isinf(shape), np.broadcast_to(mean, q.shape), np.nan_to_num(q))


def spread_quantiles(panel: SalesPanel, point: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Quantiles around ``point`` from each item's variance: counts for a whole-number target, a gamma otherwise."""
    return count_quantiles(point, variance) if panel.integer else gamma_quantiles(point, variance)


def _recent_variance(units: np.ndarray, days: int = SPREAD_DAYS) -> np.ndarray:
    recent = units[:, -days:]
    known = (~np.isnan(recent)).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.where(known > 1, np.nanvar(recent, axis=1, ddof=1) if recent.shape[1] > 1 else np.nan, np.nan)


def _long_frame(units: np.ndarray) -> pd.DataFrame:
    """The observed days of ``units`` (``[n, T]``) in statsforecast's long format, one series per row index."""
    rows, cols = np.nonzero(~np.isnan(units))
    return pd.DataFrame({"unique_id": rows, "ds": cols, "y": units[rows, cols]})


def _statsforecast(panel: SalesPanel, horizon: int, model, min_days: int, intervals: bool) -> Forecast:
    """Fit ``model`` to every item with at least ``min_days`` observed periods and forecast ``horizon`` periods."""
    from statsforecast import StatsForecast

    _check_horizon(horizon)
    y, observed = panel.y, panel.observed_periods
    point = np.repeat(np.nan_to_num(nanmean(y, axis=1))[:, None], horizon, axis=1)
    variance = _recent_variance(y)
    quantiles = spread_quantiles(panel, point, variance)
    fit = np.flatnonzero(observed >= max(min_days, 1))
    if len(fit):
        frame = _long_frame(y[fit])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsforecast's notes on short or flat series
            out = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=frame, h=horizon, level=[_LEVEL] if intervals else None)
        out = out.sort_values(["unique_id", "ds"])
        alias = model.alias
        fitted = out[alias].to_numpy(dtype=np.float64).reshape(len(fit), horizon)
        known = np.isfinite(fitted).all(axis=1)
        rows = fit[known]
        point[rows] = np.clip(fitted[known], 0.0, None)
        if intervals:
            lo = out[f"{alias}-lo-{_LEVEL}"].to_numpy(dtype=np.float64).reshape(len(fit), horizon)[known]
            hi = out[f"{alias}-hi-{_LEVEL}"].to_numpy(dtype=np.float64).reshape(len(fit), horizon)[known]
            quantiles[rows] = np.stack([lo, point[rows], hi], axis=-1)
        else:
            quantiles[rows] = spread_quantiles(panel, point[rows], variance[rows])
    unseen = observed == 0
    point[unseen], quantiles[unseen] = 0.0, 0.0
    return Forecast.build(panel.item_ids, panel.end, point, quantiles, panel.grain)


def _season(panel: SalesPanel, season: int | None) -> int:
    return season_length(panel.grain) if season is None else season


#: Observed periods before ETS, theta or ARIMA is fit with a season too long to estimate
#: (52 weeks): statsforecast's ETS refuses fewer than its parameters plus four.
LONG_SEASON_MIN_PERIODS = 10


def _min_periods(season: int) -> int:
    """Observed periods before a seasonal model is fit: two seasons, or :data:`LONG_SEASON_MIN_PERIODS` for a long one.

    statsforecast fits ETS, theta and ARIMA without a season when a year of weeks is
    all there is, so a long season must not keep a young item on the flat mean.
    """
    return 2 * season if season <= ETS_MAX_SEASON else LONG_SEASON_MIN_PERIODS


def seasonal_naive(panel: SalesPanel, horizon: int, *, season: int | None = None) -> Forecast:
    """The last season repeated (statsforecast ``SeasonalNaive``); ``season`` defaults to the grain's."""
    from statsforecast.models import SeasonalNaive

    m = _season(panel, season)
    return _statsforecast(panel, horizon, SeasonalNaive(season_length=m), m, intervals=True)


def moving_average(panel: SalesPanel, horizon: int, *, window: int = 28) -> Forecast:
    """The mean of the last ``window`` periods, flat (statsforecast ``WindowAverage``)."""
    from statsforecast.models import WindowAverage

    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    return _statsforecast(panel, horizon, WindowAverage(window_size=window), window, intervals=False)


def ets(panel: SalesPanel, horizon: int, *, season: int | None = None) -> Forecast:
    """Exponential smoothing with the grain's season, chosen per item by AICc (statsforecast ``AutoETS``).

    A season longer than :data:`ETS_MAX_SEASON` (52 weeks) is more than statsforecast's
    ETS can hold: the model is fit without one.
    """
    from statsforecast.models import AutoETS

    m = _season(panel, season)
    fit_season = m if m <= ETS_MAX_SEASON else 1
    return _statsforecast(panel, horizon, AutoETS(season_length=fit_season), _min_periods(m), intervals=True)


def auto_theta(panel: SalesPanel, horizon: int, *, season: int | None = None) -> Forecast:
    """The theta method with a seasonal decomposition, chosen per item (statsforecast ``AutoTheta``)."""
    from statsforecast.models import AutoTheta

    m = _season(panel, season)
    return _statsforecast(panel, horizon, AutoTheta(season_length=m), _min_periods(m), intervals=True)


def auto_arima(panel: SalesPanel, horizon: int, *, season: int | None = None) -> Forecast:
    """Seasonal ARIMA chosen per item by a stepwise search (statsforecast ``AutoARIMA``); slow."""
    from statsforecast.models import AutoARIMA

    m = _season(panel, season)
    return _statsforecast(panel, horizon, AutoARIMA(season_length=m), _min_periods(m), intervals=True)


def adida(panel: SalesPanel, horizon: int) -> Forecast:
    """Intermittent demand by temporal aggregation (statsforecast ``ADIDA``)."""
    from statsforecast.models import ADIDA

    return _statsforecast(panel, horizon, ADIDA(), 2, intervals=False)


def croston(panel: SalesPanel, horizon: int) -> Forecast:
    """Croston's method with optimised smoothing of sizes and intervals (statsforecast ``CrostonOptimized``)."""
    from statsforecast.models import CrostonOptimized

    return _statsforecast(panel, horizon, CrostonOptimized(), 2, intervals=False)


def imapa(panel: SalesPanel, horizon: int) -> Forecast:
    """ADIDA over several aggregation levels, averaged (statsforecast ``IMAPA``)."""
    from statsforecast.models import IMAPA

    return _statsforecast(panel, horizon, IMAPA(), 2, intervals=False)


#: Every baseline by its name in ``forecasting.models``, in the order the backtest reports them.
BASELINES: dict[str, Callable[..., Forecast]] = {
    "seasonal_naive": seasonal_naive,
    "moving_average": moving_average,
    "ets": ets,
    "auto_theta": auto_theta,
    "auto_arima": auto_arima,
    "adida": adida,
    "croston": croston,
    "imapa": imapa,
}
