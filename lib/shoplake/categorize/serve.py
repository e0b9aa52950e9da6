"""The model behind ``POST /categorize``: a product's title and description in, its most probable category and alternatives out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from shoplake.text.serve import TOP_ALTERNATIVES, RegisteredTextModel, _not_blank, check_length


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


class Categorizer(RegisteredTextModel):
    """A product's category from its title and description, from the registered categorizer.

    Args:
        cfg: Configuration (registry, ``categorization.registered_model`` and ``max_text_chars``).
        check_every_s: Seconds between checks of the serving alias.
    """

    def __init__(self, cfg, check_every_s: float = 30.0):
        from shoplake.text.bundle import CATEGORIZATION

        self.max_chars = cfg.categorization.max_text_chars
        super().__init__(cfg, cfg.categorization.registered_model, CATEGORIZATION, check_every_s)

    def categorize(self, item: TitleIn) -> dict[str, Any]:
        """The most probable category of one product, and the top alternatives.

        The model reads the text ``gold.product_text`` would hold for the product
        (:func:`~shoplake.categorize.features.product_text_str`).

        Raises:
            TextTooLong: The title or the description is longer than ``categorization.max_text_chars``.
            RuntimeError: No categorization model is loaded.
        """
        from shoplake.categorize.features import product_text_str

        check_length("title", item.title, self.max_chars)
        check_length("description", item.description, self.max_chars)
        bundle, info = self.current()
        prediction = bundle.predict([product_text_str(item.title, item.description)])
        return {
            "category": prediction.labels[0], "confidence": float(prediction.confidences[0]),
            "alternatives": [{"category": label, "probability": p} for label, p in prediction.top(0, TOP_ALTERNATIVES)],
            "model_name": bundle.kind, "model_version": info.version,
        }  # fmt: skip
