"""The text sections: ``fine_tuning``, ``support`` and ``categorization``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from shoplake.config.base import Distribution, SearchSpace, Strict


class FineTuningConfig(Strict):
    """Fine-tuning the text encoder with a classification head (support intents, product categories)."""

    max_length: int = Field(64, ge=8, description="Tokens per text at most (longer texts are cut).")
    epochs: int = Field(3, ge=1)
    min_steps: int = Field(60, ge=1, description="Fewest optimizer steps of a run: a small table gets more epochs than `epochs`.")
    batch_size: int = Field(32, ge=1, description="Texts per step and worker.")
    lr: float = Field(1e-4, gt=0, description="Peak AdamW learning rate.")
    warmup_ratio: float = Field(
        0.1, ge=0, lt=1, description="Share of the steps over which the learning rate rises to lr; it then falls linearly to 0."
    )
    weight_decay: float = Field(0.01, ge=0)
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the classification head.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping (None: off).")
    amp: bool = Field(True, description="bfloat16 autocast on a GPU; ignored on CPU.")
    freeze_embeddings: bool = Field(
        False,
        description="Keep the word-piece embedding table as pretrained: about 5 % faster on CPU, but product titles (model numbers, brands) lose accuracy.",
    )
    baseline_c: float = Field(10.0, gt=0, description="Inverse regularisation of the baselines' logistic regression.")
    baseline_search: SearchSpace = Field(
        default_factory=lambda: {"baseline_c": Distribution(loguniform=(0.3, 30.0))},
        description="Values of baseline_c the TF-IDF baseline tries on validation (Ray Tune, tuning.*); the frozen-encoder "
        "baseline keeps baseline_c; empty: no search.",
    )

    @field_validator("baseline_search")
    @classmethod
    def _only_c(cls, value: dict) -> dict:
        if set(value) - {"baseline_c"}:
            raise ValueError(f"only baseline_c can be searched here, not {', '.join(sorted(set(value) - {'baseline_c'}))}")
        return value


_TEXT_MODELS = Literal["tfidf_lr", "frozen_lr", "fine_tuned"]


class SupportConfig(Strict):
    """The customer-service run: intent classifier, hand-off threshold and answers (``POST /support/reply``)."""

    models: list[_TEXT_MODELS] = Field(
        default_factory=lambda: ["tfidf_lr", "frozen_lr", "fine_tuned"],
        description="Models trained and compared; the best on validation macro-F1 is registered.",
    )
    out_of_scope_intents: list[str] = Field(
        default_factory=lambda: ["complaint", "contact_human_agent"],
        description="Intents no model is trained on: their messages are the out-of-scope test of the hand-off, and a person answers them.",
    )
    typo_rate: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Fine-tuning: share of training words (4+ letters) given a typo, afresh every epoch, so misspelt messages are read.",
    )
    min_answered: float = Field(
        0.93,
        gt=0,
        le=1,
        description="The hand-off threshold never rises above the highest confidence that answers this share of in-scope validation messages.",
    )
    min_handoff: float = Field(
        0.9,
        gt=0,
        le=1,
        description="The hand-off threshold is the lowest that hands this share of out-of-scope validation messages to a person (capped as above).",
    )
    max_train_rows: int | None = Field(
        None, ge=1, description="Train on a random sample of this many labelled messages at most (None: all)."
    )
    max_message_chars: int = Field(2000, ge=1, description="Longer messages are refused with 422.")
    registered_model: str = "shoplake-support"


class CategorizationConfig(Strict):
    """The product categorization run (``serving.product_categories``, ``POST /categorize``)."""

    models: list[_TEXT_MODELS] = Field(
        default_factory=lambda: ["tfidf_lr", "frozen_lr", "fine_tuned"],
        description="Models trained and compared; the best on validation macro-F1 is registered.",
    )
    max_train_rows: int | None = Field(
        None, ge=1, description="Train on a random sample of this many labelled products at most (None: all)."
    )
    typo_rate: float = Field(0.0, ge=0, lt=1, description="Fine-tuning: share of training words given a typo, afresh every epoch.")
    disagreement_confidence: float = Field(
        0.9, gt=0, le=1, description="A product whose given category differs from a prediction at least this confident is flagged."
    )
    max_text_chars: int = Field(2000, ge=1, description="Longer titles or descriptions are refused with 422.")
    registered_model: str = "shoplake-categorizer"
