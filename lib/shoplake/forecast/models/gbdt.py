"""The global gradient-boosted forecaster: XGBoost trees over all items' lags, rolling statistics, calendar and price.

The approach that won the M5 competition: one model for every item, fit on rows
cut from the items' pasts, each row an (item, origin, lead) with the features known
at the origin. It forecasts **directly**: the lead (1 .. horizon) is a feature, and
one model answers every lead from the same inputs, so no forecast is fed back as a
lag and errors do not compound over the horizon as in a recursive model.

**Features** (:func:`feature_names`): the global network's window inputs
(:func:`~shoplake.forecast.models.windows.window_features`): the last ``history``
periods of the item's scaled values, the rolling means and deviations of the short
and long windows, the share of periods without sales, the scale itself, price
relative to its recent mean, promotion and stock-out shares, the item's age; and per
row the target period's calendar, its seasonal lags (same weekday last week, same
week last year), and the lead. Values are divided by the window's scale (its mean
level + 1), so the trees split on shapes, not sizes, and the forecast is the output
times the scale.

**Two boosters.** The mean: squared error on the scaled target capped at
``forecasting.target_clip`` (bulk orders would dominate it, as for the network).
The quantiles: XGBoost's ``reg:quantileerror`` with the three levels of
:data:`~shoplake.forecast.schemas.QUANTILES` in one booster, on the uncapped target.

**Training** (:meth:`GBDTForecaster.train`, rows from :func:`training_rows`):
``forecasting.gbdt_windows`` windows are sampled (seeded) among every item's origins
from one period after its first sale to the panel's last period, each giving a row
per lead whose target lies inside the panel.
Ray Train's ``XGBoostTrainer`` runs ``ray.num_workers`` workers; each trains on its
share of the rows (row ``i`` goes to rank ``i % workers``) and XGBoost's collective
builds one model from all of them. The per-round training loss of both boosters
is the run's history.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from shoplake.forecast.models.panel import Forecast, SalesPanel
from shoplake.forecast.models.windows import DECODER_LAGS, ENCODER_STATS, NetSettings, PanelFrame, window_features
from shoplake.forecast.schemas import QUANTILES

log = logging.getLogger(__name__)

#: Files of a saved model: the two boosters and the settings with the training facts.
MEAN_FILE = "gbdt_mean.ubj"
QUANTILE_FILE = "gbdt_quantiles.ubj"
INFO_FILE = "gbdt.json"
#: Windows turned into rows at a time (bounds the memory of the per-lead decoder inputs).
_CHUNK = 4096


def feature_names(settings: NetSettings) -> list[str]:
    """The column names of :func:`gbdt_rows`: lags (``lag_k``: k periods before the origin), statistics, calendar, seasonal lags, lead."""
    lags = [f"lag_{settings.history - j}" for j in range(settings.history)]
    calendar = [f"calendar_{k}" for k in range(settings.calendar_dim)]
    return [*lags, *ENCODER_STATS, *calendar, *DECODER_LAGS, "lead"]


def gbdt_rows(frame: PanelFrame, items: np.ndarray, origins: np.ndarray, with_targets: bool = False):
    """One row per (window, lead): ``(X [B*H, F] float32, scale [B*H], target [B*H] or None)``, window-major.

    The target is the scaled value of the lead's period (clipped at 0, NaN beyond the panel).
    """
    st = frame.settings
    h = st.horizon
    parts_x, parts_s, parts_y = [], [], []
    for start in range(0, len(items), _CHUNK):
        win = window_features(frame, items[start : start + _CHUNK], origins[start : start + _CHUNK], with_targets=with_targets)
        b = len(win.scale)
        encoder = np.repeat(win.encoder, h, axis=0)
        decoder = win.decoder[..., : st.calendar_dim + len(DECODER_LAGS)].reshape(b * h, -1)
        lead = np.tile(np.arange(1, h + 1, dtype=np.float32), b)[:, None]
        parts_x.append(np.concatenate([encoder, decoder, lead], axis=1))
        parts_s.append(np.repeat(win.scale, h))
        if with_targets:
            parts_y.append(win.target.reshape(-1))
    x = np.concatenate(parts_x) if parts_x else np.zeros((0, len(feature_names(st))), np.float32)
    s = np.concatenate(parts_s) if parts_s else np.zeros(0)
    y = (np.concatenate(parts_y) if parts_y else np.zeros(0, np.float32)) if with_targets else None
    return x, s, y


def training_rows(cfg, panel: SalesPanel) -> tuple[np.ndarray, np.ndarray, int]:
    """The training rows of ``panel``: ``(X, scaled target, windows sampled)``, rows with a known target only.

    ``forecasting.gbdt_windows`` windows are drawn (seeded by ``training.seed``) among
    every item's origins from one period after its first sale to the panel's last period.

    Raises:
        ValueError: The panel has no training window.
    """
    frame = PanelFrame(panel, NetSettings.from_config(cfg))
    items, origins = frame.candidates(1)
    if len(items) == 0:
        raise ValueError("no training windows: no item has a sale before the panel's last period")
    rng = np.random.default_rng(cfg.training.seed)
    pick = np.sort(rng.choice(len(items), size=min(cfg.forecasting.gbdt_windows, len(items)), replace=False))
    x, _, y = gbdt_rows(frame, items[pick], origins[pick], with_targets=True)
    known = ~np.isnan(y)
    return x[known], y[known], int(len(pick))


def forecast_rows(settings: NetSettings, panel: SalesPanel, items: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rows that forecast the periods after ``panel`` for ``items`` (default all): ``(X [n*H, F], scale [n*H])``, item-major."""
    items = np.arange(panel.n_items) if items is None else np.asarray(items)
    x, scale, _ = gbdt_rows(PanelFrame(panel, settings), items, np.full(len(items), panel.n_periods))
    return x, scale


def gbdt_params(cfg) -> dict:
    """XGBoost parameters shared by both boosters, from ``cfg.forecasting`` and ``cfg.ray``."""
    fc, rc = cfg.forecasting, cfg.ray
    params = {
        "tree_method": "hist",
        "max_depth": fc.gbdt_max_depth,
        "eta": fc.gbdt_eta,
        "subsample": fc.gbdt_subsample,
        "min_child_weight": 1.0,
        # A worker granted half a CPU must not spin up threads for the whole machine.
        "nthread": max(1, int(rc.cpus_per_worker)),
        "seed": cfg.training.seed,
    }
    if rc.use_gpu:
        params["device"] = "cuda"
    return params


def _train_loop_per_worker(config: dict) -> None:
    """One XGBoost worker: both boosters on this rank's rows, reported once at the end.

    Ray Train's XGBoost backend has joined the workers in XGBoost's collective before
    this runs, so each ``xgboost.train`` builds one model over every rank's rows.
    """
    import ray
    import ray.train
    import xgboost
    from ray.train import Checkpoint
    from xgboost import collective

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    x, y = ray.get(config["x"]), ray.get(config["y"])
    rows = np.arange(rank, len(y), world_size)
    names = list(config["feature_names"])
    params = dict(config["params"])
    clip = config["target_clip"]
    started = time.monotonic()
    y_mean = y[rows] if clip is None else np.minimum(y[rows], clip)
    dmean = xgboost.DMatrix(x[rows], label=y_mean, feature_names=names, nthread=params["nthread"])
    mean_log: dict = {}
    mean = xgboost.train(
        {**params, "objective": "reg:squarederror", "eval_metric": "rmse"}, dmean, num_boost_round=config["rounds"],
        evals=[(dmean, "train")], evals_result=mean_log, verbose_eval=False,
    )  # fmt: skip
    dq = xgboost.DMatrix(x[rows], label=y[rows], feature_names=names, nthread=params["nthread"])
    q_log: dict = {}
    quantiles = xgboost.train(
        {**params, "objective": "reg:quantileerror", "quantile_alpha": list(QUANTILES), "eval_metric": "quantile"}, dq,
        num_boost_round=config["rounds"], evals=[(dq, "train")], evals_result=q_log, verbose_eval=False,
    )  # fmt: skip
    world = collective.get_world_size() if collective.is_distributed() else 1
    history = [
        {"round": r, "rmse": float(m), "quantile": float(q)}
        for r, (m, q) in enumerate(zip(mean_log["train"]["rmse"], q_log["train"]["quantile"], strict=True))
    ]
    metrics = {"rounds": config["rounds"], "world_size": int(world), "seconds": time.monotonic() - started,
               "first_rmse": history[0]["rmse"], "last_rmse": history[-1]["rmse"]}  # fmt: skip
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="shoplake-gbdt-fc-") as folder:
        mean.save_model(str(Path(folder, MEAN_FILE)))
        quantiles.save_model(str(Path(folder, QUANTILE_FILE)))
        Path(folder, "history.json").write_text(json.dumps(history))
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))


class GBDTForecaster:
    """Two trained boosters (mean, quantiles) that forecast any panel's next periods.

    Attributes:
        settings: Horizon, history, grain and target cap (the global models' shared settings).
        mean: ``xgboost.Booster`` of the scaled mean.
        quantiles: ``xgboost.Booster`` of the scaled P10/P50/P90.
        info: Training facts (rows, rounds, workers, seconds).
        history: Per-round training loss of both boosters when trained here.
    """

    def __init__(self, settings: NetSettings, mean, quantiles, info: dict | None = None, history: list[dict] | None = None):
        self.settings, self.mean, self.quantiles = settings, mean, quantiles
        self.info, self.history = dict(info or {}), list(history or [])
        for booster in (mean, quantiles):
            # One thread: predictions are a few thousand rows, and two OpenMP runtimes (torch's and
            # XGBoost's) in one process made multi-threaded calls slower on two cores.
            booster.set_param({"nthread": 1})

    @classmethod
    def train(cls, cfg, panel: SalesPanel, name: str) -> GBDTForecaster:
        """Train on ``panel`` (everything in it lies before the cut-off) with Ray Train's ``XGBoostTrainer``.

        Raises:
            ValueError: The panel has no training window.
            RuntimeError: The run produced no model.
        """
        import ray
        from ray.train.xgboost import XGBoostTrainer

        from shoplake.ray_runtime import init_ray
        from shoplake.train.loop import run_configs

        fc = cfg.forecasting
        settings = NetSettings.from_config(cfg)
        x, y, windows = training_rows(cfg, panel)
        if len(y) < cfg.ray.num_workers:
            raise ValueError(f"{len(y)} training rows for {cfg.ray.num_workers} workers")
        init_ray(cfg)
        scaling, run = run_configs(cfg, name)
        config = {
            "x": ray.put(x), "y": ray.put(y), "feature_names": feature_names(settings), "params": gbdt_params(cfg),
            "rounds": fc.gbdt_rounds, "target_clip": settings.target_clip,
        }  # fmt: skip
        log.info("training %s on %d rows (%d windows of %d items)", name, len(y), windows, panel.n_items)
        started = time.monotonic()
        result = XGBoostTrainer(_train_loop_per_worker, train_loop_config=config, scaling_config=scaling, run_config=run).fit()
        if result.checkpoint is None:
            raise RuntimeError(f"gbdt run {name} produced no checkpoint")
        with result.checkpoint.as_directory() as folder:
            model = cls.load_boosters(Path(folder), settings)
            history = json.loads(Path(folder, "history.json").read_text())
        model.history = history
        model.info = {**dict(result.metrics or {}), "rows": int(len(y)), "windows": windows,
                      "fit_seconds": time.monotonic() - started, "run_path": str(result.path)}  # fmt: skip
        log.info(
            "trained %s in %.1f s: training RMSE %.4f -> %.4f", name, model.info["fit_seconds"], history[0]["rmse"], history[-1]["rmse"]
        )
        return model

    @classmethod
    def load_boosters(cls, folder: Path, settings: NetSettings, info: dict | None = None) -> GBDTForecaster:
        import xgboost

        mean, quantiles = xgboost.Booster(), xgboost.Booster()
        mean.load_model(str(folder / MEAN_FILE))
        quantiles.load_model(str(folder / QUANTILE_FILE))
        return cls(settings, mean, quantiles, info)

    def save(self, folder) -> Path:
        """Write both boosters and ``gbdt.json`` (settings, training facts) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.mean.save_model(str(folder / MEAN_FILE))
        self.quantiles.save_model(str(folder / QUANTILE_FILE))
        doc = {"settings": asdict(self.settings), "info": {k: v for k, v in self.info.items() if isinstance(v, int | float | str)}}
        (folder / INFO_FILE).write_text(json.dumps(doc, indent=2))
        return folder

    @classmethod
    def load(cls, folder) -> GBDTForecaster:
        """Read what :meth:`save` wrote."""
        folder = Path(folder)
        doc = json.loads((folder / INFO_FILE).read_text())
        return cls.load_boosters(folder, NetSettings.from_dict(doc["settings"]), doc.get("info"))

    def forecast(self, panel: SalesPanel, horizon: int | None = None) -> Forecast:
        """Forecast the ``horizon`` periods after the panel's last one (default: the trained horizon).

        Raises:
            ValueError: ``horizon`` exceeds the trained horizon.
        """
        st = self.settings
        horizon = horizon or st.horizon
        if not 1 <= horizon <= st.horizon:
            raise ValueError(f"horizon must lie in 1..{st.horizon} (the trained horizon), got {horizon}")
        n = panel.n_items
        x, scale = forecast_rows(st, panel)
        if len(x):
            mean = np.asarray(self.mean.inplace_predict(x), dtype=np.float64) * scale
            q = np.asarray(self.quantiles.inplace_predict(x), dtype=np.float64).reshape(len(x), len(QUANTILES)) * scale[:, None]
        else:
            mean, q = np.zeros(0), np.zeros((0, len(QUANTILES)))
        mean, q = mean.reshape(n, st.horizon), q.reshape(n, st.horizon, len(QUANTILES))
        unseen = panel.observed_periods == 0
        mean[unseen], q[unseen] = 0.0, 0.0
        return Forecast.build(panel.item_ids, panel.end, mean[:, :horizon], q[:, :horizon], panel.grain)
