"""Fraud tables: payments with their labels (silver), point-in-time features (gold), scores (serving).

``silver.transactions`` and ``gold.txn_features`` are partitioned by ``run_date`` like
the other feature tables: the partition of day D holds the payments made before D's
midnight (UTC) within ``fraud.history_days``, as known before D: their labels count
only chargebacks reported before D. ``serving.fraud_scores`` holds, per run date, the
scores of the payments of the day before it (the landing day the nightly run ingested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.fraud.declarations import FEATURES, Feature, configured_features, payment_extras
from shoplake.ingest.landing import LandingField
from shoplake.lake.spec import Col, TableSpec

if TYPE_CHECKING:
    from shoplake.config import Config

#: Values of ``serving.fraud_scores.decision``, from the lowest score to the highest.
APPROVE, REVIEW, DECLINE = "approve", "review", "decline"
DECISIONS = (APPROVE, REVIEW, DECLINE)

_RUN_DATE = Col(C.RUN_DATE, "date", False, "The day the table is built for; only data before its midnight (UTC) is used.")
_PAYMENT = (
    Col(C.PAYMENT_ID, "string", False, "Payment."),
    Col(C.ORDER_ID, "string", False, "The order paid."),
    Col(C.USER_ID, "string", False, "Paying customer."),
    Col(C.PAYMENT_TS, "timestamp", False, "When the payment was made, UTC; before run_date and within fraud.history_days."),
)
_LABEL = (
    Col(C.MATURED, "boolean", False, "The payment is at least fraud.maturity_days old at run_date: its label is final."),
    Col(
        C.LABEL,
        "int",
        True,
        "1: a chargeback with a reason of fraud.fraud_reason_codes was reported before run_date; 0: none was; "
        "null while the payment has not matured (unlabelled, not legitimate).",
    ),
)


def transactions_spec(extras: Sequence[LandingField] = ()) -> TableSpec:
    """``silver.transactions``, with the shop's own payment fields (:func:`payment_extras`) after the built-in columns."""
    return TableSpec(
        name="transactions",
        layer="silver",
        columns=(
            *_PAYMENT,
            Col(C.AMOUNT, "double", False, "Amount charged."),
            Col(C.CURRENCY, "string", True, "ISO currency code."),
            Col(C.PAYMENT_METHOD, "string", True, "card, wallet or bank_transfer."),
            Col(C.CARD_ID, "string", False, "Card or wallet fingerprint."),
            Col(C.DEVICE_ID, "string", True, "Device fingerprint."),
            Col(C.IP_ADDRESS, "string", True, "Client IP address."),
            Col(C.BILLING_COUNTRY, "string", True, "Billing country."),
            Col(C.SHIPPING_COUNTRY, "string", True, "Shipping country."),
            Col(C.N_LINES, "int", False, "Lines of the paid order as placed (0 when the order is not in bronze.orders)."),
            Col(C.N_UNITS, "long", False, "Units of the paid order as placed (0 when the order is not in bronze.orders)."),
            Col(C.CHARGEBACK_TS, "timestamp", True, "First chargeback of the payment reported before run_date (any reason)."),
            Col(C.REASON_CODE, "string", True, "Reason of that chargeback."),
            *_LABEL,
            # Nullable whatever the landing says: a table built before the field was declared grows it.
            *(
                Col(f.name, f.dtype, True, f"The shop's own {f.role} field (landing.extra_fields.payments). {f.doc}".strip())
                for f in extras
            ),
            _RUN_DATE,
        ),
        keys=(C.PAYMENT_ID, C.RUN_DATE),
        partition_by=(C.RUN_DATE,),
        description=(
            "Payments known before run_date joined with their orders, deduplicated by payment id (the latest ingested copy), "
            "with chargebacks reported before run_date and the matured label."
        ),
    )


def txn_features_spec(features: Sequence[Feature] = FEATURES) -> TableSpec:
    """``gold.txn_features`` with one double column per feature of ``features``.

    The built-in features come first; the shop's own ones are nullable in the table
    (never null in the rows written) so that a table built before they were
    declared can grow them.
    """
    builtin = {f.name for f in FEATURES}
    return TableSpec(
        name="txn_features",
        layer="gold",
        columns=(
            *_PAYMENT,
            *(Col(f.name, "double", False, f.description) for f in features if f.name in builtin),
            *_LABEL,
            *(Col(f.name, "double", True, f.description) for f in features if f.name not in builtin),
            _RUN_DATE,
        ),
        keys=(C.PAYMENT_ID, C.RUN_DATE),
        partition_by=(C.RUN_DATE,),
        description=(
            "Point-in-time features of every payment of silver.transactions (shoplake.fraud.features): each from "
            "the payments strictly before it, with its label."
        ),
    )


TRANSACTIONS = transactions_spec()
TXN_FEATURES = txn_features_spec()


def configured_specs(cfg: Config) -> tuple[TableSpec, TableSpec]:
    """``silver.transactions`` and ``gold.txn_features`` with the shop's own payment fields and features of ``cfg``.

    The catalog holds the built-in specs; the feature step writes these (the same
    tables, grown by the columns ``landing.extra_fields.payments`` declares).
    """
    return transactions_spec(payment_extras(cfg)), txn_features_spec(configured_features(cfg))


FRAUD_SCORES = TableSpec(
    name="fraud_scores",
    layer="serving",
    columns=(
        Col(C.PAYMENT_ID, "string", False, "Payment."),
        Col(C.USER_ID, "string", False, "Paying customer."),
        Col(C.PAYMENT_TS, "timestamp", False, "When the payment was made, UTC (the day before run_date)."),
        Col(C.AMOUNT, "double", False, "Amount charged."),
        Col(C.SCORE, "double", False, "Fraud probability from the registered model."),
        Col(C.DECISION, "string", False, f"{', '.join(DECISIONS)}: from the model's review and decline thresholds."),
        Col(C.REASON_FEATURES, "array<string>", False, "The 3 features that raised the score most, strongest first."),
        Col(C.REASON_CONTRIBUTIONS, "array<double>", False, "Their contributions to the score's log-odds."),
        Col(C.MODEL_NAME, "string", False, "Model family of the registered version (gbt or tabular_nn)."),
        Col(C.MODEL_VERSION, "string", False, "Registered model version (MLflow) that scored."),
        Col(C.RUN_DATE, "date", False, "Features date scored for."),
        Col(C.SCORED_AT, "timestamp", False, "When the scoring ran, UTC."),
    ),
    keys=(C.PAYMENT_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description="Fraud score, decision and top reasons of each payment of the day before run_date, one commit per run date.",
)

SPECS = (TRANSACTIONS, TXN_FEATURES, FRAUD_SCORES)
TASK_FRAUD = "fraud"
