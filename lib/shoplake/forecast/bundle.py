"""A registered forecaster: one of the forecasting models with what it needs to forecast.

On disk a bundle is a folder with ``bundle.json`` (kind, horizon, grain, target,
parameters, the conformal calibration, metadata) and, for a global model, its
settings and weights. The classic baselines have no weights: they are fit on each
panel they forecast, so their bundle is their parameters only. An ensemble holds
its members' bundles under ``members/<kind>/`` and averages their forecasts. Batch
scoring loads the registered bundle, sums ``gold.item_daily_sales`` to the bundle's
grain, and forecasts every item's next periods.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoplake.bundle import BUNDLE_FILE
from shoplake.forecast.conformal import BandCalibration, item_scale
from shoplake.forecast.grain import DAY
from shoplake.forecast.models import baselines
from shoplake.forecast.models.panel import Forecast, SalesPanel

#: Forecasting model families, in the order the backtest reports them.
BASELINES = tuple(baselines.BASELINES)
GLOBAL_MODEL = "quantile_net"
GBDT = "gbdt"
ENSEMBLE = "ensemble"
#: The models trained on all items at once (with Ray Train).
GLOBAL_MODELS = (GLOBAL_MODEL, GBDT)
KINDS = (*BASELINES, *GLOBAL_MODELS, ENSEMBLE)
MEMBERS_FOLDER = "members"


def baseline_params(cfg, kind: str) -> dict[str, Any]:
    """Parameters of a baseline from the configuration."""
    if kind == "moving_average":
        return {"window": cfg.forecasting.moving_average_window}
    if kind in BASELINES:
        return {}
    raise ValueError(f"{kind!r} is not a baseline; baselines: {', '.join(BASELINES)}")


def forecast_baseline(kind: str, panel: SalesPanel, horizon: int, params: dict[str, Any]) -> Forecast:
    """The ``horizon`` periods after ``panel`` forecast by the baseline ``kind``."""
    if kind in baselines.BASELINES:
        return baselines.BASELINES[kind](panel, horizon, **params)
    raise ValueError(f"{kind!r} is not a baseline; baselines: {', '.join(BASELINES)}")


def average_forecasts(forecasts: list[Forecast]) -> Forecast:
    """The mean of several forecasts of the same items and periods: means and each quantile averaged."""
    if not forecasts:
        raise ValueError("an ensemble needs at least one member forecast")
    first = forecasts[0]
    for other in forecasts[1:]:
        if not np.array_equal(other.item_ids, first.item_ids) or other.mean.shape != first.mean.shape or other.start != first.start:
            raise ValueError("ensemble members forecast different items or periods")
    mean = np.mean([f.mean for f in forecasts], axis=0)
    quantiles = np.mean([f.quantiles for f in forecasts], axis=0)
    return Forecast.build(first.item_ids, first.start, mean, quantiles, first.grain)


@dataclass
class ForecasterBundle:
    """A forecaster ready to forecast any panel of its grain.

    Attributes:
        kind: One of :data:`KINDS`.
        horizon: Periods it forecasts at most.
        params: Baseline parameters (empty for a global model, whose settings travel with its weights).
        metadata: Run date, training table versions and the like.
        model: The trained global model (:class:`QuantileNetForecaster` or :class:`GBDTForecaster`); None otherwise.
        members: The member bundles of an ensemble.
        grain: The period forecast: ``day``, ``week`` or ``month``.
        target: What is forecast: ``units`` or ``revenue``.
        calibration: The conformal shifts of P10/P90 (:mod:`shoplake.forecast.conformal`), None: the raw band.
    """

    kind: str
    horizon: int
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    members: list[ForecasterBundle] = field(default_factory=list)
    grain: str = DAY
    target: str = "units"
    calibration: BandCalibration | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown forecaster {self.kind!r}; known: {', '.join(KINDS)}")
        if self.kind in GLOBAL_MODELS and self.model is None:
            raise ValueError(f"a {self.kind} bundle needs the trained model")
        if self.kind == ENSEMBLE and not self.members:
            raise ValueError("an ensemble bundle needs its members")

    def prepare(self, daily: SalesPanel) -> SalesPanel:
        """A daily panel summed to the bundle's grain with its target (what :meth:`forecast` reads)."""
        return daily.to_grain(self.grain).with_target(self.target)

    def raw_forecast(self, panel: SalesPanel, horizon: int | None = None) -> Forecast:
        """The model's own forecast of the ``horizon`` periods (default all) after the panel, before calibration."""
        horizon = horizon or self.horizon
        if not 1 <= horizon <= self.horizon:
            raise ValueError(f"horizon must lie in 1..{self.horizon}, got {horizon}")
        if panel.grain != self.grain:
            raise ValueError(f"a {self.grain} forecaster cannot read a {panel.grain} panel: sum it with prepare() first")
        if self.members:
            return average_forecasts([m.raw_forecast(panel, horizon) for m in self.members])
        if self.model is not None:
            return self.model.forecast(panel, horizon)
        return forecast_baseline(self.kind, panel, horizon, self.params)

    def forecast(self, panel: SalesPanel, horizon: int | None = None) -> Forecast:
        """Forecast the ``horizon`` periods (default all) after the panel's last one, with the calibrated band."""
        raw = self.raw_forecast(panel, horizon)
        if self.calibration is None:
            return raw
        return self.calibration.apply(raw, item_scale(panel.y, self.horizon, panel.integer))

    def save(self, folder: str | Path) -> Path:
        """Write the bundle into ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.model is not None:
            self.model.save(folder)
        for member in self.members:
            member.save(folder / MEMBERS_FOLDER / member.kind)
        doc = {
            "kind": self.kind, "horizon": self.horizon, "grain": self.grain, "target": self.target, "params": self.params,
            "calibration": None if self.calibration is None else self.calibration.as_dict(),
            "members": [m.kind for m in self.members], "metadata": self.metadata,
        }  # fmt: skip
        (folder / BUNDLE_FILE).write_text(json.dumps(doc, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ForecasterBundle:
        """Read a bundle written by :meth:`save` (a bundle from before grains is daily, in units, uncalibrated).

        Raises:
            FileNotFoundError: ``folder`` holds no forecaster bundle.
        """
        folder = Path(folder)
        if not (folder / BUNDLE_FILE).is_file():
            raise FileNotFoundError(f"no forecaster bundle in {folder} ({BUNDLE_FILE} missing)")
        doc = json.loads((folder / BUNDLE_FILE).read_text())
        model = None
        if doc["kind"] == GLOBAL_MODEL:
            from shoplake.forecast.models.quantile_net import QuantileNetForecaster

            model = QuantileNetForecaster.load(folder)
        elif doc["kind"] == GBDT:
            from shoplake.forecast.models.gbdt import GBDTForecaster

            model = GBDTForecaster.load(folder)
        members = [cls.load(folder / MEMBERS_FOLDER / kind) for kind in doc.get("members", [])]
        return cls(
            doc["kind"], int(doc["horizon"]), doc.get("params", {}), doc.get("metadata", {}), model, members,
            doc.get("grain", DAY), doc.get("target", "units"), BandCalibration.from_dict(doc.get("calibration")),
        )  # fmt: skip
