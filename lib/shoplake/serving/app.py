"""The HTTP ingress of shoplake on Ray Serve.

Build the application with :func:`build_app`, from a config file
(``import_path: shoplake.serving.app:build_app`` with ``args``) or in Python::

    serve deploy ray_apps/serve_config.yaml
    serve run shoplake.serving.app:build_app env=local

Endpoints:

* ``GET /health``: liveness with the lake and environment it serves, and which
  recommender version is loaded (or why none is);
* ``GET /lake/tables``: every table with its Delta version and rows;
* ``GET /recommend?user_id=U&k=N``: the top ``N`` items for a user (default
  ``recommender.k``, at most 100); a user the model does not know gets the most
  popular items, marked ``"fallback": "popular"``;
* ``GET /similar-items?item_id=I&k=N``: the ``N`` items most like an item (404 for
  an item not in the catalogue).

Each replica loads the registered serving version of the recommender
(:func:`shoplake.registry.load_serving_bundle`) once, at start
(:class:`RecommenderModel`). Without a registered model the model endpoints answer
503 and ``/health`` says why. Unknown query parameters are refused with 400; a missing or invalid
parameter gets 422 with a message naming it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

log = logging.getLogger(__name__)

#: Most recommendations one request may ask for.
MAX_K = 100

api = FastAPI(title="shoplake", description="Recommendations, forecasts, fraud scores and more, over the shop's Delta lake.")


class AppArgs(BaseModel):
    """Arguments of the application (the ``args`` of a Serve config file)."""

    model_config = ConfigDict(extra="forbid")
    env: str = Field("local", description="conf/<env>.yaml overlay")
    overrides: list[str] = Field(default_factory=list, description="dotted.key=value config overrides")


def _load_cfg(args: AppArgs):
    from shoplake.config import load_config

    return load_config(args.env, args.overrides)


class RecommenderModel:
    """The serving recommender bundle of one replica, answering response bodies.

    Loaded once, when the replica starts. Without a registered model it keeps the
    reason, and every answer is a 503 that gives it.

    Args:
        cfg: Configuration (registry, ``recommender.k`` and ``exclude_seen``).
    """

    def __init__(self, cfg):
        from shoplake.registry import NoServingModel, load_serving_bundle

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


class OnlyParams:
    """A dependency refusing query parameters other than ``names`` (400, naming them).

    A module-level class rather than a closure: Serve ships the FastAPI app to its
    replicas with cloudpickle, and a closure would lose the ``Request`` annotation.
    """

    def __init__(self, *names: str):
        self.allowed = frozenset(names)

    def __call__(self, request: Request) -> None:
        unknown = sorted(set(request.query_params) - self.allowed)
        if unknown:
            raise HTTPException(
                status_code=400, detail=f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(self.allowed))}"
            )


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One readable line for FastAPI's validation errors, naming each parameter."""
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0])
        if e["type"] == "missing":
            parts.append(f"query parameter {where} is required")
        else:
            parts.append(f"query parameter {where}: {e['msg']} (got {e.get('input')!r})")
    return "; ".join(parts)


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": validation_message(exc.errors())})


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
@serve.ingress(api)
class ShopAPI:
    """The ingress deployment; reads the lake through delta-rs, no Spark.

    Each replica holds the serving recommender itself: on a small node a separate
    model deployment's extra hop doubled the latency of ``/recommend`` (measured
    with ``bench/recommend_latency.py``) for no gain at this model size.
    """

    def __init__(self, args: AppArgs):
        from shoplake.lake import Lake

        self.cfg = _load_cfg(args)
        self.lake = Lake(self.cfg)
        self.recommender = RecommenderModel(self.cfg)
        log.info("serving env %s over lake %s", self.cfg.env, self.cfg.lake.root)

    @api.get("/health")
    def health(self) -> dict:
        return {"status": "ok", "env": self.cfg.env, "lake": self.cfg.lake.root, "model": self.recommender.status()}

    @api.get("/lake/tables")
    def tables(self) -> list[dict]:
        return [
            {"table": spec.full_name, "version": self.lake.version(spec), "rows": self.lake.row_count(spec)}
            for spec in self.lake.tables()
        ]

    @api.get("/recommend", dependencies=[Depends(OnlyParams("user_id", "k"))])
    def recommend(
        self,
        user_id: str = Query(..., min_length=1, description="Customer id."),
        k: int | None = Query(None, ge=1, le=MAX_K, description="Items to return (default: recommender.k)."),
    ) -> dict:
        return self.recommender.recommend(user_id, k)

    @api.get("/similar-items", dependencies=[Depends(OnlyParams("item_id", "k"))])
    def similar_items(
        self,
        item_id: str = Query(..., min_length=1, description="Product id."),
        k: int | None = Query(None, ge=1, le=MAX_K, description="Items to return (default: recommender.k)."),
    ) -> dict:
        return self.recommender.similar_items(item_id, k)


def build_app(args: dict) -> Application:
    """Application builder for ``serve run`` / ``serve deploy``.

    Args:
        args: ``env`` and ``overrides`` (see :class:`AppArgs`); unknown keys are an error.
    """
    return ShopAPI.bind(AppArgs.model_validate(args or {}))
