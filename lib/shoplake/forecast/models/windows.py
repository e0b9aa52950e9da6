"""The global forecasters' inputs: their settings, the padded panel, and each (item, origin) window's features and targets.

Shared by the network (:mod:`shoplake.forecast.models.quantile_net`) and the
gradient-boosted trees (:mod:`shoplake.forecast.models.gbdt`); the features are
described in the network's module. Everything counts periods of the panel's grain:
the rolling windows are a week and four weeks of days, a month and a quarter of
weeks, a quarter and a year of months (:data:`shoplake.forecast.grain.ROLLING_WINDOWS`),
and the seasonal lags read the same position one season back (a week of days, a
year of weeks or months).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoplake.forecast.grain import DAY, PERIODS_PER_YEAR, ROLLING_WINDOWS, check_grain, period_starts, season_length
from shoplake.forecast.models.panel import SalesPanel, nanmean

#: The model's settings inside each checkpoint and saved model folder.
SETTINGS_FILE = "quantile_net.json"
#: The weights inside a saved model folder.
WEIGHTS_FILE = "quantile_net.pt"
#: Named encoder inputs after the lags, in order (short and long: :data:`ROLLING_WINDOWS` of the grain).
ENCODER_STATS = (
    "mean_short",
    "std_short",
    "mean_long",
    "std_long",
    "zero_share_long",
    "observed_share_long",
    "log_scale",
    "price_ratio",
    "log_price",
    "promo_last",
    "promo_share",
    "stock_out_share",
    "age",
)
#: Per forecast period, after its calendar: the item's scaled value at the same position
#: of the last season before the origin (the same weekday last week; the same week or
#: month last year), and the mean over the last :data:`SEASON_LAGS` seasons.
DECODER_LAGS = ("same_season_last", "same_season_mean")
#: Seasons the seasonal-lag mean reads back: four weeks of days; one year of weeks or months.
SEASON_LAGS = {"day": 4, "week": 1, "month": 1}
#: Outputs per forecast day, in order.
OUTPUTS = ("mean", "p10", "p50", "p90")


@dataclass(frozen=True)
class NetSettings:
    """What rebuilds a global model's inputs, and the network (saved as JSON with the weights).

    ``horizon`` and ``history`` count periods of ``grain``.
    """

    horizon: int = 28
    history: int = 28
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.1
    mean_weight: float = 1.0
    target_clip: float | None = 10.0
    grain: str = DAY

    def __post_init__(self) -> None:
        check_grain(self.grain)

    @property
    def season(self) -> int:
        return season_length(self.grain)

    @property
    def windows(self) -> tuple[int, int]:
        """The short and long rolling windows, periods."""
        return ROLLING_WINDOWS[self.grain]

    @property
    def encoder_dim(self) -> int:
        return self.history + len(ENCODER_STATS)

    @property
    def calendar_dim(self) -> int:
        return CALENDAR_DIM[self.grain]

    @property
    def decoder_dim(self) -> int:
        return self.calendar_dim + len(DECODER_LAGS) + self.horizon

    @property
    def context(self) -> int:
        """Periods before an origin that the inputs read: the lags, the long window, the seasonal lags."""
        return max(self.history, self.windows[1], self.season * SEASON_LAGS[self.grain])

    @classmethod
    def from_config(cls, cfg) -> NetSettings:
        fc = cfg.forecasting
        return cls(
            horizon=fc.horizon,
            history=fc.history,
            hidden=fc.hidden,
            layers=fc.layers,
            dropout=fc.dropout,
            mean_weight=fc.mean_weight,
            target_clip=fc.target_clip,
            grain=fc.grain,
        )

    @classmethod
    def from_dict(cls, values: dict) -> NetSettings:
        """Settings saved with a model (``history_days``: the name of ``history`` before grains)."""
        values = dict(values)
        if "history_days" in values:
            values["history"] = values.pop("history_days")
        return cls(**values)


# ---------------------------------------------------------------------------
# Windows

#: Calendar inputs per forecast period: day-of-week one-hot, day of month and day of year
#: (sine, cosine) for days; month one-hot and day of year of the period's start otherwise.
CALENDAR_DIM = {"day": 10, "week": 14, "month": 14}


@dataclass
class Windows:
    """Inputs (and targets) of a batch of (item, origin) windows.

    Attributes:
        encoder: float32 ``[B, encoder_dim]``: the scaled lags, then :data:`ENCODER_STATS`.
        decoder: float32 ``[B, H, decoder_dim]``: calendar, :data:`DECODER_LAGS` and lead
            one-hot of each forecast period.
        scale: float64 ``[B]``, the divisor of the window's values.
        target: float32 ``[B, H]`` scaled values of the forecast periods (clipped at 0),
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


def calendar_features(start, columns: np.ndarray, grain: str = DAY) -> np.ndarray:
    """Calendar inputs of forecast periods (:data:`CALENDAR_DIM` per grain).

    Days: day-of-week one-hot (Monday first), (day of month - 1) / 30, day of year as
    sine and cosine. Weeks and months: month one-hot of the period's first day, its day
    of year as sine and cosine.

    Args:
        start: The panel's first period's first day (column 0).
        columns: ``[B, H]`` panel columns (>= 0) of the forecast periods (may lie beyond the panel).
        grain: The panel's grain.

    Returns:
        float32 ``[B, H, CALENDAR_DIM[grain]]``.
    """
    b, h = columns.shape
    dates = period_starts(start, int(columns.max()) + 1 if columns.size else 0, grain)[columns]
    angle = 2 * np.pi * (dates - dates.astype("datetime64[Y]")).astype(np.int64) / 365.25
    out = np.zeros((b, h, CALENDAR_DIM[grain]), dtype=np.float32)
    if grain == DAY:
        dow = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        dom = (dates - dates.astype("datetime64[M]")).astype(np.int64)  # 0-based
        np.put_along_axis(out, dow[..., None], 1.0, axis=-1)
        out[..., 7] = dom / 30.0
    else:
        month = dates.astype("datetime64[M]").astype(np.int64) % 12
        np.put_along_axis(out, month[..., None], 1.0, axis=-1)
    out[..., -2] = np.sin(angle)
    out[..., -1] = np.cos(angle)
    return out


class PanelFrame:
    """A panel's target padded with NaN on both sides, so any window is a plain fancy-index gather.

    Column ``c`` of the panel is column ``c + pad`` here, with ``pad`` =
    ``settings.context``; ``horizon`` NaN columns follow the last period. ``y`` holds
    the panel's target (:attr:`SalesPanel.y`: units or revenue).
    """

    def __init__(self, panel: SalesPanel, settings: NetSettings):
        if panel.grain != settings.grain:
            raise ValueError(f"a model of grain {settings.grain} cannot read a panel of grain {panel.grain}")
        self.start, self.settings = panel.start, settings
        self.n_periods = panel.n_periods
        self.pad = settings.context
        widths = ((0, 0), (self.pad, settings.horizon))
        self.y = np.pad(panel.y.astype(np.float32), widths, constant_values=np.nan)
        self.price = np.pad(panel.price.astype(np.float32), widths, constant_values=np.nan)
        self.promo = np.pad(panel.promo.astype(np.float32), widths)
        self.stock_out = np.pad(np.nan_to_num(panel.stock_out).astype(np.float32), widths)
        self.first_sale = panel.first_sale

    def candidates(self, min_history: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """All training windows: (item, origin) with ``first_sale + min_history <= origin < n_periods``."""
        lo = np.minimum(self.first_sale + min_history, self.n_periods)
        counts = self.n_periods - lo
        items = np.repeat(np.arange(len(lo)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return items, lo[items] + offsets


def season_lags(frame: PanelFrame, items: np.ndarray, origins: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """:data:`DECODER_LAGS` of each forecast period: float32 ``[B, H, 2]``, scaled, 0 where unknown.

    With season ``m``, forecast period ``o + h`` (``h`` from 0) reads column
    ``o + h - m ceil((h + 1) / m)``, the last period at the same position of the season
    before the origin, and the :data:`SEASON_LAGS` seasons before that for the mean.
    """
    st = frame.settings
    m, count = st.season, SEASON_LAGS[st.grain]
    h = np.arange(st.horizon)
    last = origins[:, None] + h[None, :] - m * ((h[None, :] // m) + 1)  # [B, H] panel columns
    cols = last[..., None] - m * np.arange(count)  # [B, H, count], never before the padding: pad >= m * count
    values = frame.y[items[:, None, None], cols + frame.pad] / scale[:, None, None].astype(np.float32)
    out = np.stack([values[..., 0], nanmean(values, axis=-1)], axis=-1)
    return np.nan_to_num(out).astype(np.float32)


def _nan_std(x: np.ndarray, mean: np.ndarray, count: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.sqrt(np.nansum((x - mean[:, None]) ** 2, axis=1) / np.maximum(count, 1))


def window_features(frame: PanelFrame, items: np.ndarray, origins: np.ndarray, with_targets: bool = False) -> Windows:
    """The inputs of windows ending the period before each origin (see the network's module docstring).

    Only periods before ``origin`` enter the inputs; the targets are periods
    ``origin .. origin + horizon - 1``.

    Args:
        frame: The padded panel.
        items: ``[B]`` item rows.
        origins: ``[B]`` first forecast period of each window, as panel columns (up to ``n_periods``).
        with_targets: Also gather the scaled targets.
    """
    st = frame.settings
    short, long = st.windows
    items, origins = np.asarray(items, dtype=np.int64), np.asarray(origins, dtype=np.int64)
    w, lags_n = st.context, st.history
    rows = items[:, None]
    past = origins[:, None] + frame.pad + np.arange(-w, 0)[None, :]  # padded columns of the w periods before
    values = frame.y[rows, past]
    recent = values[:, -lags_n:]
    observed_recent = (~np.isnan(recent)).sum(axis=1)
    with np.errstate(all="ignore"):
        level = np.where(observed_recent > 0, np.nansum(np.maximum(recent, 0), axis=1) / np.maximum(observed_recent, 1), 0.0)
    scale = level.astype(np.float64) + 1.0
    scaled = values / scale[:, None].astype(np.float32)

    stats = {}
    for name, periods in (("short", short), ("long", long)):
        part = scaled[:, -periods:]
        count = (~np.isnan(part)).sum(axis=1)
        mean = np.where(count > 0, np.nansum(part, axis=1) / np.maximum(count, 1), 0.0)
        stats[f"mean_{name}"], stats[f"std_{name}"] = mean, np.where(count > 0, _nan_std(part, mean, count), 0.0)
    part = values[:, -long:]
    count = (~np.isnan(part)).sum(axis=1)
    stats["zero_share_long"] = np.where(count > 0, (part <= 0).sum(axis=1) / np.maximum(count, 1), 0.0)
    stats["observed_share_long"] = count / long
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
    year = PERIODS_PER_YEAR[st.grain]
    stats["age"] = np.clip(origins - frame.first_sale[items], 0, year) / year

    encoder = np.concatenate([np.nan_to_num(scaled[:, -lags_n:]), np.column_stack([stats[k] for k in ENCODER_STATS])], axis=1)
    future = origins[:, None] + np.arange(st.horizon)[None, :]
    lead = np.broadcast_to(np.eye(st.horizon, dtype=np.float32), (len(items), st.horizon, st.horizon))
    decoder = np.concatenate([calendar_features(frame.start, future, st.grain), season_lags(frame, items, origins, scale), lead], axis=-1)
    target = None
    if with_targets:
        target = np.maximum(frame.y[rows, future + frame.pad], 0) / scale[:, None].astype(np.float32)  # NaN stays NaN
    return Windows(encoder.astype(np.float32), decoder, scale, target)
