"""What the text endpoints share: a registered text model that follows its serving alias, and length checks of the texts posted."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

#: Intents or categories listed as alternatives in an answer.
TOP_ALTERNATIVES = 3

_ID = {"min_length": 1, "max_length": 64}


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must contain text, not only whitespace")
    return value


class TextTooLong(ValueError):
    """A request's text field is longer than the configuration allows.

    Args:
        field: The body field.
        limit: Characters allowed.
        length: Characters sent.
    """

    def __init__(self, field: str, limit: int, length: int):
        self.field, self.limit, self.length = field, limit, length
        super().__init__(f"field {field}: at most {limit} characters are allowed (got {length})")


def check_length(field: str, value: str | None, limit: int) -> None:
    """Raise :class:`TextTooLong` when ``value`` has more than ``limit`` characters."""
    if value is not None and len(value) > limit:
        raise TextTooLong(field, limit, len(value))


class RegisteredTextModel:
    """A registered text bundle of one replica, reloaded when the serving alias moves.

    Args:
        cfg: Configuration (registry and serving alias).
        registered_model: Registered model name to serve.
        task: The bundle task it must hold (``support`` or ``categorization``).
        check_every_s: Seconds between checks of the serving alias (0: every call).
    """

    def __init__(self, cfg, registered_model: str, task: str, check_every_s: float = 30.0):
        self.cfg, self.registered_model, self.task, self.check_every_s = cfg, registered_model, task, check_every_s
        self.bundle = self.info = None
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._checked = -math.inf
        self.refresh()

    def refresh(self) -> None:
        """Load the version the serving alias names when it is not the one loaded (skipped while another thread loads)."""
        from shoplake.registry import NoServingModel, download_bundle, resolve_version
        from shoplake.text.bundle import TextBundle

        if not self._lock.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            info = resolve_version(self.cfg, None, self.registered_model)
            if self.info is None or info.version != self.info.version:
                folder, info = download_bundle(self.cfg, info.version, registered_model=self.registered_model)
                bundle = TextBundle.load(folder, self.task)
                self.bundle, self.info = bundle, info
                log.info("%s with %s version %s (%s, threshold %.3f)", self.task, info.name, info.version, bundle.kind, bundle.threshold)
            self.problem = None
        except (NoServingModel, ValueError, FileNotFoundError) as exc:
            self.problem = f"no {self.task} model: {exc}"
        except Exception as exc:  # a broken reload must not take the endpoint down; keep what was loaded
            log.exception("could not load the %s model", self.task)
            self.problem = f"could not load the {self.task} model: {exc}"
        finally:
            self._lock.release()

    def _due(self) -> None:
        if time.monotonic() - self._checked >= self.check_every_s:
            self.refresh()

    def current(self):
        """``(bundle, version info)`` after an alias check when one is due.

        Raises:
            RuntimeError: No model is loaded (the message says why).
        """
        self._due()
        bundle, info = self.bundle, self.info
        if bundle is None:
            raise RuntimeError(self.problem or f"no {self.task} model is loaded")
        return bundle, info

    def status(self) -> dict[str, Any]:
        """Which version is loaded (or why none is), after an alias check when one is due."""
        self._due()
        bundle, info = self.bundle, self.info
        out: dict[str, Any] = {"loaded": bundle is not None}
        if bundle is not None:
            out.update(name=info.name, version=info.version, kind=bundle.kind, threshold=bundle.threshold, run_date=info.run_date)
        if self.problem:
            out["detail"] = self.problem
        return out
