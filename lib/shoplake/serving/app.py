"""The HTTP ingress of shoplake on Ray Serve.

Build the application with :func:`build_app`, from a config file
(``import_path: shoplake.serving.app:build_app`` with ``args``) or in Python::

    serve deploy ray_apps/serve_config.yaml
    serve run shoplake.serving.app:build_app env=local

Endpoints:

* ``GET /health``: liveness with the lake and environment it serves, which
  recommender version is loaded (or why none is), and which version and run date of
  the forecasts and the replenishment plan;
* ``GET /lake/tables``: every table with its Delta version and rows;
* ``GET /recommend?user_id=U&k=N``: the top ``N`` items for a user (default
  ``recommender.k``, at most 100); a user the model does not know gets the most
  popular items, marked ``"fallback": "popular"``;
* ``GET /similar-items?item_id=I&k=N``: the ``N`` items most like an item (404 for
  an item not in the catalogue);
* ``GET /forecast?item_id=I&horizon=H``: the item's daily demand forecast (mean,
  P10, P50, P90) for the first ``H`` days of the latest run date (default: every day
  stored), from ``serving.forecasts``;
* ``GET /replenishment?item_id=I``: the item's row of the latest replenishment plan
  (``serving.replenishment_plan``);
* ``POST /fraud/score`` with one payment as a JSON object (:class:`~shoplake.serving.fraud.PaymentIn`):
  its fraud score, decision (approve, review, decline) and top 3 reasons, from the
  registered fraud model over features of the payments before it
  (:class:`~shoplake.serving.fraud.FraudScorer`); a bad or unknown field gets 422
  naming it;
* ``POST /support/reply`` with a customer's message (:class:`~shoplake.serving.support.MessageIn`):
  its intent, the answer on record for it with the message's order number and other
  entities filled in, or a hand-off to a person with the reason (``low_confidence``,
  ``no_answer``), from the registered support model
  (:class:`~shoplake.serving.support.SupportReplier`);
* ``POST /categorize`` with a product's title and description
  (:class:`~shoplake.serving.support.TitleIn`): its most probable category and the
  top alternatives, from the registered categorizer
  (:class:`~shoplake.serving.support.Categorizer`).

Each replica loads the registered serving version of the recommender
(:func:`shoplake.registry.load_serving_bundle`) once, at start
(:class:`RecommenderModel`). Without a registered model the model endpoints answer
503 and ``/health`` says why. The latest run date of the forecast tables is held in
memory, indexed by item (:class:`ForecastStore`), and reloaded when a table's Delta
version changes (checked at most every ``table_check_s`` seconds); without the tables
``/forecast`` and ``/replenishment`` answer 503. Unknown query parameters are refused
with 400; a missing or invalid parameter gets 422 with a message naming it.
Without a fraud model or ``silver.transactions``, ``/fraud/score`` answers 503.
The support and categorization models are reloaded when their serving alias moves
(checked at most every ``table_check_s`` seconds); without one, its endpoint answers
503 and ``/health`` says why (keys ``support`` and ``categorization``). A blank,
non-string or too long text (``support.max_message_chars``,
``categorization.max_text_chars``) gets 422 naming the field.
"""

import datetime as dt
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

from shoplake.serving.fraud import FraudScorer, PaymentIn
from shoplake.serving.support import Categorizer, MessageIn, SupportReplier, TextTooLong, TitleIn

log = logging.getLogger(__name__)

#: Most recommendations one request may ask for.
MAX_K = 100

api = FastAPI(title="shoplake", description="Recommendations, forecasts, fraud scores and more, over the shop's Delta lake.")


class AppArgs(BaseModel):
    """Arguments of the application (the ``args`` of a Serve config file)."""

    model_config = ConfigDict(extra="forbid")
    env: str = Field("local", description="conf/<env>.yaml overlay")
    overrides: list[str] = Field(default_factory=list, description="dotted.key=value config overrides")
    table_check_s: float = Field(
        30.0,
        ge=0,
        description=(
            "Seconds between checks of the forecast and transaction tables' Delta versions and of the fraud, support "
            "and categorization models' versions (0: every request)"
        ),
    )


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


def _jsonable(value: Any) -> Any:
    """Dates as ISO strings, NaN and infinities as null: what JSON can carry."""
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class _Partition:
    """One loaded run date of a table: its rows sorted by item, and where each item's rows are."""

    version: int
    run_date: dt.date
    rows: Any  # pyarrow.Table
    index: dict[str, tuple[int, int]]  # item -> (first row, row count)

    def item_rows(self, item_id: str, limit: int | None = None) -> list[dict[str, Any]] | None:
        where = self.index.get(item_id)
        if where is None:
            return None
        start, count = where
        return self.rows.slice(start, count if limit is None else min(limit, count)).to_pylist()

    def days(self, item_id: str) -> int:
        return self.index[item_id][1]


class LatestPartition:
    """The latest ``run_date`` partition of a serving table, in memory and indexed by item.

    Loaded when created; afterwards a call to :meth:`current` checks the table's Delta
    version at most every ``check_every_s`` seconds and loads the new version when it
    changed (a new run date, or a re-run of one). A check is skipped, not waited for,
    while another thread is reloading: requests keep being answered from the partition
    in memory. When a reload fails the previous partition stays, and ``problem`` says
    what went wrong.

    Args:
        lake: The lake to read.
        table: A table partitioned by ``run_date`` with an ``item_id`` column.
        order_by: Columns ordering an item's rows (after ``item_id``).
        check_every_s: Seconds between version checks (0: every call).
    """

    def __init__(self, lake, table, order_by: tuple[str, ...] = (), check_every_s: float = 30.0):
        from shoplake.lake.catalog import get_spec

        self.lake = lake
        self.spec = get_spec(table)
        self.order_by = order_by
        self.check_every_s = check_every_s
        self.partition: _Partition | None = None
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._checked = -math.inf
        self.refresh()

    def current(self) -> _Partition | None:
        """The partition in memory, after a version check when one is due."""
        if time.monotonic() - self._checked >= self.check_every_s:
            self.refresh()
        return self.partition

    def refresh(self) -> None:
        """Check the table's version now, and load it when it changed."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            name = self.spec.full_name
            try:
                version = self.lake.version(self.spec)
                if version is None:
                    self.partition, self.problem = None, f"table {name} does not exist in lake {self.lake.root}"
                elif self.partition is None or self.partition.version != version:
                    self.partition = self._load(version)
                    self.problem = None if self.partition else f"table {name} (version {version}) has no rows"
            except Exception as exc:  # a broken read must not take the endpoint down; keep what was loaded
                log.exception("could not load %s", name)
                self.problem = f"could not read table {name}: {exc}"
        finally:
            self._lock.release()

    def _load(self, version: int) -> _Partition | None:
        import numpy as np

        from shoplake.schemas import columns as C

        run_dates = self.lake.run_dates(self.spec, version=version)
        if not run_dates:
            return None
        rows = self.lake.to_arrow(self.spec, version=version, run_date=run_dates[-1])
        rows = rows.sort_by([(C.ITEM_ID, "ascending"), *((c, "ascending") for c in self.order_by)]).combine_chunks()
        items, starts, counts = np.unique(rows[C.ITEM_ID].to_numpy(zero_copy_only=False), return_index=True, return_counts=True)
        index = {item: (int(start), int(count)) for item, start, count in zip(items.tolist(), starts, counts)}
        log.info("loaded %s version %d, run date %s: %d rows of %d items", self.spec.full_name, version, run_dates[-1], rows.num_rows, len(index))
        return _Partition(version, run_dates[-1], rows, index)

    def status(self) -> dict[str, Any]:
        """Whether a partition is loaded, which (or why none is)."""
        part = self.current()
        if part is None:
            return {"loaded": False, "table": self.spec.full_name, "detail": self.problem}
        out = {"loaded": True, "table": self.spec.full_name, "version": part.version, "run_date": part.run_date.isoformat(), "items": len(part.index)}
        if self.problem:
            out["detail"] = self.problem
        return out

    def require(self, what: str) -> _Partition:
        """The partition in memory, or a 503 saying why there is none."""
        part = self.current()
        if part is None:
            raise HTTPException(status_code=503, detail=f"no {what} are loaded: {self.problem}")
        return part


class ForecastStore:
    """The latest forecasts and replenishment plan, answering response bodies.

    Args:
        lake: The lake holding ``serving.forecasts`` and ``serving.replenishment_plan``.
        check_every_s: Seconds between checks of the tables' Delta versions.
    """

    def __init__(self, lake, check_every_s: float = 30.0):
        from shoplake.schemas import columns as C
        from shoplake.schemas.forecast import FORECASTS, REPLENISHMENT_PLAN

        self.forecasts = LatestPartition(lake, FORECASTS, order_by=(C.HORIZON_DAY,), check_every_s=check_every_s)
        self.plan = LatestPartition(lake, REPLENISHMENT_PLAN, check_every_s=check_every_s)

    def forecast(self, item_id: str, horizon: int | None = None) -> dict[str, Any]:
        """The item's forecast for its first ``horizon`` days (all stored days by default).

        Raises:
            HTTPException: 503 without forecasts, 404 for an item without one, 422 for a
                horizon beyond the days stored.
        """
        from shoplake.schemas import columns as C

        part = self.forecasts.require("forecasts")
        if item_id not in part.index:
            raise HTTPException(
                status_code=404, detail=f"unknown item_id {item_id!r}: no forecast for it on run date {part.run_date.isoformat()}"
            )
        days = part.days(item_id)
        if horizon is not None and horizon > days:
            raise HTTPException(
                status_code=422,
                detail=f"query parameter horizon: must be at most {days}, the days forecast for item {item_id!r} (got {horizon})",
            )
        rows = part.item_rows(item_id, horizon)
        return {
            "item_id": item_id, "run_date": part.run_date.isoformat(),
            "model_name": rows[0][C.MODEL_NAME], "model_version": rows[0][C.MODEL_VERSION], "horizon": len(rows),
            "forecasts": [
                {"date": _jsonable(r[C.FORECAST_DATE]), **{c: _jsonable(r[c]) for c in (C.MEAN, C.P10, C.P50, C.P90)}} for r in rows
            ],
        }  # fmt: skip

    def replenishment(self, item_id: str) -> dict[str, Any]:
        """The item's row of the latest replenishment plan (503 without a plan, 404 for an item not in it)."""
        part = self.plan.require("replenishment plans")
        rows = part.item_rows(item_id)
        if rows is None:
            raise HTTPException(
                status_code=404, detail=f"unknown item_id {item_id!r}: not in the replenishment plan of run date {part.run_date.isoformat()}"
            )
        return {name: _jsonable(value) for name, value in rows[0].items()}

    def status(self) -> dict[str, Any]:
        """What is loaded of each table (or why nothing is), under ``forecasts`` and ``replenishment``."""
        return {"forecasts": self.forecasts.status(), "replenishment": self.plan.status()}


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
    """One readable line for FastAPI's validation errors, naming each query parameter or body field."""
    parts = []
    for e in errors:
        in_body = e["loc"][0] == "body"
        where = ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0])
        if in_body and e["type"] == "json_invalid":
            parts.append(f"the body is not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}")
        elif in_body and len(e["loc"]) == 1:
            parts.append("a JSON object body is required" if e["type"] == "missing" else f"body: {e['msg']}")
        else:
            what = f"field {where}" if in_body else f"query parameter {where}"
            if e["type"] == "missing":
                parts.append(f"{what} is required")
            elif e["type"] == "extra_forbidden":
                parts.append(f"{what} is not a known field")
            else:
                parts.append(f"{what}: {e['msg']} (got {e.get('input')!r})")
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
        self.forecasts = ForecastStore(self.lake, args.table_check_s)
        self.fraud = FraudScorer(self.cfg, self.lake, args.table_check_s)
        self.support = SupportReplier(self.cfg, args.table_check_s)
        self.categorizer = Categorizer(self.cfg, args.table_check_s)
        log.info("serving env %s over lake %s", self.cfg.env, self.cfg.lake.root)

    @api.get("/health")
    def health(self) -> dict:
        return {
            "status": "ok", "env": self.cfg.env, "lake": self.cfg.lake.root,
            "model": self.recommender.status(), **self.forecasts.status(), "fraud": self.fraud.status(),
            "support": self.support.status(), "categorization": self.categorizer.status(),
        }  # fmt: skip

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

    @api.get("/forecast", dependencies=[Depends(OnlyParams("item_id", "horizon"))])
    def forecast(
        self,
        item_id: str = Query(..., min_length=1, description="Product id."),
        horizon: int | None = Query(None, ge=1, description="Days to return from the run date on (default: every day stored)."),
    ) -> dict:
        return self.forecasts.forecast(item_id, horizon)

    @api.get("/replenishment", dependencies=[Depends(OnlyParams("item_id"))])
    def replenishment(self, item_id: str = Query(..., min_length=1, description="Product id.")) -> dict:
        return self.forecasts.replenishment(item_id)

    @api.post("/fraud/score", dependencies=[Depends(OnlyParams())])
    async def fraud_score(self, payment: PaymentIn = Body(..., description="One payment.")) -> dict:
        # On the replica's event loop rather than a worker thread: scoring takes about a millisecond,
        # less than the hand-over to a thread and back.
        try:
            return self.fraud.score(payment)
        except RuntimeError as exc:
            raise HTTPException(status_code=503, detail=f"fraud scoring is not available: {exc}") from None

    # Plain functions: FastAPI runs them on its thread pool, so a transformer's inference does not hold the event loop.
    @api.post("/support/reply", dependencies=[Depends(OnlyParams())])
    def support_reply(self, message: MessageIn = Body(..., description="A customer's message.")) -> dict:
        try:
            return self.support.reply(message)
        except TextTooLong as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        except RuntimeError as exc:
            raise HTTPException(status_code=503, detail=f"support replies are not available: {exc}") from None

    @api.post("/categorize", dependencies=[Depends(OnlyParams())])
    def categorize(self, item: TitleIn = Body(..., description="A product's title and description.")) -> dict:
        try:
            return self.categorizer.categorize(item)
        except TextTooLong as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        except RuntimeError as exc:
            raise HTTPException(status_code=503, detail=f"categorization is not available: {exc}") from None


def build_app(args: dict) -> Application:
    """Application builder for ``serve run`` / ``serve deploy``.

    Args:
        args: ``env`` and ``overrides`` (see :class:`AppArgs`); unknown keys are an error.
    """
    return ShopAPI.bind(AppArgs.model_validate(args or {}))
