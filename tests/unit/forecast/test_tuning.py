"""The global forecasters' settings chosen on the validation cut-offs: what a search sees, and where its winner goes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from shoplake import columns as C
from shoplake.forecast import train as forecast_train
from shoplake.forecast import tuning
from shoplake.forecast.bundle import GBDT, GLOBAL_MODEL, ForecasterBundle
from shoplake.forecast.models.panel import SalesPanel
from shoplake.forecast.protocol import backtest_origins
from shoplake.forecast.schemas import ITEM_DAILY_SALES
from shoplake.train.tune import SearchResult, TrialResult

START = dt.date(2024, 1, 1)  # a Monday
DAYS = 70
RUN_DATE = START + dt.timedelta(days=DAYS)
WEEK = np.array([1.0, 1.0, 1.0, 1.2, 1.5, 2.0, 0.3])
SMALL = [
    "forecasting.horizon=7", "forecasting.history=14", "forecasting.min_history=14", "forecasting.backtest_origins=3",
    "forecasting.gbdt_rounds=50", "forecasting.gbdt_windows=200", "forecasting.epochs=3", "forecasting.windows_per_epoch=300",
    "forecasting.batch_size=64", "forecasting.hidden=16",
]  # fmt: skip


def sales(items: int = 6, days: int = DAYS, seed: int = 3) -> SalesPanel:
    """A weekly pattern times a level per item, from START."""
    rng = np.random.default_rng(seed)
    units = rng.poisson(np.outer(2.0 + np.arange(items), np.resize(WEEK, days))).astype(np.float64)
    ones = np.ones_like(units)
    return SalesPanel([f"i{j}" for j in range(items)], START, units, units * 2.5, ones * 2.5, np.zeros_like(units, bool), ones * np.nan)


def poisoned(panel: SalesPanel, cutoff: dt.date) -> SalesPanel:
    """``panel`` with every value from ``cutoff`` on made infinite: any score that read one would not be finite."""
    k = panel.column_of(cutoff)
    units, revenue = panel.units.copy(), panel.revenue.copy()
    units[:, k:], revenue[:, k:] = np.inf, np.inf
    return SalesPanel(panel.item_ids, panel.start, units, revenue, panel.price, panel.promo, panel.stock_out)


class Recorder:
    """Stands in for Ray Tune's search: runs each trial with the first value of every setting, and declares ``winners`` the best."""

    def __init__(self, winners: dict[str, dict], best_iteration: int = 2):
        self.winners, self.best_iteration, self.calls = winners, best_iteration, []

    def __call__(self, cfg, name, trial, space, *, metric, mode, max_iterations, data=None, fixed=None) -> SearchResult:
        drawn = {k: (v[0] if isinstance(v, list) else v.loguniform[0]) for k, v in space.items()}
        scores = list(trial(drawn, data))
        model = GBDT if "gbdt_max_depth" in space else GLOBAL_MODEL
        self.calls.append({"model": model, "name": name, "data": data, "scores": scores, "max_iterations": max_iterations})
        best = TrialResult(self.winners[model], min(scores), self.best_iteration, len(scores))
        return SearchResult(name, metric, mode, best, [best], max_iterations)


@pytest.fixture
def recorder(monkeypatch):
    found = Recorder({GBDT: {"gbdt_max_depth": 3, "gbdt_eta": 0.11}, GLOBAL_MODEL: {"lr": 0.004, "hidden": 24}})
    monkeypatch.setattr(tuning, "search", found)
    return found


def test_a_search_sees_the_validation_cutoffs_and_nothing_from_the_test_cutoff_on(make_cfg, recorder):
    cfg = make_cfg(*SMALL, "forecasting.gbdt_search={gbdt_max_depth: [3, 5], gbdt_eta: {loguniform: [0.05, 0.2]}}",
                   "forecasting.net_search={lr: [0.003, 0.01], hidden: [16, 24]}")  # fmt: skip
    origins = backtest_origins(cfg, RUN_DATE, START)
    assert len(origins) == 3
    panel = poisoned(sales(), origins[-1])
    tuned, searches = tuning.search_settings(cfg, panel, origins, "fc")
    assert set(searches) == {GBDT, GLOBAL_MODEL} == {c["model"] for c in recorder.calls}
    for call in recorder.calls:
        cuts = call["data"]["cuts"]
        assert [c.cutoff for c in cuts] == origins[:-1]
        for cut in cuts:
            assert cut.history.end == cut.cutoff and np.isfinite(cut.history.units).all() and np.isfinite(cut.actual).all()
        # The trials trained and scored on the poisoned panel without meeting a value of the test window or later.
        assert call["scores"] and np.isfinite(call["scores"]).all()
    gbdt = next(c for c in recorder.calls if c["model"] == GBDT)
    assert gbdt["max_iterations"] == 2 and len(gbdt["scores"]) == 2  # 50 rounds in steps of 25
    assert len(next(c for c in recorder.calls if c["model"] == GLOBAL_MODEL)["scores"]) == 3  # one per epoch


def test_the_winners_settings_and_best_iteration_become_the_configuration(make_cfg, recorder):
    cfg = make_cfg(*SMALL, "forecasting.net_search={hidden: [16, 24]}")
    origins = backtest_origins(cfg, RUN_DATE, START)
    tuned, searches = tuning.search_settings(cfg, sales(), origins, "fc")
    fc = tuned.forecasting
    assert (fc.gbdt_max_depth, fc.gbdt_eta, fc.gbdt_rounds) == (3, 0.11, 2 * tuning.GBDT_ROUNDS_PER_STEP)
    assert (fc.lr, fc.hidden, fc.epochs) == (0.004, 24, 2)
    assert cfg.forecasting.gbdt_max_depth == 6  # the configuration handed in is left as it was
    recorded = tuning.searched_settings(tuned, searches)
    assert recorded[GBDT]["settings"] == {"gbdt_max_depth": 3, "gbdt_eta": 0.11, "gbdt_rounds": 50}
    assert recorded[GLOBAL_MODEL]["settings"] == {"lr": 0.004, "hidden": 24, "epochs": 2}


@pytest.mark.parametrize("overrides", [
    ["forecasting.gbdt_search={}", "forecasting.net_search={}"],
    ["forecasting.models=[ets,auto_theta]"],
    ["forecasting.backtest_origins=1"],  # no validation cut-off
])  # fmt: skip
def test_nothing_is_searched_without_a_space_a_searched_model_or_a_validation_cutoff(make_cfg, recorder, overrides):
    cfg = make_cfg(*SMALL, *overrides)
    assert tuning.search_settings(cfg, sales(), backtest_origins(cfg, RUN_DATE, START), "fc") == (cfg, {})
    assert recorder.calls == []


def test_only_the_models_own_settings_can_be_searched(make_cfg):
    with pytest.raises(ValueError, match="only gbdt_\\* settings"):
        make_cfg("forecasting.gbdt_search={lr: [0.01]}")
    with pytest.raises(ValueError, match="epochs: only lr, hidden"):
        make_cfg("forecasting.net_search={epochs: [2, 4]}")


class DailySalesLake:
    """The little of a lake a forecasting run reads: one partition of ``gold.item_daily_sales``."""

    root = "memory"

    def __init__(self, panel: SalesPanel, run_date: dt.date):
        rows = [
            {C.ITEM_ID: item, C.SALE_DATE: panel.start + dt.timedelta(days=d), C.UNITS: int(panel.units[i, d]),
             C.REVENUE: float(panel.revenue[i, d]), C.AVG_PRICE: 2.5, C.ON_PROMOTION: False, C.STOCK_OUT: None, C.RUN_DATE: run_date}
            for i, item in enumerate(panel.item_ids) for d in range(panel.n_periods)
        ]  # fmt: skip
        self.table = pa.Table.from_pylist(rows, schema=ITEM_DAILY_SALES.arrow_schema())
        self.run_date = run_date

    def run_dates(self, spec):
        return [self.run_date] if spec.full_name == ITEM_DAILY_SALES.full_name else []

    def version(self, spec):
        return 0

    def to_arrow(self, spec, version=None, run_date=None, columns=None):
        return self.table


def test_the_run_backtests_and_fits_with_the_searched_settings_and_records_them(make_cfg, recorder, monkeypatch):
    cfg = make_cfg(*SMALL, "forecasting.models=[gbdt]", "forecasting.main_model=gbdt")
    seen = []
    original = forecast_train.fit_forecaster

    def fit(cfg, kind, panel, name, metadata=None):
        fc = cfg.forecasting
        seen.append((kind, panel.end, (fc.gbdt_max_depth, fc.gbdt_eta, fc.gbdt_rounds)))
        # A seasonal naive stands in for the trees: what is checked is the configuration each fit gets.
        return original(cfg, "seasonal_naive", panel, name, metadata)

    monkeypatch.setattr(forecast_train, "fit_forecaster", fit)
    monkeypatch.setattr(forecast_train, "write_model_metrics", lambda *a, **k: type("Written", (), {"version": 0})())
    result = forecast_train.run_forecasting(cfg, DailySalesLake(sales(), RUN_DATE), RUN_DATE, name="fc", register=False)

    assert [c["model"] for c in recorder.calls] == [GBDT]
    trees = [(end, settings) for kind, end, settings in seen if kind == GBDT]
    # Calibration, validation and test cut-offs, then the final fit on every sale before the run date.
    assert [end for end, _ in trees] == [*result.backtest.calibration_cutoffs, *result.origins, RUN_DATE]
    assert {settings for _, settings in trees} == {(3, 0.11, 50)}
    assert result.searched_settings[GBDT]["settings"] == {"gbdt_max_depth": 3, "gbdt_eta": 0.11, "gbdt_rounds": 50}
    bundle = ForecasterBundle.load(result.bundle_path)
    assert bundle.metadata["searched_settings"][GBDT]["settings"]["gbdt_max_depth"] == 3


def test_a_ray_tune_search_of_the_trees_hands_its_best_validation_settings_on(make_cfg, ray_local):
    cfg = make_cfg(*SMALL, "tuning.grace_period=1", "forecasting.gbdt_search={gbdt_max_depth: [2, 4], gbdt_eta: {loguniform: [0.05, 0.3]}}")
    origins = backtest_origins(cfg, RUN_DATE, START)
    tuned, searches = tuning.search_settings(cfg, sales(), origins, "fc-search", models=[GBDT])
    searched = searches[GBDT]
    assert len(searched.trials) == 2 and all(t.error is None for t in searched.trials)
    assert searched.best.best_score == min(t.best_score for t in searched.trials)
    assert tuned.forecasting.gbdt_max_depth == searched.best.settings["gbdt_max_depth"] in (2, 4)
    assert tuned.forecasting.gbdt_rounds == searched.best.best_iteration * tuning.GBDT_ROUNDS_PER_STEP
