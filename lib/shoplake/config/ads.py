"""The ads section: ``ads``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from shoplake.config.base import SearchSpace, Strict

_AD_MODELS = Literal["historic_ctr", "logistic", "gbt", "deep_ctr"]
#: The per-viewer plan's settings that ads.plan_search may choose on validation.
PLAN_SEARCHABLE = ("plan_exploration", "plan_max_ratio")


class AdsConfig(Strict):
    """Sponsored-product ads: point-in-time impression features, click and conversion models, calibration."""

    history_days: int = Field(
        60, ge=8, description="Impressions of this many days before the run date are in gold.ad_features; features see only them."
    )
    maturity_days: int = Field(
        2, ge=1, description="An impression's conversion label is final once it is this many days old; younger ones are unlabelled."
    )
    ctr_prior: float = Field(0.03, gt=0, lt=1, description="Prior click-through of the smoothed historic rates (Beta prior mean).")
    ctr_prior_strength: float = Field(100.0, gt=0, description="Weight of the click-through prior, in impressions.")
    cvr_prior: float = Field(0.1, gt=0, lt=1, description="Prior conversion rate after a click of the smoothed historic rates.")
    cvr_prior_strength: float = Field(20.0, gt=0, description="Weight of the conversion prior, in clicks.")
    validation_share: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share of matured impressions (by time, after the training ones) that picks the champion and calibrates.",
    )
    test_share: float = Field(0.2, gt=0, lt=0.5, description="Share of matured impressions (the newest) held out for the reported metrics.")
    models: list[_AD_MODELS] = Field(
        default_factory=lambda: ["historic_ctr", "logistic", "gbt", "deep_ctr"],
        description="Models evaluated side by side; the champion is the best on validation conversion (pCTCVR) log-loss.",
    )
    hash_buckets: int = Field(2**18, ge=16, description="Logistic regression: buckets of the hashed feature crosses.")
    logistic_c: float = Field(1.0, gt=0, description="Logistic regression: inverse L2 strength.")
    gbt_rounds: int = Field(
        200, ge=1, description="Gradient-boosted trees (XGBoost, in the driver): boosting rounds for clicks (half as many for conversions)."
    )
    gbt_max_depth: int = Field(4, ge=1)
    gbt_eta: float = Field(0.1, gt=0)
    gbt_search: SearchSpace = Field(
        default_factory=lambda: {"gbt_max_depth": [2, 3, 4, 6], "gbt_eta": [0.03, 0.1]},
        description="Settings of the trees searched on validation (Ray Tune, tuning.*): gbt_* fields of ads with the values to try; "
        "the best number of rounds becomes gbt_rounds; empty: none searched.",
    )
    deep_fields: list[str] | None = Field(
        None,
        description="Deep model: the categorical fields it embeds (of placement, position, hour, item_id, campaign_id, category, "
        "price_band); None: all.",
    )
    deep_numeric: list[str] | None = Field(None, description="Deep model: the numeric features of gold.ad_features it reads; None: all.")
    deep_search: SearchSpace = Field(
        default_factory=lambda: {
            "deep_fields": [None, ["placement", "position", "item_id"], ["placement", "position", "item_id", "category", "price_band"]],
            "lr": [0.001, 0.003],
            "embedding_dim": [4, 8],
        },
        description="Settings of the deep model searched on validation (Ray Tune, tuning.*): fields of ads with the values to try; "
        "the best epoch becomes epochs; empty: none searched.",
    )
    embedding_dim: int = Field(8, ge=2, description="Deep model: width of each categorical field's embedding.")
    text_dim: int = Field(16, ge=2, description="Deep model: width the text encoder's ad embedding is projected to.")
    cross_layers: int = Field(2, ge=1, description="Deep model: DCN-V2 cross layers.")
    hidden: int = Field(64, ge=4, description="Deep model: width of the deep tower's layers.")
    epochs: int = Field(12, ge=1, description="Deep model: epochs on Ray Train (the most a search trial runs).")
    batch_size: int = Field(512, ge=1)
    lr: float = Field(0.003, gt=0)
    weight_decay: float = Field(0.0, ge=0, description="Deep model: AdamW weight decay (0: Adam).")
    conversion_weight: float = Field(
        1.0, gt=0, description="Deep model: weight of the conversion (pCTR x pCVR) log-loss beside the click log-loss in training."
    )
    clicked_weight: float = Field(
        0.0, ge=0, description="Deep model: weight of the conversion-after-click log-loss of pCVR over the clicked impressions in training."
    )
    calibration: Literal["isotonic", "temperature", "none"] = Field(
        "isotonic", description="How every model's click and conversion probabilities are calibrated on the validation split."
    )
    calibration_bins: int = Field(10, ge=2, description="Bins of the expected calibration error.")
    plan_days: int = Field(
        7, ge=1, description="The per-viewer plan: the newest days of impressions whose traffic, costs and budgets it plans for."
    )
    plan_exploration: float = Field(
        0.05, ge=0, lt=1, description="The per-viewer plan: share of every slot that follows the logged policy (for off-policy checks)."
    )
    plan_max_ratio: float | None = Field(
        None,
        ge=1,
        description="The per-viewer plan: the most its optimised part gives an ad of a slot, as a multiple of the logged policy's "
        "probability of that ad for that viewer (a plan near the log has a less noisy off-policy estimate); null: no bound.",
    )
    plan_search: dict[str, list[float | None]] = Field(
        default_factory=lambda: {"plan_exploration": [0.05, 0.2], "plan_max_ratio": [None, 4.0, 2.0, 1.5, 1.2]},
        description="The per-viewer plan: values of plan_exploration and plan_max_ratio to try, every combination; the plan made "
        "before the validation days with each is judged on them, and the highest lower bound of the doubly robust margin over "
        "the logged policy chooses; empty: the fields as set.",
    )
    registered_model: str = "shoplake-ads"
    rank_k: int = Field(10, ge=1, description="POST /ads/rank: ads returned when the request gives no k.")

    @field_validator("plan_search")
    @classmethod
    def _plan_settings(cls, value: dict) -> dict:
        wrong = [k for k in value if k not in PLAN_SEARCHABLE]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only {', '.join(PLAN_SEARCHABLE)} of ads can be searched here")
        empty = [k for k, v in value.items() if not v]
        if empty:
            raise ValueError(f"{', '.join(empty)}: no values to try")
        return value
