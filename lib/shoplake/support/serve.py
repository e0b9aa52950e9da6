"""The model behind ``POST /support/reply``.

:class:`SupportReplier` holds the registered support bundle
(``support.registered_model``): a customer's message gets its intent, and either an
answer retrieved for that intent with the message's entities filled in, or a hand-off
to a person with the reason.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from shoplake.text.serve import _ID, TOP_ALTERNATIVES, RegisteredTextModel, _not_blank, check_length

#: Values of ``reason`` in a support reply that hands off.
LOW_CONFIDENCE, NO_ANSWER = "low_confidence", "no_answer"


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


class SupportReplier(RegisteredTextModel):
    """Intent, answer or hand-off for customer messages, from the registered support bundle.

    Args:
        cfg: Configuration (registry, ``support.registered_model`` and ``max_message_chars``).
        check_every_s: Seconds between checks of the serving alias.
    """

    def __init__(self, cfg, check_every_s: float = 30.0):
        from shoplake.text.bundle import SUPPORT

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
        from shoplake import columns as C
        from shoplake.support.answers import ENTITY_TYPES, extract_entities
        from shoplake.text.features import normalise_str

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
