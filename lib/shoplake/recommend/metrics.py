"""Full-ranking evaluation metrics for recommenders, as pure numpy functions.

Every model is judged the same way: :func:`rank_items` ranks the *whole* catalogue
for each user from a score matrix, with the items the user already had (the
training interactions) removed, and the metrics compare that top-k with the user's
held-out items. Ranking against the full catalogue rather than a sample of
negatives keeps the numbers comparable between models and free of the sampling
bias of "1 positive + 100 random negatives" protocols.

Conventions shared by all metrics:

* Relevance is binary: an item is relevant if it is in the user's held-out set.
* A user with no held-out items is skipped, not counted as a zero: such a user
  has nothing to find, and counting them would mix the size of the test set into
  the score. Every metric is the mean over the remaining users; with none left
  it is ``nan``.
* A top-k row may end in ``-1`` where fewer than k items could be ranked (see
  :func:`rank_items`); ``-1`` never matches an item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

# Fills the positions of a top-k row that have no rankable item left.
PAD = -1
#: The metric a recommendation run chooses its champion by, reported with its interval.
CHAMPION_METRIC = "ndcg@10"
#: Each model's paired difference in CHAMPION_METRIC with the best model on validation (``_low``/``_high``: its interval).
MARGIN_METRIC = f"{CHAMPION_METRIC}_to_best"


def rank_items(
    scores: np.ndarray,
    exclude: Sequence[np.ndarray] | sparse.spmatrix | sparse.sparray | None,
    k: int,
) -> np.ndarray:
    """Top-k item indices per user over the whole catalogue.

    Args:
        scores: Scores, shape ``(n_users, n_items)``; higher is better. Not modified.
        exclude: Items never to rank for each user (typically those seen in
            training): a sequence of ``n_users`` integer arrays, or a sparse matrix
            of shape ``(n_users, n_items)`` whose nonzero entries are excluded; or
            ``None`` to exclude nothing.
        k: Length of each ranking, at least 1.

    Returns:
        Item indices, shape ``(n_users, k)``, int64, best first. Equal scores are
        ordered by ascending item index, so the same scores always give the same
        ranking. Excluded items, and items scored ``-inf``, are never ranked: when
        fewer than ``k`` items remain, the row ends in ``-1``.

    Raises:
        ValueError: ``scores`` is not 2-D or holds NaN, ``k`` is below 1, or
            ``exclude`` does not match the shape of ``scores``.
    """
    scores = np.array(scores, dtype=np.float64)  # a copy: exclusion writes into it
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if np.isnan(scores).any():
        # A NaN would sort arbitrarily and silently hide a broken model.
        raise ValueError("scores contain NaN")
    n_users, n_items = scores.shape

    if exclude is not None:
        if sparse.issparse(exclude):
            if exclude.shape != scores.shape:
                raise ValueError(f"exclude has shape {exclude.shape}, scores have {scores.shape}")
            mask = sparse.csr_matrix(exclude, copy=True)
            # A stored zero is not an interaction: only nonzero entries exclude.
            mask.eliminate_zeros()
            rows = np.repeat(np.arange(n_users), np.diff(mask.indptr))
            scores[rows, mask.indices] = -np.inf
        else:
            if len(exclude) != n_users:
                raise ValueError(f"exclude has {len(exclude)} rows, scores have {n_users} users")
            for u, items in enumerate(exclude):
                items = np.asarray(items, dtype=np.int64)
                if items.size:
                    scores[u, items] = -np.inf

    # A stable sort of the negated scores keeps equal scores in item-index order,
    # which argpartition would not; a full sort per user is cheap at evaluation sizes.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    topk = np.full((n_users, k), PAD, dtype=np.int64)
    width = order.shape[1]  # n_items when k exceeds the catalogue
    taken = np.take_along_axis(scores, order, axis=1)
    topk[:, :width] = np.where(np.isneginf(taken), PAD, order)
    return topk


def _hits(topk: np.ndarray, relevant: Sequence[set[int]], k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Hit matrix and relevant-set sizes of the users that have relevant items.

    Returns:
        ``hits``, bool of shape ``(n_eval_users, k)``, True where the ranked item is
        relevant; and ``n_relevant``, shape ``(n_eval_users,)``.
    """
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be 2-D (n_users, k), got shape {topk.shape}")
    if len(relevant) != topk.shape[0]:
        raise ValueError(f"relevant has {len(relevant)} users, topk has {topk.shape[0]}")
    if k is not None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if k > topk.shape[1]:
            # Cutting at a k the ranking does not reach would silently under-report.
            raise ValueError(f"k={k} exceeds the ranking length {topk.shape[1]}")
        topk = topk[:, :k]
    users = [u for u, rel in enumerate(relevant) if rel]
    hits = np.zeros((len(users), topk.shape[1]), dtype=bool)
    for row, u in enumerate(users):
        hits[row] = np.isin(topk[u], np.fromiter(relevant[u], dtype=np.int64))
    n_relevant = np.array([len(relevant[u]) for u in users], dtype=np.float64)
    return hits, n_relevant


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def ndcg_per_user(topk: np.ndarray, relevant: Sequence[set[int]], k: int) -> np.ndarray:
    """NDCG@k of each user with relevant items (in user order), binary relevance, ``log2(rank + 1)`` discount.

    The ideal DCG puts ``min(k, |relevant|)`` relevant items first, so a user with
    more held-out items than ``k`` can still reach 1. Two models ranked for the same
    users give arrays of the same users in the same order (paired comparisons).

    Args:
        topk: Ranked item indices, shape ``(n_users, >= k)``, as from :func:`rank_items`.
        relevant: Held-out items of each user; users with an empty set are skipped.
        k: Cut-off.
    """
    hits, n_relevant = _hits(topk, relevant, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discount
    ideal = np.cumsum(discount)[np.minimum(n_relevant, k).astype(np.int64) - 1]
    return dcg / ideal


def ndcg_at_k(topk: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Mean NDCG@k over the users with relevant items (:func:`ndcg_per_user`); ``nan`` if there are none."""
    return _mean(ndcg_per_user(topk, relevant, k))


def recall_at_k(topk: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Mean share of each user's relevant items found in the top k.

    The denominator is ``|relevant|``, not ``min(k, |relevant|)``: a user with more
    held-out items than ``k`` cannot reach 1.

    Args:
        topk: Ranked item indices, shape ``(n_users, >= k)``.
        relevant: Held-out items of each user; users with an empty set are skipped.
        k: Cut-off.

    Returns:
        The mean over users with relevant items; ``nan`` if there are none.
    """
    hits, n_relevant = _hits(topk, relevant, k)
    return _mean(hits.sum(axis=1) / n_relevant)


def hit_rate_at_k(topk: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Share of users with at least one relevant item in the top k.

    Args:
        topk: Ranked item indices, shape ``(n_users, >= k)``.
        relevant: Held-out items of each user; users with an empty set are skipped.
        k: Cut-off.

    Returns:
        The mean over users with relevant items; ``nan`` if there are none.
    """
    hits, _ = _hits(topk, relevant, k)
    return _mean(hits.any(axis=1).astype(np.float64))


def mrr(topk: np.ndarray, relevant: Sequence[set[int]]) -> float:
    """Mean reciprocal rank of the first relevant item within the given ranking.

    A user with no relevant item in the ranking scores 0, so the value depends on
    the ranking's length: it is MRR@``topk.shape[1]``.

    Args:
        topk: Ranked item indices, shape ``(n_users, k)``.
        relevant: Held-out items of each user; users with an empty set are skipped.

    Returns:
        The mean over users with relevant items; ``nan`` if there are none.
    """
    hits, _ = _hits(topk, relevant, None)
    first = hits.argmax(axis=1)  # 0 also when there is no hit; masked below
    rr = np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)
    return _mean(rr)


def catalogue_coverage(
    topk: np.ndarray,
    n_items: int,
    relevant: Sequence[set[int]] | None = None,
) -> float:
    """Share of the catalogue that appears in at least one user's ranking.

    Unlike the accuracy metrics this is one number for the whole set of rankings,
    not a mean over users: it tells whether a model recommends the same few items
    to everyone.

    Args:
        topk: Ranked item indices, shape ``(n_users, k)``; ``-1`` padding is ignored.
        n_items: Size of the catalogue, at least 1.
        relevant: If given, only the rankings of users with relevant items count,
            the same users the accuracy metrics average over.

    Returns:
        Distinct ranked items divided by ``n_items``, in ``[0, 1]``.

    Raises:
        ValueError: ``n_items`` is below 1, or ``relevant`` does not match ``topk``.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    topk = np.asarray(topk)
    if relevant is not None:
        if len(relevant) != topk.shape[0]:
            raise ValueError(f"relevant has {len(relevant)} users, topk has {topk.shape[0]}")
        topk = topk[[u for u, rel in enumerate(relevant) if rel]]
    items = np.unique(topk)
    return float(np.count_nonzero(items >= 0) / n_items)


def evaluate(
    topk: np.ndarray,
    relevant: Sequence[set[int]],
    n_items: int,
    ks: Sequence[int] = (10, 20),
) -> dict[str, float]:
    """All metrics at each cut-off, as a flat dict ready to log.

    Args:
        topk: Ranked item indices, shape ``(n_users, >= max(ks))``.
        relevant: Held-out items of each user; users with an empty set are skipped.
        n_items: Size of the catalogue.
        ks: Cut-offs.

    Returns:
        ``ndcg@k``, ``recall@k``, ``hr@k`` and ``coverage@k`` for each ``k`` in
        ``ks``, and ``mrr`` over the whole ranking; e.g. ``{"ndcg@10": ..., "mrr": ...}``.
    """
    out: dict[str, float] = {}
    for k in ks:
        out[f"ndcg@{k}"] = ndcg_at_k(topk, relevant, k)
        out[f"recall@{k}"] = recall_at_k(topk, relevant, k)
        out[f"hr@{k}"] = hit_rate_at_k(topk, relevant, k)
        out[f"coverage@{k}"] = catalogue_coverage(np.asarray(topk)[:, :k], n_items, relevant)
    out["mrr"] = mrr(topk, relevant)
    return out
