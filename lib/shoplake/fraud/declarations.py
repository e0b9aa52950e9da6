"""The fraud features, declared once: every feature is a :class:`Feature` of a kind, read by both engines.

The Spark job (:func:`shoplake.fraud.features.compute_txn_features`) and the online
engine (:class:`shoplake.fraud.online.OnlineFeatures`) dispatch on the kind, so neither
has per-feature code. This module imports no Spark: the table specs and the serving
replicas import it.

A shop's own payment fields (``landing.extra_fields.payments``) add features of the
same kinds (:func:`configured_features`): a ``feature`` field is a ``payment`` feature,
the payment's own value; a ``category`` field gives the ``first_seen`` feature
``new_<field>_for_user``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.ingest.landing import CATEGORY, FEATURE, PAYMENTS, LandingField, configured_source

if TYPE_CHECKING:
    from shoplake.config import Config

#: Windows of the velocity features: suffix and length in seconds.
WINDOWS: tuple[tuple[str, int], ...] = (("1h", 3_600), ("24h", 86_400), ("7d", 604_800))
#: Entities the velocity features are counted per: feature prefix and column.
ENTITIES: tuple[tuple[str, str], ...] = (
    ("user", C.USER_ID), ("card", C.CARD_ID), ("device", C.DEVICE_ID), ("ip", C.IP_ADDRESS),
)  # fmt: skip
#: The longest window: how much per-entity history the online engine keeps.
MAX_WINDOW_S = max(seconds for _, seconds in WINDOWS)
#: Cap of ``hours_since_user_prev`` (and its value for a user without earlier payments).
MAX_HOURS_SINCE_PREV = 720.0

KINDS = ("window_count", "window_amount", "window_distinct", "user_history", "first_seen", "payment")


@dataclass(frozen=True)
class Feature:
    """One transaction feature.

    Attributes:
        name: Column of ``gold.txn_features`` and model input name.
        kind: One of :data:`KINDS`.
        description: What it is, for the table spec and the reasons of a score.
        entity: Column the payments are grouped by (window kinds).
        window_s: Window length in seconds (window kinds).
        of: Column counted or checked (``window_distinct``, ``first_seen``) or the
            statistic (``user_history``, ``payment``).
    """

    name: str
    kind: str
    description: str
    entity: str | None = None
    window_s: int | None = None
    of: str | None = None


def _window_features() -> list[Feature]:
    out = []
    for prefix, column in ENTITIES:
        for suffix, seconds in WINDOWS:
            out.append(
                Feature(
                    f"{prefix}_count_{suffix}",
                    "window_count",
                    f"Earlier payments with the same {column} in the last {suffix}.",
                    column,
                    seconds,
                )
            )
            out.append(
                Feature(
                    f"{prefix}_amount_{suffix}",
                    "window_amount",
                    f"Amount of the earlier payments with the same {column} in the last {suffix}.",
                    column,
                    seconds,
                )
            )
    for prefix, column in ENTITIES[2:]:
        out.append(
            Feature(
                f"{prefix}_cards_24h",
                "window_distinct",
                f"Distinct cards among the earlier payments with the same {column} in the last 24h.",
                column,
                86_400,
                C.CARD_ID,
            )
        )
    return out  # fmt: skip


#: Statistics of ``user_history`` features (the value of :attr:`Feature.of`).
PRIOR_PAYMENTS, ACCOUNT_AGE_DAYS, AMOUNT_TO_MEAN, HOURS_SINCE_PREV = (
    "prior_payments", "account_age_days", "amount_to_mean", "hours_since_prev",
)  # fmt: skip
#: Values of ``payment`` features (the value of :attr:`Feature.of`).
AMOUNT, HOUR_OF_DAY, SHIPPING_DIFFERS = C.AMOUNT, "hour_of_day", "shipping_differs"

FEATURES: tuple[Feature, ...] = (
    *_window_features(),
    Feature("user_prior_payments", "user_history", "The user's earlier payments.", of=PRIOR_PAYMENTS),
    Feature("user_age_days", "user_history", "Days since the user's first payment (0 without one).", of=ACCOUNT_AGE_DAYS),
    Feature("amount_to_user_mean", "user_history",
            "Amount divided by the mean amount of the user's earlier payments (1 without any).", of=AMOUNT_TO_MEAN),
    Feature("hours_since_user_prev", "user_history",
            f"Hours since the user's previous payment, capped at {MAX_HOURS_SINCE_PREV:g} (the cap without one).",
            of=HOURS_SINCE_PREV),
    Feature("new_device_for_user", "first_seen", "The device is not among the user's earlier payments.", of=C.DEVICE_ID),
    Feature("new_ip_for_user", "first_seen", "The IP address is not among the user's earlier payments.", of=C.IP_ADDRESS),
    Feature("new_card_for_user", "first_seen", "The card is not among the user's earlier payments.", of=C.CARD_ID),
    Feature("new_shipping_country_for_user", "first_seen",
            "The shipping country is not among the user's earlier payments.", of=C.SHIPPING_COUNTRY),
    Feature("amount", "payment", "Amount charged.", of=AMOUNT),
    Feature("n_lines", "payment", "Order lines of the paid order.", of=C.N_LINES),
    Feature("n_units", "payment", "Units of the paid order.", of=C.N_UNITS),
    Feature("hour_of_day", "payment", "Hour of the payment (UTC, with minutes and seconds as a fraction).", of=HOUR_OF_DAY),
    Feature("shipping_differs", "payment", "Shipping and billing countries differ (0 when either is null).",
            of=SHIPPING_DIFFERS),
)  # fmt: skip
#: Model input order.
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


# ---------------------------------------------------------------------------------------------
# Both engines
# ---------------------------------------------------------------------------------------------

WINDOW_KINDS = ("window_count", "window_amount", "window_distinct")
MICROS_PER_SECOND = 1_000_000
MICROS_PER_HOUR = 3_600 * MICROS_PER_SECOND
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND
USER_STATISTICS = (PRIOR_PAYMENTS, ACCOUNT_AGE_DAYS, AMOUNT_TO_MEAN, HOURS_SINCE_PREV)
#: Columns of ``silver.transactions`` (and of a payment mapping) the features read.
PAYMENT_FIELDS = (
    C.PAYMENT_ID, C.USER_ID, C.AMOUNT, C.CARD_ID, C.DEVICE_ID, C.IP_ADDRESS, C.BILLING_COUNTRY, C.SHIPPING_COUNTRY,
    C.PAYMENT_TS, C.N_LINES, C.N_UNITS,
)  # fmt: skip


def check_features(features: Sequence[Feature]) -> None:
    """Raise ``ValueError`` when a declaration lacks what its kind needs or names an unknown statistic."""
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise ValueError(f"feature names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    for f in features:
        if f.kind not in KINDS:
            raise ValueError(f"feature {f.name}: unknown kind {f.kind!r}; known: {', '.join(KINDS)}")
        if f.kind in WINDOW_KINDS and (f.entity is None or f.window_s is None or f.window_s <= 0):
            raise ValueError(f"feature {f.name}: a {f.kind} feature needs an entity and a positive window_s")
        if f.kind in ("window_distinct", "first_seen", "payment") and f.of is None:
            raise ValueError(f"feature {f.name}: a {f.kind} feature needs `of`")
        if f.kind == "user_history" and f.of not in USER_STATISTICS:
            raise ValueError(f"feature {f.name}: unknown user statistic {f.of!r}; known: {', '.join(USER_STATISTICS)}")


def _hour_of_day(seconds_of_day: int) -> float:
    hour, rest = divmod(seconds_of_day, 3_600)
    minute, second = divmod(rest, 60)
    return hour + minute / 60 + second / 3_600


# ---------------------------------------------------------------------------------------------
# A shop's own payment fields
# ---------------------------------------------------------------------------------------------

#: Roles of a shop's own payment field that fraud reads; ``id`` and ``ignore`` stay in bronze.
USED_ROLES = (FEATURE, CATEGORY)
#: Columns of the fraud tables besides the features, which a shop's own field must not take.
TABLE_COLUMNS = (
    C.PAYMENT_ID, C.ORDER_ID, C.USER_ID, C.PAYMENT_TS, C.N_LINES, C.N_UNITS, C.CHARGEBACK_TS, C.REASON_CODE, C.MATURED,
    C.LABEL, C.RUN_DATE,
)  # fmt: skip


def category_feature_name(field: str) -> str:
    """The ``first_seen`` feature of a shop's own categorical field."""
    return f"new_{field}_for_user"


def payment_extras(cfg: Config) -> tuple[LandingField, ...]:
    """The shop's own payment fields fraud carries into ``silver.transactions``: those of :data:`USED_ROLES`."""
    return configured_source(cfg, PAYMENTS.name).fields_of_role(*USED_ROLES)


def extra_features(fields: Sequence[LandingField]) -> tuple[Feature, ...]:
    """The features of a shop's own payment fields, in declaration order.

    A ``feature`` field is a ``payment`` feature named like the field: the payment's
    own value, known when it is made (null: 0, a boolean: 1 or 0). A ``category``
    field gives ``new_<field>_for_user``: the value is not among the user's earlier
    payments.
    """
    out = []
    for f in fields:
        if f.role == FEATURE:
            out.append(Feature(f.name, "payment", f"The shop's own payment field {f.name}. {f.doc}".strip(), of=f.name))
        elif f.role == CATEGORY:
            out.append(Feature(category_feature_name(f.name), "first_seen",
                               f"The shop's own field {f.name} has a value not among the user's earlier payments.", of=f.name))  # fmt: skip
    return tuple(out)


def configured_features(cfg: Config) -> tuple[Feature, ...]:
    """The built-in :data:`FEATURES` followed by those of the shop's own payment fields (:func:`extra_features`).

    Raises:
        shoplake.config.ConfigError: A shop's own field, or the feature it gives, takes
            the name of a built-in feature or a column of the fraud tables (the message
            names the key of ``landing.extra_fields``).
    """
    from shoplake.config import ConfigError

    fields = payment_extras(cfg)
    taken = {*FEATURE_NAMES, *TABLE_COLUMNS}
    declared = [f.name for f in cfg.landing.extra_fields.get(PAYMENTS.name, ())]
    for field, feature in zip(fields, extra_features(fields), strict=True):
        for name in dict.fromkeys((field.name, feature.name)):
            if name in taken:
                what = (
                    "a built-in fraud feature"
                    if name in FEATURE_NAMES
                    else "a column of the fraud tables"
                    if name in TABLE_COLUMNS
                    else "another field's feature"
                )
                gives = f" (its feature {name})" if name != field.name else ""
                raise ConfigError(
                    f"config key 'landing.extra_fields.{PAYMENTS.name}.{declared.index(field.name)}.name': the {field.role} field "
                    f"{field.name}{gives} clashes with {what} of that name; rename it"
                )
            taken.add(name)
    features = (*FEATURES, *extra_features(fields))
    check_features(features)
    return features


def configured_feature_names(cfg: Config) -> tuple[str, ...]:
    """Model input order under ``cfg``: :data:`FEATURE_NAMES`, then the shop's own features."""
    return tuple(f.name for f in configured_features(cfg))


def resolve_features(names: Sequence[str], cfg: Config) -> tuple[Feature, ...]:
    """The declarations of ``names`` (a model's inputs) under ``cfg``, in that order.

    Raises:
        KeyError: A name is neither built in nor given by a field of
            ``landing.extra_fields.payments`` (the message names it).
    """
    known = {f.name: f for f in configured_features(cfg)}
    missing = [n for n in names if n not in known]
    if missing:
        raise KeyError(f"feature(s) {', '.join(missing)} are neither built in nor given by a field of landing.extra_fields.{PAYMENTS.name}")
    return tuple(known[n] for n in names)
