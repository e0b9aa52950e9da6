"""The fitted recommendation models wrapped for inference: every scorer family a bundle can hold.

A scorer implements :class:`Scorer`. The families:

* ``popularity``: :class:`PopularityScorer`, the same ranking for everyone;
* ``trending``: :class:`TrendingScorer`, popularity over the last days only;
* ``cooccurrence``: :class:`CooccurrenceScorer`, item-to-item cosine over users;
* ``item_knn`` and ``ease``: :class:`ItemKnnScorer` (the cosine, nearest neighbours
  only) and :class:`EaseScorer` (EASE's linear item-to-item weights), scored the same way;
* ``mf``: :class:`MFScorer`, user and item embeddings of matrix factorization;
* ``sasrec``: :class:`~shoplake.recommend.models.sasrec.SasrecScorer`, the text-aware sequence model.

Each writes its own files into a bundle's folder (:meth:`Scorer.save`) and reads them
back (:meth:`Scorer.load`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from scipy import sparse


class Scorer(Protocol):
    """A fitted model wrapped for inference."""

    kind: ClassVar[str]

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        """Scores of every catalogue item for each user.

        Args:
            users: User indices in the bundle's user map; ``-1`` for a user the model
                has not seen.
            histories: For each user, item indices of what is known about them,
                oldest first (possibly empty).

        Returns:
            Float scores, shape ``(len(users), n_items)``; higher is better.
        """
        ...

    def item_vectors(self) -> np.ndarray | None:
        """Item representations ``(n_items, d)`` for similar-item search, or None."""
        ...

    def save(self, folder: Path) -> None: ...

    @classmethod
    def load(cls, folder: Path) -> Scorer: ...


class PopularityScorer:
    """Every user gets the items ranked by their training popularity."""

    kind: ClassVar[str] = "popularity"
    FILE: ClassVar[str] = "popularity.npy"

    def __init__(self, popularity: np.ndarray):
        self.popularity = np.asarray(popularity, dtype=np.float32)

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return np.tile(self.popularity, (len(users), 1))

    def item_vectors(self) -> np.ndarray | None:
        return None

    def save(self, folder: Path) -> None:
        np.save(Path(folder) / self.FILE, self.popularity)

    @classmethod
    def load(cls, folder: Path) -> PopularityScorer:
        return cls(np.load(Path(folder) / cls.FILE))


class CooccurrenceScorer:
    """Sum of the item-item cosine similarities of the items in a user's history.

    Args:
        similarity: Item-item similarity ``(n_items, n_items)`` with a zero diagonal,
            as fitted by :class:`~shoplake.recommend.models.baselines.ItemCooccurrenceModel`.
    """

    kind: ClassVar[str] = "cooccurrence"
    FILE: ClassVar[str] = "similarity.npz"

    def __init__(self, similarity: sparse.spmatrix):
        self.similarity = sparse.csr_matrix(similarity, dtype=np.float32)

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        n_items = self.similarity.shape[0]
        rows = np.repeat(np.arange(len(histories)), [len(np.unique(h)) for h in histories])
        cols = np.concatenate([np.unique(h) for h in histories]) if histories else np.empty(0, np.int64)
        x = sparse.csr_matrix((np.ones(len(cols), np.float32), (rows, cols.astype(np.int64))), shape=(len(histories), n_items))
        return np.asarray((x @ self.similarity).toarray(), dtype=np.float32)

    def item_vectors(self) -> np.ndarray | None:
        return None

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar items to ``item`` and their cosine (zeros dropped)."""
        row = self.similarity.getrow(item)
        order = np.argsort(-row.data, kind="stable")[:k]
        return row.indices[order], row.data[order]

    def save(self, folder: Path) -> None:
        sparse.save_npz(Path(folder) / self.FILE, self.similarity)

    @classmethod
    def load(cls, folder: Path) -> CooccurrenceScorer:
        return cls(sparse.load_npz(Path(folder) / cls.FILE))


class TrendingScorer(PopularityScorer):
    """Every user gets the items ranked by their interactions of the last days (``recommender.trending_days``)."""

    kind: ClassVar[str] = "trending"
    FILE: ClassVar[str] = "trending.npy"


class ItemKnnScorer(CooccurrenceScorer):
    """Co-occurrence restricted to each item's nearest neighbours (``recommender.knn_neighbors``)."""

    kind: ClassVar[str] = "item_knn"
    FILE: ClassVar[str] = "item_knn.npz"


class EaseScorer(CooccurrenceScorer):
    """EASE's item-to-item weights, each item's strongest :data:`EASE_KEEP` kept, summed over the history."""

    kind: ClassVar[str] = "ease"
    FILE: ClassVar[str] = "ease.npz"


#: EASE weights kept per item in the bundle (the dense matrix grows with the catalogue's square).
EASE_KEEP = 200


class MFScorer:
    """Dot products of matrix-factorization embeddings plus the item bias.

    A user unknown to the model (index ``-1``) gets the mean of the embeddings of
    the items in their history (a fold-in), or only the item biases without one.
    """

    kind: ClassVar[str] = "mf"
    FILE: ClassVar[str] = "mf.npz"

    def __init__(self, user_emb: np.ndarray, item_emb: np.ndarray, item_bias: np.ndarray):
        self.user_emb = np.asarray(user_emb, dtype=np.float32)
        self.item_emb = np.asarray(item_emb, dtype=np.float32)
        self.item_bias = np.asarray(item_bias, dtype=np.float32).ravel()

    @classmethod
    def from_state(cls, state: dict) -> MFScorer:
        """From a :class:`~shoplake.recommend.models.mf.MatrixFactorization` state dict."""
        return cls(state["user_emb.weight"].numpy(), state["item_emb.weight"].numpy(), state["item_bias.weight"].numpy())

    def _user_vectors(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        vectors = np.zeros((len(users), self.item_emb.shape[1]), dtype=np.float32)
        known = users >= 0
        vectors[known] = self.user_emb[users[known]]
        for row in np.flatnonzero(~known):
            if len(histories[row]):
                vectors[row] = self.item_emb[np.unique(histories[row])].mean(axis=0)
        return vectors

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        return self._user_vectors(users, histories) @ self.item_emb.T + self.item_bias

    def item_vectors(self) -> np.ndarray | None:
        return self.item_emb

    def save(self, folder: Path) -> None:
        np.savez(Path(folder) / self.FILE, user_emb=self.user_emb, item_emb=self.item_emb, item_bias=self.item_bias)

    @classmethod
    def load(cls, folder: Path) -> MFScorer:
        with np.load(Path(folder) / cls.FILE) as z:
            return cls(z["user_emb"], z["item_emb"], z["item_bias"])
