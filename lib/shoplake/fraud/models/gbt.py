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
    feature_matrix,
    labels,
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


def _shard_arrays(batch, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    return feature_matrix(batch, names), labels(batch).astype(np.float64)


def _gbt_train_loop_per_worker(config: dict) -> None:
    """One XGBoost worker: train on this rank's shard, report the model once at the end.

    The worker reads its share of the ``train`` dataset and the whole ``valid``
    dataset (``ray.train.get_dataset_shard``) and builds its DMatrix from those rows
    only, with :func:`~shoplake.fraud.models.base.feature_matrix` (the columns of
    ``config["feature_names"]`` in order, a null refused). Ray Train's XGBoost backend
    has joined the workers in XGBoost's collective (rabit) before this runs, so
    ``xgboost.train`` on each rank's shard builds one model over all rows:
    histograms and the base score are summed across ranks, and so are the row and
    fraud counts behind ``scale_pos_weight``. Every rank evaluates the whole
    validation set, which makes the early-stopping metric that of the full set
    (XGBoost combines the ranks' PR-AUC parts).
    """
    import functools

    import ray.train
    import xgboost
    from ray.train import Checkpoint
    from ray.train.xgboost import RayTrainReportCallback
    from xgboost import collective

    from shoplake.train.shards import collect_shard

    rank = ray.train.get_context().get_world_rank()
    names = list(config["feature_names"])
    empty = (np.zeros((0, len(names))), np.zeros(0))
    convert = functools.partial(_shard_arrays, names=names)
    X_train, y_train = collect_shard("train", convert, empty)
    X_valid, y_valid = collect_shard("valid", convert, empty)
    counts = np.array([float(len(y_train)), float(y_train.sum())])
    xgb_world = 1
    if collective.is_distributed():
        xgb_world = collective.get_world_size()
        counts = collective.allreduce(counts, collective.Op.SUM)
    train_rows, positives = int(counts[0]), int(counts[1])
    if positives == 0 or positives == train_rows:
        raise ValueError(f"training set: needs both fraud (1) and legitimate (0) payments, got {positives} fraud of {train_rows}")
    scale_pos_weight = (train_rows - positives) / positives
    params = gbt_params(config["cfg"], scale_pos_weight)
    nthread = int(params["nthread"])
    dtrain = xgboost.DMatrix(X_train, label=y_train, feature_names=names, nthread=nthread)
    dvalid = xgboost.DMatrix(X_valid, label=y_valid, feature_names=names, nthread=nthread)
    del X_train, X_valid

    started = time.monotonic()
    stopper = xgboost.callback.EarlyStopping(
        rounds=int(config["early_stopping_rounds"]), metric_name="aucpr", data_name="valid", maximize=True, save_best=True
    )
    # No per-round ray.train.report: in Ray Train V2 every report waits for the
    # controller's next poll (a health-check interval, 2 s by default), so reporting
    # each round like RayTrainReportCallback does costs seconds per tree.
    booster = xgboost.train(
        params, dtrain, num_boost_round=int(config["rounds"]), evals=[(dvalid, "valid")],
        callbacks=[stopper], verbose_eval=False,
    )  # fmt: skip
    attrs = booster.attributes()
    metrics = {
        "best_iteration": int(attrs.get("best_iteration", booster.num_boosted_rounds() - 1)),
        "best_valid_aucpr": float(attrs["best_score"]) if "best_score" in attrs else float("nan"),
        "rounds": booster.num_boosted_rounds(),
        "world_size": int(xgb_world),
        "train_rows": train_rows,
        "train_frauds": positives,
        "scale_pos_weight": scale_pos_weight,
        "seconds": time.monotonic() - started,
    }
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="shoplake-gbt-") as folder:
        # The file name RayTrainReportCallback.get_model reads back.
        booster.save_model(str(Path(folder, RayTrainReportCallback.CHECKPOINT_NAME)))
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))


def arrays_dataset(X: np.ndarray, y: np.ndarray, feature_names: Sequence[str], blocks: int):
    """Features and labels held in this process as a Ray Dataset of ``blocks`` blocks: a column per feature and ``label``."""
    import pyarrow as pa
    import ray.data

    from shoplake import columns as C

    table = pa.table({**{name: X[:, j] for j, name in enumerate(feature_names)}, C.LABEL: y.astype(np.int64)})
    step = max(-(-len(y) // max(blocks, 1)), 1)
    return ray.data.from_arrow([table.slice(i, step) for i in range(0, max(len(y), 1), step)])


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
    """Train XGBoost trees on arrays this process holds (see :func:`train_gbt_datasets`).

    The arrays are checked and handed to the workers as Ray Datasets (put once in
    Ray's object store, in ``cfg.ray.num_workers`` blocks). For a table larger than
    this process should hold, give :func:`train_gbt_datasets` datasets read from the
    lake instead.

    Args:
        cfg: Configuration (see :func:`train_gbt_datasets`).
        X_train: Training features, ``(n, len(feature_names))``.
        y_train: Training labels, 0 or 1.
        X_valid: Validation features (early stopping).
        y_valid: Validation labels.
        name: Ray Train run name; a new folder under ``storage_path(cfg)``.
        feature_names: Names of the columns.
        early_stopping_rounds: Patience of the early stopping.

    Raises:
        ValueError: Wrong shapes, a split without both classes, or the run exists.
        ray.train.TrainingFailedError: Training failed more than ``max_failures`` times.
    """
    from shoplake.ray_runtime import init_ray

    init_ray(cfg)
    names = tuple(feature_names)
    X_train, X_valid = _matrix(X_train, len(names)), _matrix(X_valid, len(names))
    y_train = _labels(y_train, len(X_train), "training set")
    y_valid = _labels(y_valid, len(X_valid), "validation set")
    if len(X_train) < cfg.ray.num_workers:
        raise ValueError(f"{len(X_train)} training rows for {cfg.ray.num_workers} workers")
    blocks = cfg.ray.num_workers
    datasets = {"train": arrays_dataset(X_train, y_train, names, blocks), "valid": arrays_dataset(X_valid, y_valid, names, 1)}
    return train_gbt_datasets(cfg, datasets, name, feature_names=names, early_stopping_rounds=early_stopping_rounds)


def train_gbt_datasets(
    cfg,
    datasets: dict,
    name: str,
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
) -> GBTModel:
    """Train XGBoost trees data-parallel with Ray Train's ``XGBoostTrainer``, each worker on its shard.

    ``cfg.ray.num_workers`` workers of ``cfg.ray.cpus_per_worker`` (fractional)
    CPUs each read their share of ``datasets["train"]`` and the whole of
    ``datasets["valid"]`` (``ray.train.get_dataset_shard``), build their DMatrix
    from those rows only and build one model together through XGBoost's
    collective, which Ray Train sets up. The datasets' read tasks run beside the
    workers with ``cfg.ray.cpus_per_data_task`` CPUs each
    (:mod:`shoplake.train.shards`); with :meth:`shoplake.lake.Lake.ray_read` no row
    passes through this process. Objective ``binary:logistic`` with
    ``scale_pos_weight`` = negatives / positives of the training rows (counted by
    the workers together), ``hist`` trees of ``cfg.fraud.gbt_max_depth``,
    learning rate ``gbt_eta``, at most ``gbt_rounds`` rounds, stopped after
    ``early_stopping_rounds`` rounds without a better validation PR-AUC
    (``aucpr``) and cut back to the best round.

    The model is reported once, at the end, as a checkpoint in the run folder
    ``<storage_path(cfg)>/<name>`` (``model.ubj``, read back with
    ``RayTrainReportCallback.get_model``). A restarted attempt
    (``cfg.training.max_failures``) trains from the start.

    Args:
        cfg: Configuration: ``cfg.fraud`` (``gbt_*``), ``cfg.ray`` (workers, CPUs,
            GPU), ``cfg.training`` (seed, retries, checkpoints kept, placement).
        datasets: ``{"train": ..., "valid": ...}``: Ray Datasets with a column per
            feature of ``feature_names`` and ``label`` (0 or 1); others are ignored.
        name: Ray Train run name; a new folder under ``storage_path(cfg)``.
        feature_names: The model's inputs, in order.
        early_stopping_rounds: Patience of the early stopping.

    Returns:
        The trained model, with the run's metrics in :attr:`GBTModel.info`.

    Raises:
        ValueError: The run exists, or the workers' CPUs leave none for the read tasks.
        ray.train.TrainingFailedError: Training failed more than ``max_failures``
            times (a training set without both classes among them).
    """
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    from shoplake.ray_runtime import init_ray
    from shoplake.train.loop import run_configs
    from shoplake.train.shards import check_cpus, dataset_config

    ray = init_ray(cfg)
    check_cpus(cfg, float(ray.cluster_resources().get("CPU", 0.0)))
    names = tuple(feature_names)
    scaling, run = run_configs(cfg, name)
    config = {"cfg": cfg, "feature_names": list(names), "rounds": cfg.fraud.gbt_rounds, "early_stopping_rounds": early_stopping_rounds}
    trainer = XGBoostTrainer(
        _gbt_train_loop_per_worker, train_loop_config=config, scaling_config=scaling, run_config=run,
        datasets={"train": datasets["train"], "valid": datasets["valid"]}, dataset_config=dataset_config(("train",)),
    )  # fmt: skip
    started = time.monotonic()
    result = trainer.fit()
    seconds = time.monotonic() - started
    if result.checkpoint is None:
        raise RuntimeError(f"gbt run {name} produced no checkpoint")
    booster = RayTrainReportCallback.get_model(result.checkpoint)
    metrics = dict(result.metrics or {})
    info = {**metrics, "params": gbt_params(cfg, float(metrics.get("scale_pos_weight", 1.0))), "fit_seconds": seconds}
    log.info(
        "trained %s in %.1f s: %d rounds on %d workers from %d rows, best validation PR-AUC %.4f",
        name, seconds, info.get("rounds", -1), info.get("world_size", -1), info.get("train_rows", -1),
        info.get("best_valid_aucpr", float("nan")),
    )  # fmt: skip
    return GBTModel(booster, names, info, run_path=str(result.path))
