"""Classic recommendation baselines that any learned model has to beat.

Both take interactions as integer indices (see :class:`~shoplake.recommend.models.mf.IdMap`)
and return dense score matrices ``(len(users), n_items)`` for
:func:`shoplake.recommend.metrics.rank_items`, the same contract as matrix
factorization, so the three are evaluated by one code path.

* :class:`PopularityModel` scores every item by its total interaction weight, the
  same for every user.
* :class:`ItemCooccurrenceModel` scores an item by its cosine similarity, over
  users, to the items in the user's history (item-based collaborative filtering).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def _check_interactions(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    weight: np.ndarray | None,
    n_users: int,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate interaction arrays; return them as int64, int64, float64.

    Raises:
        ValueError: Lengths differ, an index is out of range, or a weight is negative
            or not finite.
    """
    users = np.asarray(user_idx, dtype=np.int64).ravel()
    items = np.asarray(item_idx, dtype=np.int64).ravel()
    w = np.ones(len(users)) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
    if not len(users) == len(items) == len(w):
        raise ValueError(f"user_idx, item_idx and weight differ in length: {len(users)}, {len(items)}, {len(w)}")
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"user_idx must lie in [0, {n_users}), got [{users.min()}, {users.max()}]")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"item_idx must lie in [0, {n_items}), got [{items.min()}, {items.max()}]")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weight must be finite and non-negative")
    return users, items, w


class PopularityModel:
    """Scores every item by its total interaction weight, for every user alike.

    Ties between equally popular items are left to ``rank_items``, which orders
    them by item index.
    """

    def __init__(self) -> None:
        self.popularity: np.ndarray | None = None

    def fit(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        weight: np.ndarray | None,
        n_users: int,
        n_items: int,
    ) -> PopularityModel:
        """Sum the interaction weight of each item.

        Args:
            user_idx: User index of each interaction, in ``[0, n_users)``.
            item_idx: Item index of each interaction, in ``[0, n_items)``.
            weight: Implicit-feedback weight of each interaction; ``None`` counts each
                interaction once.
            n_users: Number of users.
            n_items: Number of items; items without interactions score 0.

        Returns:
            This model, fitted.

        Raises:
            ValueError: The inputs are inconsistent (see message).
        """
        _, items, w = _check_interactions(user_idx, item_idx, weight, n_users, n_items)
        self.popularity = np.bincount(items, weights=w, minlength=n_items).astype(np.float64)
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of all items for these users, shape ``(len(user_idx), n_items)``.

        Raises:
            RuntimeError: The model is not fitted.
        """
        if self.popularity is None:
            raise RuntimeError("PopularityModel.score called before fit")
        n = len(np.atleast_1d(user_idx))
        # A real copy per row, not a broadcast view, so callers may write into it.
        return np.tile(self.popularity, (n, 1))


class ItemCooccurrenceModel:
    """Item-to-item cosine similarity over the user-item matrix.

    With ``X`` the user-item matrix, the similarity is
    ``S[i, j] = (X^T X)[i, j] / (||X[:, i]|| * ||X[:, j]||)``, and a user's scores
    are ``X[u] @ S``: items that co-occur with many of the user's items, relative
    to how common they are, rank high. The cosine keeps a best seller from being
    "similar" to everything merely because everyone bought it.

    Args:
        binary: If True (the default), ``X`` records only whether a user interacted
            with an item, so similarity counts shared users; if False, ``X`` holds
            the summed weights, and heavy users count more.
    """

    def __init__(self, binary: bool = True) -> None:
        self.binary = binary
        self.user_items: sparse.csr_matrix | None = None
        self.similarity: sparse.csr_matrix | None = None

    def fit(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        weight: np.ndarray | None,
        n_users: int,
        n_items: int,
    ) -> ItemCooccurrenceModel:
        """Build the user-item matrix and the item-item cosine similarity.

        Args:
            user_idx: User index of each interaction, in ``[0, n_users)``.
            item_idx: Item index of each interaction, in ``[0, n_items)``.
            weight: Implicit-feedback weight of each interaction (repeated pairs are
                summed); ``None`` counts each interaction once.
            n_users: Number of users.
            n_items: Number of items.

        Returns:
            This model, fitted.

        Raises:
            ValueError: The inputs are inconsistent (see message).
        """
        users, items, w = _check_interactions(user_idx, item_idx, weight, n_users, n_items)
        x = sparse.csr_matrix((w, (users, items)), shape=(n_users, n_items))  # sums duplicates
        x.eliminate_zeros()
        if self.binary:
            x.data[:] = 1.0
        co = (x.T @ x).tocsr()
        norms = np.sqrt(co.diagonal())
        # An item nobody interacted with has norm 0; its row and column are empty
        # anyway, so dividing by 1 leaves them at 0 instead of producing NaN.
        inv = sparse.diags(np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0))
        sim = inv @ co @ inv
        # An item's similarity to itself is 1 by construction and says nothing about
        # what else to recommend; left in, it would only re-rank the user's history.
        # Subtracting the diagonal avoids setdiag's change-of-sparsity warning.
        sim = (sim - sparse.diags(sim.diagonal())).tocsr()
        sim.eliminate_zeros()
        self.user_items, self.similarity = x, sim
        return self

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of all items for these users, shape ``(len(user_idx), n_items)``.

        A user without history gets all zeros; pair this model with popularity if
        cold users matter.

        Raises:
            RuntimeError: The model is not fitted.
        """
        if self.user_items is None or self.similarity is None:
            raise RuntimeError("ItemCooccurrenceModel.score called before fit")
        rows = self.user_items[np.atleast_1d(np.asarray(user_idx, dtype=np.int64))]
        return np.asarray((rows @ self.similarity).toarray(), dtype=np.float64)
