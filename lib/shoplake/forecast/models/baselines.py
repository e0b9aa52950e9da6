"""The classic forecasting baselines, from statsforecast, on a :class:`~shoplake.forecast.models.panel.SalesPanel`.

Each baseline is ``fn(panel, horizon, ...) -> Forecast`` and is fit per item on the
days from its first sale to the panel's end (statsforecast, one process):

* :func:`seasonal_naive`: ``SeasonalNaive``, the last week repeated.
* :func:`moving_average`: ``WindowAverage``, the mean of the last ``window`` days, flat.
* :func:`ets`: ``AutoETS``, exponential smoothing with a weekly season, the model
  (error, trend, season) chosen per item by AICc.
* :func:`auto_theta`: ``AutoTheta``, the theta method with a weekly
  decomposition, the variant chosen per item.
* :func:`adida`: ``ADIDA`` (aggregate-disaggregate intermittent demand), for items
  with many days without a sale. Unlike Croston's method it lowers its forecast as
  the days since the last sale grow; a Croston forecast of an item that sold once
  and never again stays at that one sale's size.

**Quantiles.** Where statsforecast gives prediction intervals (seasonal naive,
ETS, theta), P10 and P90 are the bounds of its 80 % interval and P50 the point
forecast. The moving average and ADIDA give none; their P10/P50/P90 are those of a
count distribution with the point forecast as mean and the item's own day-to-day
variance over its last :data:`SPREAD_DAYS` days: negative binomial where that
variance exceeds the mean (sales usually are over-dispersed), Poisson otherwise.
Everything is clipped at 0.

**Short histories.** An item with fewer observed days than a model needs (two weeks
for the seasonal ones, the window for the moving average) is forecast the mean of
its observed days, flat. An item without any observed day (first sold on or after
the cut-off) is forecast 0 with all quantiles 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from shoplake.forecast.models.panel import Forecast, SalesPanel, nanmean
from shoplake.forecast.schemas import QUANTILES

#: Length of the weekly season, days.
SEASON = 7
#: Observed days an item needs before a seasonal model is fit to it.
SEASONAL_MIN_DAYS = 2 * SEASON
#: Days of an item's recent past whose variance sizes the count quantiles.
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
    """Fit ``model`` to every item with at least ``min_days`` observed days and forecast ``horizon`` days."""
    from statsforecast import StatsForecast

    _check_horizon(horizon)
    y, observed = panel.units, panel.observed_days
    point = np.repeat(np.nan_to_num(nanmean(y, axis=1))[:, None], horizon, axis=1)
    variance = _recent_variance(y)
    quantiles = count_quantiles(point, variance)
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
            quantiles[rows] = count_quantiles(point[rows], variance[rows])
    unseen = observed == 0
    point[unseen], quantiles[unseen] = 0.0, 0.0
    return Forecast.build(panel.item_ids, panel.end, point, quantiles)


def seasonal_naive(panel: SalesPanel, horizon: int, *, season: int = SEASON) -> Forecast:
    """The last ``season`` days repeated (statsforecast ``SeasonalNaive``)."""
    from statsforecast.models import SeasonalNaive

    return _statsforecast(panel, horizon, SeasonalNaive(season_length=season), 2 * season, intervals=True)


def moving_average(panel: SalesPanel, horizon: int, *, window: int = 28) -> Forecast:
    """The mean of the last ``window`` days, flat (statsforecast ``WindowAverage``)."""
    from statsforecast.models import WindowAverage

    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    return _statsforecast(panel, horizon, WindowAverage(window_size=window), window, intervals=False)


def ets(panel: SalesPanel, horizon: int, *, season: int = SEASON) -> Forecast:
    """Exponential smoothing with a weekly season, chosen per item by AICc (statsforecast ``AutoETS``)."""
    from statsforecast.models import AutoETS

    return _statsforecast(panel, horizon, AutoETS(season_length=season), 2 * season, intervals=True)


def auto_theta(panel: SalesPanel, horizon: int, *, season: int = SEASON) -> Forecast:
    """The theta method with a weekly decomposition, chosen per item (statsforecast ``AutoTheta``)."""
    from statsforecast.models import AutoTheta

    return _statsforecast(panel, horizon, AutoTheta(season_length=season), 2 * season, intervals=True)


def adida(panel: SalesPanel, horizon: int) -> Forecast:
    """Intermittent demand by temporal aggregation (statsforecast ``ADIDA``)."""
    from statsforecast.models import ADIDA

    return _statsforecast(panel, horizon, ADIDA(), 2, intervals=False)


#: Every baseline by its name in ``forecasting.models``, in the order the backtest reports them.
BASELINES: dict[str, Callable[..., Forecast]] = {
    "seasonal_naive": seasonal_naive,
    "moving_average": moving_average,
    "ets": ets,
    "auto_theta": auto_theta,
    "adida": adida,
}
