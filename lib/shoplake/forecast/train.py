"""The forecasting run: rolling-origin backtests of every model, the measured champion for serving.

For run date D the run reads D's partition of ``gold.item_daily_sales`` (sales up
to D - 1) and backtests each model of ``forecasting.models`` at
``forecasting.backtest_origins`` cut-offs, ``horizon_days`` apart, the last one at
D - horizon_days, so every forecast window lies within the known sales. At cut-off
c a model sees ``panel.until(c)`` only (the global model is trained on it through
Ray Train), forecasts the ``horizon_days`` from c on, and is scored against the
actual units of those days for the items with at least ``min_history_days`` of
history at c (MASE, RMSSE, revenue-weighted RMSSE with its bootstrap interval over
items, bias, P10-P90 coverage, pinball loss; :mod:`shoplake.forecast.metrics`).

The run follows the platform's evaluation protocol (:mod:`shoplake.evaluation`):
the cut-offs before the last are validation, the last one is test. The champion
is the model with the lowest mean validation WRMSSE, baselines included; on test
it is compared with the next model of validation (the ratio of their WRMSSE with a
paired bootstrap interval over items). With a single cut-off there is no
validation and ``forecasting.main_model`` is served, with a warning.

The metrics go to ``ops.model_metrics`` (task ``forecasting``, D's rows replaced),
and the champion, fit on all sales before D, is registered in MLflow as
``forecasting.registered_model`` with the serving alias.
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
from shoplake.evaluation import Interval, best_other, bootstrap_mean, pick_champion, ratio_of_sums
from shoplake.forecast.bundle import GLOBAL_MODEL, ForecasterBundle, baseline_params
from shoplake.forecast.metrics import revenue_weights, rmsse, summarise
from shoplake.forecast.models.panel import Forecast, SalesPanel
from shoplake.forecast.schemas import ITEM_DAILY_SALES, TASK_FORECASTING
from shoplake.train.model_metrics import MODEL_METRICS, write_model_metrics

log = logging.getLogger(__name__)

ALL = "all"
#: The metric the champion is chosen by (lower is better), reported with its interval.
CHAMPION_METRIC = "wrmsse"
#: The figure of ``forecast_metrics.summarise`` that counts the items, not a metric row of its own.
N_ITEMS = "n_items"


class MissingSalesError(LookupError):
    """``gold.item_daily_sales`` has no partition for the run date."""


def backtest_origins(cfg: Config, run_date: dt.date, first_sale_day: dt.date | None = None) -> list[dt.date]:
    """The cut-offs of the rolling-origin backtest of ``run_date``, oldest first.

    ``forecasting.backtest_origins`` cut-offs, ``horizon_days`` apart, the last one
    ``horizon_days`` before the run date. With ``first_sale_day`` (the first day of
    the sales), cut-offs with fewer than ``min_history_days`` of sales before them
    are left out: no item could be evaluated there.
    """
    fc = cfg.forecasting
    origins = [run_date - dt.timedelta(days=fc.horizon_days * k) for k in range(fc.backtest_origins, 0, -1)]
    if first_sale_day is None:
        return origins
    kept = [o for o in origins if (o - first_sale_day).days >= fc.min_history_days]
    if len(kept) < len(origins):
        log.warning(
            "backtest: %d of %d cut-offs left out: sales start on %s, and a cut-off needs %d days of history",
            len(origins) - len(kept), len(origins), first_sale_day, fc.min_history_days,
        )  # fmt: skip
    return kept


def load_panel(lake, run_date: dt.date | None = None) -> tuple[SalesPanel, dt.date, int]:
    """The sales panel of a run date (default the latest): ``(panel, run_date, table version)``.

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
    panel = SalesPanel.from_arrow(lake.to_arrow(ITEM_DAILY_SALES, version=version, run_date=run_date))
    if panel.end != run_date:
        log.warning(
            "%s of %s ends on %s, not the day before the run date", ITEM_DAILY_SALES.full_name, run_date, panel.end - dt.timedelta(days=1)
        )
    return panel, run_date, version


@dataclass
class FittedForecaster:
    """A model fit on one history: the bundle, how long it took, its Ray Train history."""

    bundle: ForecasterBundle
    seconds: float
    history: list[dict] = field(default_factory=list)


def fit_forecaster(cfg: Config, kind: str, panel: SalesPanel, name: str, metadata: dict | None = None) -> FittedForecaster:
    """Fit ``kind`` on ``panel`` (the global model on Ray Train, under run name ``name``)."""
    start = time.perf_counter()
    horizon = cfg.forecasting.horizon_days
    if kind == GLOBAL_MODEL:
        from shoplake.forecast.models.quantile_net import QuantileNetForecaster

        net = QuantileNetForecaster.train(cfg, panel, name)
        bundle = ForecasterBundle(kind, horizon, {}, metadata or {}, net)
        return FittedForecaster(bundle, time.perf_counter() - start, net.fit_result.history if net.fit_result else [])
    return FittedForecaster(ForecasterBundle(kind, horizon, baseline_params(cfg, kind), metadata or {}), time.perf_counter() - start)


@dataclass
class CutoffForecast:
    """One model's forecast at one cut-off, with the actuals it is scored against."""

    cutoff: dt.date
    forecast: Forecast
    actual: np.ndarray
    evaluated: np.ndarray


@dataclass
class BacktestResult:
    """Figures of every model at every cut-off.

    Attributes:
        metrics: ``{cutoff: {model: {metric: value}}}`` (``n_items`` included).
        seconds: Fit and forecast time per model, summed over the cut-offs.
        histories: Ray Train history of the global model per cut-off.
        last: The forecasts at the last cut-off per model (for pictures).
    """

    metrics: dict[dt.date, dict[str, dict[str, float]]]
    seconds: dict[str, float]
    histories: dict[dt.date, list[dict]]
    last: dict[str, CutoffForecast]

    def mean(self, model: str, metric: str, cutoffs: list[dt.date] | None = None) -> float:
        """A metric averaged over the cut-offs (default all; NaN cut-offs left out)."""
        chosen = self.metrics if cutoffs is None else {c: self.metrics[c] for c in cutoffs if c in self.metrics}
        values = [m[model][metric] for m in chosen.values() if model in m and not np.isnan(m[model][metric])]
        return float(np.mean(values)) if values else float("nan")


def backtest(
    cfg: Config,
    panel: SalesPanel,
    origins: list[dt.date],
    name: str,
    models: list[str] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of ``models`` (default ``forecasting.models``) on ``panel``.

    Args:
        cfg: ``forecasting`` settings.
        panel: Sales up to the run date; every origin + horizon must lie within it.
        origins: Cut-offs, oldest first.
        name: Prefix of the Ray Train run names.
        models: Models to evaluate.
        on_step: Called with a short description as each step starts.

    Raises:
        ValueError: A cut-off's forecast window runs past the panel, or no item qualifies at a cut-off.
    """
    fc = cfg.forecasting
    step = on_step or (lambda text: log.info("%s", text))
    models = list(models or fc.models)
    horizon = fc.horizon_days
    metrics: dict[dt.date, dict[str, dict[str, float]]] = {}
    seconds = dict.fromkeys(models, 0.0)
    histories: dict[dt.date, list[dict]] = {}
    last: dict[str, CutoffForecast] = {}
    for origin in origins:
        k = (origin - panel.start).days
        if k < 1 or k + horizon > panel.n_days:
            raise ValueError(
                f"cut-off {origin}: its {horizon} forecast days must lie within the sales {panel.start} .. {panel.end - dt.timedelta(days=1)}"
            )
        history = panel.until(origin)
        evaluated = history.observed_days >= fc.min_history_days
        if not evaluated.any():
            raise ValueError(f"cut-off {origin}: no item has {fc.min_history_days} days of sales history before it")
        actual = panel.units[evaluated, k : k + horizon]
        units_hist, revenue_hist = history.units[evaluated], history.revenue[evaluated]
        metrics[origin] = {}
        for kind in models:
            step(f"{kind}: cut-off {origin}")
            start = time.perf_counter()
            fitted = fit_forecaster(cfg, kind, history, f"{name}_{kind}_{origin:%Y%m%d}")
            forecast = fitted.bundle.forecast(history, horizon).select(evaluated)
            seconds[kind] += time.perf_counter() - start
            if fitted.history:
                histories[origin] = fitted.history
            metrics[origin][kind] = summarise(actual, forecast.mean, forecast.p10, forecast.p50, forecast.p90, units_hist, revenue_hist)
            ev = cfg.evaluation
            ci = bootstrap_mean(rmsse(actual, forecast.mean, units_hist), revenue_weights(revenue_hist),
                                draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)  # fmt: skip
            metrics[origin][kind][f"{CHAMPION_METRIC}_low"], metrics[origin][kind][f"{CHAMPION_METRIC}_high"] = ci.low, ci.high
            last[kind] = CutoffForecast(origin, forecast, actual, np.flatnonzero(evaluated))
            log.info("%s at %s: %s", kind, origin, {m: round(v, 4) for m, v in metrics[origin][kind].items()})
    return BacktestResult(metrics, seconds, histories, last)


def wrmsse_ratio(cfg: Config, panel: SalesPanel, a: CutoffForecast, b: CutoffForecast) -> Interval:
    """WRMSSE of forecast ``a`` over forecast ``b`` at one cut-off, with a paired bootstrap interval over items.

    Below 1 ``a`` errs less. Both must be of the same cut-off and items.
    """
    if a.cutoff != b.cutoff or not np.array_equal(a.evaluated, b.evaluated):
        raise ValueError(f"forecasts of different cut-offs or items: {a.cutoff} vs {b.cutoff}")
    history = panel.until(a.cutoff).select(a.evaluated)
    ev = cfg.evaluation
    return ratio_of_sums(rmsse(a.actual, a.forecast.mean, history.units), rmsse(b.actual, b.forecast.mean, history.units),
                         revenue_weights(history.revenue), draws=ev.bootstrap_draws, level=ev.confidence, seed=ev.seed)  # fmt: skip


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


def backtest_chart_series(
    panel: SalesPanel, cut: CutoffForecast, items: int = 4, history_days: int = 42, titles: dict[str, str] | None = None
):
    """Chart data of the ``items`` evaluated items with the most revenue before a cut-off: actuals, forecast, band."""
    from shoplake.charts import ChartSeries

    k = (cut.cutoff - panel.start).days
    revenue = np.nan_to_num(panel.revenue[cut.evaluated, max(0, k - 28) : k]).sum(axis=1)
    out = []
    for row in np.argsort(-revenue, kind="stable")[:items]:
        item = int(cut.evaluated[row])
        past = panel.units[item, max(0, k - history_days) : k]
        out.append(
            ChartSeries(
                item_id=str(panel.item_ids[item]),
                forecast_start=cut.cutoff,
                history=[None if np.isnan(v) else float(v) for v in past],
                p10=cut.forecast.p10[row].tolist(),
                p50=cut.forecast.p50[row].tolist(),
                p90=cut.forecast.p90[row].tolist(),
                actual=cut.actual[row].tolist(),
                title=(titles or {}).get(str(panel.item_ids[item])),
            )  # fmt: skip
        )
    return out


def write_backtest_chart(
    folder: str | Path, panel: SalesPanel, cut: CutoffForecast, model: str, titles: dict[str, str] | None = None
) -> Path:
    """Write ``backtest.html``, ``backtest.svg`` and ``backtest.png`` into ``folder``: actual vs forecast with the P10-P90 band."""
    from shoplake.forecast.chart import write_forecast_chart, write_forecast_images

    series = backtest_chart_series(panel, cut, titles=titles)
    folder = Path(folder)
    page = write_forecast_chart(
        folder / "backtest.html", series, title=f"{model}: actual vs forecast from the cut-off {cut.cutoff}",
        subtitle="The top items by revenue in the four weeks before the cut-off; the band is P10-P90.",
    )  # fmt: skip
    if series:
        write_forecast_images(folder / "backtest", series)
    return page


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
    panel, run_date, version = load_panel(lake, run_date)
    name = name or f"fc_{run_date.isoformat()}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"
    origins = backtest_origins(cfg, run_date, panel.start)
    if not origins:
        raise ValueError(
            f"the sales in {ITEM_DAILY_SALES.full_name} of {run_date} start on {panel.start}: too short for a backtest "
            f"(the last cut-off is {fc.horizon_days} days before the run date and needs {fc.min_history_days} days before it)"
        )
    result = backtest(cfg, panel, origins, name, on_step=step)
    champion, versus = choose_champion(cfg, panel, result, origins)

    step(f"{champion}: fitting on all sales before {run_date} for serving")
    table_versions = {f"{ITEM_DAILY_SALES.full_name}@{run_date}": version}
    metadata = {"model_name": champion, "run_date": run_date.isoformat(), "table_versions": table_versions}
    main = fit_forecaster(cfg, champion, panel, f"{name}_{champion}", metadata)
    run_folder = Path(cfg.runs_dir, "forecaster", name)
    bundle_path = main.bundle.save(run_folder / "bundle")
    chart = None
    if champion in result.last:
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
        params = {"champion": champion, "main_model": fc.main_model, "horizon_days": fc.horizon_days,
                  "history_days": fc.history_days, "backtest_origins": fc.backtest_origins, **main.bundle.params}  # fmt: skip
        if main.bundle.net is not None:
            params["net"] = dict(vars(main.bundle.net.settings))
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
    )  # fmt: skip
    if out.versus_line():
        log.info("%s", out.versus_line())
    return out
