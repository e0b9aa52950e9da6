"""A registered forecaster: one of the forecasting models with what it needs to forecast.

On disk a bundle is a folder with ``bundle.json`` (kind, parameters, metadata) and,
for the global model, its settings and weights. The classic baselines have no
weights: they are fit on each panel they forecast, so their bundle is their
parameters only. Batch scoring loads the registered bundle and forecasts every
item's next days from ``gold.item_daily_sales``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoplake.bundle import BUNDLE_FILE
from shoplake.forecast.models import baselines
from shoplake.forecast.models.panel import Forecast, SalesPanel

#: Forecasting model families, in the order the backtest reports them.
BASELINES = tuple(baselines.BASELINES)
GLOBAL_MODEL = "quantile_net"
KINDS = (*BASELINES, GLOBAL_MODEL)


def baseline_params(cfg, kind: str) -> dict[str, Any]:
    """Parameters of a baseline from the configuration."""
    if kind == "moving_average":
        return {"window": cfg.forecasting.moving_average_days}
    if kind in BASELINES:
        return {}
    raise ValueError(f"{kind!r} is not a baseline; baselines: {', '.join(BASELINES)}")


def forecast_baseline(kind: str, panel: SalesPanel, horizon: int, params: dict[str, Any]) -> Forecast:
    """The ``horizon`` days after ``panel`` forecast by the baseline ``kind``."""
    if kind in baselines.BASELINES:
        return baselines.BASELINES[kind](panel, horizon, **params)
    raise ValueError(f"{kind!r} is not a baseline; baselines: {', '.join(BASELINES)}")


@dataclass
class ForecasterBundle:
    """A forecaster ready to forecast any panel.

    Attributes:
        kind: One of :data:`KINDS`.
        horizon: Days it forecasts at most.
        params: Baseline parameters (empty for the global model, whose settings travel with its weights).
        metadata: Run date, training table versions and the like.
        net: The trained global model (None for a baseline).
    """

    kind: str
    horizon: int
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    net: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown forecaster {self.kind!r}; known: {', '.join(KINDS)}")
        if self.kind == GLOBAL_MODEL and self.net is None:
            raise ValueError(f"a {GLOBAL_MODEL} bundle needs the trained network")

    def forecast(self, panel: SalesPanel, horizon: int | None = None) -> Forecast:
        """Forecast the ``horizon`` days (default all) after the panel's last day."""
        horizon = horizon or self.horizon
        if not 1 <= horizon <= self.horizon:
            raise ValueError(f"horizon must lie in 1..{self.horizon}, got {horizon}")
        if self.net is not None:
            return self.net.forecast(panel, horizon)
        return forecast_baseline(self.kind, panel, horizon, self.params)

    def save(self, folder: str | Path) -> Path:
        """Write the bundle into ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.net is not None:
            self.net.save(folder)
        doc = {"kind": self.kind, "horizon": self.horizon, "params": self.params, "metadata": self.metadata}
        (folder / BUNDLE_FILE).write_text(json.dumps(doc, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ForecasterBundle:
        """Read a bundle written by :meth:`save`.

        Raises:
            FileNotFoundError: ``folder`` holds no forecaster bundle.
        """
        folder = Path(folder)
        if not (folder / BUNDLE_FILE).is_file():
            raise FileNotFoundError(f"no forecaster bundle in {folder} ({BUNDLE_FILE} missing)")
        doc = json.loads((folder / BUNDLE_FILE).read_text())
        net = None
        if doc["kind"] == GLOBAL_MODEL:
            from shoplake.forecast.models.quantile_net import QuantileNetForecaster

            net = QuantileNetForecaster.load(folder)
        return cls(doc["kind"], int(doc["horizon"]), doc.get("params", {}), doc.get("metadata", {}), net)
