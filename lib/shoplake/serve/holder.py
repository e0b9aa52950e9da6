"""The one serving holder: a registered model of one replica, reloaded when its serving alias moves.

Every use case serves its registered champion through a :class:`RegisteredModel`:
the replica loads the version the alias (``registry.serving_alias``) names at start,
and checks the alias again at most every ``check_every_s`` seconds on use. When the
alias has moved, the new version is downloaded and loaded beside the old one and
then swapped in, so requests never see a half-loaded model and a newly registered
model is served without a restart. A failed reload keeps what was loaded and says
why in :meth:`RegisteredModel.status`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RegisteredModel:
    """The serving version of one registered model, for one replica.

    Args:
        cfg: Configuration (registry and serving alias).
        registered_model: The registered model's name.
        load: Loads a downloaded bundle folder; may raise ``ValueError`` or
            ``FileNotFoundError`` for a folder that is not such a bundle.
        what: What the model is, for messages (``recommender``, ``fraud``).
        check_every_s: Seconds between checks of the alias (0: on every use).
        describe: The bundle's fields for :meth:`status` (default: its ``kind``).
    """

    def __init__(
        self,
        cfg,
        registered_model: str,
        load: Callable[[Path], Any],
        what: str,
        check_every_s: float = 30.0,
        describe: Callable[[Any], dict[str, Any]] | None = None,
    ):
        self.cfg, self.registered_model, self.what, self.check_every_s = cfg, registered_model, what, check_every_s
        self._load = load
        self._describe = describe or (lambda bundle: {"kind": bundle.kind})
        self.bundle = self.info = None
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._checked = -math.inf
        self.refresh()

    def refresh(self) -> None:
        """Load the version the serving alias names when it is not the one loaded (skipped while another thread loads)."""
        from shoplake.registry import NoServingModel, load_bundle, resolve_version

        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            info = resolve_version(self.cfg, None, self.registered_model)
            if self.info is None or info.version != self.info.version:
                bundle, info = load_bundle(self.cfg, self._load, info.version, self.registered_model)
                self.bundle, self.info = bundle, info
                log.info("serving %s: %s version %s", self.what, info.name, info.version)
            self.problem = None
        except NoServingModel as exc:
            self.problem = f"no {self.what} model is loaded: {exc}"
            if self.bundle is None:
                log.warning("%s", self.problem)
        except Exception as exc:  # noqa: BLE001 - a broken reload must not take the endpoint down; keep what was loaded
            log.exception("could not load the %s model", self.what)
            self.problem = f"could not load the {self.what} model: {exc}"
        finally:
            self._lock.release()

    def _due(self) -> None:
        if time.monotonic() - self._checked >= self.check_every_s:
            self.refresh()

    def current(self) -> tuple[Any, Any]:
        """``(bundle, version info)``, after an alias check when one is due.

        Raises:
            RuntimeError: No model is loaded (the message says why).
        """
        self._due()
        bundle, info = self.bundle, self.info
        if bundle is None:
            raise RuntimeError(self.problem or f"no {self.what} model is loaded")
        return bundle, info

    def status(self) -> dict[str, Any]:
        """Which version is loaded (or why none is), after an alias check when one is due."""
        self._due()
        bundle, info = self.bundle, self.info
        out: dict[str, Any] = {"loaded": bundle is not None}
        if bundle is not None:
            out.update(name=info.name, version=info.version, run_date=info.run_date, **self._describe(bundle))
        if self.problem:
            out["detail"] = self.problem
        return out


class ModelWithState(ABC):
    """A registered model served with lake state that changes beside it (online features, the ads' state).

    The holder decides when to look for news: :meth:`refresh_if_due` at most every
    ``check_every_s`` seconds checks the model (:attr:`model`, a :class:`RegisteredModel`
    checking on each refresh) and calls :meth:`_refresh_state`, which loads the state
    when its tables moved and returns why it cannot be served, if so. One thread
    reloads at a time; the others keep serving what is loaded.

    Args:
        check_every_s: Seconds between checks for a new model version or new table versions.
    """

    model: RegisteredModel

    def __init__(self, check_every_s: float):
        self.check_every_s = check_every_s
        self.state_problem: str | None = None
        self._reload_lock = threading.Lock()
        self._checked = -math.inf

    @property
    def problem(self) -> str | None:
        """Why the model or the state is not (or no longer) what should be served, if so."""
        return "; ".join(p for p in (self.model.problem, self.state_problem) if p) or None

    def refresh(self) -> None:
        """Load the serving model and the latest state when either changed (skipped while another thread reloads)."""
        if not self._reload_lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            self.model.refresh()
            self.state_problem = self._refresh_state()
        finally:
            self._reload_lock.release()

    def refresh_if_due(self) -> None:
        """:meth:`refresh` when ``check_every_s`` has passed since the last check."""
        if time.monotonic() - self._checked >= self.check_every_s:
            self.refresh()

    @abstractmethod
    def _refresh_state(self) -> str | None:
        """Load the state when its tables moved; return why it cannot be served, or None."""
