"""Text models behind ``POST /support/reply`` and ``POST /categorize``.

:class:`SupportReplier` holds the registered support bundle
(``support.registered_model``): a customer's message gets its intent, and either an
answer retrieved for that intent with the message's entities filled in, or a hand-off
to a person, with the reason. :class:`Categorizer` holds the registered categorizer
(``categorization.registered_model``) and names a product's category from its title
and description.

Both read their text the way the training rows were built: whitespace normalised by
:func:`~shoplake.features.text.normalise_str`, a product's text by
:func:`~shoplake.features.text.product_text_str`, the same rules as the Spark
tables. Each checks the serving alias at most every ``check_every_s`` seconds and
loads the version it names when it moved; a failed load keeps what was loaded.
Without a model, :meth:`~RegisteredTextModel.status` says why and every call raises
:class:`RuntimeError` (the ingress answers 503).

Length limits come from the configuration (``support.max_message_chars``,
``categorization.max_text_chars``), so they are checked when a request is answered,
not by the body models: a longer text raises :class:`TextTooLong` (the ingress
answers 422, naming the field and the limit).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

log = logging.getLogger(__name__)

#: Intents or categories listed as alternatives in an answer.
TOP_ALTERNATIVES = 3
#: Values of ``reason`` in a support reply that hands off.
LOW_CONFIDENCE, NO_ANSWER = "low_confidence", "no_answer"

_ID = {"min_length": 1, "max_length": 64}


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must contain text, not only whitespace")
    return value


class MessageIn(BaseModel):
    """A customer's message, as ``POST /support/reply`` takes it (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")
    message: StrictStr = Field(..., description="The customer's message (at most support.max_message_chars characters).")
    order_id: StrictStr | None = Field(None, **_ID, description="The order the message is about, when the client knows it.")
    user_id: StrictStr | None = Field(None, **_ID, description="The customer, when known.")

    @field_validator("message")
    @classmethod
    def message_has_text(cls, value: str) -> str:
        """A message must hold more than whitespace."""
        return _not_blank(value)


class TitleIn(BaseModel):
    """A product to categorize, as ``POST /categorize`` takes it (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")
    title: StrictStr = Field(..., description="Product title (at most categorization.max_text_chars characters).")
    description: StrictStr | None = Field(None, description="Product description (same limit).")

    @field_validator("title")
    @classmethod
    def title_has_text(cls, value: str) -> str:
        """A title must hold more than whitespace."""
        return _not_blank(value)


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
        from shoplake.models.text_bundle import TextBundle
        from shoplake.registry import NoServingModel, download_bundle, resolve_version

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


class SupportReplier(RegisteredTextModel):
    """Intent, answer or hand-off for customer messages, from the registered support bundle.

    Args:
        cfg: Configuration (registry, ``support.registered_model`` and ``max_message_chars``).
        check_every_s: Seconds between checks of the serving alias.
    """

    def __init__(self, cfg, check_every_s: float = 30.0):
        from shoplake.models.text_bundle import SUPPORT

        self.max_chars = cfg.support.max_message_chars
        super().__init__(cfg, cfg.support.registered_model, SUPPORT, check_every_s)

    def reply(self, message: MessageIn) -> dict[str, Any]:
        """The reply to one message.

        The message is whitespace-normalised, then classified. A top intent less
        probable than the bundle's threshold hands off (``low_confidence``); otherwise
        the answer store's answer for that intent, its placeholders filled from the
        message's entities (and ``order_id`` of the body when the text names no order),
        or a hand-off (``no_answer``) when the intent has no answer on record.

        Raises:
            TextTooLong: The message is longer than ``support.max_message_chars``.
            RuntimeError: No support model is loaded.
        """
        from shoplake.features.text import normalise_str
        from shoplake.models.support_answers import ENTITY_TYPES, extract_entities
        from shoplake.schemas import columns as C

        check_length("message", message.message, self.max_chars)
        bundle, info = self.current()
        text = normalise_str(message.message)
        found = extract_entities(text)
        if message.order_id and C.ORDER_ID not in found:
            found[C.ORDER_ID] = message.order_id
        entities = {kind: found[kind] for kind in ENTITY_TYPES if kind in found}

        prediction = bundle.predict([text], embed=True)
        intent, confidence = prediction.labels[0], float(prediction.confidences[0])
        answer = reason = detail = None
        if confidence < bundle.threshold:
            reason = LOW_CONFIDENCE
            detail = f"confidence {confidence:.3f} of intent {intent!r} is below the hand-off threshold {bundle.threshold:.3f}"
        else:
            found_answer = None
            if bundle.answers is not None:
                found_answer = bundle.answers.answer(intent, prediction.embeddings[0], entities)
            if found_answer is None:
                reason, detail = NO_ANSWER, f"no answer is on record for intent {intent!r}"
            else:
                answer = found_answer.text
        return {
            "intent": intent, "confidence": confidence, "answer": answer, "handoff": answer is None,
            "reason": reason, "detail": detail, "entities": entities,
            "alternatives": [{"intent": label, "probability": p} for label, p in prediction.top(0, TOP_ALTERNATIVES)],
            "model_name": bundle.kind, "model_version": info.version,
        }  # fmt: skip


class Categorizer(RegisteredTextModel):
    """A product's category from its title and description, from the registered categorizer.

    Args:
        cfg: Configuration (registry, ``categorization.registered_model`` and ``max_text_chars``).
        check_every_s: Seconds between checks of the serving alias.
    """

    def __init__(self, cfg, check_every_s: float = 30.0):
        from shoplake.models.text_bundle import CATEGORIZATION

        self.max_chars = cfg.categorization.max_text_chars
        super().__init__(cfg, cfg.categorization.registered_model, CATEGORIZATION, check_every_s)

    def categorize(self, item: TitleIn) -> dict[str, Any]:
        """The most probable category of one product, and the top alternatives.

        The model reads the text ``gold.product_text`` would hold for the product
        (:func:`~shoplake.features.text.product_text_str`).

        Raises:
            TextTooLong: The title or the description is longer than ``categorization.max_text_chars``.
            RuntimeError: No categorization model is loaded.
        """
        from shoplake.features.text import product_text_str

        check_length("title", item.title, self.max_chars)
        check_length("description", item.description, self.max_chars)
        bundle, info = self.current()
        prediction = bundle.predict([product_text_str(item.title, item.description)])
        return {
            "category": prediction.labels[0], "confidence": float(prediction.confidences[0]),
            "alternatives": [{"category": label, "probability": p} for label, p in prediction.top(0, TOP_ALTERNATIVES)],
            "model_name": bundle.kind, "model_version": info.version,
        }  # fmt: skip


__all__ = [
    "LOW_CONFIDENCE", "NO_ANSWER", "TOP_ALTERNATIVES",
    "Categorizer", "MessageIn", "RegisteredTextModel", "SupportReplier", "TextTooLong", "TitleIn", "check_length",
]  # fmt: skip
