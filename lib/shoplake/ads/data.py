"""Impressions as the ad models read them: categorical fields, numeric features, the ad's text embedding, labels.

:class:`AdData` holds a set of impressions column-wise in numpy arrays (built from
``gold.ad_features`` rows by :func:`from_rows`); :class:`Encoding` turns them into
model inputs with statistics of the training rows only: a vocabulary per categorical
field (unseen values map to 0), numeric features through ``log1p`` where they count
things and through ``log`` where they are rates or shares (the planted and the usual
click models are products of factors, so a rate's logarithm is what adds up in a
logit), then standardised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoplake import columns as C
from shoplake.ads import schemas as S

#: Numeric features that count things: read through log1p.
COUNT_FEATURES = frozenset({S.ITEM_IMPRESSIONS, S.USER_AD_IMPRESSIONS, S.USER_EVENTS, S.ITEM_VIEWS, C.PRICE})
#: Numeric features that are rates or shares in (0, 1]: read through log (floored at :data:`RATE_FLOOR`).
RATE_FEATURES = frozenset(
    {S.ITEM_CTR, S.ITEM_CVR, S.CAMPAIGN_CTR, S.CAMPAIGN_CVR, S.PLACEMENT_CTR, S.PLACEMENT_CVR, S.PLACEMENT_ITEM_CTR, S.USER_CTR,
     S.USER_CATEGORY_AFFINITY}
)  # fmt: skip
RATE_FLOOR = 1e-4
NUMERIC = tuple(S.NUMERIC_FEATURES)
CATEGORICAL = S.CATEGORICAL_FEATURES


@dataclass
class AdData:
    """Impressions column-wise.

    Attributes:
        cats: Per categorical field (:data:`CATEGORICAL`), its values as strings.
        num: Numeric features, ``(n, len(NUMERIC))``.
        text: The ad's text embedding per row, ``(n, d)`` (zeros without text).
        click: 1 where clicked.
        conversion: 1 where converted (0 where unknown: only matured rows are labelled).
        placement: The placement per row (the slices of the metrics).
        day: The impression's day per row.
        ids: Impression ids.
        cost: What each impression's click was charged (0 without a click), when known.
        users: The viewer per row ("" when unknown), when known.
        propensity: The probability with which the logged policy chose the row's ad, when known.
    """

    cats: dict[str, np.ndarray]
    num: np.ndarray
    text: np.ndarray
    click: np.ndarray
    conversion: np.ndarray
    placement: np.ndarray
    day: np.ndarray
    ids: np.ndarray
    cost: np.ndarray | None = None
    users: np.ndarray | None = None
    propensity: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.click)

    def take(self, rows) -> AdData:
        def opt(a):
            return None if a is None else a[rows]

        return AdData(
            {k: v[rows] for k, v in self.cats.items()}, self.num[rows], self.text[rows], self.click[rows], self.conversion[rows],
            self.placement[rows], self.day[rows], self.ids[rows], opt(self.cost), opt(self.users), opt(self.propensity),
        )  # fmt: skip

    @property
    def converted(self) -> np.ndarray:
        """Clicked and converted: the label of pCTCVR."""
        return self.click * self.conversion


def _strings(column) -> np.ndarray:
    return np.array([("" if v is None else str(v)) for v in column.to_pylist()], dtype=object)


def from_rows(rows: pa.Table, item_text: dict[str, np.ndarray], text_dim: int) -> AdData:
    """:class:`AdData` of ``gold.ad_features`` rows, with each ad item's text embedding from ``item_text``."""
    n = rows.num_rows
    cats = {name: _strings(rows[name]) for name in CATEGORICAL}
    num = (
        np.column_stack([rows[name].to_numpy(zero_copy_only=False).astype(np.float64) for name in NUMERIC])
        if n
        else np.zeros((0, len(NUMERIC)))
    )
    zero = np.zeros(text_dim, dtype=np.float32)
    text = np.stack([item_text.get(i, zero) for i in cats[C.ITEM_ID]]).astype(np.float32) if n else np.zeros((0, text_dim), np.float32)
    conversion = pc.fill_null(rows[S.CONVERSION], 0).to_numpy(zero_copy_only=False).astype(np.float64) if n else np.zeros(0)
    days = np.array(pc.cast(rows[S.IMPRESSION_TS], pa.timestamp("us", tz="UTC")).cast(pa.date32()).to_pylist(), dtype=object)
    return AdData(
        cats, num, text, rows[S.CLICK].to_numpy(zero_copy_only=False).astype(np.float64), conversion, cats[C.PLACEMENT].copy(),
        days, _strings(rows[C.IMPRESSION_ID]), rows[C.COST].to_numpy(zero_copy_only=False).astype(np.float64),
        _strings(rows[C.USER_ID]), rows[C.PROPENSITY].to_numpy(zero_copy_only=False).astype(np.float64),
    )  # fmt: skip


@dataclass
class Encoding:
    """Training statistics that turn :class:`AdData` into model inputs.

    Attributes:
        vocab: Per categorical field, its training values in order (index = position + 1; 0: unseen).
        logged: Numeric features read through log1p.
        rates: Numeric features read through log (encodings saved before it existed have none).
        mean: Per numeric feature, the training mean after log1p.
        std: Per numeric feature, the training deviation (1 where constant).
    """

    vocab: dict[str, list[str]]
    logged: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rates: tuple[str, ...] = ()
    _index: dict[str, dict[str, int]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def fit(cls, data: AdData) -> Encoding:
        vocab = {name: sorted(set(data.cats[name].tolist())) for name in CATEGORICAL}
        logged = tuple(n for n in NUMERIC if n in COUNT_FEATURES)
        rates = tuple(n for n in NUMERIC if n in RATE_FEATURES)
        Z = _log(data.num, logged, rates)
        std = Z.std(axis=0) if len(Z) else np.ones(len(NUMERIC))
        mean = Z.mean(axis=0) if len(Z) else np.zeros(len(NUMERIC))
        return cls(vocab, logged, tuple(map(float, mean)), tuple(float(s) if s > 1e-12 else 1.0 for s in std), rates)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "_index"}

    @classmethod
    def from_dict(cls, doc: dict) -> Encoding:
        return cls(doc["vocab"], tuple(doc["logged"]), tuple(doc["mean"]), tuple(doc["std"]), tuple(doc.get("rates", ())))

    def sizes(self) -> list[int]:
        """Embedding rows per categorical field (the unseen row included)."""
        return [len(self.vocab[name]) + 1 for name in CATEGORICAL]

    def codes(self, data: AdData) -> np.ndarray:
        """Categorical codes, int64 ``(n, len(CATEGORICAL))``; 0 for a value not seen in training."""
        if not self._index:
            self._index.update({name: {v: k + 1 for k, v in enumerate(values)} for name, values in self.vocab.items()})
        out = np.zeros((len(data), len(CATEGORICAL)), dtype=np.int64)
        for j, name in enumerate(CATEGORICAL):
            index = self._index[name]
            out[:, j] = [index.get(v, 0) for v in data.cats[name]]
        return out

    def numeric(self, data: AdData) -> np.ndarray:
        """Standardised numeric features, float32 ``(n, len(NUMERIC))``."""
        return ((_log(data.num, self.logged, self.rates) - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)


def _log(X: np.ndarray, logged: Sequence[str], rates: Sequence[str] = ()) -> np.ndarray:
    Z = np.array(X, dtype=np.float64, copy=True)
    counts = np.array([n in set(logged) for n in NUMERIC], dtype=bool)
    shares = np.array([n in set(rates) for n in NUMERIC], dtype=bool)
    Z[:, counts] = np.log1p(np.maximum(Z[:, counts], 0.0))
    Z[:, shares] = np.log(np.clip(Z[:, shares], RATE_FLOOR, 1.0))
    return Z
