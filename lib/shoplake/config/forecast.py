"""The forecasting section: ``forecasting``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shoplake.config.base import Distribution, SearchSpace, Strict

_FORECASTERS = Literal[
    "seasonal_naive", "moving_average", "ets", "auto_theta", "auto_arima", "adida", "croston", "imapa", "quantile_net", "gbdt", "ensemble"
]  # fmt: skip
#: Period counts of each grain where the configuration leaves them out (horizon, history, ...).
_FORECAST_GRAIN_DEFAULTS = {
    "day": {"horizon": 28, "history": 28, "min_history": 28, "moving_average_window": 28},
    "week": {"horizon": 8, "history": 26, "min_history": 13, "moving_average_window": 8},
    "month": {"horizon": 3, "history": 12, "min_history": 6, "moving_average_window": 3},
}
#: The day-counted names the periods had before forecasting had a grain; still read at grain day.
_FORECAST_DAY_NAMES = {
    "horizon_days": "horizon", "history_days": "history", "min_history_days": "min_history",
    "moving_average_days": "moving_average_window",
}  # fmt: skip

#: Settings of forecasting's network that net_search may try (epochs comes from the best epoch).
_NET_SEARCHABLE = ("lr", "hidden", "layers", "dropout", "batch_size", "windows_per_epoch", "mean_weight")


class ForecastingConfig(Strict):
    """Demand forecasting: the grain and target, backtests, the global models, calibration, the replenishment plan.

    Horizon, history, minimum history, the moving-average window and the backtest
    spacing count periods of ``grain``; left out, they default per grain (28 days,
    8 weeks or 3 months of horizon; see each key). The old day-counted names
    (``horizon_days``, ``history_days``, ``min_history_days``, ``moving_average_days``)
    are still read at grain day.
    """

    grain: Literal["day", "week", "month"] = Field(
        "day",
        description="Period the sales are summed to before any model sees them, forecast and scored at: day, ISO week "
        "(Monday to Sunday) or calendar month. Season lengths follow: 7, 52, 12.",
    )
    target: Literal["units", "revenue"] = Field(
        "units",
        description="What is forecast: units sold, or revenue (also any non-integer amount imported with `import sales "
        "--value-kind amount`). The replenishment plan needs units and is not written for revenue.",
    )
    horizon: int = Field(28, ge=1, description="Periods forecast from the run date's period on (default 28 days, 8 weeks, 3 months).")
    history: int = Field(
        28,
        ge=2,
        description="Periods of an item's past the global models read as lags per forecast (default 28 days, 26 weeks, 12 months).",
    )
    backtest_origins: int = Field(
        3,
        ge=1,
        description="Rolling-origin cut-offs of the backtest, backtest_spacing apart, the last one horizon periods before the run "
        "date's period; the last is test, the others validation.",
    )
    backtest_spacing: int | None = Field(None, ge=1, description="Periods between backtest cut-offs; null: the horizon.")
    calibration_origins: int = Field(
        1,
        ge=0,
        description="Cut-offs before the first validation one whose forecasts only calibrate the quantiles (conformal); never scored.",
    )
    conformal: bool = Field(
        True,
        description="Calibrate every model's P10 and P90 on the residuals of the earlier cut-offs (calibration and validation, "
        "never test), so that P10-P90 covers about 80 %.",
    )
    min_history: int = Field(
        28, ge=1, description="Items with fewer periods since their first sale at a cut-off are not evaluated there (default 28 days, 13 weeks, 6 months)."
    )  # fmt: skip
    moving_average_window: int = Field(
        28, ge=1, description="Window of the moving-average baseline, periods (default 28 days, 8 weeks, 3 months)."
    )
    models: list[_FORECASTERS] = Field(
        default_factory=lambda: [
            "seasonal_naive",
            "moving_average",
            "ets",
            "auto_theta",
            "adida",
            "croston",
            "imapa",
            "quantile_net",
            "gbdt",
            "ensemble",
        ],  # fmt: skip
        description="Models backtested side by side: the statsforecast baselines (auto_arima is slow: add it where the time "
        "allows), quantile_net the global network, gbdt the global gradient-boosted trees, ensemble the mean of ensemble_members.",
    )
    main_model: _FORECASTERS = Field(
        "gbdt",
        description="The model the docs explain and the run serves when it has a single backtest cut-off; otherwise "
        "the champion, the lowest validation WRMSSE, is served.",
    )
    ensemble_members: list[_FORECASTERS] = Field(
        default_factory=lambda: ["gbdt", "quantile_net", "ets", "auto_theta"],
        description="Models whose forecasts (means and quantiles) the ensemble averages; each must be in models.",
    )
    hidden: int = Field(128, ge=8, description="Width of the global model's hidden layers.")
    layers: int = Field(2, ge=1, description="Hidden layers of the global model.")
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(512, ge=1, description="Training windows per step and worker.")
    lr: float = Field(0.002, gt=0)
    windows_per_epoch: int = Field(100_000, ge=1, description="Training windows sampled per epoch over all items (all of them when fewer).")
    mean_weight: float = Field(1.0, ge=0, description="Weight of the mean head's squared error beside the quantiles' pinball loss.")
    target_clip: float | None = Field(
        10.0,
        gt=0,
        description="Scaled units above this count as this much in the mean's squared error of the global models (bulk orders "
        "would dominate it); null: no clip.",
    )
    gbdt_windows: int = Field(
        20_000, ge=1, description="Training windows (item, cut-off) the gradient-boosted model samples; each gives a row per known horizon period."
    )  # fmt: skip
    gbdt_rounds: int = Field(300, ge=1, description="Boosting rounds of the gradient-boosted model (XGBoost).")
    gbdt_max_depth: int = Field(6, ge=1)
    gbdt_eta: float = Field(0.05, gt=0)
    gbdt_subsample: float = Field(0.8, gt=0, le=1, description="Share of the rows each tree of the gradient-boosted model is grown on.")
    gbdt_search: SearchSpace = Field(
        default_factory=lambda: {"gbdt_max_depth": [4, 6, 8], "gbdt_eta": Distribution(loguniform=(0.02, 0.2))},
        description="Settings of the gradient-boosted model searched on the validation cut-offs (Ray Tune, tuning.*): gbdt_* "
        "fields of forecasting with the values to try; empty: none searched.",
    )
    net_search: SearchSpace = Field(
        default_factory=lambda: {"lr": Distribution(loguniform=(0.0005, 0.01)), "hidden": [64, 128]},
        description="Settings of quantile_net searched on the validation cut-offs: " + ", ".join(_NET_SEARCHABLE) + "; the "
        "best epoch becomes epochs; empty: none searched.",
    )
    service_level: float = Field(0.95, gt=0.5, lt=1, description="Target cycle service level of the safety stock.")
    review_period_days: int = Field(7, ge=0, description="Days between orders: stock must cover lead time plus this.")
    default_lead_time_days: int = Field(7, ge=0, description="Lead time for items whose inventory rows have none.")
    registered_model: str = "shoplake-forecaster"

    @model_validator(mode="before")
    @classmethod
    def _periods_of_the_grain(cls, data: Any) -> Any:
        """Read the day-counted names at grain day, and fill the period counts the grain defaults."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        grain = data.get("grain", "day")
        for old, new in _FORECAST_DAY_NAMES.items():
            if old not in data:
                continue
            if grain != "day":
                raise ValueError(f"{old} counts days; at grain {grain} set {new} (periods of the grain) instead")
            if new in data:
                raise ValueError(f"set {new} or its old name {old}, not both")
            data[new] = data.pop(old)
        for key, value in _FORECAST_GRAIN_DEFAULTS.get(grain, {}).items():
            data.setdefault(key, value)
        return data

    @model_validator(mode="after")
    def _ensemble_members_are_backtested(self) -> ForecastingConfig:
        if "ensemble" in self.models:
            missing = [m for m in self.ensemble_members if m not in self.models]
            if "ensemble" in self.ensemble_members or missing or not self.ensemble_members:
                raise ValueError(
                    "ensemble_members must be models of forecasting.models other than ensemble itself"
                    + (f" (not in models: {', '.join(missing)})" if missing else "")
                )
        return self

    @field_validator("gbdt_search", "net_search")
    @classmethod
    def _searched_fields(cls, value: dict, info) -> dict:
        if info.field_name == "gbdt_search":
            wrong = [k for k in value if not k.startswith("gbdt_") or k not in cls.model_fields or k == "gbdt_search"]
            allowed = "gbdt_* settings"
        else:
            wrong = [k for k in value if k not in _NET_SEARCHABLE]
            allowed = ", ".join(_NET_SEARCHABLE)
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only {allowed} of forecasting can be searched here")
        return value

    @property
    def spacing(self) -> int:
        """Periods between backtest cut-offs."""
        return self.backtest_spacing or self.horizon
