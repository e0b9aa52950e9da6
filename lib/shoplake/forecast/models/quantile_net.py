"""The global forecasting network: one network over all items' sales, with quantiles.

:class:`QuantileNet` reads a window of an item's recent past (an *origin* ``o``
is the first forecast period; the inputs come from the periods before it) and
outputs, for each of the ``horizon`` periods from ``o`` on, the expected value and
the P10, P50 and P90 quantiles. All items share the weights, so an item with little
history borrows from the patterns of the others. Periods are those of the panel's
grain (days, weeks or months); below, "short" and "long" are the rolling windows of
the grain (7 and 28 days, 4 and 13 weeks, 3 and 12 months) and "season" its season
(7 days, 52 weeks, 12 months). The values are the panel's target (units, or revenue).

**Scale.** Items sell 0.1 to 1,000 units a day. Every window is divided by its
scale ``s = mean(max(y, 0) over the last history periods) + 1`` (1 for an
item without observed periods), inputs and targets alike; the forecast is the output
times ``s``. The loss is therefore on scaled values: every window counts about the
same, whatever the item sells.

**Inputs** (:func:`~shoplake.forecast.models.windows.window_features`, NaN counted as 0 after scaling):

- encoder, per window: the last ``history`` periods of scaled values (oldest
  first); mean and standard deviation of the scaled values over the last short and
  long windows; the share of periods without sales and the share of observed periods
  among the long window; ``log(s)``; the last price relative to the window's mean
  price minus 1 (clipped to [-1, 1]) and ``log1p`` of that mean price / 5;
  promotion in the last period and the share of promotion periods; the share of
  stock-out days; the item's age (periods since its first sale, capped at a year).
- decoder, per forecast period: its calendar (days: day-of-week one-hot, (day of
  month - 1) / 30; weeks and months: month one-hot; all: sine and cosine of the day
  of the year), the scaled value at the same position of the last season (the same
  weekday last week, the same week last year) and, for days, their mean over the
  last four weeks (a global MLP learns the weekly shape of each item far faster from
  these than from the lags alone), the lead one-hot.

**Network.** An MLP encodes the window into a context vector; a second MLP maps
the context and each forecast period's calendar to four outputs (mean, P10, P50,
P90). **Loss:** the pinball loss of the three quantiles plus ``mean_weight`` times
the squared error of the mean, averaged over the known target periods. Targets are
clipped at 0 (net cancellations can make a day negative; demand is not). In the
squared error they are also capped at ``target_clip`` (10 by default: ten times the
window's level): on Online Retail, 0.1 % of the days (bulk orders of 50 to 1,000
times an item's level) made up nearly 90 % of the unclipped squared error, and the
mean head chased them; the cap improved the revenue-weighted RMSSE at every
cut-off tried. Quantile crossing is fixed at prediction by sorting.

**Training** (:class:`QuantileNetTask` through :func:`shoplake.train.loop.fit`):
windows are drawn from all items at every origin from one period after the item's
first sale to the panel's last period; target periods beyond the panel (the training
cut-off) are masked, so the most recent periods teach the short leads. Each epoch
samples ``windows_per_epoch`` of them (seeded by the epoch), split evenly by rank.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shoplake.forecast.models.panel import Forecast, SalesPanel
from shoplake.forecast.models.windows import (
    OUTPUTS,
    SETTINGS_FILE,
    WEIGHTS_FILE,
    NetSettings,
    PanelFrame,
    window_features,
)
from shoplake.forecast.schemas import QUANTILES

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Network and loss


def _mlp(n_in: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    parts: list[nn.Module] = []
    for k in range(layers):
        parts += [nn.Linear(n_in if k == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*parts)


class QuantileNet(nn.Module):
    """Window encoder plus per-period decoder: ``[B, F]`` and ``[B, H, D]`` to ``[B, H, 4]``.

    The four outputs per period are :data:`OUTPUTS` (mean, P10, P50, P90) in scaled units.
    """

    def __init__(self, settings: NetSettings):
        super().__init__()
        self.settings = settings
        self.encoder = _mlp(settings.encoder_dim, settings.hidden, settings.layers, settings.dropout)
        self.decoder = nn.Sequential(
            nn.Linear(settings.hidden + settings.decoder_dim, settings.hidden),
            nn.ReLU(),
            nn.Linear(settings.hidden, len(OUTPUTS)),
        )

    def forward(self, encoder: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        context = self.encoder(encoder)
        context = context[:, None, :].expand(-1, decoder.shape[1], -1)
        return self.decoder(torch.cat([context, decoder], dim=-1))


def quantile_loss(output: torch.Tensor, target: torch.Tensor, mean_weight: float = 1.0, target_clip: float | None = None) -> torch.Tensor:
    """Pinball loss of P10/P50/P90 plus ``mean_weight`` x squared error of the mean, over known targets.

    ``sum_q max(q (y - p_q), (q - 1)(y - p_q)) + mean_weight (min(y, clip) - m)^2``,
    averaged over the target days that are not NaN.

    Args:
        output: ``[B, H, 4]`` as :class:`QuantileNet` gives it.
        target: ``[B, H]`` scaled units, NaN where unknown.
        mean_weight: Weight of the mean's squared error.
        target_clip: Cap on the target in the squared error (None: none).
    """
    known = ~torch.isnan(target)
    y = torch.nan_to_num(target)
    q = torch.tensor(QUANTILES, dtype=output.dtype, device=output.device)
    diff = y[..., None] - output[..., 1:]
    pin = torch.maximum(q * diff, (q - 1.0) * diff).sum(dim=-1)
    y_mean = y if target_clip is None else y.clamp(max=target_clip)
    cell = pin + mean_weight * (y_mean - output[..., 0]) ** 2
    return (cell * known).sum() / known.sum().clamp(min=1)


# ---------------------------------------------------------------------------
# Ray Train task


@dataclass
class QuantileNetTask:
    """Training :class:`QuantileNet` as an :class:`~shoplake.train.loop.EpochTask`.

    Attributes:
        panel: Everything before the training cut-off.
        settings: The network and its inputs.
        windows_per_epoch: Windows sampled per epoch over all ranks (all when fewer exist).
        batch_size: Windows per step and rank.
        seed: Sampling seed (with the epoch number).
        min_history: Periods an item must have sold before an origin is used.
    """

    panel: SalesPanel
    settings: NetSettings
    windows_per_epoch: int = 100_000
    batch_size: int = 512
    seed: int = 0
    min_history: int = 1
    _frame: PanelFrame | None = field(default=None, init=False, repr=False)
    _candidates: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)

    def __getstate__(self) -> dict:
        # Workers rebuild the padded frame and the candidates from the panel.
        return {**self.__dict__, "_frame": None, "_candidates": None}

    @property
    def frame(self) -> PanelFrame:
        if self._frame is None:
            self._frame = PanelFrame(self.panel, self.settings)
        return self._frame

    @property
    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        if self._candidates is None:
            self._candidates = self.frame.candidates(self.min_history)
        return self._candidates

    def build_model(self) -> nn.Module:
        return QuantileNet(self.settings)

    def batches(self, epoch: int, rank: int, world_size: int):
        """This rank's share of the epoch's windows, in batches of feature tensors.

        Every rank gets ``ceil(k / world_size)`` windows (the sample is padded by
        repeating its start), so all ranks take the same number of steps.
        """
        items, origins = self.candidates
        if len(items) == 0:
            raise ValueError("no training windows: no item has a sale before the panel's last period")
        rng = np.random.default_rng([self.seed, epoch])
        k = min(self.windows_per_epoch, len(items))
        pick = rng.choice(len(items), size=k, replace=False)
        per_rank = math.ceil(k / world_size)
        mine = np.resize(pick, per_rank * world_size)[rank * per_rank : (rank + 1) * per_rank]
        for start in range(0, len(mine), self.batch_size):
            idx = mine[start : start + self.batch_size]
            win = window_features(self.frame, items[idx], origins[idx], with_targets=True)
            yield {
                "encoder": torch.from_numpy(win.encoder),
                "decoder": torch.from_numpy(win.decoder),
                "target": torch.from_numpy(win.target),
            }

    def loss(self, model: nn.Module, batch, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        output = model(batch["encoder"], batch["decoder"])
        return quantile_loss(output, batch["target"], self.settings.mean_weight, self.settings.target_clip), len(batch["target"])

    def artifacts(self) -> dict[str, str]:
        return {SETTINGS_FILE: json.dumps(asdict(self.settings), indent=2)}


def quantile_net_task(cfg, panel: SalesPanel) -> QuantileNetTask:
    """A :class:`QuantileNetTask` with ``cfg.forecasting``'s settings and ``cfg.training.seed``."""
    fc = cfg.forecasting
    return QuantileNetTask(
        panel=panel,
        settings=NetSettings.from_config(cfg),
        windows_per_epoch=fc.windows_per_epoch,
        batch_size=fc.batch_size,
        seed=cfg.training.seed,
    )


# ---------------------------------------------------------------------------
# Forecaster


class QuantileNetForecaster:
    """A trained :class:`QuantileNet` that forecasts any panel's next days.

    Attributes:
        settings: The network and its inputs.
        model: The network, in eval mode.
        fit_result: The :class:`~shoplake.train.loop.FitResult` when trained here, else None.
    """

    def __init__(self, settings: NetSettings, model: QuantileNet, fit_result=None):
        self.settings, self.model, self.fit_result = settings, model.eval(), fit_result

    @classmethod
    def train(cls, cfg, panel: SalesPanel, name: str, *, epochs: int | None = None) -> QuantileNetForecaster:
        """Train on ``panel`` (everything in it lies before the cut-off) with Ray Train.

        Args:
            cfg: Configuration: ``cfg.forecasting`` (network, epochs, lr, windows),
                ``cfg.ray``/``cfg.training`` for :func:`~shoplake.train.loop.fit`.
            panel: The training history.
            name: The Ray Train run name (a new folder under ``<runs_dir>/ray_results``).
            epochs: Overrides ``cfg.forecasting.epochs``.

        Raises:
            ValueError: The panel has no training window.
        """
        from shoplake.train.loop import fit

        task = quantile_net_task(cfg, panel)
        if len(task.candidates[0]) == 0:
            raise ValueError("no training windows: no item has a sale before the panel's last period")
        log.info(
            "training %s on %d items x %d %ss (%d windows)", name, panel.n_items, panel.n_periods, panel.grain, len(task.candidates[0])
        )
        result = fit(cfg, task, name, epochs or cfg.forecasting.epochs, lr=cfg.forecasting.lr)
        return cls.from_state(asdict(task.settings), result.load_state()["model"], fit_result=result)

    @classmethod
    def from_state(cls, settings: dict, state: dict, fit_result=None) -> QuantileNetForecaster:
        """Rebuild from :attr:`settings` (as a dict) and a ``state_dict``."""
        net_settings = NetSettings.from_dict(settings)
        model = QuantileNet(net_settings)
        model.load_state_dict(state)
        return cls(net_settings, model, fit_result)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def save(self, folder) -> Path:
        """Write ``quantile_net.json`` (settings) and ``quantile_net.pt`` (weights) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SETTINGS_FILE).write_text(json.dumps(asdict(self.settings), indent=2))
        torch.save(self.state_dict(), folder / WEIGHTS_FILE)
        return folder

    @classmethod
    def load(cls, folder) -> QuantileNetForecaster:
        """Load what :meth:`save` wrote (or a training checkpoint folder, whose ``state.pt`` holds the model)."""
        folder = Path(folder)
        settings = json.loads((folder / SETTINGS_FILE).read_text())  # NetSettings.from_dict reads older names
        if (folder / WEIGHTS_FILE).exists():
            state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        else:
            from shoplake.train.loop import STATE_FILE

            state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)["model"]
        return cls.from_state(settings, state)

    @torch.no_grad()
    def forecast(self, panel: SalesPanel, horizon: int | None = None, batch_size: int = 4096) -> Forecast:
        """Forecast the ``horizon`` periods after the panel's last one.

        Args:
            panel: History of the items to forecast, at the model's grain.
            horizon: Periods, at most the trained horizon (default: all of it).
            batch_size: Items per forward pass.

        Raises:
            ValueError: ``horizon`` exceeds the trained horizon.
        """
        horizon = horizon or self.settings.horizon
        if not 1 <= horizon <= self.settings.horizon:
            raise ValueError(f"horizon must lie in 1..{self.settings.horizon} (the trained horizon), got {horizon}")
        frame = PanelFrame(panel, self.settings)
        n = panel.n_items
        out = np.zeros((n, self.settings.horizon, len(OUTPUTS)))
        self.model.eval()
        for start in range(0, n, batch_size):
            items = np.arange(start, min(start + batch_size, n))
            win = window_features(frame, items, np.full(len(items), panel.n_periods))
            raw = self.model(torch.from_numpy(win.encoder), torch.from_numpy(win.decoder)).double().numpy()
            out[items] = raw * win.scale[:, None, None]
        out[panel.observed_periods == 0] = 0.0
        out = out[:, :horizon]
        return Forecast.build(panel.item_ids, panel.end, out[..., 0], out[..., 1:], panel.grain)
