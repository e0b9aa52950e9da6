"""The forecasting run: rolling-origin backtests of every model, calibrated quantiles, the measured champion for serving.

For run date D the run reads D's partition of ``gold.item_daily_sales`` (sales up
to D - 1), sums it to ``forecasting.grain`` (day, week or month; only whole periods,
so it ends where the period holding D starts) and takes ``forecasting.target``
(units or revenue) as the value to forecast. It backtests each model of
``forecasting.models`` at ``forecasting.backtest_origins`` cut-offs,
``forecasting.backtest_spacing`` periods apart (default: the horizon), the last one
``horizon`` periods before D's period, so every forecast window lies within the
known sales. At cut-off c a model sees ``panel.until(c)`` only (the global models are
trained on it through Ray Train), forecasts the ``horizon`` periods from c on, and is
scored against the actual values of those periods for the items with at least
``min_history`` periods of history at c (MASE, RMSSE, revenue-weighted RMSSE with
its bootstrap interval over items, bias, P10-P90 coverage before and after
calibration, pinball loss; :mod:`shoplake.forecast.metrics`), all on the grain.

**Settings searched.** Before the backtest, the settings of ``gbdt`` and
``quantile_net`` in ``forecasting.gbdt_search`` and ``forecasting.net_search`` are
searched with Ray Tune on the validation cut-offs only, on the sales before the test
cut-off (:mod:`shoplake.forecast.tuning`); the backtest, at every cut-off, and the
final fit use the best ones, which the bundle records as ``searched_settings``.

**Calibration.** ``forecasting.calibration_origins`` more cut-offs before the first
validation one are forecast the same way but never scored: their residuals, and
those of every earlier scored cut-off whose window has ended, calibrate each model's
P10 and P90 at the next cut-offs (:mod:`shoplake.forecast.conformal`), so the test
cut-off is calibrated on calibration and validation residuals only. The
``ensemble`` averages its members' forecasts at each cut-off and is calibrated on
its own residuals.

The run follows the platform's evaluation protocol (:mod:`shoplake.evaluation`):
the cut-offs before the last are validation, the last one is test. The champion
is the model with the lowest mean validation WRMSSE, baselines included; on test
it is compared with the next model of validation (the ratio of their WRMSSE with a
paired bootstrap interval over items). With a single cut-off there is no
validation and ``forecasting.main_model`` is served, with a warning.

The metrics go to ``ops.model_metrics`` (task ``forecasting``, D's rows replaced),
and the champion, fit on all sales before D and carrying the calibration of the test
cut-off, is registered in MLflow as ``forecasting.registered_model`` with the
serving alias.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from shoplake import columns as C
from shoplake.config import Config
from shoplake.evaluation import Interval, bootstrap_mean
from shoplake.forecast.bundle import ENSEMBLE, GBDT, GLOBAL_MODEL, ForecasterBundle, average_forecasts, baseline_params
from shoplake.forecast.conformal import BandCalibration, fit_calibration, item_scale
from shoplake.forecast.grain import shift
from shoplake.forecast.metrics import revenue_weights, rmsse, summarise
from shoplake.forecast.models.panel import Forecast, SalesPanel
from shoplake.forecast.protocol import CHAMPION_METRIC, backtest_origins, calibration_origins, choose_champion
from shoplake.forecast.schemas import ITEM_DAILY_SALES, TASK_FORECASTING
from shoplake.forecast.tuning import search_settings, searched_settings
from shoplake.train.model_metrics import MODEL_METRICS, write_model_metrics

log = logging.getLogger(__name__)

ALL = "all"
#: The figure of ``forecast_metrics.summarise`` that counts the items, not a metric row of its own.
N_ITEMS = "n_items"


class MissingSalesError(LookupError):
    """``gold.item_daily_sales`` has no partition for the run date."""


def load_panel(lake, run_date: dt.date | None = None, grain: str = "day", target: str = "units") -> tuple[SalesPanel, dt.date, int]:
    """The sales panel of a run date (default the latest) at ``grain`` with ``target``: ``(panel, run_date, table version)``.

    Raises:
        MissingSalesError: No such partition.
    """
    dates = lake.run_dates(ITEM_DAILY_SALES)
    if run_date is None:
        if not dates:
            raise MissingSalesError(f"no {ITEM_DAILY_SALES.full_name} in {lake.root}; run the features step first")
        run_date = dates[-1]
    if run_date not in dates:
        raise MissingSalesError(
            f"{ITEM_DAILY_SALES.full_name} has no run date {run_date} in {lake.root} "
            f"(has: {', '.join(map(str, dates[-5:])) or 'none'}); run the features step for it first"
        )
    version = lake.version(ITEM_DAILY_SALES)
    daily = SalesPanel.from_arrow(lake.to_arrow(ITEM_DAILY_SALES, version=version, run_date=run_date))
    if daily.end != run_date:
        log.warning(
            "%s of %s ends on %s, not the day before the run date", ITEM_DAILY_SALES.full_name, run_date, daily.end - dt.timedelta(days=1)
        )
    return daily.to_grain(grain).with_target(target), run_date, version


@dataclass
class FittedForecaster:
    """A model fit on one history: the bundle, how long it took, its Ray Train history."""

    bundle: ForecasterBundle
    seconds: float
    history: list[dict] = field(default_factory=list)


def fit_forecaster(cfg: Config, kind: str, panel: SalesPanel, name: str, metadata: dict | None = None) -> FittedForecaster:
    """Fit ``kind`` on ``panel`` (a global model on Ray Train, under run name ``name``; an ensemble fits its members)."""
    start = time.perf_counter()
    fc = cfg.forecasting
    shape = {"grain": panel.grain, "target": panel.target}
    if kind == ENSEMBLE:
        members = [fit_forecaster(cfg, member, panel, f"{name}_{member}").bundle for member in fc.ensemble_members]
        return FittedForecaster(ForecasterBundle(kind, fc.horizon, {}, metadata or {}, None, members, **shape), time.perf_counter() - start)
    if kind == GLOBAL_MODEL:
        from shoplake.forecast.models.quantile_net import QuantileNetForecaster

        net = QuantileNetForecaster.train(cfg, panel, name)
        bundle = ForecasterBundle(kind, fc.horizon, {}, metadata or {}, net, **shape)
        return FittedForecaster(bundle, time.perf_counter() - start, net.fit_result.history if net.fit_result else [])
    if kind == GBDT:
        from shoplake.forecast.models.gbdt import GBDTForecaster

        trees = GBDTForecaster.train(cfg, panel, name)
        return FittedForecaster(
            ForecasterBundle(kind, fc.horizon, {}, metadata or {}, trees, **shape), time.perf_counter() - start, trees.history
        )
    bundle = ForecasterBundle(kind, fc.horizon, baseline_params(cfg, kind), metadata or {}, **shape)
    return FittedForecaster(bundle, time.perf_counter() - start)


@dataclass
class CutoffForecast:
    """One model's forecast at one cut-off, with the actuals it is scored against.

    Attributes:
        cutoff: First forecast period's first day.
        forecast: The forecast of the evaluated items, band calibrated (what is scored and served).
        actual: ``[n_evaluated, H]`` values that sold.
        evaluated: Panel rows of the evaluated items.
        raw: The forecast before calibration.
        scale: ``[n_evaluated]`` item scales of the calibration (:func:`~shoplake.forecast.conformal.item_scale`).
        calibration: The shifts applied (None: the raw band).
    """

    cutoff: dt.date
    forecast: Forecast
    actual: np.ndarray
    evaluated: np.ndarray
    raw: Forecast | None = None
    scale: np.ndarray | None = None
    calibration: BandCalibration | None = None


@dataclass
class BacktestResult:
    """Figures of every model at every cut-off.

    Attributes:
        metrics: ``{cutoff: {model: {metric: value}}}`` of the scored cut-offs (``n_items`` included).
        seconds: Fit and forecast time per model, summed over all cut-offs (calibration ones included).
        histories: Ray Train history per (global model, cut-off).
        forecasts: ``{model: {cutoff: CutoffForecast}}`` of every cut-off, calibration ones included.
        calibration_cutoffs: The cut-offs forecast only to calibrate.
    """

    metrics: dict[dt.date, dict[str, dict[str, float]]]
    seconds: dict[str, float]
    histories: dict[tuple[str, dt.date], list[dict]]
    forecasts: dict[str, dict[dt.date, CutoffForecast]] = field(default_factory=dict)
    calibration_cutoffs: list[dt.date] = field(default_factory=list)

    @property
    def last(self) -> dict[str, CutoffForecast]:
        """Each model's forecast at the last scored cut-off (the test one)."""
        if not self.metrics:
            return {}
        test = max(self.metrics)
        return {model: per[test] for model, per in self.forecasts.items() if test in per}

    def serving_calibration(self, model: str) -> BandCalibration | None:
        """The calibration a model is served with: the one of the test cut-off (fit without the test residuals)."""
        cut = self.last.get(model)
        return None if cut is None else cut.calibration

    def mean(self, model: str, metric: str, cutoffs: list[dt.date] | None = None) -> float:
        """A metric averaged over the cut-offs (default all scored; NaN cut-offs left out)."""
        chosen = self.metrics if cutoffs is None else {c: self.metrics[c] for c in cutoffs if c in self.metrics}
        values = [m[model][metric] for m in chosen.values() if model in m and not np.isnan(m[model][metric])]
        return float(np.mean(values)) if values else float("nan")


def _calibration_for(cfg: Config, earlier: dict[dt.date, CutoffForecast], cutoff: dt.date) -> BandCalibration | None:
    """The shifts from a model's cut-offs whose forecast windows ended by ``cutoff``."""
    fc = cfg.forecasting
    if not fc.conformal:
        return None
    done = [cut for c, cut in sorted(earlier.items()) if shift(c, fc.horizon, fc.grain) <= cutoff and cut.raw is not None]
    if not done:
        return None
    return fit_calibration([c.actual for c in done], [c.raw.p10 for c in done], [c.raw.p90 for c in done], [c.scale for c in done])


def _in_order(models: list[str]) -> list[str]:
    """The models with the ensemble last: it averages the others' forecasts of the same cut-off."""
    return [m for m in models if m != ENSEMBLE] + ([ENSEMBLE] if ENSEMBLE in models else [])


def backtest(
    cfg: Config,
    panel: SalesPanel,
    origins: list[dt.date],
    name: str,
    models: list[str] | None = None,
    on_step: Callable[[str], None] | None = None,
    calibration: list[dt.date] | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of ``models`` (default ``forecasting.models``) on ``panel``.

    Args:
        cfg: ``forecasting`` settings.
        panel: Sales up to the run date at the grain; every cut-off + horizon must lie within it.
        origins: Scored cut-offs, oldest first.
        name: Prefix of the Ray Train run names.
        models: Models to evaluate.
        on_step: Called with a short description as each step starts.
        calibration: Cut-offs before ``origins`` forecast only to calibrate the bands
            (:func:`calibration_origins`); none by default.

    Raises:
        ValueError: A cut-off's forecast window runs past the panel, no item qualifies
            at a scored cut-off, or the ensemble's members are not among the models.
    """
    fc = cfg.forecasting
    step = on_step or (lambda text: log.info("%s", text))
    models = _in_order(list(models or fc.models))
    if ENSEMBLE in models and not set(fc.ensemble_members) <= set(models) - {ENSEMBLE}:
        raise ValueError(f"the ensemble averages {', '.join(fc.ensemble_members)}: backtest them too")
    horizon = fc.horizon
    scored = set(origins)
    metrics: dict[dt.date, dict[str, dict[str, float]]] = {}
    seconds = dict.fromkeys(models, 0.0)
    histories: dict[tuple[str, dt.date], list[dict]] = {}
    forecasts: dict[str, dict[dt.date, CutoffForecast]] = {m: {} for m in models}
    calibration = sorted(set(calibration or []) - scored)
    for cutoff in sorted([*calibration, *origins]):
        k = panel.column_of(cutoff)
        if k < 1 or k + horizon > panel.n_periods:
            raise ValueError(
                f"cut-off {cutoff}: its {horizon} forecast {panel.grain}s must lie within the sales {panel.start} .. "
                f"{panel.end - dt.timedelta(days=1)}"
            )
        history = panel.until(cutoff)
        evaluated = history.observed_periods >= fc.min_history
        if not evaluated.any():
            if cutoff in scored:
                raise ValueError(f"cut-off {cutoff}: no item has {fc.min_history} {panel.grain}s of sales history before it")
            log.warning("calibration cut-off %s: no item has %d %ss of history; left out", cutoff, fc.min_history, panel.grain)
            continue
        actual = panel.y[evaluated, k : k + horizon]
        y_hist, revenue_hist = history.y[evaluated], history.revenue[evaluated]
        scale = item_scale(y_hist, horizon, panel.integer)
        raw_here: dict[str, Forecast] = {}
        if cutoff in scored:
            metrics[cutoff] = {}
        for kind in models:
            step(f"{kind}: cut-off {cutoff}" + ("" if cutoff in scored else " (calibration)"))
            start = time.perf_counter()
            if kind == ENSEMBLE:
                raw_here[kind] = average_forecasts([raw_here[m] for m in fc.ensemble_members])
            else:
                fitted = fit_forecaster(cfg, kind, history, f"{name}_{kind}_{cutoff:%Y%m%d}")
                raw_here[kind] = fitted.bundle.raw_forecast(history, horizon)
                if fitted.history:
                    histories[(kind, cutoff)] = fitted.history
            raw = raw_here[kind].select(evaluated)
            band = _calibration_for(cfg, forecasts[kind], cutoff)
            forecast = raw if band is None else band.apply(raw, scale)
            seconds[kind] += time.perf_counter() - start
            forecasts[kind][cutoff] = CutoffForecast(cutoff, forecast, actual, np.flatnonzero(evaluated), raw, scale, band)
            if cutoff not in scored:
                continue
            figures = summarise(actual, forecast.mean, forecast.p10, forecast.p50, forecast.p90, y_hist, revenue_hist,
                                weight_days=horizon, raw_p10=raw.p10, raw_p90=raw.p90)  # fmt: skip
            ev = cfg.evaluation
            ci = bootstrap_mean(rmsse(actual, forecast.mean, y_hist), revenue_weights(revenue_hist, horizon),
                                draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)  # fmt: skip
            figures[f"{CHAMPION_METRIC}_low"], figures[f"{CHAMPION_METRIC}_high"] = ci.low, ci.high
            metrics[cutoff][kind] = figures
            log.info("%s at %s: %s", kind, cutoff, {m: round(v, 4) for m, v in figures.items()})
    return BacktestResult(metrics, seconds, histories, forecasts, calibration)


def metrics_rows(result: BacktestResult, run_date: dt.date, mlflow_run_id: str | None, evaluated_at: dt.datetime) -> pa.Table:
    """The ``ops.model_metrics`` rows of a backtest, as an Arrow table of the spec's schema."""
    rows = [
        {
            C.RUN_DATE: run_date,
            C.TASK: TASK_FORECASTING,
            C.CUTOFF_DATE: cutoff,
            C.MODEL_NAME: model,
            C.MLFLOW_RUN_ID: mlflow_run_id,
            C.SLICE: ALL,
            C.METRIC: metric,
            C.VALUE: None if np.isnan(value) else float(value),
            C.N_EVALUATED: int(figures[N_ITEMS]),
            C.EVALUATED_AT: evaluated_at,
        }  # fmt: skip
        for cutoff, per_model in result.metrics.items()
        for model, figures in per_model.items()
        for metric, value in figures.items()
        if metric != N_ITEMS
    ]
    return pa.Table.from_pylist(rows, schema=MODEL_METRICS.arrow_schema())


def item_titles(lake, run_date: dt.date) -> dict[str, str]:
    from shoplake.lake.catalog import get_spec

    # Item attributes come from the recommendation features when the lake has them.
    ITEM_FEATURES = get_spec("gold.item_features")

    if run_date not in lake.run_dates(ITEM_FEATURES):
        return {}
    rows = lake.to_arrow(ITEM_FEATURES, columns=[C.ITEM_ID, C.TITLE], run_date=run_date)
    return {i: t for i, t in zip(rows[C.ITEM_ID].to_pylist(), rows[C.TITLE].to_pylist()) if t}


@dataclass
class ForecastingResult:
    """What a forecasting run produced."""

    run_date: dt.date
    origins: list[dt.date]
    backtest: BacktestResult
    main_model: str
    bundle_path: str
    model_version: str | None
    mlflow_run_id: str | None
    metrics_version: int
    n_items: int
    fit_seconds: float
    chart_path: str | None = None
    champion: str = ""
    versus: tuple[str, Interval] | None = None  # next model of validation, test WRMSSE ratio champion / it
    searched_settings: dict[str, dict] = field(default_factory=dict)  # per searched model: settings chosen on validation, budget, score

    def versus_line(self) -> str | None:
        """The champion against the next model of validation at the test cut-off, with the interval of the ratio."""
        if self.versus is None:
            return None
        other, ratio = self.versus
        test = self.origins[-1]
        a, b = (self.backtest.metrics[test][m][CHAMPION_METRIC] for m in (self.champion, other))
        return (f"test WRMSSE at {test}: {self.champion} {a:.3f} vs {other} {b:.3f}, ratio {ratio} (95 % interval): "
                f"{ratio.verdict(higher_is_better=False, null=1.0)}")  # fmt: skip


def run_forecasting(
    cfg: Config,
    lake,
    run_date: dt.date | None = None,
    *,
    name: str | None = None,
    register: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> ForecastingResult:
    """Backtest every configured forecaster on ``run_date``'s sales and register the champion.

    Args:
        cfg: ``forecasting`` (models, main model, horizon, origins, registry name),
            ``evaluation`` (intervals).
        lake: The lake with ``gold.item_daily_sales`` of ``run_date``.
        run_date: Default the latest partition.
        name: Prefix of the run's folders (default ``fc_<run_date>_<UTC time>``).
        register: Log the champion to MLflow and point the serving alias at it.
        on_step: Called with a short description as each step starts.

    Raises:
        MissingSalesError: No sales partition for the run date.
    """
    fc = cfg.forecasting
    step = on_step or (lambda text: log.info("%s", text))
    step("reading gold.item_daily_sales")
    panel, run_date, version = load_panel(lake, run_date, fc.grain, fc.target)
    name = name or f"fc_{run_date.isoformat()}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
    origins = backtest_origins(cfg, run_date, panel.start)
    if not origins:
        raise ValueError(
            f"the sales in {ITEM_DAILY_SALES.full_name} of {run_date} start on {panel.start} ({fc.grain}s): too short for a "
            f"backtest (the last cut-off is {fc.horizon} {fc.grain}s before the run date's {fc.grain} and needs "
            f"{fc.min_history} {fc.grain}s before it)"
        )
    calibration = calibration_origins(cfg, origins, panel.start)
    cfg, searches = search_settings(cfg, panel, origins, name)
    for model, searched in searches.items():
        step(f"{model}: {searched.summary()}")
    fc = cfg.forecasting
    searched = searched_settings(cfg, searches)
    result = backtest(cfg, panel, origins, name, on_step=step, calibration=calibration)
    champion, versus = choose_champion(cfg, panel, result, origins)

    step(f"{champion}: fitting on all sales before {run_date} for serving")
    table_versions = {f"{ITEM_DAILY_SALES.full_name}@{run_date}": version}
    metadata = {"model_name": champion, "run_date": run_date.isoformat(), "table_versions": table_versions,
                "searched_settings": searched}  # fmt: skip
    main = fit_forecaster(cfg, champion, panel, f"{name}_{champion}", metadata)
    main.bundle.calibration = result.serving_calibration(champion)
    run_folder = Path(cfg.runs_dir, "forecaster", name)
    bundle_path = main.bundle.save(run_folder / "bundle")
    chart = None
    if champion in result.last:
        from shoplake.forecast.chart import write_backtest_chart

        chart = write_backtest_chart(run_folder, panel, result.last[champion], champion, item_titles(lake, run_date))
        log.info("backtest chart of %s: %s", champion, chart)

    model_version = run_id = None
    if register:
        from shoplake.registry import log_model

        step(f"registering {champion} in MLflow")
        test = origins[-1]
        flat = {f"{'test' if cutoff == test else 'validation'}.{cutoff:%Y%m%d}.{model}.{metric}": value
                for cutoff, per_model in result.metrics.items() for model, figures in per_model.items()
                for metric, value in figures.items() if metric != N_ITEMS}  # fmt: skip
        if versus is not None:
            key = f"test.{champion}_over_{versus[0]}.{CHAMPION_METRIC}"
            flat.update({key: versus[1].value, f"{key}_low": versus[1].low, f"{key}_high": versus[1].high})
        params = {"champion": champion, "main_model": fc.main_model, "grain": fc.grain, "target": fc.target,
                  "horizon": fc.horizon, "history": fc.history, "backtest_origins": fc.backtest_origins,
                  "calibration_origins": len(calibration), **main.bundle.params}  # fmt: skip
        if main.bundle.model is not None:
            params["settings"] = dict(vars(main.bundle.model.settings))
        if main.bundle.calibration is not None:
            params["calibration"] = main.bundle.calibration.as_dict()
        if searched:
            params["searched_settings"] = searched
        info = log_model(
            cfg, bundle_path, model_name=champion, params=params,
            metrics={k: v for k, v in flat.items() if not np.isnan(v)}, table_versions=table_versions,
            run_date=run_date, set_serving=True, run_name=name, registered_model=fc.registered_model,
        )  # fmt: skip
        model_version, run_id = info.version, info.run_id

    step("writing ops.model_metrics")
    rows = metrics_rows(result, run_date, run_id, dt.datetime.now(dt.timezone.utc))
    written = write_model_metrics(cfg, lake, rows, TASK_FORECASTING, run_date)
    out = ForecastingResult(
        run_date=run_date, origins=origins, backtest=result, main_model=fc.main_model, bundle_path=str(bundle_path),
        model_version=model_version, mlflow_run_id=run_id, metrics_version=written.version, n_items=panel.n_items,
        fit_seconds=main.seconds, chart_path=None if chart is None else str(chart), champion=champion, versus=versus,
        searched_settings=searched,
    )  # fmt: skip
    if out.versus_line():
        log.info("%s", out.versus_line())
    return out
