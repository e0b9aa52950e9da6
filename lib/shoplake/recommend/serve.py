"""The serving recommender of one replica: what ``GET /recommend`` and ``GET /similar-items`` answer from.

:class:`RecommenderModel` loads the registered serving version of the recommender
(:func:`shoplake.recommend.bundle.load_serving_bundle`); without a registered model
its endpoints answer 503 and ``/health`` says why. A user the model does not know gets
the most popular items, marked ``"fallback": "popular"``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import HTTPException

#: Most recommendations one request may ask for.
MAX_K = 100

log = logging.getLogger(__name__)


class RecommenderModel:
    """The serving recommender bundle of one replica, answering response bodies.

    Loaded once, when the replica starts. Without a registered model it keeps the
    reason, and every answer is a 503 that gives it.

    Args:
        cfg: Configuration (registry, ``recommender.k`` and ``exclude_seen``).
    """

    def __init__(self, cfg):
        from shoplake.recommend.bundle import load_serving_bundle
        from shoplake.registry import NoServingModel

        self.default_k = min(cfg.recommender.k, MAX_K)
        self.exclude_seen = cfg.recommender.exclude_seen
        self.bundle = None
        self.info = None
        self.problem: str | None = None
        try:
            self.bundle, self.info = load_serving_bundle(cfg)
        except (NoServingModel, ValueError) as exc:
            self.problem = str(exc)
            log.warning("no recommender to serve: %s", exc)
        else:
            log.info("serving %s version %s (%s)", self.info.name, self.info.version, self.bundle.kind)

    def status(self) -> dict[str, Any]:
        """Whether a model is loaded, and which (or why not)."""
        if self.bundle is None:
            return {"loaded": False, "detail": self.problem}
        i = self.info
        return {"loaded": True, "name": i.name, "version": i.version, "kind": self.bundle.kind, "run_date": i.run_date}

    def _require(self):
        if self.bundle is None:
            raise HTTPException(status_code=503, detail=f"no recommender model is loaded: {self.problem}")
        return self.bundle

    @staticmethod
    def _items(recs) -> list[dict[str, Any]]:
        return [{**r.as_dict(), "rank": rank} for rank, r in enumerate(recs, start=1)]

    def recommend(self, user_id: str, k: int | None = None) -> dict[str, Any]:
        """Top-k items of one user (popular items, marked as the fallback, for a user the model does not know)."""
        bundle = self._require()
        k = k or self.default_k
        known = bundle.user_index([user_id])[0] >= 0
        recs = bundle.recommend([user_id], k, exclude_seen=self.exclude_seen)[0]
        return {
            "user_id": user_id, "k": k, "model_name": bundle.kind, "model_version": self.info.version,
            "fallback": None if known else "popular", "items": self._items(recs),
        }  # fmt: skip

    def similar_items(self, item_id: str, k: int | None = None) -> dict[str, Any]:
        """The k items most like ``item_id`` (404 for an item not in the catalogue)."""
        bundle = self._require()
        k = k or self.default_k
        try:
            recs = bundle.similar_items(item_id, k)
        except KeyError:
            raise HTTPException(
                status_code=404, detail=f"unknown item_id {item_id!r}: not in the catalogue of model version {self.info.version}"
            ) from None
        return {"item_id": item_id, "k": k, "model_name": bundle.kind, "model_version": self.info.version, "items": self._items(recs)}
