"""The ad models: three baselines and the main model, each giving pCTR and pCVR (after a click) per impression.

* ``historic_ctr``: the smoothed historic click-through of the placement x item as pCTR
  and the item's smoothed historic conversion rate as pCVR (already features; nothing is fitted).
* ``logistic``: scikit-learn logistic regressions on hashed features and crosses
  (placement x item, placement x position, category x placement, category x price band,
  hour) plus the standardised numeric features; click on every impression, conversion
  on the clicked ones.
* ``gbt``: XGBoost trees on the numeric features and the categorical codes, click on
  every impression, conversion on the clicked ones.
* ``deep_ctr``: a DCN-V2-style network (:class:`DeepCTRNet`): embeddings of the
  categorical fields of ``ads.deep_fields``, the standardised numeric features of
  ``ads.deep_numeric`` and the ad's text embedding from the pretrained encoder, projected; cross layers ``x_{l+1} = x_0 * (W x_l + b) + x_l``
  beside a deep tower per task; trained ESMM-style on every impression with the loss
  ``BCE(pCTR, click) + BCE(pCTR * pCVR, click and conversion)``, so pCVR is learnt over the
  whole impression space, not over clicks alone. Trained with the project's Ray Train
  loop (:func:`shoplake.train.loop.fit`); :func:`validation_losses` trains it in one
  process and gives the validation loss after each epoch, what a search of its
  settings on the validation split scores (:mod:`shoplake.train.tune`).

Every model saves into and loads from a folder (the bundle's ``model/``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from shoplake import columns as C
from shoplake.ads import schemas as S
from shoplake.ads.data import CATEGORICAL, NUMERIC, AdData, Encoding

HISTORIC_CTR, LOGISTIC, GBT, DEEP_CTR = "historic_ctr", "logistic", "gbt", "deep_ctr"
MODEL_KINDS = (HISTORIC_CTR, LOGISTIC, GBT, DEEP_CTR)
_SETTINGS_FILE = "model.json"
_EPS = 1e-6


def _clip(p: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)


def _write(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _SETTINGS_FILE).write_text(json.dumps(doc, indent=2))
    return folder


class HistoricCTRModel:
    """pCTR: the placement x item's smoothed historic click-through; pCVR: the item's smoothed historic conversion rate."""

    kind: ClassVar[str] = HISTORIC_CTR

    def predict(self, data: AdData) -> tuple[np.ndarray, np.ndarray]:
        return _clip(data.num[:, NUMERIC.index(S.PLACEMENT_ITEM_CTR)]), _clip(data.num[:, NUMERIC.index(S.ITEM_CVR)])

    def save(self, folder: str | Path) -> Path:
        return _write(Path(folder), {"kind": self.kind})

    @classmethod
    def load(cls, folder: str | Path) -> HistoricCTRModel:
        return cls()


# --- logistic regression on hashed crosses

_CROSSES = ((C.PLACEMENT, C.ITEM_ID), (C.PLACEMENT, C.POSITION), (C.CATEGORY, C.PLACEMENT), (C.CATEGORY, C.PRICE_BAND))


def hashed_tokens(data: AdData) -> list[list[str]]:
    """Per row: ``field=value`` for every categorical field and ``a=x|b=y`` for every cross of :data:`_CROSSES`."""
    cols = [data.cats[name] for name in CATEGORICAL]
    crossed = [(data.cats[a], data.cats[b], f"{a}|{b}") for a, b in _CROSSES]
    out = []
    for r in range(len(data)):
        row = [f"{name}={col[r]}" for name, col in zip(CATEGORICAL, cols)]
        row += [f"{label}={x[r]}|{y[r]}" for x, y, label in crossed]
        out.append(row)
    return out


class LogisticModel:
    """Two logistic regressions (click; conversion after a click) on hashed crosses and the numeric features."""

    kind: ClassVar[str] = LOGISTIC

    def __init__(self, encoding: Encoding, buckets: int, ctr, cvr):
        self.encoding, self.buckets, self.ctr, self.cvr = encoding, int(buckets), ctr, cvr

    def _inputs(self, data: AdData):
        from scipy import sparse
        from sklearn.feature_extraction import FeatureHasher

        hashed = FeatureHasher(n_features=self.buckets, input_type="string", alternate_sign=False).transform(hashed_tokens(data))
        return sparse.hstack([hashed, sparse.csr_matrix(self.encoding.numeric(data))]).tocsr()

    @classmethod
    def fit(cls, data: AdData, encoding: Encoding, buckets: int, c: float, seed: int = 0) -> LogisticModel:
        from sklearn.linear_model import LogisticRegression

        model = cls(encoding, buckets, None, None)
        X = model._inputs(data)
        clicked = data.click == 1
        model.ctr = LogisticRegression(C=c, solver="liblinear", max_iter=200, random_state=seed).fit(X, data.click)
        model.cvr = LogisticRegression(C=c, solver="liblinear", max_iter=200, random_state=seed).fit(X[clicked], data.conversion[clicked])
        return model

    def predict(self, data: AdData) -> tuple[np.ndarray, np.ndarray]:
        X = self._inputs(data)
        return _clip(self.ctr.predict_proba(X)[:, 1]), _clip(self.cvr.predict_proba(X)[:, 1])

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        weights = {f"{n}_{p}": getattr(getattr(self, n), p) for n in ("ctr", "cvr") for p in ("coef_", "intercept_")}
        _write(folder, {"kind": self.kind, "buckets": self.buckets, "encoding": self.encoding.to_dict()})
        np.savez(folder / "logistic.npz", **weights)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> LogisticModel:
        from sklearn.linear_model import LogisticRegression

        folder = Path(folder)
        doc = json.loads((folder / _SETTINGS_FILE).read_text())
        weights = np.load(folder / "logistic.npz")
        heads = []
        for n in ("ctr", "cvr"):
            lr = LogisticRegression()
            lr.coef_, lr.intercept_, lr.classes_ = weights[f"{n}_coef_"], weights[f"{n}_intercept_"], np.array([0.0, 1.0])
            heads.append(lr)
        return cls(Encoding.from_dict(doc["encoding"]), doc["buckets"], *heads)


# --- gradient-boosted trees


class GBTModel:
    """XGBoost trees (click; conversion after a click) on the numeric features and the categorical codes."""

    kind: ClassVar[str] = GBT

    def __init__(self, encoding: Encoding, ctr, cvr):
        self.encoding, self.ctr, self.cvr = encoding, ctr, cvr

    def _inputs(self, data: AdData) -> np.ndarray:
        return np.hstack([data.num, self.encoding.codes(data).astype(np.float64)])

    @classmethod
    def fit(cls, data: AdData, encoding: Encoding, rounds: int, max_depth: int, eta: float, seed: int = 0, nthread: int = 1) -> GBTModel:
        import xgboost as xgb

        model = cls(encoding, None, None)
        X = model._inputs(data)
        clicked = data.click == 1
        params = {"objective": "binary:logistic", "max_depth": max_depth, "eta": eta, "tree_method": "hist", "seed": seed,
                  "nthread": nthread, "min_child_weight": 5.0, "subsample": 0.9}  # fmt: skip
        model.ctr = xgb.train(params, xgb.DMatrix(X, label=data.click), num_boost_round=rounds)
        model.cvr = xgb.train(params, xgb.DMatrix(X[clicked], label=data.conversion[clicked]), num_boost_round=max(rounds // 2, 1))
        return model

    def predict(self, data: AdData) -> tuple[np.ndarray, np.ndarray]:
        """pCTR and pCVR per row; ``inplace_predict`` reads the array without building a ``DMatrix``."""
        X = self._inputs(data)
        if len(X) == 0:
            return np.zeros(0), np.zeros(0)
        return _clip(np.asarray(self.ctr.inplace_predict(X))), _clip(np.asarray(self.cvr.inplace_predict(X)))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        _write(folder, {"kind": self.kind, "encoding": self.encoding.to_dict()})
        self.ctr.save_model(folder / "ctr.ubj")
        self.cvr.save_model(folder / "cvr.ubj")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> GBTModel:
        import xgboost as xgb

        folder = Path(folder)
        doc = json.loads((folder / _SETTINGS_FILE).read_text())
        ctr, cvr = xgb.Booster(), xgb.Booster()
        ctr.load_model(folder / "ctr.ubj")
        cvr.load_model(folder / "cvr.ubj")
        return cls(Encoding.from_dict(doc["encoding"]), ctr, cvr)


# --- the main model


@dataclass(frozen=True)
class DeepSettings:
    """What rebuilds a :class:`DeepCTRNet`: the embedded fields' sizes, the inputs it reads and its widths.

    ``fields`` and ``numeric`` name the categorical fields and numeric features the net
    reads, in the order of :data:`~shoplake.ads.data.CATEGORICAL` and
    :data:`~shoplake.ads.data.NUMERIC` (empty: all, as saved before they existed).
    """

    sizes: tuple[int, ...]
    n_numeric: int
    text_in: int
    embedding_dim: int = 8
    text_dim: int = 16
    cross_layers: int = 2
    hidden: int = 64
    fields: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()

    def field_columns(self) -> list[int]:
        return [CATEGORICAL.index(f) for f in self.fields] if self.fields else list(range(len(CATEGORICAL)))

    def numeric_columns(self) -> list[int]:
        return [NUMERIC.index(n) for n in self.numeric] if self.numeric else list(range(len(NUMERIC)))

    def inputs(self, encoding: Encoding, data: AdData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The net's ``(codes, numeric, text)`` of impressions."""
        codes = encoding.codes(data)[:, self.field_columns()]
        numeric = np.ascontiguousarray(encoding.numeric(data)[:, self.numeric_columns()])
        return np.ascontiguousarray(codes), numeric, data.text.astype(np.float32)

    @classmethod
    def of(cls, ads, encoding: Encoding, text_in: int) -> DeepSettings:
        """The settings of ``ads`` (the configuration's section) for a net over ``encoding``'s vocabularies.

        Raises:
            ValueError: ``ads.deep_fields`` or ``ads.deep_numeric`` names something the models do not read.
        """
        wanted_fields = CATEGORICAL if ads.deep_fields is None else tuple(ads.deep_fields)
        wanted_numeric = NUMERIC if ads.deep_numeric is None else tuple(ads.deep_numeric)
        unknown = [f for f in wanted_fields if f not in CATEGORICAL] + [n for n in wanted_numeric if n not in NUMERIC]
        if unknown:
            raise ValueError(f"ads.deep_fields / ads.deep_numeric: unknown {', '.join(unknown)}; known: {CATEGORICAL} and {NUMERIC}")
        fields = tuple(f for f in CATEGORICAL if f in wanted_fields)
        numeric = tuple(n for n in NUMERIC if n in wanted_numeric)
        sizes = encoding.sizes()
        return cls(tuple(sizes[CATEGORICAL.index(f)] for f in fields), len(numeric), text_in, ads.embedding_dim, ads.text_dim,
                   ads.cross_layers, ads.hidden, fields, numeric)  # fmt: skip


class DeepCTRNet(nn.Module):
    """DCN-V2 cross network and two deep towers over embeddings, numeric features and the projected text embedding.

    ``forward(codes, numeric, text)`` gives the click logit and the conversion-after-click logit, each ``[B]``.
    """

    def __init__(self, s: DeepSettings):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(size, s.embedding_dim) for size in s.sizes)
        self.text = nn.Linear(s.text_in, s.text_dim)
        width = len(s.sizes) * s.embedding_dim + s.n_numeric + s.text_dim
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(s.cross_layers))

        def tower() -> nn.Module:
            return nn.Sequential(nn.Linear(width, s.hidden), nn.ReLU(), nn.Linear(s.hidden, s.hidden), nn.ReLU())

        self.ctr_tower, self.cvr_tower = tower(), tower()
        self.ctr_head, self.cvr_head = nn.Linear(width + s.hidden, 1), nn.Linear(width + s.hidden, 1)

    def forward(self, codes: torch.Tensor, numeric: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = torch.cat([emb(codes[:, j]) for j, emb in enumerate(self.embeddings)] + [numeric, self.text(text)], dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        ctr = self.ctr_head(torch.cat([x, self.ctr_tower(x0)], dim=1)).squeeze(-1)
        cvr = self.cvr_head(torch.cat([x, self.cvr_tower(x0)], dim=1)).squeeze(-1)
        return ctr, cvr


def esmm_loss(
    ctr_logit: torch.Tensor,
    cvr_logit: torch.Tensor,
    click: torch.Tensor,
    converted: torch.Tensor,
    conversion_weight: float = 1.0,
    clicked_weight: float = 0.0,
) -> torch.Tensor:
    """``BCE(pCTR, click) + w * BCE(pCTR * pCVR, click and conversion)`` over every impression, plus ``v * BCE(pCVR, conversion)``
    over the clicked ones (``w``: ``conversion_weight``, ``v``: ``clicked_weight``; without clicks in the batch that term is 0).
    """
    p_ctcvr = (torch.sigmoid(ctr_logit) * torch.sigmoid(cvr_logit)).clamp(_EPS, 1 - _EPS)
    loss = F.binary_cross_entropy_with_logits(ctr_logit, click) + conversion_weight * F.binary_cross_entropy(p_ctcvr, converted)
    clicked = click > 0.5
    if clicked_weight and bool(clicked.any()):
        loss = loss + clicked_weight * F.binary_cross_entropy_with_logits(cvr_logit[clicked], converted[clicked])
    return loss


@dataclass
class DeepCTRTask:
    """Training :class:`DeepCTRNet` ESMM-style as an :class:`~shoplake.train.loop.EpochTask`."""

    codes: np.ndarray
    numeric: np.ndarray
    text: np.ndarray
    click: np.ndarray
    converted: np.ndarray
    settings: DeepSettings
    batch_size: int = 512
    seed: int = 0
    conversion_weight: float = 1.0
    clicked_weight: float = 0.0

    def build_model(self) -> nn.Module:
        return DeepCTRNet(self.settings)

    def batches(self, epoch: int, rank: int, world_size: int):
        """This rank's share of a shuffled epoch; every rank gets ``ceil(n / world_size)`` rows.

        ``batch_size`` is the batch of a step over all ranks (each takes its share), so an
        epoch takes as many steps on any number of workers as in one process.
        """
        n = len(self.click)
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        per_rank = math.ceil(n / world_size)
        mine = np.resize(order, per_rank * world_size)[rank * per_rank : (rank + 1) * per_rank]
        step = max(math.ceil(self.batch_size / world_size), 1)
        for start in range(0, per_rank, step):
            idx = mine[start : start + step]
            yield (torch.from_numpy(self.codes[idx]), torch.from_numpy(self.numeric[idx]), torch.from_numpy(self.text[idx]),
                   torch.from_numpy(self.click[idx]), torch.from_numpy(self.converted[idx]))  # fmt: skip

    def loss(self, model: nn.Module, batch, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        codes, numeric, text, click, converted = batch
        ctr, cvr = model(codes, numeric, text)
        return esmm_loss(ctr, cvr, click, converted, self.conversion_weight, self.clicked_weight), len(click)

    def artifacts(self) -> dict[str, str]:
        return {"deep_ctr.json": json.dumps({"settings": asdict(self.settings)})}


class DeepCTRModel:
    """A trained :class:`DeepCTRNet` with its input encoding."""

    kind: ClassVar[str] = DEEP_CTR

    def __init__(self, encoding: Encoding, settings: DeepSettings, net: DeepCTRNet, info: dict | None = None):
        self.encoding, self.settings, self.net, self.info = encoding, settings, net.eval(), dict(info or {})

    def logits(self, data: AdData) -> tuple[np.ndarray, np.ndarray]:
        codes, numeric, text = self.settings.inputs(self.encoding, data)
        with torch.no_grad():
            ctr, cvr = self.net(torch.from_numpy(codes), torch.from_numpy(numeric), torch.from_numpy(text))
        return ctr.double().numpy(), cvr.double().numpy()

    def predict(self, data: AdData) -> tuple[np.ndarray, np.ndarray]:
        ctr, cvr = self.logits(data)
        return _clip(1 / (1 + np.exp(-ctr))), _clip(1 / (1 + np.exp(-cvr)))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        _write(folder, {"kind": self.kind, "encoding": self.encoding.to_dict(), "settings": asdict(self.settings), "info": self.info})
        torch.save(self.net.state_dict(), folder / "deep_ctr.pt")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> DeepCTRModel:
        folder = Path(folder)
        doc = json.loads((folder / _SETTINGS_FILE).read_text())
        s = doc["settings"]
        settings = DeepSettings(**{**s, **{k: tuple(s.get(k, ())) for k in ("sizes", "fields", "numeric")}})
        net = DeepCTRNet(settings)
        net.load_state_dict(torch.load(folder / "deep_ctr.pt", map_location="cpu", weights_only=True))
        return cls(Encoding.from_dict(doc["encoding"]), settings, net, doc.get("info"))


def deep_task(cfg, train: AdData, encoding: Encoding) -> DeepCTRTask:
    """The training task of the main model on ``train`` with the ``cfg.ads`` settings.

    Raises:
        ValueError: No training rows, or an unknown field or feature in the settings.
    """
    if not len(train):
        raise ValueError("no training impressions for the deep model")
    ads = cfg.ads
    settings = DeepSettings.of(ads, encoding, train.text.shape[1])
    codes, numeric, text = settings.inputs(encoding, train)
    return DeepCTRTask(codes, numeric, text, train.click.astype(np.float32), train.converted.astype(np.float32), settings, ads.batch_size,
                       cfg.training.seed, ads.conversion_weight, ads.clicked_weight)  # fmt: skip


def _optimisation(ads) -> dict:
    return {"weight_decay": ads.weight_decay} if ads.weight_decay else {}


def validation_losses(cfg, train: AdData, valid: AdData, encoding: Encoding) -> Iterator[float]:
    """Train the main model in this process (``cfg.ads`` settings): the validation ESMM loss after each epoch.

    The loss is :func:`esmm_loss`'s on the validation impressions (click log-loss plus
    conversion log-loss over every impression), of the raw probabilities: what a search
    of the settings scores, before any calibration.
    """
    from shoplake.train.loop import local_epochs

    task = deep_task(cfg, train, encoding)
    codes, numeric, text = (torch.from_numpy(x) for x in task.settings.inputs(encoding, valid))
    click, converted = torch.from_numpy(valid.click.astype(np.float32)), torch.from_numpy(valid.converted.astype(np.float32))
    config = {"epochs": cfg.ads.epochs, "lr": cfg.ads.lr, "seed": cfg.training.seed, **_optimisation(cfg.ads)}
    for model, _ in local_epochs(task, config):
        model.eval()
        with torch.no_grad():
            loss = float(esmm_loss(*model(codes, numeric, text), click, converted))
        model.train()
        yield loss


def train_deep_ctr(cfg, train: AdData, encoding: Encoding, name: str) -> tuple[DeepCTRModel, list[float]]:
    """Train the main model on Ray Train (``cfg.ray`` workers) with ``cfg.ads`` settings; returns it and the epoch losses.

    Raises:
        ValueError: No training rows, an unknown field or feature in the settings, or the run folder exists.
    """
    from shoplake.train.loop import fit

    ads = cfg.ads
    task = deep_task(cfg, train, encoding)
    result = fit(cfg, task, name, ads.epochs, lr=ads.lr, optimisation=_optimisation(ads))
    net = DeepCTRNet(task.settings)
    net.load_state_dict(result.load_state()["model"])
    info = {"epochs": ads.epochs, "losses": result.losses, "fit_seconds": result.seconds}
    return DeepCTRModel(encoding, task.settings, net, info), result.losses


_LOADERS = {HISTORIC_CTR: HistoricCTRModel, LOGISTIC: LogisticModel, GBT: GBTModel, DEEP_CTR: DeepCTRModel}


def load_model(folder: str | Path):
    """The model saved in ``folder`` by any of the classes here."""
    kind = json.loads((Path(folder) / _SETTINGS_FILE).read_text())["kind"]
    return _LOADERS[kind].load(folder)
