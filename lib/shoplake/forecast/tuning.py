"""Settings of the global forecasters chosen on the validation cut-offs (Ray Tune with ASHA, :mod:`shoplake.train.tune`).

``forecasting.gbdt_search`` and ``forecasting.net_search`` name settings of
``forecasting`` with the values to try. A search sees the sales before the test
cut-off and nothing after (:func:`validation_cuts`): a trial fits, in one process,
at each validation cut-off of the backtest whose forecast window ends by the test
cut-off, on the sales before that cut-off, and reports the mean over those cut-offs
of the revenue-weighted RMSSE of its forecast means (the backtest's champion
metric) as it goes:

* gradient-boosted trees: every ``GBDT_ROUNDS_PER_STEP`` boosting rounds of the
  mean booster, up to ``forecasting.gbdt_rounds``; the rounds of the best step
  become ``gbdt_rounds`` (the quantile booster is grown with the same settings;
  WRMSSE reads the mean only);
* the network: after every epoch, up to ``forecasting.epochs``; the best epoch
  becomes ``epochs``.

The run then backtests and fits each model with its best trial's settings the usual
way (Ray Train). A searched model's validation figures are those of the settings
that did best on them, so they flatter it a little; test takes no part in the search.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from shoplake.config import Config
from shoplake.forecast.bundle import GBDT, GLOBAL_MODEL
from shoplake.forecast.metrics import revenue_weights, rmsse, weighted_mean
from shoplake.forecast.models.panel import SalesPanel
from shoplake.train.tune import SearchResult, search, with_settings

log = logging.getLogger(__name__)

SECTION = "forecasting"
#: Boosting rounds between two validation reports of a trees trial (one ASHA iteration).
GBDT_ROUNDS_PER_STEP = 25
#: What the trials report (lower is better).
METRIC = "WRMSSE"


@dataclass(frozen=True)
class ValidationCut:
    """One validation cut-off as a search trial sees it.

    Attributes:
        cutoff: The first forecast period's first day.
        history: The sales before the cut-off, every item.
        evaluated: Rows of the items scored there (``min_history`` periods of sales before it).
        actual: ``[n_evaluated, horizon]`` values of the forecast window.
    """

    cutoff: dt.date
    history: SalesPanel
    evaluated: np.ndarray
    actual: np.ndarray

    def wrmsse(self, mean: np.ndarray) -> float:
        """WRMSSE of the forecast means ``[n_evaluated, horizon]``, weighted as the backtest weighs them."""
        mean = np.clip(np.nan_to_num(np.asarray(mean, dtype=np.float64)), 0.0, None)
        history = self.history.select(self.evaluated)
        weights = revenue_weights(history.revenue, self.actual.shape[1])
        return weighted_mean(rmsse(self.actual, mean, history.y), weights)


def validation_cuts(cfg: Config, panel: SalesPanel, origins: list[dt.date]) -> list[ValidationCut]:
    """The cut-offs a search scores, each with the sales before it and the actual values of its window.

    They are the validation cut-offs (every scored cut-off but the last, the test
    one) whose forecast window ends by the test cut-off; the panel is cut at the
    test cut-off first, so nothing from it on reaches a trial. None with a single
    cut-off.
    """
    fc = cfg.forecasting
    if len(origins) < 2:
        return []
    known = panel.until(origins[-1])
    cuts = []
    for cutoff in origins[:-1]:
        k = known.column_of(cutoff)
        if k < 1 or k + fc.horizon > known.n_periods:
            log.warning("search: validation cut-off %s left out: its forecast window runs past the test cut-off %s", cutoff, origins[-1])
            continue
        history = known.until(cutoff)
        evaluated = np.flatnonzero(history.observed_periods >= fc.min_history)
        if len(evaluated) == 0:
            continue
        cuts.append(ValidationCut(cutoff, history, evaluated, known.y[evaluated, k : k + fc.horizon]))
    return cuts


def _gbdt_trial(settings: dict, data: dict) -> Iterator[float]:
    import xgboost

    from shoplake.forecast.models.gbdt import forecast_rows, gbdt_params, training_rows
    from shoplake.forecast.models.windows import NetSettings

    cfg = with_settings(data["cfg"], SECTION, settings)
    fc, threads = cfg.forecasting, data["threads"]
    net = NetSettings.from_config(cfg)
    # A trial reserves CPUs only: its trees grow on them, whatever device the final fit uses.
    params = {**gbdt_params(cfg), "objective": "reg:squarederror", "nthread": threads}
    params.pop("device", None)
    folds = []
    for cut in data["cuts"]:
        x, y, _ = training_rows(cfg, cut.history)
        if net.target_clip is not None:
            y = np.minimum(y, net.target_clip)
        x_next, scale = forecast_rows(net, cut.history, cut.evaluated)
        folds.append({"train": xgboost.DMatrix(x, label=y, nthread=threads), "x": x_next, "scale": scale, "cut": cut, "booster": None})
    done = 0
    while done < fc.gbdt_rounds:
        rounds = min(GBDT_ROUNDS_PER_STEP, fc.gbdt_rounds - done)
        scores = []
        for fold in folds:
            fold["booster"] = xgboost.train(params, fold["train"], num_boost_round=rounds, xgb_model=fold["booster"], verbose_eval=False)
            mean = np.asarray(fold["booster"].inplace_predict(fold["x"]), dtype=np.float64) * fold["scale"]
            scores.append(fold["cut"].wrmsse(mean.reshape(len(fold["cut"].evaluated), -1)))
        done += rounds
        yield float(np.nanmean(scores))


def _net_trial(settings: dict, data: dict) -> Iterator[float]:
    from shoplake.forecast.models.quantile_net import QuantileNetForecaster, quantile_net_task
    from shoplake.train.loop import local_epochs

    cfg = with_settings(data["cfg"], SECTION, settings)
    fc = cfg.forecasting
    runs = []
    for cut in data["cuts"]:
        task = quantile_net_task(cfg, cut.history)
        epochs = local_epochs(task, {"epochs": fc.epochs, "lr": fc.lr, "seed": cfg.training.seed})
        runs.append((cut, cut.history.select(cut.evaluated), task.settings, epochs))
    for _ in range(fc.epochs):
        scores = []
        for cut, scored, net, epochs in runs:
            model, _ = next(epochs)
            forecast = QuantileNetForecaster(net, model).forecast(scored)
            model.train()
            scores.append(cut.wrmsse(forecast.mean))
        yield float(np.nanmean(scores))


def search_settings(
    cfg: Config, panel: SalesPanel, origins: list[dt.date], name: str, models: list[str] | None = None
) -> tuple[Config, dict[str, SearchResult]]:
    """The configuration to backtest and fit the global models with: ``cfg`` with each one's best searched settings.

    ``gbdt`` is searched over ``forecasting.gbdt_search`` and ``quantile_net`` over
    ``forecasting.net_search`` when they are among ``models`` (default
    ``forecasting.models``) and their space is not empty. Without a validation
    cut-off nothing is searched (with a warning).

    Args:
        cfg: Configuration: ``forecasting`` (models, spaces, horizon), ``tuning`` (the budget).
        panel: The sales up to the run date at the grain, as the backtest gets them.
        origins: The backtest's scored cut-offs, oldest first; the last is test.
        name: Prefix of the searches' folders under ``<runs_dir>/ray_results``.
        models: The models backtested.

    Returns:
        The configuration and ``{model: search}`` of the models searched.

    Raises:
        RuntimeError: Every trial of a search failed.
    """
    fc = cfg.forecasting
    models = list(models or fc.models)
    wanted = [(m, space) for m, space in ((GBDT, fc.gbdt_search), (GLOBAL_MODEL, fc.net_search)) if m in models and space]
    if not wanted:
        return cfg, {}
    cuts = validation_cuts(cfg, panel, origins)
    if not cuts:
        log.warning("no validation cut-off to search %s on: their configured settings are used", " and ".join(m for m, _ in wanted))
        return cfg, {}
    data = {"cfg": cfg, "cuts": cuts, "threads": max(int(cfg.tuning.cpus_per_trial), 1)}
    best: dict = {}
    searches: dict[str, SearchResult] = {}
    for model, space in wanted:
        if model == GBDT:
            trial, iterations = _gbdt_trial, math.ceil(fc.gbdt_rounds / GBDT_ROUNDS_PER_STEP)
        else:
            trial, iterations = _net_trial, fc.epochs
        result = search(cfg, f"{name}_{model}_search", trial, space, metric=METRIC, mode="min", max_iterations=iterations, data=data)
        best.update(result.best.settings)
        if model == GBDT:
            best["gbdt_rounds"] = min(result.best.best_iteration * GBDT_ROUNDS_PER_STEP, fc.gbdt_rounds)
        else:
            best["epochs"] = result.best.best_iteration
        searches[model] = result
    return with_settings(cfg, SECTION, best), searches


def searched_settings(cfg: Config, searches: dict[str, SearchResult]) -> dict[str, dict]:
    """What the bundle and the run record of each search: the settings used (searched and the rounds or epochs), the budget, the score."""
    fc = cfg.forecasting
    out = {}
    for model, result in searches.items():
        used = {**result.best.settings, **({"gbdt_rounds": fc.gbdt_rounds} if model == GBDT else {"epochs": fc.epochs})}
        out[model] = {
            "settings": {k: getattr(fc, k) for k in used}, "trials": len(result.trials), "stopped_early": result.stopped_early,
            "best_valid_wrmsse": result.best.best_score, "seconds": round(result.seconds, 1),
        }  # fmt: skip
    return out
