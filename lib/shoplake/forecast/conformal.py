"""Conformal calibration of the forecast quantiles: P10 and P90 moved so that P10-P90 covers about 80 %.

A model's band is only as good as its assumptions: statsforecast's intervals assume
Gaussian errors of a smooth series, the count quantiles the item's own past
variance, the global models what their loss learnt. Split conformal prediction
corrects any of them with residuals on data the model did not see:

* For each earlier backtest cut-off (the calibration cut-offs before the first
  validation one, then the validation cut-offs; never the test one), the model's
  forecasts of the evaluated items are compared with what sold. Each cell (item,
  period) gives the scaled residuals of the two bounds::

      r_lo = (y - p10) / s_i        r_hi = (y - p90) / s_i

  where ``s_i`` is the item's level (:func:`item_scale`: its mean value over the last
  ``horizon`` periods before the cut-off, + 1 for counts), so that an item selling
  1,000 a day and one selling 1 a week share one correction.
* The shifts are the empirical quantiles ``d_lo = Q_0.1(r_lo)`` and
  ``d_hi = Q_0.9(r_hi)``: on the calibration cells, 10 % of the values lie below
  ``p10 + d_lo s_i`` and 10 % above ``p90 + d_hi s_i``. The lower shift takes the
  lower empirical quantile and the upper the higher one, which errs on the side of
  coverage (the finite-sample correction of split conformal).
* A forecast is calibrated by ``p10' = min(p10 + d_lo s_i, p50)`` and
  ``p90' = max(p90 + d_hi s_i, p50)``, clipped at 0; the mean and the median stay.

The shifts are one pair per model, pooled over the leads. The backtest calibrates
each cut-off with the residuals of the cut-offs whose forecast window ended before
it, so the validation and test coverage it reports are out of sample; the model
served carries the shifts of the test cut-off (fit without the test residuals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from shoplake.forecast.models.panel import Forecast
from shoplake.forecast.schemas import QUANTILES


def item_scale(history: np.ndarray, periods: int, integer: bool = True) -> np.ndarray:
    """Each item's level: the mean of its known values (clipped at 0) over the last ``periods`` periods, plus 1 for counts.

    For a non-integer target (revenue, weight) the ``+ 1`` would be arbitrary; it adds a
    hundredth of the median positive level instead, so an item without recent sales
    still gets a small width. Returns ``[n]`` (> 0).
    """
    history = np.asarray(history, dtype=np.float64)
    recent = np.maximum(history[:, -periods:], 0) if history.shape[1] else np.zeros((history.shape[0], 0))
    known = (~np.isnan(recent)).sum(axis=1)
    level = np.where(known > 0, np.nansum(recent, axis=1) / np.maximum(known, 1), 0.0)
    if integer:
        return level + 1.0
    positive = level[level > 0]
    return level + (0.01 * float(np.median(positive)) if positive.size else 1.0)


@dataclass(frozen=True)
class BandCalibration:
    """The shifts of P10 and P90, in units of each item's scale, and the cells they were fit on.

    Attributes:
        low: ``d_lo``: added to P10 (times the item's scale); negative widens the band.
        high: ``d_hi``: added to P90; positive widens the band.
        cells: Calibration cells (item, period) the shifts come from.
    """

    low: float
    high: float
    cells: int

    def apply(self, forecast: Forecast, scale: np.ndarray) -> Forecast:
        """``forecast`` with P10 and P90 moved by the shifts times ``scale`` (``[n]``, one per item row)."""
        s = np.asarray(scale, dtype=np.float64)[:, None]
        p10 = np.minimum(forecast.p10 + self.low * s, forecast.p50)
        p90 = np.maximum(forecast.p90 + self.high * s, forecast.p50)
        return Forecast.build(forecast.item_ids, forecast.start, forecast.mean, np.stack([p10, forecast.p50, p90], axis=-1), forecast.grain)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> BandCalibration | None:
        return None if not values else cls(float(values["low"]), float(values["high"]), int(values["cells"]))


def fit_calibration(
    actuals: Sequence[np.ndarray], p10s: Sequence[np.ndarray], p90s: Sequence[np.ndarray], scales: Sequence[np.ndarray]
) -> BandCalibration | None:
    """The shifts from the residuals of earlier cut-offs (see the module docstring); None without a known cell.

    Args:
        actuals: Per cut-off, ``[n, H]`` values that sold (NaN: not known, left out).
        p10s: Per cut-off, the uncalibrated ``[n, H]`` P10 of the same cells.
        p90s: Per cut-off, the uncalibrated P90.
        scales: Per cut-off, ``[n]`` item scales (:func:`item_scale` at that cut-off).
    """
    lo, hi = [], []
    for actual, p10, p90, scale in zip(actuals, p10s, p90s, scales, strict=True):
        actual = np.asarray(actual, dtype=np.float64)
        s = np.asarray(scale, dtype=np.float64)[:, None]
        known = ~np.isnan(actual)
        lo.append(((actual - p10) / s)[known])
        hi.append(((actual - p90) / s)[known])
    lo_all, hi_all = (np.concatenate(parts) if parts else np.zeros(0) for parts in (lo, hi))
    if lo_all.size == 0:
        return None
    low = float(np.quantile(lo_all, QUANTILES[0], method="lower"))
    high = float(np.quantile(hi_all, QUANTILES[-1], method="higher"))
    return BandCalibration(low, high, int(lo_all.size))
