"""The global forecaster's inputs: its settings, the padded panel, and each (item, origin) window's features and targets (see :mod:`shoplake.forecast.models.quantile_net`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoplake.forecast.models.panel import SalesPanel, nanmean

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
