"""The HTTP ingress of shoplake on Ray Serve.

Build the application with :func:`build_app`, from a config file
(``import_path: shoplake.serving.app:build_app`` with ``args``) or in Python::

    serve deploy ray_apps/serve_config.yaml
    serve run shoplake.serving.app:build_app env=local

Endpoints: ``GET /health`` (liveness with the lake and environment it serves) and
``GET /lake/tables`` (every table with its Delta version and rows). Model endpoints
add their deployments to the same application.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

log = logging.getLogger(__name__)

api = FastAPI(title="shoplake", description="Recommendations, forecasts, fraud scores and more, over the shop's Delta lake.")


class AppArgs(BaseModel):
    """Arguments of the application (the ``args`` of a Serve config file)."""

    model_config = ConfigDict(extra="forbid")
    env: str = Field("local", description="conf/<env>.yaml overlay")
    overrides: list[str] = Field(default_factory=list, description="dotted.key=value config overrides")


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
@serve.ingress(api)
class ShopAPI:
    """The ingress deployment; reads the lake through delta-rs, no Spark."""

    def __init__(self, args: AppArgs):
        from shoplake.config import load_config
        from shoplake.lake import Lake

        self.cfg = load_config(args.env, args.overrides)
        self.lake = Lake(self.cfg)
        log.info("serving env %s over lake %s", self.cfg.env, self.cfg.lake.root)

    @api.get("/health")
    def health(self) -> dict:
        return {"status": "ok", "env": self.cfg.env, "lake": self.cfg.lake.root}

    @api.get("/lake/tables")
    def tables(self) -> list[dict]:
        return [
            {"table": spec.full_name, "version": self.lake.version(spec), "rows": self.lake.row_count(spec)}
            for spec in self.lake.tables()
        ]


def build_app(args: dict) -> Application:
    """Application builder for ``serve run`` / ``serve deploy``.

    Args:
        args: ``env`` and ``overrides`` (see :class:`AppArgs`); unknown keys are an error.
    """
    return ShopAPI.bind(AppArgs.model_validate(args or {}))
