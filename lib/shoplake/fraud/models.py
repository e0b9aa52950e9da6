"""Fraud models: a rules baseline, gradient-boosted trees, a tabular network, and the servable bundle.

Every model reads the transaction features of
:data:`shoplake.fraud.declarations.FEATURE_NAMES` (float64, in that order) and
gives each payment a fraud score:

* **rules** (:func:`rules_scores`): the hand-written baseline as a continuous score,
  ``max(amount / amount_limit, max over user/card/device/ip of count_1h / velocity_limit)``;
  a score of at least 1 means a rule fires.
* **gbt** (:func:`train_gbt`, :class:`GBTModel`): XGBoost trees trained data-parallel
  with Ray Train's ``XGBoostTrainer``; the score is the fraud probability.
* **tabular_nn** (:func:`train_tabular_nn`, :class:`TabularNNModel`): an MLP on
  standardised features trained with the project's Ray Train Torch loop
  (:func:`shoplake.train.loop.fit`); the score is the fraud probability.

Both trained models explain a score by per-feature contributions to its log-odds,
which :class:`FraudBundle` turns into the reasons shown with a decision.

On disk a :class:`FraudBundle` is a folder: ``bundle.json`` (kind, feature names,
thresholds, run date, metrics, metadata) beside the model's own files
(``gbt.ubj`` + ``gbt.json``, or ``tabular_nn.pt`` + ``tabular_nn.json``).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shoplake import columns as C
from shoplake.bundle import BUNDLE_FILE
from shoplake.fraud.declarations import ENTITIES, FEATURE_NAMES, FEATURES
from shoplake.fraud.schemas import APPROVE, DECLINE, REVIEW

log = logging.getLogger(__name__)

GBT, TABULAR_NN = "gbt", "tabular_nn"
#: Trained model families a bundle can hold.
MODEL_KINDS = (GBT, TABULAR_NN)

#: The feature the rules baseline compares with ``fraud.rules_amount``.
RULES_AMOUNT_FEATURE = "amount"
#: The velocity features the rules baseline compares with ``fraud.rules_velocity_1h``.
RULES_VELOCITY_FEATURES = tuple(f"{prefix}_count_1h" for prefix, _ in ENTITIES)

#: Feature kinds that are non-negative and heavy-tailed: the network reads them through a signed log1p.
LOG_KINDS = frozenset({"window_count", "window_amount", "window_distinct", "user_history"})
#: ``payment`` features (by :attr:`Feature.of`) that are heavy-tailed as well.
LOG_PAYMENT_VALUES = frozenset({C.AMOUNT, C.N_LINES, C.N_UNITS})

GBT_MODEL_FILE = "gbt.ubj"
GBT_INFO_FILE = "gbt.json"
NN_WEIGHTS_FILE = "tabular_nn.pt"
NN_SETTINGS_FILE = "tabular_nn.json"

#: Boosting rounds without a better validation PR-AUC before training stops.
EARLY_STOPPING_ROUNDS = 30
#: Steps of the integrated gradients behind :meth:`TabularNNModel.contributions`.
IG_STEPS = 16


class FeatureMismatchError(ValueError):
    """A model or bundle was trained on other features than the ones it is given."""


def _matrix(X, n_features: int) -> np.ndarray:
    """``X`` as a float64 ``(n, n_features)`` array; a 1-D ``X`` is one row."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"expected a matrix of {n_features} feature columns, got shape {X.shape}")
    return X


def _labels(y, n_rows: int, what: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(y) != n_rows:
        raise ValueError(f"{what}: {len(y)} labels for {n_rows} rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{what}: labels must be 0 or 1")
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"{what}: needs both fraud (1) and legitimate (0) payments, got {int(y.sum())} fraud of {len(y)}")
    return y


def _mismatch(expected: Sequence[str], got: Sequence[str]) -> str:
    expected, got = list(expected), list(got)
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra}")
    if not parts:
        first = next(i for i, (a, b) in enumerate(zip(expected, got)) if a != b)
        parts.append(f"same names in another order (position {first}: {got[first]!r} where {expected[first]!r} was trained)")
    return "; ".join(parts)


# ---------------------------------------------------------------------------
# Rules baseline


def rules_scores(X: np.ndarray, feature_names: Sequence[str], amount_limit: float, velocity_limit: int) -> np.ndarray:
    """The rules baseline as a continuous score; at least 1 where a rule fires.

    ``max(amount / amount_limit, max over user/card/device/ip of count_1h / velocity_limit)``,
    with the features looked up by name.

    Args:
        X: Features, shape ``(n, len(feature_names))``.
        feature_names: Names of ``X``'s columns; must include ``amount`` and the
            ``*_count_1h`` features of :data:`RULES_VELOCITY_FEATURES`.
        amount_limit: Amount at which the amount rule fires (``fraud.rules_amount``).
        velocity_limit: Earlier payments within 1 h at which a velocity rule fires
            (``fraud.rules_velocity_1h``).

    Returns:
        float64 scores, shape ``(n,)``.

    Raises:
        ValueError: A needed feature is missing or a limit is not positive.
    """
    if amount_limit <= 0 or velocity_limit <= 0:
        raise ValueError(f"rule limits must be positive, got amount {amount_limit}, velocity {velocity_limit}")
    names = list(feature_names)
    X = _matrix(X, len(names))
    column = {name: i for i, name in enumerate(names)}
    missing = [n for n in (RULES_AMOUNT_FEATURE, *RULES_VELOCITY_FEATURES) if n not in column]
    if missing:
        raise ValueError(f"the rules baseline needs the features {missing}")
    score = X[:, column[RULES_AMOUNT_FEATURE]] / float(amount_limit)
    for name in RULES_VELOCITY_FEATURES:
        score = np.maximum(score, X[:, column[name]] / float(velocity_limit))
    return score


# ---------------------------------------------------------------------------
# Models


class FraudModel(Protocol):
    """A trained fraud model as :class:`FraudBundle` uses it."""

    kind: ClassVar[str]
    feature_names: tuple[str, ...]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities, shape ``(n,)``."""
        ...

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature contributions to the log-odds, shape ``(n, n_features)``."""
        ...

    def save(self, folder: str | Path) -> Path: ...

    @classmethod
    def load(cls, folder: str | Path) -> FraudModel: ...


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


# --- Tabular network


def log_features(feature_names: Sequence[str]) -> tuple[str, ...]:
    """The features the network reads through a signed log1p, chosen by their declared kind.

    Counts, amounts, distinct counts and user history (:data:`LOG_KINDS`), plus the
    payment's amount, lines and units; names not declared in
    :data:`~shoplake.fraud.declarations.FEATURES` are left linear.
    """
    declared = {f.name: f for f in FEATURES}
    out = []
    for name in feature_names:
        f = declared.get(name)
        if f is not None and (f.kind in LOG_KINDS or (f.kind == "payment" and f.of in LOG_PAYMENT_VALUES)):
            out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class TabularSettings:
    """What rebuilds a :class:`TabularNet` and its input transform (saved as JSON with the weights).

    Attributes:
        feature_names: Input columns, in order.
        log_features: Columns transformed by ``sign(x) log1p(|x|)`` before standardising.
        mean: Per-column mean of the (transformed) training inputs.
        std: Per-column standard deviation (1 where a column is constant).
        hidden: Width of the hidden layers.
        layers: Hidden layers.
        dropout: Dropout after each hidden layer (training only).
    """

    feature_names: tuple[str, ...]
    log_features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1

    @classmethod
    def fit(cls, X: np.ndarray, feature_names: Sequence[str], hidden: int, layers: int, dropout: float = 0.1) -> TabularSettings:
        """Settings whose statistics are those of the training matrix ``X``."""
        names = tuple(feature_names)
        logged = log_features(names)
        Z = _signed_log(_matrix(X, len(names)), _log_mask(names, logged))
        mean = Z.mean(axis=0)
        std = Z.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(names, logged, tuple(float(v) for v in mean), tuple(float(v) for v in std), hidden, layers, dropout)

    @classmethod
    def from_dict(cls, doc: dict) -> TabularSettings:
        return cls(**{**doc, **{k: tuple(doc[k]) for k in ("feature_names", "log_features", "mean", "std")}})

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Network inputs: float32 ``(n, n_features)``, 0 at the training mean."""
        Z = _signed_log(_matrix(X, len(self.feature_names)), _log_mask(self.feature_names, self.log_features))
        return ((Z - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)


def _log_mask(names: Sequence[str], logged: Sequence[str]) -> np.ndarray:
    chosen = set(logged)
    return np.array([n in chosen for n in names], dtype=bool)


def _signed_log(X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    Z = X.copy()
    Z[:, mask] = np.sign(Z[:, mask]) * np.log1p(np.abs(Z[:, mask]))
    return Z


class TabularNet(nn.Module):
    """An MLP from standardised features to the fraud logit: ``[B, F]`` to ``[B]``."""

    def __init__(self, settings: TabularSettings):
        super().__init__()
        parts: list[nn.Module] = []
        n_in = len(settings.feature_names)
        for k in range(settings.layers):
            parts += [nn.Linear(n_in if k == 0 else settings.hidden, settings.hidden), nn.ReLU(), nn.Dropout(settings.dropout)]
        parts.append(nn.Linear(settings.hidden, 1))
        self.net = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@dataclass
class TabularNNTask:
    """Training :class:`TabularNet` as an :class:`~shoplake.train.loop.EpochTask`.

    Attributes:
        X: Standardised training inputs, float32 ``(n, F)``.
        y: Labels, float32 ``(n,)``.
        settings: The network and its input transform.
        batch_size: Rows per step and rank.
        pos_weight: Weight of a fraud row in the loss (negatives / positives).
        seed: Shuffling seed (with the epoch number).
    """

    X: np.ndarray
    y: np.ndarray
    settings: TabularSettings
    batch_size: int = 256
    pos_weight: float = 1.0
    seed: int = 0

    def build_model(self) -> nn.Module:
        return TabularNet(self.settings)

    def batches(self, epoch: int, rank: int, world_size: int):
        """This rank's share of a shuffled epoch; every rank gets ``ceil(n / world_size)`` rows (the order is padded by repeating its start)."""
        n = len(self.y)
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        per_rank = math.ceil(n / world_size)
        mine = np.resize(order, per_rank * world_size)[rank * per_rank : (rank + 1) * per_rank]
        for start in range(0, per_rank, self.batch_size):
            idx = mine[start : start + self.batch_size]
            yield torch.from_numpy(self.X[idx]), torch.from_numpy(self.y[idx])

    def loss(self, model: nn.Module, batch, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        x, y = batch
        pos_weight = torch.tensor(self.pos_weight, dtype=x.dtype, device=x.device)
        return F.binary_cross_entropy_with_logits(model(x), y, pos_weight=pos_weight), len(y)

    def artifacts(self) -> dict[str, str]:
        return {NN_SETTINGS_FILE: json.dumps({"settings": asdict(self.settings)}, indent=2)}


class TabularNNModel:
    """A trained :class:`TabularNet` scoring payments.

    The network runs under ``torch.no_grad`` with torch's process-wide thread
    setting, which this class leaves alone; one row takes one thread anyway.

    Attributes:
        settings: The network and its input transform.
        net: The network, in eval mode.
        info: Training facts (final loss, epochs, ``pos_weight``, validation loss).
        fit_result: The :class:`~shoplake.train.loop.FitResult` when trained here, else None.
    """

    kind: ClassVar[str] = TABULAR_NN

    def __init__(self, settings: TabularSettings, net: TabularNet, info: dict | None = None, fit_result=None):
        self.settings, self.net, self.info, self.fit_result = settings, net.eval(), dict(info or {}), fit_result

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.settings.feature_names

    @classmethod
    def from_state(cls, settings: TabularSettings, state: dict, info: dict | None = None, fit_result=None) -> TabularNNModel:
        net = TabularNet(settings)
        net.load_state_dict(state)
        return cls(settings, net, info, fit_result)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of fraud, shape ``(n,)``."""
        with torch.no_grad():
            return self.net(torch.from_numpy(self.settings.transform(X))).double().numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities, shape ``(n,)``."""
        return 1.0 / (1.0 + np.exp(-self.margin(X)))

    def contributions(self, X: np.ndarray, steps: int = IG_STEPS, chunk_rows: int = 4096) -> np.ndarray:
        """Integrated gradients of the log-odds in the standardised input space, shape ``(n, n_features)``.

        The baseline is the training mean (0 after standardising). The path from it
        to each row is sampled at ``steps`` midpoints, so the row sums approximate
        ``margin(X) - margin(training mean)``.

        Args:
            X: Features.
            steps: Points on the path from the baseline.
            chunk_rows: Rows per backward pass (memory: ``chunk_rows * steps`` inputs).
        """
        Z = torch.from_numpy(self.settings.transform(X))
        alphas = ((torch.arange(steps, dtype=Z.dtype) + 0.5) / steps)[:, None, None]
        out = []
        with torch.enable_grad():
            for start in range(0, len(Z), chunk_rows):
                z = Z[start : start + chunk_rows]
                path = (alphas * z[None]).reshape(-1, z.shape[1]).requires_grad_(True)
                (grad,) = torch.autograd.grad(self.net(path).sum(), path)
                out.append((grad.reshape(steps, *z.shape).mean(dim=0) * z).double())
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.feature_names)))

    def save(self, folder: str | Path) -> Path:
        """Write ``tabular_nn.json`` (settings, training facts) and ``tabular_nn.pt`` (weights) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"kind": self.kind, "settings": asdict(self.settings), "info": self.info}
        (folder / NN_SETTINGS_FILE).write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False))
        torch.save(self.net.state_dict(), folder / NN_WEIGHTS_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TabularNNModel:
        """Read what :meth:`save` wrote."""
        folder = Path(folder)
        doc = json.loads((folder / NN_SETTINGS_FILE).read_text())
        state = torch.load(folder / NN_WEIGHTS_FILE, map_location="cpu", weights_only=True)
        return cls.from_state(TabularSettings.from_dict(doc["settings"]), state, doc.get("info", {}))


def train_tabular_nn(
    cfg,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    name: str,
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    dropout: float = 0.1,
) -> TabularNNModel:
    """Train the tabular network with the project's Ray Train loop (:func:`shoplake.train.loop.fit`).

    Inputs: heavy-tailed features (:func:`log_features`) through ``sign(x) log1p(|x|)``,
    then every column standardised with the training rows' mean and deviation.
    Network: ``cfg.fraud.nn_layers`` hidden layers of ``nn_hidden`` units (ReLU,
    dropout). Loss: binary cross-entropy on the logit with ``pos_weight`` =
    negatives / positives of the training rows. Adam with ``nn_lr`` for
    ``nn_epochs`` epochs of ``nn_batch_size`` rows per step and worker; the last
    epoch's weights are kept. The validation rows are only scored for the
    unweighted validation loss in :attr:`TabularNNModel.info`.

    Args:
        cfg: Configuration: ``cfg.fraud`` (``nn_*``), ``cfg.ray`` / ``cfg.training``
            for :func:`~shoplake.train.loop.fit`.
        X_train: Training features.
        y_train: Training labels, 0 or 1.
        X_valid: Validation features.
        y_valid: Validation labels.
        name: Ray Train run name; a new folder under ``storage_path(cfg)``.
        feature_names: Names of the columns.
        dropout: Dropout after each hidden layer.

    Raises:
        ValueError: Wrong shapes, a split without both classes, or the run exists.
    """
    from shoplake.train.loop import fit

    fc = cfg.fraud
    names = tuple(feature_names)
    X_train, X_valid = _matrix(X_train, len(names)), _matrix(X_valid, len(names))
    y_train = _labels(y_train, len(X_train), "training set")
    y_valid = _labels(y_valid, len(X_valid), "validation set")
    settings = TabularSettings.fit(X_train, names, fc.nn_hidden, fc.nn_layers, dropout)
    positives = float(y_train.sum())
    pos_weight = (len(y_train) - positives) / positives
    task = TabularNNTask(
        X=settings.transform(X_train), y=y_train.astype(np.float32), settings=settings,
        batch_size=fc.nn_batch_size, pos_weight=pos_weight, seed=cfg.training.seed,
    )  # fmt: skip
    result = fit(cfg, task, name, fc.nn_epochs, lr=fc.nn_lr)
    model = TabularNNModel.from_state(settings, result.load_state()["model"], fit_result=result)
    valid_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(model.margin(X_valid)), torch.from_numpy(y_valid)))
    model.info = {
        "epochs": fc.nn_epochs, "final_loss": result.losses[-1] if result.losses else None,
        "pos_weight": pos_weight, "valid_loss": valid_loss, "fit_seconds": result.seconds,
    }  # fmt: skip
    log.info("trained %s in %.1f s: final loss %s, validation loss %.4f", name, result.seconds, model.info["final_loss"], valid_loss)
    return model


# ---------------------------------------------------------------------------
# Bundle


MODEL_CLASSES: dict[str, type] = {GBT: GBTModel, TABULAR_NN: TabularNNModel}


def _json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and non-finite floats as ``"inf"``/``"-inf"``/``"nan"``."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _from_json_number(value: Any) -> Any:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return value


@dataclass
class FraudBundle:
    """A trained fraud model with its decision thresholds: the unit that is registered, scored and served.

    A payment scoring below ``review_threshold`` is approved, one in
    ``[review_threshold, decline_threshold)`` goes to review, one at or above
    ``decline_threshold`` is declined. ``+inf`` switches a level off.

    Attributes:
        model: A :class:`GBTModel` or :class:`TabularNNModel`.
        feature_names: The model's input columns, in order.
        review_threshold: Lowest score sent to review.
        decline_threshold: Lowest score declined (not below ``review_threshold``).
        metadata: ``run_date`` (ISO) and ``metrics`` (name to number) of the training
            run, plus anything JSON-able (model name, table versions).
    """

    model: Any
    feature_names: Sequence[str]
    review_threshold: float
    decline_threshold: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if getattr(self.model, "kind", None) not in MODEL_CLASSES:
            raise ValueError(f"a fraud bundle holds one of {', '.join(MODEL_CLASSES)}, got {type(self.model).__name__}")
        self.feature_names = tuple(self.feature_names)
        if tuple(self.model.feature_names) != self.feature_names:
            raise FeatureMismatchError(
                f"the model was trained on other features: {_mismatch(self.model.feature_names, self.feature_names)}"
            )
        self.review_threshold, self.decline_threshold = float(self.review_threshold), float(self.decline_threshold)
        if math.isnan(self.review_threshold) or math.isnan(self.decline_threshold):
            raise ValueError("thresholds must not be NaN")
        if self.decline_threshold < self.review_threshold:
            raise ValueError(f"decline threshold {self.decline_threshold} lies below the review threshold {self.review_threshold}")
        self.metadata = dict(self.metadata or {})

    @property
    def kind(self) -> str:
        return self.model.kind

    def score(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities of the rows of ``X`` (columns in :attr:`feature_names` order)."""
        return self.model.predict(X)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """``approve`` / ``review`` / ``decline`` for each score.

        Raises:
            ValueError: A score is NaN (no decision can be read from it).
        """
        scores = np.asarray(scores, dtype=np.float64)
        if np.isnan(scores).any():
            raise ValueError("cannot decide on a NaN score")
        return np.where(scores >= self.decline_threshold, DECLINE, np.where(scores >= self.review_threshold, REVIEW, APPROVE))

    def reasons(self, X: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        """Per row, the ``k`` features that pushed its score up most, strongest first.

        Each reason is ``(feature name, contribution to the log-odds)``; only
        positive contributions count, so a row may have fewer than ``k``.
        """
        contributions = self.model.contributions(X)
        out = []
        for row in contributions:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([(self.feature_names[j], float(row[j])) for j in top if row[j] > 0])
        return out

    def check_features(self, feature_names: Sequence[str] = FEATURE_NAMES) -> None:
        """Make sure the bundle reads the features it is about to be given.

        Raises:
            FeatureMismatchError: ``feature_names`` differ from the bundle's (names or order).
        """
        if tuple(feature_names) != self.feature_names:
            raise FeatureMismatchError(
                f"the fraud bundle ({self.kind}, run date {self.metadata.get('run_date')}) was trained on other "
                f"features than the current ones: {_mismatch(self.feature_names, feature_names)}; retrain it"
            )

    def save(self, folder: str | Path) -> Path:
        """Write the model's files and ``bundle.json`` into ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder)
        rest = {k: v for k, v in self.metadata.items() if k not in ("run_date", "metrics")}
        doc = {
            "kind": self.kind,
            "feature_names": list(self.feature_names),
            "thresholds": {"review": self.review_threshold, "decline": self.decline_threshold},
            "run_date": self.metadata.get("run_date"),
            "metrics": self.metadata.get("metrics", {}),
            "metadata": rest,
        }
        (folder / BUNDLE_FILE).write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> FraudBundle:
        """Read a bundle written by :meth:`save`.

        Raises:
            FileNotFoundError: ``folder`` holds no bundle.
            ValueError: The bundle holds no fraud model.
        """
        folder = Path(folder)
        if not (folder / BUNDLE_FILE).is_file():
            raise FileNotFoundError(f"no fraud bundle in {folder} ({BUNDLE_FILE} missing)")
        doc = json.loads((folder / BUNDLE_FILE).read_text())
        if doc.get("kind") not in MODEL_CLASSES:
            raise ValueError(f"{folder} holds a {doc.get('kind')!r} bundle, not a fraud model ({', '.join(MODEL_CLASSES)})")
        model = MODEL_CLASSES[doc["kind"]].load(folder)
        thresholds = doc["thresholds"]
        metadata = dict(doc.get("metadata", {}))
        if doc.get("run_date") is not None:
            metadata["run_date"] = doc["run_date"]
        metadata["metrics"] = {k: _from_json_number(v) for k, v in doc.get("metrics", {}).items()}
        return cls(model, doc["feature_names"], float(thresholds["review"]), float(thresholds["decline"]), metadata)
