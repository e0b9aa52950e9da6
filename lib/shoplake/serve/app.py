"""The HTTP ingress of shoplake on Ray Serve: every use case's routes behind one application.

Build the application with :func:`build_app`, from a config file
(``import_path: shoplake.serve.app:build_app`` with ``args``) or in Python::

    serve deploy ray_apps/serve_config.yaml
    serve run shoplake.serve.app:build_app env=local

or run it on this machine with :func:`serve_forever` (``shoplake serve``), which starts
Ray the way every shoplake command does, with the configured ingress (``serve.ingress``).

The ingress serves ``GET /health`` (liveness, the lake and environment, and each use
case's model or table status under its key) and ``GET /lake/tables`` (every table with
its Delta version and rows). Every other route comes from a use case's declaration
(:attr:`shoplake.usecases.UseCase.routes`): ``/recommend`` and ``/similar-items``,
``/forecast`` and ``/replenishment``, ``POST /fraud/score``, ``POST /support/reply``,
``POST /categorize`` and ``POST /ads/rank``. Each replica builds every use case's holder once at start
(:attr:`shoplake.usecases.UseCase.holder`), which the routes answer from; a use case
without what it needs (a registered model, its tables) answers 503 and ``/health`` says
why. Unknown query parameters are refused with 400; a missing or invalid parameter or
body field gets 422 with a message naming it.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

from shoplake.config import Config
from shoplake.serve.http import install_holders, validation_message
from shoplake.usecases import use_cases

log = logging.getLogger(__name__)

api = FastAPI(title="shoplake", description="Recommendations, forecasts, fraud scores and more, over the shop's Delta lake.")


def _include_routes(app: FastAPI) -> None:
    for uc in use_cases():
        if uc.routes:
            module, _, name = uc.routes.partition(":")
            app.include_router(getattr(importlib.import_module(module), name))


_include_routes(api)


class AppArgs(BaseModel):
    """Arguments of the application (the ``args`` of a Serve config file)."""

    model_config = ConfigDict(extra="forbid")
    env: str = Field("local", description="<env>.yaml overlay of the configuration")
    overrides: list[str] = Field(default_factory=list, description="dotted.key=value config overrides")
    table_check_s: float = Field(
        30.0,
        ge=0,
        description=(
            "Seconds between checks of the tables a replica holds (their Delta versions) and of every registered "
            "model's serving alias (0: every request)"
        ),
    )


def _load_cfg(args: AppArgs):
    from shoplake.config import load_config

    return load_config(args.env, args.overrides)


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": validation_message(exc.errors())})


@serve.deployment
@serve.ingress(api)
class ShopAPI:
    """The ingress deployment; reads the lake through delta-rs, no Spark.

    Each replica builds every use case's holder (:attr:`~shoplake.usecases.UseCase.holder`)
    and serves the routes the use cases declare: on a small node a separate model
    deployment's extra hop doubled the latency of ``/recommend`` (measured with
    ``bench/recommend_latency.py``) for no gain at these model sizes.
    """

    def __init__(self, args: AppArgs):
        from shoplake.lake import Lake

        self.cfg = _load_cfg(args)
        self.lake = Lake(self.cfg)
        self.served = [uc for uc in use_cases() if uc.holder is not None]
        self.holders = {uc.name: uc.holder(self.cfg, self.lake, args.table_check_s) for uc in self.served}
        install_holders(self.holders)
        log.info("serving env %s over lake %s: %s", self.cfg.env, self.cfg.lake.root, ", ".join(self.holders))

    @api.get("/health")
    def health(self) -> dict:
        out = {"status": "ok", "env": self.cfg.env, "lake": self.cfg.lake.root}
        for uc in self.served:
            status = self.holders[uc.name].status()
            out.update(status) if uc.health_key is None else out.__setitem__(uc.health_key, status)
        return out

    @api.get("/lake/tables")
    def tables(self) -> list[dict]:
        return [
            {"table": spec.full_name, "version": self.lake.version(spec), "rows": self.lake.row_count(spec)} for spec in self.lake.tables()
        ]


def build_app(args: dict) -> Application:
    """Application builder for ``serve run`` / ``serve deploy``.

    Args:
        args: ``env`` and ``overrides`` (see :class:`AppArgs`); unknown keys are an error.
            The replicas and their CPUs come from the configuration (``serve.*``).
    """
    app_args = AppArgs.model_validate(args or {})
    sc = _load_cfg(app_args).serve
    return ShopAPI.options(num_replicas=sc.replicas, ray_actor_options={"num_cpus": sc.num_cpus}).bind(app_args)


def serve_forever(cfg: Config, overrides: list[str]) -> None:
    """Serve the application on ``serve.host:serve.port`` until interrupted (Ctrl-C or SIGTERM), then stop Serve.

    Ray starts through :func:`shoplake.ray_runtime.init_ray`, so a local instance gets
    the configured ingress (``serve.ingress``); the replicas load ``cfg.env`` with ``overrides``.
    """
    from shoplake.ray_runtime import init_ray

    ray = init_ray(cfg)
    sc = cfg.serve
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    serve.start(http_options={"host": sc.host, "port": sc.port})
    try:
        serve.run(build_app({"env": cfg.env, "overrides": list(overrides)}), name="shoplake", route_prefix="/")
        log.info("serving http://%s:%d/ (ingress: %s); Ctrl-C stops", sc.host, sc.port, sc.ingress)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
