"""A trained recommender packed for inference: the unit that is registered, scored and served.

A :class:`RecommenderBundle` holds one fitted *scorer* (the model) and what turns its
item indices into answers a shop can use: the id maps, every known user's history
(for "not again" filtering and for sequence models), item titles and categories
(for the reason shown with a recommendation) and item popularity (the fallback for
users the model knows nothing about). Batch scoring and the ``/recommend`` endpoint
call the same :meth:`RecommenderBundle.recommend`, so both give the same answer.

The scorer (the model) is one of the families of :mod:`shoplake.recommend.models.scorers`.

On disk a bundle is a folder: ``bundle.json`` (kind, parameters, metadata),
``bundle.npz`` (histories, popularity) plus the scorer's own files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoplake.bundle import BUNDLE_FILE
from shoplake.config import Config
from shoplake.recommend.models.mf import IdMap
from shoplake.recommend.models.scorers import (
    CooccurrenceScorer,
    EaseScorer,
    ItemKnnScorer,
    MFScorer,
    PopularityScorer,
    Scorer,
    TrendingScorer,
)
from shoplake.registry import ModelVersionInfo, load_bundle

ARRAYS_FILE = "bundle.npz"
#: History items consulted for the reason of a recommendation (most recent first).
REASON_LOOKBACK = 20


def scorer_class(kind: str) -> type:
    """The scorer class of a model kind.

    Raises:
        ValueError: Unknown kind.
    """
    if kind == "sasrec":
        from shoplake.recommend.models.sasrec import SasrecScorer

        return SasrecScorer
    classes = {c.kind: c for c in (PopularityScorer, TrendingScorer, CooccurrenceScorer, ItemKnnScorer, EaseScorer, MFScorer)}
    if kind not in classes:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted([*classes, 'sasrec'])}")
    return classes[kind]


@dataclass
class Recommendation:
    """One recommended (or similar) item."""

    item_id: str
    score: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "score": self.score, "reason": self.reason}


@dataclass
class RecommenderBundle:
    """A scorer and everything needed to answer for a user or an item by id.

    Attributes:
        scorer: The fitted model.
        user_ids: Users the model was trained on (index = the scorer's user index).
        item_ids: The catalogue (index = the scorer's item index).
        history_indptr: CSR row pointers of the histories, one row per user of ``user_ids``.
        history_items: Item indices of every history, oldest first within a row.
        history_bought: Parallel to ``history_items``: whether that interaction was a purchase.
        popularity: Item popularity over the training data (the fallback ranking).
        titles: Item title by index (None when unknown).
        categories: Item category by index (None when unknown).
        metadata: Run date, input table versions, parameters; saved with the bundle.
    """

    scorer: Scorer
    user_ids: IdMap
    item_ids: IdMap
    history_indptr: np.ndarray
    history_items: np.ndarray
    history_bought: np.ndarray
    popularity: np.ndarray
    titles: list[str | None]
    categories: list[str | None]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_items = len(self.item_ids)
        if len(self.history_indptr) != len(self.user_ids) + 1:
            raise ValueError(f"history_indptr has {len(self.history_indptr)} entries, expected {len(self.user_ids) + 1}")
        if not len(self.popularity) == len(self.titles) == len(self.categories) == n_items:
            raise ValueError("popularity, titles and categories must have one entry per catalogue item")
        self._vectors: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return self.scorer.kind

    @classmethod
    def from_histories(cls, scorer: Scorer, user_ids: IdMap, item_ids: IdMap, histories: Sequence[np.ndarray],
                       bought: Sequence[np.ndarray], **kwargs: Any) -> RecommenderBundle:  # fmt: skip
        """A bundle from per-user history arrays (item indices oldest first, purchase flags)."""
        lengths = [len(h) for h in histories]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.concatenate(histories).astype(np.int64) if lengths else np.empty(0, np.int64)
        flags = np.concatenate(bought).astype(bool) if lengths else np.empty(0, bool)
        return cls(scorer=scorer, user_ids=user_ids, item_ids=item_ids, history_indptr=indptr,
                   history_items=items, history_bought=flags, **kwargs)  # fmt: skip

    # -- lookups ---------------------------------------------------------------

    def history(self, user: int) -> np.ndarray:
        """Item indices of a known user's history, oldest first (empty for ``-1``)."""
        if user < 0:
            return np.empty(0, dtype=np.int64)
        return self.history_items[self.history_indptr[user] : self.history_indptr[user + 1]]

    def user_index(self, user_ids: Sequence[str]) -> np.ndarray:
        """Index of each user id; ``-1`` for users the bundle does not know."""
        return self.user_ids.lookup(user_ids)

    def item_vectors(self) -> np.ndarray | None:
        """Unit-length item vectors of the scorer (cached), or None if it has none."""
        if self._vectors is None:
            vectors = self.scorer.item_vectors()
            if vectors is not None:
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                self._vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        return self._vectors

    # -- answers ---------------------------------------------------------------

    def recommend(self, user_ids: Sequence[str], k: int, exclude_seen: bool = True) -> list[list[Recommendation]]:
        """Top-``k`` items for each user id, best first.

        Known users are scored by the model from their history; a user the bundle
        does not know gets the most popular items (the model has nothing to go on).
        With ``exclude_seen`` the items in a user's history are never recommended.

        Args:
            user_ids: Users to recommend for.
            k: Recommendations per user, at least 1.
            exclude_seen: Leave out what the user already had.

        Returns:
            One list per user, at most ``k`` long (shorter only if the catalogue runs out).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        users = self.user_index(user_ids)
        histories = [self.history(u) for u in users]
        scores = np.asarray(self.scorer.score(users, histories), dtype=np.float64)
        # Unknown users: the model's row would be noise around its biases; popularity is honest.
        scores[users < 0] = self.popularity
        if exclude_seen:
            for row, h in enumerate(histories):
                scores[row, h] = -np.inf
        k = min(k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        out = []
        for row, u in enumerate(users):
            recs = []
            for item in top[row]:
                s = scores[row, item]
                if np.isneginf(s):
                    break
                recs.append(Recommendation(self.item_ids.ids[item], float(s), self.reason(u, int(item))))
            out.append(recs)
        return out

    def reason(self, user: int, item: int) -> str:
        """A short explanation: the history item most like ``item``, or its popularity."""
        vectors = self.item_vectors()
        cooccurrence = isinstance(self.scorer, CooccurrenceScorer)
        if user >= 0 and (vectors is not None or cooccurrence):
            lo, hi = self.history_indptr[user], self.history_indptr[user + 1]
            start = max(lo, hi - REASON_LOOKBACK)
            recent = self.history_items[start:hi]
            if len(recent):
                if cooccurrence:
                    sims = self.scorer.similarity[recent][:, [item]].toarray().ravel()
                else:
                    sims = vectors[recent] @ vectors[item]
                # The most recent of equally similar items: argmax of the reversed order.
                best = len(recent) - 1 - int(np.argmax(sims[::-1]))
                title = self.titles[recent[best]] or self.item_ids.ids[recent[best]]
                verb = "bought" if self.history_bought[start + best] else "viewed"
                return f"{verb} {title}"
        category = self.categories[item]
        return f"popular in {category}" if category else "popular"

    def similar_items(self, item_id: str, k: int) -> list[Recommendation]:
        """The ``k`` items most similar to ``item_id``.

        Uses the cosine of the scorer's item vectors (text-aware for the sequence
        model, so new items have neighbours too); a co-occurrence model uses its
        similarity matrix; a popularity model has no notion of similarity and
        answers with the most popular items of the same category.

        Raises:
            KeyError: ``item_id`` is not in the catalogue.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        item = int(self.item_ids.lookup([item_id])[0])
        if item < 0:
            raise KeyError(item_id)
        vectors = self.item_vectors()
        if vectors is not None:
            sims = vectors @ vectors[item]
            sims[item] = -np.inf
            top = np.argsort(-sims, kind="stable")[:k]
            pairs = [(int(j), float(sims[j])) for j in top]
            reason = "similar to {}"
        elif isinstance(self.scorer, CooccurrenceScorer):
            idx, vals = self.scorer.similar(item, k)
            pairs = [(int(j), float(v)) for j, v in zip(idx, vals)]
            reason = "bought together with {}"
        else:
            same = [j for j in np.argsort(-self.popularity, kind="stable") if j != item and self.categories[j] == self.categories[item]]
            pairs = [(int(j), float(self.popularity[j])) for j in same[:k]]
            reason = "popular in the category of {}"
        title = self.titles[item] or item_id
        return [Recommendation(self.item_ids.ids[j], s, reason.format(title)) for j, s in pairs]

    # -- files -----------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the bundle into ``folder`` (created if needed); returns it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.scorer.save(folder)
        np.savez(
            folder / ARRAYS_FILE,
            history_indptr=self.history_indptr,
            history_items=self.history_items,
            history_bought=self.history_bought,
            popularity=np.asarray(self.popularity, dtype=np.float64),
        )
        doc = {
            "kind": self.kind,
            "user_ids": self.user_ids.ids,
            "item_ids": self.item_ids.ids,
            "titles": self.titles,
            "categories": self.categories,
            "metadata": self.metadata,
        }
        (folder / BUNDLE_FILE).write_text(json.dumps(doc, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RecommenderBundle:
        """Read a bundle written by :meth:`save`.

        Raises:
            FileNotFoundError: ``folder`` holds no bundle.
        """
        folder = Path(folder)
        if not (folder / BUNDLE_FILE).is_file():
            raise FileNotFoundError(f"no recommender bundle in {folder} ({BUNDLE_FILE} missing)")
        doc = json.loads((folder / BUNDLE_FILE).read_text())
        scorer = scorer_class(doc["kind"]).load(folder)
        with np.load(folder / ARRAYS_FILE) as z:
            arrays = {name: z[name] for name in z.files}
        return cls(
            scorer=scorer,
            user_ids=IdMap(doc["user_ids"]),
            item_ids=IdMap(doc["item_ids"]),
            titles=doc["titles"],
            categories=doc["categories"],
            metadata=doc.get("metadata", {}),
            **arrays,
        )


def load_serving_bundle(cfg: Config, version: str | int | None = None) -> tuple[RecommenderBundle, ModelVersionInfo]:
    """Download and load the serving version of the recommender (or ``version``).

    Args:
        cfg: Configuration.
        version: A version number; None: the one the serving alias names.

    Returns:
        The loaded bundle and the version it came from.

    Raises:
        NoServingModel: Nothing is registered, the alias is unset or ``version`` is unknown.
    """
    bundle, info = load_bundle(cfg, RecommenderBundle.load, version)
    if info.kind is None:
        info.kind = bundle.kind
    return bundle, info
