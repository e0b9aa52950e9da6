"""The global forecasting model: one network over all items' daily sales, with quantiles.

:class:`QuantileNet` reads a window of an item's recent past (an *origin* ``o``
is the first forecast day; the inputs come from the days before it) and outputs,
for each of the ``horizon`` days from ``o`` on, the expected units and the P10,
P50 and P90 quantiles. All items share the weights, so an item with little history
borrows from the patterns of the others.

**Scale.** Items sell 0.1 to 1,000 units a day. Every window is divided by its
scale ``s = mean(max(units, 0) over the last history_days days) + 1`` (1 for an
item without observed days), inputs and targets alike; the forecast is the output
times ``s``. The loss is therefore on scaled units: every window counts about the
same, whatever the item sells.

**Inputs** (:func:`window_features`, NaN counted as 0 after scaling):

- encoder, per window: the last ``history_days`` days of scaled units (oldest
  first); mean and standard deviation of the scaled units over the last 7 and 28
  observed days; the share of days without sales and the share of observed days
  among the last 28; ``log(s)``; the last price relative to the window's mean
  price minus 1 (clipped to [-1, 1]) and ``log1p`` of that mean price / 5;
  promotion on the last day and the share of promotion days; the share of
  stock-out days; the item's age (days since its first sale, capped at 365, / 365).
- decoder, per forecast day: day-of-week one-hot, (day of month - 1) / 30, sine
  and cosine of the day of the year, the scaled units of the same weekday last week
  and their mean over the last four weeks (a global MLP learns the weekly shape of
  each item far faster from these than from the lags alone), the lead one-hot.

**Network.** An MLP encodes the window into a context vector; a second MLP maps
the context and each forecast day's calendar to four outputs (mean, P10, P50,
P90). **Loss:** the pinball loss of the three quantiles plus ``mean_weight`` times
the squared error of the mean, averaged over the known target days. Targets are
clipped at 0 (net cancellations can make a day negative; demand is not). In the
squared error they are also capped at ``target_clip`` (10 by default: ten times the
window's level): on Online Retail, 0.1 % of the days (bulk orders of 50 to 1,000
times an item's level) made up nearly 90 % of the unclipped squared error, and the
mean head chased them; the cap improved the revenue-weighted RMSSE at every
cut-off tried. Quantile crossing is fixed at prediction by sorting.

**Training** (:class:`QuantileNetTask` through :func:`shoplake.train.loop.fit`):
windows are drawn from all items at every origin from one day after the item's
first sale to the panel's last day; target days beyond the panel (the training
cut-off) are masked, so the most recent weeks teach the short leads. Each epoch
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

from shoplake.forecast.models.panel import Forecast, SalesPanel, nanmean
from shoplake.forecast.schemas import QUANTILES

log = logging.getLogger(__name__)

#: The model's settings inside each checkpoint and saved model folder.
SETTINGS_FILE = "quantile_net.json"
#: The weights inside a saved model folder.
WEIGHTS_FILE = "quantile_net.pt"
#: Days of the longer rolling statistics.
STATS_DAYS = 28
#: Age (days since first sale) at which the age input stops growing.
MAX_AGE_DAYS = 365
#: Named encoder inputs after the lags, in order.
ENCODER_STATS = (
    "mean_7",
    "std_7",
    "mean_28",
    "std_28",
    "zero_share_28",
    "observed_share_28",
    "log_scale",
    "price_ratio",
    "log_price",
    "promo_last",
    "promo_share",
    "stock_out_share",
    "age",
)
#: Per forecast day, after its calendar: the item's scaled units on the same weekday
#: last week, and their mean over the last four weeks (days before the origin).
DECODER_LAGS = ("same_weekday_last", "same_weekday_mean_4")
#: Outputs per forecast day, in order.
OUTPUTS = ("mean", "p10", "p50", "p90")


@dataclass(frozen=True)
class NetSettings:
    """What rebuilds a :class:`QuantileNet` and its inputs (saved as JSON with the weights)."""

    horizon: int = 28
    history_days: int = 28
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.1
    mean_weight: float = 1.0
    target_clip: float | None = 10.0

    @property
    def encoder_dim(self) -> int:
        return self.history_days + len(ENCODER_STATS)

    @property
    def decoder_dim(self) -> int:
        return 7 + 3 + len(DECODER_LAGS) + self.horizon

    @property
    def context_days(self) -> int:
        """Days before an origin that the inputs read (at least the four weeks of the statistics and weekday lags)."""
        return max(self.history_days, STATS_DAYS)

    @classmethod
    def from_config(cls, cfg) -> NetSettings:
        fc = cfg.forecasting
        return cls(
            horizon=fc.horizon_days,
            history_days=fc.history_days,
            hidden=fc.hidden,
            layers=fc.layers,
            dropout=fc.dropout,
            mean_weight=fc.mean_weight,
            target_clip=fc.target_clip,
        )


# ---------------------------------------------------------------------------
# Windows


@dataclass
class Windows:
    """Inputs (and targets) of a batch of (item, origin) windows.

    Attributes:
        encoder: float32 ``[B, encoder_dim]``: the scaled lags, then :data:`ENCODER_STATS`.
        decoder: float32 ``[B, H, decoder_dim]``: calendar, :data:`DECODER_LAGS` and lead
            one-hot of each forecast day.
        scale: float64 ``[B]``, the divisor of the window's units.
        target: float32 ``[B, H]`` scaled units of the forecast days (clipped at 0),
            NaN where unknown (beyond the panel); None unless asked for.
    """

    encoder: np.ndarray
    decoder: np.ndarray
    scale: np.ndarray
    target: np.ndarray | None = None

    @property
    def lags(self) -> np.ndarray:
        return self.encoder[:, : self.encoder.shape[1] - len(ENCODER_STATS)]

    def stat(self, name: str) -> np.ndarray:
        return self.encoder[:, self.encoder.shape[1] - len(ENCODER_STATS) + ENCODER_STATS.index(name)]


def calendar_features(start, days: np.ndarray) -> np.ndarray:
    """Calendar inputs of forecast days: day-of-week one-hot (Monday first), (day of month - 1) / 30, day of year as sine and cosine.

    Args:
        start: The panel's first day (column 0).
        days: ``[B, H]`` panel columns of the forecast days (may lie beyond the panel).

    Returns:
        float32 ``[B, H, 10]``.
    """
    dates = np.datetime64(start, "D") + days
    day_number = dates.astype(np.int64)
    dow = (day_number + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    dom = (dates - dates.astype("datetime64[M]")).astype(np.int64)  # 0-based
    angle = 2 * np.pi * (dates - dates.astype("datetime64[Y]")).astype(np.int64) / 365.25
    b, h = days.shape
    out = np.zeros((b, h, 10), dtype=np.float32)
    np.put_along_axis(out, dow[..., None], 1.0, axis=-1)
    out[..., 7] = dom / 30.0
    out[..., 8] = np.sin(angle)
    out[..., 9] = np.cos(angle)
    return out


class PanelFrame:
    """A panel padded with NaN on both sides, so any window is a plain fancy-index gather.

    Column ``c`` of the panel is column ``c + pad`` here, with ``pad`` =
    ``settings.context_days``; ``horizon`` NaN columns follow the last day.
    """

    def __init__(self, panel: SalesPanel, settings: NetSettings):
        self.start, self.settings = panel.start, settings
        self.n_days = panel.n_days
        self.pad = settings.context_days
        widths = ((0, 0), (self.pad, settings.horizon))
        self.units = np.pad(panel.units.astype(np.float32), widths, constant_values=np.nan)
        self.price = np.pad(panel.price.astype(np.float32), widths, constant_values=np.nan)
        self.promo = np.pad(panel.promo.astype(np.float32), widths)
        self.stock_out = np.pad(np.nan_to_num(panel.stock_out).astype(np.float32), widths)
        self.first_sale = panel.first_sale

    def candidates(self, min_history: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """All training windows: (item, origin) with ``first_sale + min_history <= origin < n_days``."""
        lo = np.minimum(self.first_sale + min_history, self.n_days)
        counts = self.n_days - lo
        items = np.repeat(np.arange(len(lo)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return items, lo[items] + offsets


def same_weekday_lags(frame: PanelFrame, items: np.ndarray, origins: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """:data:`DECODER_LAGS` of each forecast day: float32 ``[B, H, 2]``, scaled, 0 where unknown.

    Forecast day ``o + h`` (``h`` from 0) reads column ``o + h - 7 ceil((h + 1) / 7)``, the
    last same weekday before the origin, and the three same weekdays before that.
    """
    h = np.arange(frame.settings.horizon)
    last = origins[:, None] + h[None, :] - 7 * ((h[None, :] // 7) + 1)  # [B, H] panel columns
    cols = last[..., None] - 7 * np.arange(4)  # [B, H, 4]
    values = frame.units[items[:, None, None], cols + frame.pad] / scale[:, None, None].astype(np.float32)
    out = np.stack([values[..., 0], nanmean(values, axis=-1)], axis=-1)
    return np.nan_to_num(out).astype(np.float32)


def _nan_std(x: np.ndarray, mean: np.ndarray, count: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.sqrt(np.nansum((x - mean[:, None]) ** 2, axis=1) / np.maximum(count, 1))


def window_features(frame: PanelFrame, items: np.ndarray, origins: np.ndarray, with_targets: bool = False) -> Windows:
    """The inputs of windows ending the day before each origin (see the module docstring).

    Only days before ``origin`` enter the inputs; the targets are days
    ``origin .. origin + horizon - 1``.

    Args:
        frame: The padded panel.
        items: ``[B]`` item rows.
        origins: ``[B]`` first forecast day of each window, as panel columns (up to ``n_days``).
        with_targets: Also gather the scaled targets.
    """
    st = frame.settings
    items, origins = np.asarray(items, dtype=np.int64), np.asarray(origins, dtype=np.int64)
    w, lags_n = st.context_days, st.history_days
    rows = items[:, None]
    past = origins[:, None] + frame.pad + np.arange(-w, 0)[None, :]  # padded columns of the w days before
    units = frame.units[rows, past]
    recent = units[:, -lags_n:]
    observed_recent = (~np.isnan(recent)).sum(axis=1)
    with np.errstate(all="ignore"):
        level = np.where(observed_recent > 0, np.nansum(np.maximum(recent, 0), axis=1) / np.maximum(observed_recent, 1), 0.0)
    scale = level.astype(np.float64) + 1.0
    scaled = units / scale[:, None].astype(np.float32)

    stats = {}
    for days in (7, STATS_DAYS):
        part = scaled[:, -days:]
        count = (~np.isnan(part)).sum(axis=1)
        mean = np.where(count > 0, np.nansum(part, axis=1) / np.maximum(count, 1), 0.0)
        stats[f"mean_{days}"], stats[f"std_{days}"] = mean, np.where(count > 0, _nan_std(part, mean, count), 0.0)
    part = units[:, -STATS_DAYS:]
    count = (~np.isnan(part)).sum(axis=1)
    stats["zero_share_28"] = np.where(count > 0, (part <= 0).sum(axis=1) / np.maximum(count, 1), 0.0)
    stats["observed_share_28"] = count / STATS_DAYS
    stats["log_scale"] = np.log(scale)

    price = frame.price[rows, past[:, -lags_n:]]
    mean_price = nanmean(price, axis=1)
    with np.errstate(all="ignore"):
        ratio = price[:, -1] / mean_price - 1.0
    stats["price_ratio"] = np.clip(np.nan_to_num(ratio), -1.0, 1.0)
    stats["log_price"] = np.log1p(np.nan_to_num(np.maximum(mean_price, 0))) / 5.0
    promo = frame.promo[rows, past[:, -lags_n:]]
    stats["promo_last"] = promo[:, -1]
    stats["promo_share"] = promo.mean(axis=1)
    stats["stock_out_share"] = frame.stock_out[rows, past[:, -lags_n:]].mean(axis=1)
    stats["age"] = np.clip(origins - frame.first_sale[items], 0, MAX_AGE_DAYS) / MAX_AGE_DAYS

    encoder = np.concatenate([np.nan_to_num(scaled[:, -lags_n:]), np.column_stack([stats[k] for k in ENCODER_STATS])], axis=1)
    future = origins[:, None] + np.arange(st.horizon)[None, :]
    lead = np.broadcast_to(np.eye(st.horizon, dtype=np.float32), (len(items), st.horizon, st.horizon))
    decoder = np.concatenate([calendar_features(frame.start, future), same_weekday_lags(frame, items, origins, scale), lead], axis=-1)
    target = None
    if with_targets:
        target = np.maximum(frame.units[rows, future + frame.pad], 0) / scale[:, None].astype(np.float32)  # NaN stays NaN
    return Windows(encoder.astype(np.float32), decoder, scale, target)


# ---------------------------------------------------------------------------
# Network and loss


def _mlp(n_in: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    parts: list[nn.Module] = []
    for k in range(layers):
        parts += [nn.Linear(n_in if k == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*parts)


class QuantileNet(nn.Module):
    """Window encoder plus per-day decoder: ``[B, F]`` and ``[B, H, D]`` to ``[B, H, 4]``.

    The four outputs per day are :data:`OUTPUTS` (mean, P10, P50, P90) in scaled units.
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
        min_history: Days an item must have sold before an origin is used.
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
            raise ValueError("no training windows: no item has a sale before the panel's last day")
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
            raise ValueError("no training windows: no item has a sale before the panel's last day")
        log.info("training %s on %d items x %d days (%d windows)", name, panel.n_items, panel.n_days, len(task.candidates[0]))
        result = fit(cfg, task, name, epochs or cfg.forecasting.epochs, lr=cfg.forecasting.lr)
        return cls.from_state(asdict(task.settings), result.load_state()["model"], fit_result=result)

    @classmethod
    def from_state(cls, settings: dict, state: dict, fit_result=None) -> QuantileNetForecaster:
        """Rebuild from :attr:`settings` (as a dict) and a ``state_dict``."""
        net_settings = NetSettings(**settings)
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
        settings = json.loads((folder / SETTINGS_FILE).read_text())
        if (folder / WEIGHTS_FILE).exists():
            state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        else:
            from shoplake.train.loop import STATE_FILE

            state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)["model"]
        return cls.from_state(settings, state)

    @torch.no_grad()
    def forecast(self, panel: SalesPanel, horizon: int | None = None, batch_size: int = 4096) -> Forecast:
        """Forecast the ``horizon`` days after the panel's last day.

        Args:
            panel: History of the items to forecast.
            horizon: Days, at most the trained horizon (default: all of it).
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
            win = window_features(frame, items, np.full(len(items), panel.n_days))
            raw = self.model(torch.from_numpy(win.encoder), torch.from_numpy(win.decoder)).double().numpy()
            out[items] = raw * win.scale[:, None, None]
        out[panel.observed_days == 0] = 0.0
        out = out[:, :horizon]
        return Forecast.build(panel.item_ids, panel.end, out[..., 0], out[..., 1:])
