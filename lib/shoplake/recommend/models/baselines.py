"""Classic recommendation baselines that any learned model has to beat.

Both take interactions as integer indices (see :class:`~shoplake.recommend.models.mf.IdMap`)
and return dense score matrices ``(len(users), n_items)`` for
:func:`shoplake.recommend.metrics.rank_items`, the same contract as matrix
factorization, so the three are evaluated by one code path.

* :class:`PopularityModel` scores every item by its total interaction weight, the
  same for every user.
* :class:`ItemCooccurrenceModel` scores an item by its cosine similarity, over
  users, to the items in the user's history (item-based collaborative filtering);
  with ``neighbors`` it keeps only each item's nearest ones (item-kNN).
* :func:`trending_counts` is popularity over the last days only: what sells now.
* :class:`EaseModel` is EASE (Steck, 2019): a linear item-to-item model fitted in
  closed form, a strong baseline on many public benchmarks.
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
        neighbors: Keep only each item's ``neighbors`` most similar items (item-kNN);
            None keeps them all.
    """

    def __init__(self, binary: bool = True, neighbors: int | None = None) -> None:
        if neighbors is not None and neighbors < 1:
            raise ValueError(f"neighbors must be >= 1, got {neighbors}")
        self.binary, self.neighbors = binary, neighbors
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
        if self.neighbors is not None:
            sim = top_per_row(sim, self.neighbors)
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


def top_per_row(m: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """``m`` with only the ``k`` largest entries of each row kept (ties by column order)."""
    rows, cols, vals = [], [], []
    for i in range(m.shape[0]):
        start, end = m.indptr[i], m.indptr[i + 1]
        if end - start > k:
            keep = start + np.argsort(-m.data[start:end], kind="stable")[:k]
        else:
            keep = np.arange(start, end)
        rows.append(np.full(len(keep), i))
        cols.append(m.indices[keep])
        vals.append(m.data[keep])
    if not rows:
        return m
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape)


def trending_counts(items: np.ndarray, times: np.ndarray, as_of_end: float, days: int, n_items: int) -> np.ndarray:
    """Interactions per item in the ``days`` before ``as_of_end`` (seconds since the epoch).

    Older interactions count a millionth each, so that items nobody touched lately
    still rank by their long-run popularity behind the trending ones.

    Raises:
        ValueError: ``days`` below 1 or lengths differ.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    items, times = np.asarray(items, dtype=np.int64), np.asarray(times, dtype=np.float64)
    if items.shape != times.shape:
        raise ValueError(f"items and times differ in length: {len(items)}, {len(times)}")
    recent = times >= as_of_end - days * 86_400.0
    return np.bincount(items, weights=np.where(recent, 1.0, 1e-6), minlength=n_items)


class EaseModel:
    """EASE: item-to-item weights ``B`` fitted in closed form, a user's scores ``X[u] @ B``.

    With the item Gram matrix ``G = X^T X + lambda I`` and ``P = G^-1``, the weights
    are ``B = I - P / diag(P)`` (each column divided by its diagonal entry), which
    minimises ``||X - X B||^2 + lambda ||B||^2`` subject to a zero diagonal: no item
    explains itself. ``X`` is binary (who interacted with what). The Gram matrix is
    dense, so the catalogue size is capped by ``max_items``.

    Args:
        l2: ``lambda``, the ridge penalty (larger for denser data).
        max_items: Refuse larger catalogues (memory grows with the square).
    """

    def __init__(self, l2: float = 500.0, max_items: int = 8000) -> None:
        if l2 <= 0:
            raise ValueError(f"l2 must be > 0, got {l2}")
        self.l2, self.max_items = float(l2), max_items
        self.weights: np.ndarray | None = None

    def fit(self, user_idx: np.ndarray, item_idx: np.ndarray, weight: np.ndarray | None, n_users: int, n_items: int) -> EaseModel:
        """Fit ``B`` on the interactions (weights only mark presence).

        Raises:
            ValueError: The inputs are inconsistent, or the catalogue exceeds ``max_items``.
        """
        if n_items > self.max_items:
            raise ValueError(f"EASE keeps a dense {n_items} x {n_items} matrix; the cap is {self.max_items} items (ease_max_items)")
        users, items, w = _check_interactions(user_idx, item_idx, weight, n_users, n_items)
        x = sparse.csr_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
        x.data[:] = 1.0
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
        gram[np.diag_indices(n_items)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices(n_items)] = 0.0
        self.weights = b.astype(np.float32)
        return self

    def strongest(self, k: int) -> sparse.csr_matrix:
        """The fitted weights with only each item's ``k`` largest kept, as a sparse matrix."""
        if self.weights is None:
            raise RuntimeError("EaseModel.strongest called before fit")
        n = self.weights.shape[0]
        k = min(k, n)
        cols = np.argpartition(-self.weights, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(self.weights, cols, axis=1)
        m = sparse.csr_matrix((vals.ravel(), (np.repeat(np.arange(n), k), cols.ravel())), shape=(n, n))
        m.eliminate_zeros()
        return m


def counts_as_of(items: np.ndarray, times: np.ndarray, bounds: np.ndarray, n_items: int, *, days: int | None = None,
                 weights: np.ndarray | None = None, half_life_days: float | None = None) -> np.ndarray:  # fmt: skip
    """Per item, what :func:`trending_counts` or popularity would count at each of several times.

    Args:
        items: Item index of each interaction.
        times: Its time, seconds since the epoch.
        bounds: The times counted at, seconds; row ``k`` uses only interactions before ``bounds[k]``.
        n_items: Catalogue size.
        days: Trending: interactions of the ``days`` before the bound count 1, older
            ones a millionth (as :func:`trending_counts`).
        weights: Popularity: the weight of each interaction, decayed by ``half_life_days``
            from the bound (the features step's pair weight, summed over users).
        half_life_days: Decay of ``weights``.

    Returns:
        float64, shape ``(len(bounds), n_items)``.

    Raises:
        ValueError: Neither or both of ``days`` and ``weights`` are given.
    """
    if (days is None) == (weights is None):
        raise ValueError("counts_as_of counts either trending (days) or popularity (weights and half_life_days)")
    order = np.argsort(times, kind="stable")
    items, times = np.asarray(items, np.int64)[order], np.asarray(times, np.float64)[order]
    w = None if weights is None else np.asarray(weights, np.float64)[order]
    out = np.zeros((len(bounds), n_items))
    for row, bound in enumerate(np.asarray(bounds, np.float64)):
        end = np.searchsorted(times, bound, side="left")
        if days is not None:
            out[row] = trending_counts(items[:end], times[:end], bound, days, n_items)
        else:
            decay = np.exp2(-(bound - times[:end]) / (86_400.0 * float(half_life_days)))
            out[row] = np.bincount(items[:end], weights=w[:end] * decay, minlength=n_items)
    return out
