"""The recommendation sections: ``sequence_model`` and ``recommender``."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from shoplake.config.base import Distribution, SearchSpace, Strict

#: Settings of sequence_model its search may not try: epochs comes from the best epoch, the score-time settings are
#: tried on one fit (recommend.fitting.score_settings), the text encoder stays frozen.
_SEQUENCE_UNSEARCHABLE = ("epochs", "trending_blend", "ease_blend", "cold_boost", "fine_tune_text", "search")
#: Settings of training (matrix factorization's) that recommender.mf_search may try.
_MF_SEARCHABLE = ("embedding_dim", "lr", "weight_decay", "negatives", "batch_size")


class SequenceModelConfig(Strict):
    """The main recommender: a SASRec-style transformer over each user's item sequence, fused with item text."""

    max_len: int = Field(50, ge=2, description="Most recent items of a user's sequence the model reads.")
    dim: int = Field(64, ge=8, description="Hidden size (divisible by heads).")
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(64, ge=1, description="Windows of max_len items per step and worker (2 workers: 128 a step).")
    lr: float = Field(0.002, gt=0)
    text_fusion: bool = Field(True, description="Add the projected text embedding to each item's id embedding.")
    fine_tune_text: bool = Field(False, description="Also train the text encoder's last layers (slower).")
    id_dropout: float = Field(
        0.0, ge=0, lt=1, description="Training only: chance an item's id embedding is dropped in a step, so its text must stand for it."
    )
    item_bias: bool = Field(True, description="A per-item logit bias (learnt for known items, from text for all).")
    shuffle_baskets: bool = Field(
        True, description="Items bought at the same time are reordered at random every epoch (their logged order means nothing)."
    )
    mask_seen: bool = Field(False, description="Leave the items a position has already seen out of its training softmax.")
    recency_half_life_days: float | None = Field(
        14.0, gt=0, description="Training targets weigh half as much every this many days before the newest; None: all equal."
    )
    recency_floor: float = Field(0.0, ge=0, lt=1, description="Weight even the oldest training target keeps.")
    dedupe: Literal["none", "first", "last"] = Field(
        "first", description="Repeated items in a sequence: keep all, or only the first or the last occurrence."
    )
    trending_blend: list[float] = Field(
        default_factory=lambda: [0.0], min_length=1,
        description="Share of a trending count (over each of recommender.trending_days) mixed into the model's next-item "
        "probabilities; with several, the validation splits pick the share and the days (0: the model alone).",
    )  # fmt: skip

    ease_blend: list[float] = Field(
        default_factory=lambda: [0.0], min_length=1,
        description="Share of EASE's scores (fitted with the ridge penalty validation chose for EASE) mixed into the model's "
        "next-item probabilities, after the trending blend; with several, the validation splits pick one (0: none).",
    )  # fmt: skip

    cold_boost: list[float] = Field(
        default_factory=lambda: [0.0], min_length=1,
        description="Added to the logit of every item without a training interaction (a new listing, known by its text "
        "alone); with several, the validation splits pick one.",
    )  # fmt: skip

    search: SearchSpace = Field(
        default_factory=lambda: {
            "lr": Distribution(loguniform=(0.0005, 0.005)),
            "dropout": [0.1, 0.2, 0.3],
            "recency_half_life_days": [7.0, 14.0, 30.0, None],
        },
        description="Settings searched on the validation splits (Ray Tune, tuning.*): fields of sequence_model with the values "
        "to try, all but " + ", ".join(_SEQUENCE_UNSEARCHABLE) + "; the best epoch becomes epochs; empty: none searched.",
    )

    @field_validator("search")
    @classmethod
    def _searchable(cls, value: dict) -> dict:
        wrong = [k for k in value if k not in cls.model_fields or k in _SEQUENCE_UNSEARCHABLE]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not a setting of sequence_model that can be searched")
        return value

    @field_validator("trending_blend", "ease_blend")
    @classmethod
    def _shares(cls, value: list[float], info) -> list[float]:
        if any(not 0.0 <= w <= 1.0 for w in value):
            raise ValueError(f"every {info.field_name} share must lie in [0, 1], got {value}")
        return value

    @field_validator("cold_boost")
    @classmethod
    def _boosts(cls, value: list[float]) -> list[float]:
        if any(b < 0 for b in value):
            raise ValueError(f"every cold_boost must be >= 0, got {value}")
        return value


_RECOMMENDERS = Literal["popularity", "trending", "cooccurrence", "item_knn", "ease", "mf", "sasrec"]
#: The recommenders from the simplest to the most complex: the order ``simplest_within_noise`` prefers.
RECOMMENDERS_SIMPLEST_FIRST: tuple[str, ...] = get_args(_RECOMMENDERS)


class RecommenderConfig(Strict):
    """The recommendation run: holdout evaluation of every model, then the main model for serving."""

    protocol: Literal["time_cutoff", "rolling", "leave_last_out"] = Field(
        "time_cutoff",
        description="How the models are judged. time_cutoff: the test window of holdout_days before the run date, the "
        "validation window before it. rolling: rolling_cutoffs such windows, rolling_spacing_days apart, the latest test, "
        "the others validation (pooled). leave_last_out: each user's last purchase day is test, the one before validation.",
    )
    holdout_days: int = Field(
        14, ge=1, description="Days of each held-out window: the test window before the run date, the validation window(s) before it."
    )
    rolling_cutoffs: int = Field(3, ge=2, description="rolling: held-out windows, the latest test, the earlier ones validation.")
    rolling_spacing_days: PositiveInt | None = Field(
        None, description="rolling: days between two cutoffs, at least holdout_days (no window reaches into the next); null: holdout_days."
    )
    exclude_seen: bool = Field(
        True, description="Never recommend (or count as a hit) what the user already had; off for repeat-purchase shops."
    )
    relevant_types: list[str] = Field(default_factory=lambda: ["purchase"], description="Held-out interaction types that count as hits.")
    k: int = Field(20, ge=1, description="Recommendations per user written by batch scoring.")
    models: list[_RECOMMENDERS] = Field(
        default_factory=lambda: ["popularity", "trending", "cooccurrence", "item_knn", "ease", "mf", "sasrec"],
        description="Models trained and evaluated side by side.",
    )
    trending_days: list[PositiveInt] = Field(
        default_factory=lambda: [7, 14, 28], min_length=1,
        description="Trending baseline: days of recent interactions counted; with several, the validation window picks one.",
    )  # fmt: skip
    knn_neighbors: list[PositiveInt] = Field(
        default_factory=lambda: [20, 100], min_length=1,
        description="Item-kNN: neighbours kept per item; with several, the validation window picks one.",
    )  # fmt: skip
    ease_l2: list[PositiveFloat] = Field(
        default_factory=lambda: [50.0, 200.0, 500.0, 2000.0], min_length=1,
        description="EASE: ridge penalty; with several, the validation window picks one.",
    )  # fmt: skip
    ease_max_items: int = Field(8000, ge=2, description="EASE is skipped (with a warning) on larger catalogues: its matrix is dense.")
    mf_search: SearchSpace = Field(
        default_factory=lambda: {
            "embedding_dim": [16, 32, 64],
            "lr": Distribution(loguniform=(0.002, 0.05)),
            "weight_decay": Distribution(loguniform=(1e-6, 1e-3)),
        },
        description="Matrix factorization's settings searched on the validation splits (Ray Tune, tuning.*): "
        + ", ".join(_MF_SEARCHABLE)
        + " of training with the values to try; the best epoch becomes training.epochs; empty: none searched.",
    )
    champion_rule: Literal["best", "simplest_within_noise"] = Field(
        "simplest_within_noise",
        description="How validation picks the champion. best: the highest validation NDCG@10. simplest_within_noise: "
        "the simplest model (popularity, trending, cooccurrence, item_knn, ease, mf, sasrec in that order) whose paired "
        "difference with the best on validation is not a loss (its interval over users reaches zero).",
    )
    main_model: _RECOMMENDERS = Field(
        "sasrec", description="The candidate the reports compare with the best baseline; the champion served is measured on validation."
    )
    refit: bool = Field(True, description="Retrain the champion on all data up to the run date before registering it.")
    registered_model: str = "shoplake-recommender"

    @field_validator("mf_search")
    @classmethod
    def _mf_searchable(cls, value: dict) -> dict:
        wrong = [k for k in value if k not in _MF_SEARCHABLE]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only {', '.join(_MF_SEARCHABLE)} of training can be searched here")
        return value

    @model_validator(mode="after")
    def _windows_apart(self) -> RecommenderConfig:
        if self.rolling_spacing_days is not None and self.rolling_spacing_days < self.holdout_days:
            raise ValueError(
                f"rolling_spacing_days ({self.rolling_spacing_days}) must be at least holdout_days ({self.holdout_days}): "
                "a validation window would reach into the next window's days"
            )
        return self
