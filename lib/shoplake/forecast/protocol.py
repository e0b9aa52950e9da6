"""The forecasting protocol: which cut-offs are backtested, and how the champion is measured on them.

:func:`backtest_origins` gives the scored cut-offs (validation, then test, the last)
and :func:`calibration_origins` those before them that only calibrate the quantiles.
:func:`choose_champion` picks the model with the lowest mean WRMSSE over the
validation cut-offs (all but the last), baselines included, and compares it with the
next model of validation at the test cut-off through :func:`wrmsse_ratio`, the ratio
of their revenue-weighted RMSSE with a paired bootstrap interval over items.
:func:`pooled_interval` gives a model's mean WRMSSE over several cut-offs its interval.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

import numpy as np

from shoplake.config import Config
from shoplake.evaluation import Interval, best_other, bootstrap_mean, pick_champion, ratio_of_sums
from shoplake.forecast.bundle import BASELINES
from shoplake.forecast.grain import period_start, periods_between, shift
from shoplake.forecast.metrics import revenue_weights, rmsse
from shoplake.forecast.models.panel import SalesPanel

if TYPE_CHECKING:
    from shoplake.forecast.train import BacktestResult, CutoffForecast

log = logging.getLogger(__name__)

#: The metric the champion is chosen by (lower is better), reported with its interval.
CHAMPION_METRIC = "wrmsse"


def _history_periods(first_day: dt.date, origin: dt.date, grain: str) -> int:
    return periods_between(first_day, origin, grain)


def backtest_origins(cfg: Config, run_date: dt.date, first_sale_day: dt.date | None = None) -> list[dt.date]:
    """The scored cut-offs of the rolling-origin backtest of ``run_date``, oldest first.

    ``forecasting.backtest_origins`` cut-offs (first days of periods of the grain),
    ``backtest_spacing`` periods apart, the last one ``horizon`` periods before the
    period holding the run date. With ``first_sale_day`` (the first day of the
    panel), cut-offs with fewer than ``min_history`` periods of sales before them are
    left out: no item could be evaluated there.
    """
    fc = cfg.forecasting
    last = shift(period_start(run_date, fc.grain), -fc.horizon, fc.grain)
    origins = [shift(last, -fc.spacing * k, fc.grain) for k in range(fc.backtest_origins - 1, -1, -1)]
    if first_sale_day is None:
        return origins
    kept = [o for o in origins if _history_periods(first_sale_day, o, fc.grain) >= fc.min_history]
    if len(kept) < len(origins):
        log.warning(
            "backtest: %d of %d cut-offs left out: sales start on %s, and a cut-off needs %d %ss of history",
            len(origins) - len(kept), len(origins), first_sale_day, fc.min_history, fc.grain,
        )  # fmt: skip
    return kept


def calibration_origins(cfg: Config, origins: list[dt.date], first_sale_day: dt.date | None = None) -> list[dt.date]:
    """The calibration cut-offs: ``forecasting.calibration_origins`` of them, ``backtest_spacing`` apart, before ``origins[0]``.

    None without conformal calibration or scored cut-offs; those with fewer than
    ``min_history`` periods of sales before them are left out (with a warning).
    """
    fc = cfg.forecasting
    if not fc.conformal or not origins or fc.calibration_origins == 0:
        return []
    wanted = [shift(origins[0], -fc.spacing * k, fc.grain) for k in range(fc.calibration_origins, 0, -1)]
    if first_sale_day is None:
        return wanted
    kept = [o for o in wanted if _history_periods(first_sale_day, o, fc.grain) >= fc.min_history]
    if len(kept) < len(wanted):
        log.warning(
            "calibration: %d of %d calibration cut-offs left out (too little history before them); the first validation "
            "cut-off %s", len(wanted) - len(kept), len(wanted),
            "is calibrated on fewer residuals" if kept else "keeps its uncalibrated band",
        )  # fmt: skip
    return kept


def _item_errors(cfg: Config, panel: SalesPanel, cut: CutoffForecast) -> tuple[np.ndarray, np.ndarray]:
    """Per evaluated item of a cut-off: RMSSE of the forecast mean and the item's revenue weight."""
    history = panel.until(cut.cutoff).select(cut.evaluated)
    horizon = cfg.forecasting.horizon
    return rmsse(cut.actual, cut.forecast.mean, history.y), revenue_weights(history.revenue, horizon)


def wrmsse_ratio(cfg: Config, panel: SalesPanel, a: CutoffForecast, b: CutoffForecast) -> Interval:
    """WRMSSE of forecast ``a`` over forecast ``b`` at one cut-off, with a paired bootstrap interval over items.

    Below 1 ``a`` errs less. Both must be of the same cut-off and items.
    """
    if a.cutoff != b.cutoff or not np.array_equal(a.evaluated, b.evaluated):
        raise ValueError(f"forecasts of different cut-offs or items: {a.cutoff} vs {b.cutoff}")
    (err_a, weights), (err_b, _) = _item_errors(cfg, panel, a), _item_errors(cfg, panel, b)
    ev = cfg.evaluation
    return ratio_of_sums(err_a, err_b, weights, draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)


def pooled_interval(cfg: Config, panel: SalesPanel, result: BacktestResult, model: str, cutoffs: list[dt.date]) -> Interval:
    """The mean WRMSSE of ``model`` over ``cutoffs`` with a bootstrap interval over its (item, cut-off) pairs.

    Each cut-off's revenue weights are normalised to sum 1 over its items with a
    defined RMSSE, so the weighted mean of the pairs is the mean of the cut-offs'
    WRMSSE; resampling the pairs gives the interval of a split with several cut-offs.
    """
    values, weights = [], []
    for cutoff in cutoffs:
        cut = result.forecasts.get(model, {}).get(cutoff)
        if cut is None:
            continue
        err, w = _item_errors(cfg, panel, cut)
        keep = ~np.isnan(err) & ~np.isnan(w)
        if not keep.any() or w[keep].sum() <= 0:
            continue
        values.append(err[keep])
        weights.append(w[keep] / w[keep].sum())
    if not values:
        return Interval(float("nan"), float("nan"), float("nan"))
    ev = cfg.evaluation
    return bootstrap_mean(np.concatenate(values), np.concatenate(weights), draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)


def choose_champion(cfg: Config, panel: SalesPanel, result: BacktestResult, origins: list[dt.date]):
    """The champion (lowest mean WRMSSE over the validation cut-offs, all but the last) and its test comparison.

    Returns:
        ``(champion, (next model of validation, test WRMSSE ratio champion / it))``;
        with a single cut-off ``(forecasting.main_model, None)``.
    """
    validation = origins[:-1]
    scores = {model: result.mean(model, CHAMPION_METRIC, validation) for model in result.seconds} if validation else {}
    champion = pick_champion(scores, higher_is_better=False)
    if champion is None:
        log.warning("a single backtest cut-off (%s): no validation cut-off to measure the champion on; serving "
                    "forecasting.main_model %s", origins[-1], cfg.forecasting.main_model)  # fmt: skip
        return cfg.forecasting.main_model, None
    other = best_other(scores, champion, higher_is_better=False)
    if other is None or champion not in result.last or other not in result.last:
        return champion, None
    return champion, (other, wrmsse_ratio(cfg, panel, result.last[champion], result.last[other]))


def best_baseline(result: BacktestResult, origins: list[dt.date]) -> str | None:
    """The baseline with the lowest mean validation WRMSSE (the test cut-off when there is no validation)."""
    cutoffs = origins[:-1] or origins[-1:]
    return pick_champion({m: result.mean(m, CHAMPION_METRIC, cutoffs) for m in result.seconds if m in BASELINES}, higher_is_better=False)
