"""The fraud sections: ``fraud`` and its ``feature_table``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from shoplake.config.base import Distribution, SearchSpace, Strict


class FraudFeatureTableConfig(Strict):
    """A shop's own labelled table of payments with numeric features, for the fraud run."""

    uri: str = Field(description="A Delta table (folder or URI) or a Parquet file or folder; relative paths from the project root.")
    format: Literal["delta", "parquet"] = "delta"
    mode: Literal["alone", "join"] = Field(
        "alone",
        description="alone: train, evaluate and score on the table's rows; join: add its features to the lake's matured "
        "payments (gold.txn_features) by payment id, whose labels and amounts the lake gives.",
    )
    payment_id: str = Field("payment_id", description="Column of the payment id.")
    timestamp: str = Field("payment_ts", description="Column of the payment time (alone: the time split and the scored day).")
    label: str = Field("label", description="alone: column of the label, 1 fraud, 0 legitimate, null unlabelled.")
    amount: str = Field("amount", description="alone: column of the amount (a missed fraud costs it).")
    user_id: str = Field("user_id", description="alone: column of the paying customer.")
    features: list[str] = Field(
        default_factory=list,
        description="Numeric columns read as features; empty: every numeric column but the id, time, label and customer.",
    )


class FraudConfig(Strict):
    """Fraud detection: labels, the time-based split, the models, decisions and their costs."""

    history_days: int = Field(
        180, ge=8, description="Payments of this many days before the run date are in silver.transactions; features see only them."
    )
    maturity_days: int = Field(
        30,
        ge=1,
        description="A payment is labelled once this many days old: fraud with a chargeback of a fraud reason by then, else legitimate; younger ones are unlabelled.",
    )
    fraud_reason_codes: list[str] = Field(
        default_factory=lambda: ["fraud"],
        description="Chargeback reasons that mark a payment as fraud (others, like not_received, do not).",
    )
    validation_share: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share of matured payments (by time, after the training ones) used to pick the champion and the thresholds.",
    )
    test_share: float = Field(0.2, gt=0, lt=0.5, description="Share of matured payments (the newest) held out for the reported metrics.")
    models: list[Literal["rules", "gbt", "tabular_nn"]] = Field(
        default_factory=lambda: ["rules", "gbt", "tabular_nn"],
        description="Models evaluated side by side; the champion is the best trained one on validation PR-AUC.",
    )
    gbt_rounds: int = Field(300, ge=1, description="Boosting rounds of the gradient-boosted trees (XGBoost).")
    gbt_max_depth: int = Field(5, ge=1)
    gbt_eta: float = Field(0.1, gt=0)
    nn_hidden: int = Field(64, ge=4, description="Width of the tabular network's hidden layers.")
    nn_layers: int = Field(2, ge=1)
    nn_epochs: int = Field(20, ge=1)
    nn_batch_size: int = Field(256, ge=1)
    nn_lr: float = Field(0.002, gt=0)
    gbt_search: SearchSpace = Field(
        default_factory=lambda: {"gbt_max_depth": [3, 5, 7], "gbt_eta": Distribution(loguniform=(0.03, 0.3))},
        description="Settings of the trees searched on validation (Ray Tune, tuning.*): gbt_* fields of fraud with the values "
        "to try; empty: none searched.",
    )
    nn_search: SearchSpace = Field(
        default_factory=lambda: {"nn_lr": Distribution(loguniform=(0.0003, 0.01)), "nn_hidden": [32, 64, 128]},
        description="Settings of the tabular network searched on validation: nn_* fields of fraud; the best epoch becomes "
        "nn_epochs; empty: none searched.",
    )
    rules_amount: float = Field(300.0, gt=0, description="Rules baseline: amounts above this are flagged.")
    rules_velocity_1h: int = Field(
        3, ge=1, description="Rules baseline: this many earlier payments of the same user, card, device or IP within 1 h are flagged."
    )
    review_capacity_per_day: int = Field(20, ge=1, description="Payments the review team can check per day (precision@capacity).")
    review_cost: float = Field(5.0, ge=0, description="Cost of reviewing one payment.")
    chargeback_fee: float = Field(
        15.0, ge=0, description="Fee per chargeback on top of the lost amount (cost of a missed fraud: amount + fee)."
    )
    decline_precision: float = Field(
        0.9, gt=0, le=1, description="Payments are declined outright above the lowest threshold whose validation precision reaches this."
    )
    registered_model: str = "shoplake-fraud"

    @field_validator("gbt_search", "nn_search")
    @classmethod
    def _searched_fields(cls, value: dict, info) -> dict:
        prefix = info.field_name.split("_", 1)[0] + "_"
        wrong = [k for k in value if not k.startswith(prefix) or k not in cls.model_fields or k.endswith("_search")]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only {prefix}* settings of fraud can be searched here")
        return value

    feature_table: FraudFeatureTableConfig | None = Field(
        None,
        description="A shop's own labelled feature table (the shop vouches its features were known at payment time); "
        "null: the lake's features only.",
    )
