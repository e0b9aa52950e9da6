"""The serving recommender of one replica: what ``GET /recommend`` and ``GET /similar-items`` answer from.

:class:`RecommenderModel` serves the registered version the serving alias names and
follows the alias when it moves; without a registered model
its endpoints answer 503 and ``/health`` says why. A user the model does not know gets
the most popular items, marked ``"fallback": "popular"``.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from shoplake.serve.holder import RegisteredModel

#: Most recommendations one request may ask for.
MAX_K = 100


class RecommenderModel(RegisteredModel):
    """The serving recommender bundle of one replica, answering response bodies.

    Loads the version the serving alias names when the replica starts and follows the
    alias (:class:`~shoplake.serve.holder.RegisteredModel`): a newly registered
    recommender is served without a restart. Without a registered model every answer
    is a 503 that gives the reason.

    Args:
        cfg: Configuration (registry, ``recommender.registered_model``, ``k`` and ``exclude_seen``).
        check_every_s: Seconds between checks of the serving alias (0: every call).
    """

    def __init__(self, cfg, check_every_s: float = 30.0):
        from shoplake.recommend.bundle import RecommenderBundle

        self.default_k = min(cfg.recommender.k, MAX_K)
        self.exclude_seen = cfg.recommender.exclude_seen
        super().__init__(cfg, cfg.recommender.registered_model, RecommenderBundle.load, "recommender", check_every_s)

    def _require(self):
        try:
            return self.current()
        except RuntimeError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None

    @staticmethod
    def _items(recs) -> list[dict[str, Any]]:
        return [{**r.as_dict(), "rank": rank} for rank, r in enumerate(recs, start=1)]

    def recommend(self, user_id: str, k: int | None = None) -> dict[str, Any]:
        """Top-k items of one user (popular items, marked as the fallback, for a user the model does not know)."""
        bundle, info = self._require()
        k = k or self.default_k
        known = bundle.user_index([user_id])[0] >= 0
        recs = bundle.recommend([user_id], k, exclude_seen=self.exclude_seen)[0]
        return {
            "user_id": user_id, "k": k, "model_name": bundle.kind, "model_version": info.version,
            "fallback": None if known else "popular", "items": self._items(recs),
        }  # fmt: skip

    def similar_items(self, item_id: str, k: int | None = None) -> dict[str, Any]:
        """The k items most like ``item_id`` (404 for an item not in the catalogue)."""
        bundle, info = self._require()
        k = k or self.default_k
        try:
            recs = bundle.similar_items(item_id, k)
        except KeyError:
            raise HTTPException(
                status_code=404, detail=f"unknown item_id {item_id!r}: not in the catalogue of model version {info.version}"
            ) from None
        return {"item_id": item_id, "k": k, "model_name": bundle.kind, "model_version": info.version, "items": self._items(recs)}
