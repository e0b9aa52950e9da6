"""Use cases as the platform sees them: what each declares, and how the platform finds them.

The platform never imports a use case by name. Each use-case package declares one
:class:`UseCase` (its tables, and in time its feature nodes, pipeline steps, serving
routes and report) and names it under the ``shoplake.use_cases`` entry-point group of
its distribution, the way plugins are found in Python packaging. An installed wheel
finds the use cases it ships; another distribution can add one without editing the
platform.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoplake.lake.spec import TableSpec

#: The entry-point group where use cases are declared.
ENTRY_POINT_GROUP = "shoplake.use_cases"


@dataclass(frozen=True)
class UseCase:
    """What one use case brings to the platform.

    Attributes:
        name: Short name (``fraud``); also the ``--no-<name>`` flag of the nightly run.
        order: Position in the nightly run (lower first).
        tables: Every table spec the use case owns.
        feature_nodes: Its :class:`~shoplake.features.run.FeatureNode` declarations.
        steps: Its :class:`~shoplake.pipeline.Step` declarations, in run order.
        routes: ``module:name`` of its FastAPI ``APIRouter``, included in the Serve ingress.
        holder: ``holder(cfg, lake, check_every_s)`` builds what its routes answer from,
            once per replica; the routes get it through :class:`shoplake.serve.http.Holder`.
        health_key: The key of the holder's ``status()`` in ``GET /health`` (``None``:
            its keys go to the top level).
        metrics_task: The ``task`` of its rows in ``ops.model_metrics``, if any.
        metrics_table: Renders its ``ops.model_metrics`` rows of one run date as a
            rich table, given the rows and the configuration.
        config_section: Its section of the configuration (``fraud``), which names its
            registered model (``registered_model``), if it registers one.
        extra: Further declarations, by name.
    """

    name: str
    order: int
    tables: tuple[TableSpec, ...] = ()
    feature_nodes: tuple[Any, ...] = ()
    steps: tuple[Any, ...] = ()
    routes: str | None = None
    holder: Callable[[Any, Any, float], Any] | None = None
    health_key: str | None = None
    metrics_task: str | None = None
    metrics_table: Callable[[list[dict], Any], Any] | None = None
    config_section: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def registered_model(self, cfg) -> str | None:
        """The name its models are registered under in ``cfg`` (None: it registers none)."""
        return getattr(cfg, self.config_section).registered_model if self.config_section else None


class UseCaseError(RuntimeError):
    """An entry point of the ``shoplake.use_cases`` group does not give a :class:`UseCase`."""


@functools.cache
def use_cases() -> tuple[UseCase, ...]:
    """Every declared use case, in nightly order.

    Raises:
        UseCaseError: An entry point does not load to a :class:`UseCase`, or two share a name.
    """
    found: dict[str, UseCase] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        uc = ep.load()
        if not isinstance(uc, UseCase):
            raise UseCaseError(f"entry point {ep.name} = {ep.value} gives {type(uc).__name__}, not a UseCase")
        if uc.name in found:
            raise UseCaseError(f"two use cases are named {uc.name!r}")
        found[uc.name] = uc
    return tuple(sorted(found.values(), key=lambda uc: (uc.order, uc.name)))


def get_use_case(name: str) -> UseCase:
    """The declared use case named ``name``.

    Raises:
        KeyError: No use case of that name is declared.
    """
    for uc in use_cases():
        if uc.name == name:
            return uc
    raise KeyError(f"no use case {name!r}; declared: {', '.join(uc.name for uc in use_cases()) or 'none'}")
