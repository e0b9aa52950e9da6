"""What the text endpoints share: a registered text model that follows its serving alias, and length checks of the texts posted."""

from __future__ import annotations

from shoplake.serve.holder import RegisteredModel

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


class RegisteredTextModel(RegisteredModel):
    """A registered text bundle of one replica, reloaded when the serving alias moves.

    Args:
        cfg: Configuration (registry and serving alias).
        registered_model: Registered model name to serve.
        task: The bundle task it must hold (``support`` or ``categorization``).
        check_every_s: Seconds between checks of the serving alias (0: every call).
    """

    def __init__(self, cfg, registered_model: str, task: str, check_every_s: float = 30.0):
        from shoplake.text.bundle import TextBundle

        self.task = task
        super().__init__(
            cfg, registered_model, lambda folder: TextBundle.load(folder, task), task, check_every_s,
            describe=lambda bundle: {"kind": bundle.kind, "threshold": bundle.threshold},
        )  # fmt: skip
