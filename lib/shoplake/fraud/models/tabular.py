"""A tabular network for fraud: an MLP on standardised (signed-log) features, trained with the project's Ray Train loop
(:func:`shoplake.train.loop.fit`); the score is the fraud probability."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shoplake.fraud.declarations import FEATURE_NAMES, FEATURES
from shoplake.fraud.models.base import (
    IG_STEPS,
    LOG_KINDS,
    LOG_PAYMENT_VALUES,
    NN_SETTINGS_FILE,
    NN_WEIGHTS_FILE,
    TABULAR_NN,
    _json_safe,
    _labels,
    _matrix,
)

log = logging.getLogger(__name__)

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
