"""Gradient-boosted trees for fraud: XGBoost trained data-parallel with Ray Train's ``XGBoostTrainer``; the score is the fraud probability."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from shoplake.fraud.declarations import FEATURE_NAMES
from shoplake.fraud.models.base import (
    EARLY_STOPPING_ROUNDS,
    GBT,
    GBT_INFO_FILE,
    GBT_MODEL_FILE,
    FeatureMismatchError,
    _json_safe,
    _labels,
    _matrix,
)

log = logging.getLogger(__name__)

# --- Gradient-boosted trees


class GBTModel:
    """XGBoost trees scoring payments.

    Attributes:
        booster: The trained ``xgboost.Booster`` (binary:logistic), cut at its best round.
        feature_names: Its input columns, in order.
        info: Training facts: ``best_iteration``, ``best_valid_aucpr``, ``rounds``,
            ``world_size`` (XGBoost workers that trained it together), ``train_rows``,
            ``scale_pos_weight``, ``seconds``, the parameters.
        run_path: The Ray Train run folder when trained here, else None.
        nthread: XGBoost threads for predictions. One by default: with torch loaded
            in the same process (two OpenMP runtimes), multi-threaded calls on a
            few rows took 16-24 ms instead of 0.1-0.2 ms on a 2-core machine, and
            one thread scores thousands of rows a millisecond.
    """

    kind: ClassVar[str] = GBT

    def __init__(self, booster, feature_names: Sequence[str], info: dict | None = None, run_path: str | None = None, nthread: int = 1):
        self.booster = booster
        self.feature_names = tuple(feature_names)
        self.info = dict(info or {})
        self.run_path = run_path
        self.nthread = int(nthread)
        self.booster.set_param({"nthread": self.nthread})
        if booster.num_features() != len(self.feature_names):
            raise FeatureMismatchError(f"the booster reads {booster.num_features()} features, {len(self.feature_names)} names given")

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of fraud, shape ``(n,)``."""
        X = _matrix(X, len(self.feature_names))
        if len(X) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.inplace_predict(X, predict_type="margin"), dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities, shape ``(n,)``.

        ``inplace_predict`` reads the array without building a ``DMatrix``: about
        0.1-0.2 ms for one row.
        """
        X = _matrix(X, len(self.feature_names))
        if len(X) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.inplace_predict(X), dtype=np.float64)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact TreeSHAP contributions to the log-odds, shape ``(n, n_features)``.

        The bias column XGBoost adds is left out: the row sums plus that bias (the
        expected log-odds) are :meth:`margin`.
        """
        import xgboost

        X = _matrix(X, len(self.feature_names))
        if len(X) == 0:
            return np.zeros((0, len(self.feature_names)))
        data = xgboost.DMatrix(X, feature_names=list(self.feature_names), nthread=self.nthread)
        full = self.booster.predict(data, pred_contribs=True)
        return np.asarray(full[:, :-1], dtype=np.float64)

    def save(self, folder: str | Path) -> Path:
        """Write ``gbt.ubj`` (the booster) and ``gbt.json`` (feature names, training facts) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / GBT_MODEL_FILE))
        doc = {"kind": self.kind, "feature_names": list(self.feature_names), "info": self.info}
        (folder / GBT_INFO_FILE).write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> GBTModel:
        """Read what :meth:`save` wrote."""
        import xgboost

        folder = Path(folder)
        doc = json.loads((folder / GBT_INFO_FILE).read_text())
        booster = xgboost.Booster()
        booster.load_model(str(folder / GBT_MODEL_FILE))
        return cls(booster, doc["feature_names"], doc.get("info", {}))


def gbt_params(cfg, scale_pos_weight: float) -> dict[str, Any]:
    """XGBoost parameters from ``cfg.fraud`` and ``cfg.ray`` (threads follow the worker's CPUs)."""
    fc, rc = cfg.fraud, cfg.ray
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": fc.gbt_max_depth,
        "eta": fc.gbt_eta,
        "scale_pos_weight": scale_pos_weight,
        # A worker granted half a CPU must not spin up threads for the whole machine.
        "nthread": max(1, int(rc.cpus_per_worker)),
        "seed": cfg.training.seed,
    }
    if rc.use_gpu:
        params["device"] = "cuda"
    return params


def _gbt_train_loop_per_worker(config: dict) -> None:
    """One XGBoost worker: train on this rank's rows, report the model once at the end.

    Ray Train's XGBoost backend has joined the workers in XGBoost's collective
    (rabit) before this runs, so ``xgboost.train`` on each rank's shard builds one
    model over all rows: histograms and the base score are summed across ranks.
    Every rank evaluates the whole validation set, which makes the early-stopping
    metric that of the full set (XGBoost combines the ranks' PR-AUC parts).
    """
    import ray
    import ray.train
    import xgboost
    from ray.train import Checkpoint
    from ray.train.xgboost import RayTrainReportCallback
    from xgboost import collective

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    data = {key: ray.get(ref) for key, ref in config["data"].items()}
    names = list(config["feature_names"])
    rows = np.arange(rank, len(data["y_train"]), world_size)
    nthread = int(config["params"]["nthread"])
    dtrain = xgboost.DMatrix(data["X_train"][rows], label=data["y_train"][rows], feature_names=names, nthread=nthread)
    dvalid = xgboost.DMatrix(data["X_valid"], label=data["y_valid"], feature_names=names, nthread=nthread)
    train_rows = float(len(rows))
    xgb_world = 1
    if collective.is_distributed():
        xgb_world = collective.get_world_size()
        train_rows = float(collective.allreduce(np.array([train_rows]), collective.Op.SUM)[0])

    started = time.monotonic()
    stopper = xgboost.callback.EarlyStopping(
        rounds=int(config["early_stopping_rounds"]), metric_name="aucpr", data_name="valid", maximize=True, save_best=True
    )
    # No per-round ray.train.report: in Ray Train V2 every report waits for the
    # controller's next poll (a health-check interval, 2 s by default), so reporting
    # each round like RayTrainReportCallback does costs seconds per tree.
    booster = xgboost.train(
        config["params"], dtrain, num_boost_round=int(config["rounds"]), evals=[(dvalid, "valid")],
        callbacks=[stopper], verbose_eval=False,
    )  # fmt: skip
    attrs = booster.attributes()
    metrics = {
        "best_iteration": int(attrs.get("best_iteration", booster.num_boosted_rounds() - 1)),
        "best_valid_aucpr": float(attrs["best_score"]) if "best_score" in attrs else float("nan"),
        "rounds": booster.num_boosted_rounds(),
        "world_size": int(xgb_world),
        "train_rows": int(train_rows),
        "seconds": time.monotonic() - started,
    }
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="shoplake-gbt-") as folder:
        # The file name RayTrainReportCallback.get_model reads back.
        booster.save_model(str(Path(folder, RayTrainReportCallback.CHECKPOINT_NAME)))
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))


def train_gbt(
    cfg,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    name: str,
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
) -> GBTModel:
    """Train XGBoost trees data-parallel with Ray Train's ``XGBoostTrainer``.

    ``cfg.ray.num_workers`` workers of ``cfg.ray.cpus_per_worker`` (fractional)
    CPUs each train on their own rows (row ``i`` goes to rank ``i % num_workers``)
    and build one model together through XGBoost's collective, which Ray Train
    sets up. Objective ``binary:logistic`` with ``scale_pos_weight`` =
    negatives / positives of the training rows, ``hist`` trees of
    ``cfg.fraud.gbt_max_depth``, learning rate ``gbt_eta``, at most
    ``gbt_rounds`` rounds, stopped after ``early_stopping_rounds`` rounds without
    a better validation PR-AUC (``aucpr``) and cut back to the best round.

    Data reaches the workers through Ray's object store, not as Ray Datasets: the
    driver puts the four arrays once and each worker gets them (zero-copy) and
    keeps its rows. Ray Data would need read tasks with CPUs of their own beside
    the workers, which on 1-2 CPU nodes with fractional worker CPUs starves one or
    the other (see the stack notes); fraud training sets fit in memory.

    The model is reported once, at the end, as a checkpoint in the run folder
    ``<storage_path(cfg)>/<name>`` (``model.ubj``, read back with
    ``RayTrainReportCallback.get_model``). A restarted attempt
    (``cfg.training.max_failures``) trains from the start.

    Args:
        cfg: Configuration: ``cfg.fraud`` (``gbt_*``), ``cfg.ray`` (workers, CPUs,
            GPU), ``cfg.training`` (seed, retries, checkpoints kept, placement).
        X_train: Training features, ``(n, len(feature_names))``.
        y_train: Training labels, 0 or 1.
        X_valid: Validation features (early stopping).
        y_valid: Validation labels.
        name: Ray Train run name; a new folder under ``storage_path(cfg)``.
        feature_names: Names of the columns.
        early_stopping_rounds: Patience of the early stopping.

    Returns:
        The trained model, with the run's metrics in :attr:`GBTModel.info`.

    Raises:
        ValueError: Wrong shapes, a split without both classes, or the run exists.
        ray.train.TrainingFailedError: Training failed more than ``max_failures`` times.
    """
    import ray
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    from shoplake.ray_runtime import init_ray
    from shoplake.train.loop import run_configs

    init_ray(cfg)
    names = tuple(feature_names)
    X_train, X_valid = _matrix(X_train, len(names)), _matrix(X_valid, len(names))
    y_train = _labels(y_train, len(X_train), "training set")
    y_valid = _labels(y_valid, len(X_valid), "validation set")
    if len(X_train) < cfg.ray.num_workers:
        raise ValueError(f"{len(X_train)} training rows for {cfg.ray.num_workers} workers")
    scaling, run = run_configs(cfg, name)
    positives = float(y_train.sum())
    scale_pos_weight = (len(y_train) - positives) / positives
    params = gbt_params(cfg, scale_pos_weight)
    config = {
        "data": {"X_train": ray.put(X_train), "y_train": ray.put(y_train), "X_valid": ray.put(X_valid), "y_valid": ray.put(y_valid)},
        "feature_names": list(names),
        "params": params,
        "rounds": cfg.fraud.gbt_rounds,
        "early_stopping_rounds": early_stopping_rounds,
    }
    trainer = XGBoostTrainer(_gbt_train_loop_per_worker, train_loop_config=config, scaling_config=scaling, run_config=run)
    started = time.monotonic()
    result = trainer.fit()
    seconds = time.monotonic() - started
    if result.checkpoint is None:
        raise RuntimeError(f"gbt run {name} produced no checkpoint")
    booster = RayTrainReportCallback.get_model(result.checkpoint)
    info = {**dict(result.metrics or {}), "scale_pos_weight": scale_pos_weight, "params": params, "fit_seconds": seconds}
    log.info(
        "trained %s in %.1f s: %d rounds on %d workers, best validation PR-AUC %.4f",
        name, seconds, info.get("rounds", -1), info.get("world_size", -1), info.get("best_valid_aucpr", float("nan")),
    )  # fmt: skip
    return GBTModel(booster, names, info, run_path=str(result.path))
