"""Ranking a held-out split and measuring it: the figures every recommendation model is judged by.

:func:`rank_split` ranks the whole catalogue for each judged user of a
:class:`~shoplake.recommend.protocols.HoldoutSplit` (optionally through score-time
transforms), :func:`split_metrics` measures the rankings for all held-out items and
the cold-item slice, :func:`pool` merges several validation splits' figures over their
(user, split) pairs and :func:`validation_score` gives the pooled NDCG@10 the
champion and the searches are chosen on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shoplake.evaluation import bootstrap_mean
from shoplake.recommend.metrics import CHAMPION_METRIC, evaluate, ndcg_per_user, rank_items
from shoplake.recommend.models.scorers import Scorer
from shoplake.recommend.protocols import HoldoutSplit
from shoplake.recommend.schemas import ALL_ITEMS, COLD_ITEMS

#: Cut-offs of the metrics.
KS = (10, 20)
#: Users ranked per chunk (bounds the dense score matrix).
SCORE_CHUNK = 512
ALL, COLD = ALL_ITEMS, COLD_ITEMS


@dataclass
class SliceMetrics:
    """Metrics of one model on one slice of the held-out data."""

    metrics: dict[str, float]
    n_users: int
    per_user: np.ndarray | None = None  # CHAMPION_METRIC of each evaluated user, in user order


def rank_split(scorer: Scorer, split: HoldoutSplit, k: int, transforms: Sequence[Callable | None] = (None,)) -> list[np.ndarray]:
    """Top-k item indices of every judged user of a split, once per score transform.

    The model scores each user from their history once; each transform (None: none)
    turns those scores into the ranked ones. Items not yet in a user's catalogue and,
    with ``split.exclude_seen``, the user's training items are never ranked.
    """
    train = split.train
    users = split.eval_users()
    seen = train.seen() if split.exclude_seen else None
    tops = [np.empty((len(users), k), dtype=np.int64) for _ in transforms]
    for start in range(0, len(users), SCORE_CHUNK):
        chunk = users[start : start + SCORE_CHUNK]
        base = np.asarray(scorer.score(chunk, [train.sequences[u] for u in chunk]), dtype=np.float64)
        hidden = split.unavailable(chunk)
        for transform, top in zip(transforms, tops):
            scores = base if transform is None else transform(base, chunk)
            if hidden is not None:
                scores = np.where(hidden, -np.inf, scores)
            top[start : start + len(chunk)] = rank_items(scores, None if seen is None else seen[chunk], k)
    return tops


def split_metrics(topk: np.ndarray, split: HoldoutSplit, ks: Sequence[int] = KS, evaluation=None) -> dict[str, SliceMetrics]:
    """Metrics of a split's rankings (:func:`rank_split`) for all held-out items and the cold-item slice.

    Args:
        evaluation: ``cfg.evaluation``: also report ``ndcg@10_low`` and ``ndcg@10_high``,
            the bootstrap interval over users.
    """
    users = split.eval_users()
    relevant = [split.relevant[u] for u in users]
    cold = split.relevant_cold()
    relevant_cold = [cold[u] for u in users]
    out = {}
    for slice_, rel in ((ALL, relevant), (COLD, relevant_cold)):
        per_user = ndcg_per_user(topk, rel, 10)
        metrics = evaluate(topk, rel, split.train.n_items, ks)
        if evaluation is not None:
            ci = bootstrap_mean(per_user, draws=evaluation.bootstrap_draws, level=evaluation.confidence, seed=evaluation.seed)
            metrics[f"{CHAMPION_METRIC}_low"], metrics[f"{CHAMPION_METRIC}_high"] = ci.low, ci.high
        out[slice_] = SliceMetrics(metrics, int(per_user.size), per_user)
    return out


def evaluate_scorer(scorer: Scorer, split: HoldoutSplit, ks: Sequence[int] = KS, evaluation=None) -> dict[str, SliceMetrics]:
    """Full-catalogue ranking metrics of a fitted model on a split.

    Every user with held-out items is scored over the whole catalogue (as the user
    could have been shown it) from their training history; their training items are
    excluded when ``split.exclude_seen``.

    Returns:
        ``{"all": ..., "cold_items": ...}``; the cold slice keeps, per user, only the
        held-out items without training interactions (users left with none are skipped).
    """
    return split_metrics(rank_split(scorer, split, max(ks))[0], split, ks, evaluation)


def pool(results: Sequence[dict[str, SliceMetrics]], evaluation=None) -> dict[str, SliceMetrics]:
    """One model's metrics on several splits as one: every (user, split) pair counts once.

    A metric is the mean of the splits' values weighted by their users (for the
    per-user means, the mean over all pairs); the interval is the bootstrap over the pairs.
    """
    if len(results) == 1:
        return results[0]
    out = {}
    for slice_ in results[0]:
        parts = [r[slice_] for r in results]
        sizes = np.array([p.n_users for p in parts], dtype=np.float64)
        metrics = {}
        for name in parts[0].metrics:
            values = np.array([p.metrics.get(name, np.nan) for p in parts], dtype=np.float64)
            keep = (sizes > 0) & ~np.isnan(values)
            metrics[name] = float((values[keep] * sizes[keep]).sum() / sizes[keep].sum()) if keep.any() else float("nan")
        per_user = np.concatenate([p.per_user for p in parts if p.per_user is not None])
        if evaluation is not None:
            ci = bootstrap_mean(per_user, draws=evaluation.bootstrap_draws, level=evaluation.confidence, seed=evaluation.seed)
            metrics[f"{CHAMPION_METRIC}_low"], metrics[f"{CHAMPION_METRIC}_high"] = ci.low, ci.high
        out[slice_] = SliceMetrics(metrics, int(sizes.sum()), per_user)
    return out


def validation_score(scorers: Sequence[Scorer], splits: Sequence[HoldoutSplit]) -> float:
    """NDCG@10 of one scorer per split, pooled over the splits' (user, split) pairs: the figure the champion is chosen on."""
    parts = [split_metrics(rank_split(scorer, split, max(KS))[0], split, KS) for scorer, split in zip(scorers, splits)]
    return float(np.nan_to_num(pool(parts)[ALL].metrics[CHAMPION_METRIC], nan=0.0))
