"""The landing contract: what a shop drops each day, per source.

Files live at ``<landing_root>/<source>/<YYYY-MM-DD>.<ext>`` where ``ext`` is one of
:data:`FILE_EXTENSIONS` (CSV with a header row, JSON lines, or Parquet; CSV and JSON
lines may be gzip-compressed). Every source has a file for every day, possibly with
no rows (``landing.missing_day: empty`` reads a missing one as a day without rows).
Several days may come in one file named ``<first day>_<last day>.<ext>``: each row
then belongs to the day of its :attr:`LandingSource.day_field`. Timestamps are UTC
(ISO 8601, e.g. ``2024-03-01T13:45:00Z`` or ``2024-03-01 13:45:00``).

Each field has a type, whether it is required, and optional checks written as Spark
SQL conditions that a valid row satisfies. Ingest quarantines a row that fails any of
them and records which field failed and why.

A shop may declare fields of its own beyond the contract (``landing.extra_fields``):
each :class:`ExtraField` has a name, a type and a role (:data:`EXTRA_ROLES`) that tells
the use cases what it is for. :func:`with_extra_fields` gives the contract grown by
them: ingest then reads, types, checks and keeps them in bronze like the contract's own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from shoplake import columns as C
from shoplake.evaluation import TEST, TRAIN, VALIDATION
from shoplake.lake.spec import Col, is_known_dtype

if TYPE_CHECKING:
    from shoplake.config import Config

FILE_EXTENSIONS = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".json", ".parquet")

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "search")
ORDER_STATUSES = ("placed", "cancelled", "returned")
PLACED, CANCELLED, RETURNED = ORDER_STATUSES
AD_EVENT_TYPES = ("impression", "click", "conversion")
PAYMENT_METHODS = ("card", "wallet", "bank_transfer")


@dataclass(frozen=True)
class Check:
    """A rule a valid row satisfies.

    Attributes:
        field: The field the rule is about (named in the quarantine reason).
        condition: Spark SQL boolean over the typed columns; true (or null) means valid.
        message: Why the row is rejected when the condition is false.
    """

    field: str
    condition: str
    message: str


@dataclass(frozen=True)
class LandingField:
    """One field of a landing file."""

    name: str
    dtype: str
    required: bool = False
    doc: str = ""
    #: None for a contract field; the declared role (:data:`EXTRA_ROLES`) of a shop's own field.
    role: str | None = None

    def __post_init__(self) -> None:
        if not is_known_dtype(self.dtype):
            raise ValueError(f"landing field {self.name!r}: unknown type {self.dtype!r}")

    def as_col(self) -> Col:
        # A shop's own field is nullable in bronze even when required (empty values are
        # still quarantined): a table that existed before it was declared can then grow it.
        return Col(self.name, self.dtype, nullable=not self.required or self.role is not None, doc=self.doc)


@dataclass(frozen=True)
class LandingSource:
    """The contract of one landing source."""

    name: str
    fields: tuple[LandingField, ...]
    keys: tuple[str, ...]
    checks: tuple[Check, ...] = ()
    description: str = ""
    #: The date or timestamp that places a row of a several-day file on its day.
    day_field: str = ""

    def __post_init__(self) -> None:
        if self.day_field not in self.field_names or next(f for f in self.fields if f.name == self.day_field).dtype not in (
            "date", "timestamp"
        ):  # fmt: skip
            raise ValueError(f"landing source {self.name!r}: day_field {self.day_field!r} must name a date or timestamp field")

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    @property
    def extra_fields(self) -> tuple[LandingField, ...]:
        """The shop's own fields added by :func:`with_extra_fields`, in declaration order."""
        return tuple(f for f in self.fields if f.role is not None)

    def fields_of_role(self, *roles: str) -> tuple[LandingField, ...]:
        """The shop's own fields whose role is one of ``roles``."""
        return tuple(f for f in self.extra_fields if f.role in roles)


def _one_of(field: str, values: tuple[str, ...]) -> Check:
    quoted = ", ".join(f"'{v}'" for v in values)
    return Check(field, f"{field} IN ({quoted})", f"unknown value, expected one of {', '.join(values)}")


def _at_least(field: str, low: float, strict: bool = False) -> Check:
    op = ">" if strict else ">="
    return Check(field, f"{field} {op} {low}", f"must be {op} {low}")


F = LandingField

#: The values of the optional ``split`` field of the text sources.
TEXT_SPLITS = (TRAIN, VALIDATION, TEST)


def _split_field(what: str) -> LandingField:
    return F(C.SPLIT, "string", False, f"train, validation or test: the shop's own split of the {what} for the text models; "
             "empty: a stable hash of the id decides.")  # fmt: skip


ORDERS = LandingSource(
    name="orders",
    day_field=C.ORDER_TS,
    description="One row per order line. Cancellations and returns repeat the line with their status.",
    keys=(C.ORDER_ID, C.LINE_NUMBER, C.STATUS),
    fields=(
        F(C.ORDER_ID, "string", True, "Order (invoice) number."),
        F(C.LINE_NUMBER, "int", True, "Line within the order, from 1."),
        F(C.USER_ID, "string", False, "Customer; empty for guest checkouts."),
        F(C.ITEM_ID, "string", True, "Product (stock code)."),
        F(C.QUANTITY, "int", True, "Units, positive; a cancellation states the units cancelled."),
        F(C.UNIT_PRICE, "double", True, "Price per unit paid, in the shop's currency."),
        F(C.ORDER_TS, "timestamp", True, "When the order (or its cancellation) happened, UTC."),
        F(C.STATUS, "string", True, "placed, cancelled or returned."),
        F(C.COUNTRY, "string", False, "Customer's country."),
    ),
    checks=(
        _at_least(C.LINE_NUMBER, 1),
        _at_least(C.QUANTITY, 0, strict=True),
        _at_least(C.UNIT_PRICE, 0),
        _one_of(C.STATUS, ORDER_STATUSES),
    ),
)

EVENTS = LandingSource(
    name="events",
    day_field=C.EVENT_TS,
    description="Clickstream: views, clicks, add-to-carts, purchases and searches.",
    keys=(C.EVENT_ID,),
    fields=(
        F(C.EVENT_ID, "string", True, "Unique event id."),
        F(C.USER_ID, "string", True, "Customer or anonymous visitor id."),
        F(C.SESSION_ID, "string", False, "Browsing session."),
        F(C.EVENT_TYPE, "string", True, "view, click, add_to_cart, purchase or search."),
        F(C.ITEM_ID, "string", False, "Product; required unless the event is a search."),
        F(C.QUERY, "string", False, "Search text, for search events."),
        F(C.EVENT_TS, "timestamp", True, "When it happened, UTC."),
    ),
    checks=(
        _one_of(C.EVENT_TYPE, EVENT_TYPES),
        Check(C.ITEM_ID, f"{C.EVENT_TYPE} = 'search' OR {C.ITEM_ID} IS NOT NULL", "required unless event_type is search"),
    ),
)

PRODUCTS = LandingSource(
    name="products",
    day_field=C.UPDATED_AT,
    description="Catalogue rows for products that are new or changed that day (the full catalogue on the first day).",
    keys=(C.ITEM_ID, C.UPDATED_AT),
    fields=(
        F(C.ITEM_ID, "string", True, "Product id."),
        F(C.TITLE, "string", True, "Product title."),
        F(C.DESCRIPTION, "string", False, "Free-text description."),
        F(C.CATEGORY, "string", False, "Category; empty when the shop has none."),
        F(C.BRAND, "string", False, "Brand."),
        F(C.PRICE, "double", False, "List price; empty when unknown."),
        F(C.ON_PROMOTION, "boolean", False, "Whether the product is on promotion from updated_at."),
        F(C.UPDATED_AT, "timestamp", True, "When this version of the product row took effect, UTC."),
        _split_field("product"),
    ),
    checks=(
        _at_least(C.PRICE, 0),
        Check(C.TITLE, f"length(trim({C.TITLE})) > 0", "must not be blank"),
        _one_of(C.SPLIT, TEXT_SPLITS),
    ),
)

PAYMENTS = LandingSource(
    name="payments",
    day_field=C.PAYMENT_TS,
    description="Payment attempts for orders, with the card, device and network they came from.",
    keys=(C.PAYMENT_ID,),
    fields=(
        F(C.PAYMENT_ID, "string", True, "Unique payment id."),
        F(C.ORDER_ID, "string", True, "The order paid."),
        F(C.USER_ID, "string", True, "Paying customer."),
        F(C.AMOUNT, "double", True, "Amount charged."),
        F(C.CURRENCY, "string", False, "ISO currency code."),
        F(C.PAYMENT_METHOD, "string", False, "card, wallet or bank_transfer."),
        F(C.CARD_ID, "string", True, "Fingerprint of the card or wallet (never the number)."),
        F(C.DEVICE_ID, "string", False, "Device fingerprint."),
        F(C.IP_ADDRESS, "string", False, "Client IP address."),
        F(C.BILLING_COUNTRY, "string", False, "Billing country."),
        F(C.SHIPPING_COUNTRY, "string", False, "Shipping country."),
        F(C.PAYMENT_TS, "timestamp", True, "When the payment was made, UTC."),
    ),
    checks=(
        _at_least(C.AMOUNT, 0, strict=True),
        _one_of(C.PAYMENT_METHOD, PAYMENT_METHODS),
    ),
)

CHARGEBACKS = LandingSource(
    name="chargebacks",
    day_field=C.CHARGEBACK_TS,
    description="Chargebacks reported by the payment provider, days or weeks after the payment.",
    keys=(C.CHARGEBACK_ID,),
    fields=(
        F(C.CHARGEBACK_ID, "string", True, "Unique chargeback id."),
        F(C.PAYMENT_ID, "string", True, "The disputed payment."),
        F(C.REASON_CODE, "string", False, "Provider's reason (fraud, not_received, ...)."),
        F(C.AMOUNT, "double", True, "Amount charged back."),
        F(C.CHARGEBACK_TS, "timestamp", True, "When the chargeback was reported, UTC."),
    ),
    checks=(_at_least(C.AMOUNT, 0),),
)

AD_EVENTS = LandingSource(
    name="ad_events",
    day_field=C.EVENT_TS,
    description="Sponsored-product ad impressions, clicks and conversions with their cost.",
    keys=(C.AD_EVENT_ID,),
    fields=(
        F(C.AD_EVENT_ID, "string", True, "Unique ad event id."),
        F(C.IMPRESSION_ID, "string", True, "The impression this event belongs to."),
        F(C.EVENT_TYPE, "string", True, "impression, click or conversion."),
        F(C.USER_ID, "string", False, "Viewer, when known."),
        F(C.ITEM_ID, "string", True, "Advertised product."),
        F(C.CAMPAIGN_ID, "string", True, "Campaign."),
        F(C.PLACEMENT, "string", True, "Where the ad was shown (search_top, home_banner, product_page, ...)."),
        F(C.POSITION, "int", False, "Slot within the placement, from 1 (the top)."),
        F(
            C.PROPENSITY,
            "double",
            False,
            "Probability with which the shop's ad policy chose this ad for this slot; "
            "empty: the ads use case estimates it from the logged choices.",
        ),
        F(C.COST, "double", False, "Cost charged for this event."),
        F(C.EVENT_TS, "timestamp", True, "When it happened, UTC."),
    ),
    checks=(
        _one_of(C.EVENT_TYPE, AD_EVENT_TYPES),
        _at_least(C.COST, 0),
        _at_least(C.POSITION, 1),
        Check(C.PROPENSITY, f"{C.PROPENSITY} > 0 AND {C.PROPENSITY} <= 1", "must be in (0, 1]"),
    ),
)

SUPPORT_TICKETS = LandingSource(
    name="support_tickets",
    day_field=C.CREATED_TS,
    description="Customer messages to support, with the intent and resolution where an agent recorded them.",
    keys=(C.TICKET_ID,),
    fields=(
        F(C.TICKET_ID, "string", True, "Unique ticket id."),
        F(C.USER_ID, "string", False, "Customer, when known."),
        F(C.ORDER_ID, "string", False, "Order the message is about, when known."),
        F(C.CHANNEL, "string", False, "email, chat, phone, ..."),
        F(C.TEXT, "string", True, "The customer's message."),
        F(C.INTENT, "string", False, "Intent label, when an agent set one."),
        F(C.RESOLUTION, "string", False, "The answer or action that resolved it."),
        F(C.CREATED_TS, "timestamp", True, "When the message arrived, UTC."),
        _split_field("ticket"),
    ),
    checks=(Check(C.TEXT, f"length(trim({C.TEXT})) > 0", "must not be blank"), _one_of(C.SPLIT, TEXT_SPLITS)),
)

INVENTORY = LandingSource(
    name="inventory",
    day_field=C.SNAPSHOT_DATE,
    description="End-of-day stock position per product.",
    keys=(C.SNAPSHOT_DATE, C.ITEM_ID),
    fields=(
        F(C.SNAPSHOT_DATE, "date", True, "Day of the stock position."),
        F(C.ITEM_ID, "string", True, "Product."),
        F(C.ON_HAND, "int", True, "Units in stock."),
        F(C.ON_ORDER, "int", False, "Units ordered from the supplier, not yet received."),
        F(C.LEAD_TIME_DAYS, "int", False, "Supplier lead time in days."),
        F(C.UNIT_COST, "double", False, "Purchase cost per unit."),
    ),
    checks=(
        _at_least(C.ON_HAND, 0),
        _at_least(C.ON_ORDER, 0),
        _at_least(C.LEAD_TIME_DAYS, 0),
        _at_least(C.UNIT_COST, 0),
    ),
)

SOURCES: dict[str, LandingSource] = {
    s.name: s for s in (ORDERS, EVENTS, PRODUCTS, PAYMENTS, CHARGEBACKS, AD_EVENTS, SUPPORT_TICKETS, INVENTORY)
}


# ---------------------------------------------------------------------------------------------
# A shop's own fields
# ---------------------------------------------------------------------------------------------

#: Roles of a shop's own field: a numeric model input, a categorical one, an identifier
#: (kept, never a model input), or a field only kept in bronze.
FEATURE, CATEGORY, ID, IGNORE = "feature", "category", "id", "ignore"
EXTRA_ROLES = (FEATURE, CATEGORY, ID, IGNORE)
#: Types a shop's own field may have, per role (a feature is read by models as a number).
NUMBER_TYPES = ("int", "long", "float", "double")
NUMERIC_TYPES = (*NUMBER_TYPES, "boolean")
ROLE_TYPES: dict[str, tuple[str, ...]] = {
    FEATURE: NUMERIC_TYPES,
    CATEGORY: ("string", "int", "long", "boolean"),
    ID: ("string", "int", "long"),
    IGNORE: ("string", "int", "long", "float", "double", "boolean", "date", "timestamp"),
}
#: A field name: a letter, then letters, digits or underscores (names starting with ``_``
#: are ingest's own: lineage, reasons, raw records).
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: Columns every bronze table has besides the contract's fields.
RESERVED_NAMES = (C.RUN_DATE, C.SOURCE_FILE, C.ROW_NUMBER, C.INGESTED_AT, C.REASON, C.RAW_RECORD)


@dataclass(frozen=True)
class ExtraField:
    """A field a shop declares beyond a source's contract.

    Attributes:
        name: Column name in the landing files and in bronze.
        dtype: One of the types :data:`ROLE_TYPES` allows for ``role``.
        role: One of :data:`EXTRA_ROLES`.
        required: A row without a value is quarantined.
        description: What it means (shown with the table's columns).
        min: Smallest valid value (numbers; a row below it is quarantined).
        max: Largest valid value.
        values: The valid values (strings; a row with another is quarantined).
    """

    name: str
    dtype: str
    role: str
    required: bool = False
    description: str = ""
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()


def extra_field_problem(source: LandingSource, field: ExtraField) -> tuple[str, str] | None:
    """Why ``field`` cannot be added to ``source``'s contract: ``(the declaration's key at fault, why)``, or None."""
    if not FIELD_NAME.match(field.name):
        return "name", f"{field.name!r} must start with a letter and hold only letters, digits and underscores"
    if field.name in source.field_names:
        return "name", f"{field.name!r} is a field of the {source.name} contract"
    if field.name in RESERVED_NAMES:
        return "name", f"{field.name!r} is a column ingest adds to every bronze table"
    if field.role not in EXTRA_ROLES:
        return "role", f"unknown role {field.role!r}; known: {', '.join(EXTRA_ROLES)}"
    if field.dtype not in ROLE_TYPES[field.role]:
        return "type", f"a {field.role} field is one of {', '.join(ROLE_TYPES[field.role])}, not {field.dtype!r}"
    if (field.min is not None or field.max is not None) and field.dtype not in NUMBER_TYPES:
        return "min" if field.min is not None else "max", f"min and max are for numbers, not a {field.dtype} field"
    if field.min is not None and field.max is not None and field.min > field.max:
        return "min", f"min {field.min} is above max {field.max}"
    if field.values and field.dtype != "string":
        return "values", f"values are for string fields, not a {field.dtype} field"
    return None


def _number(value: float) -> str:
    """A bound as written in a check and its message: ``1`` rather than ``1.0``, every digit kept."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _checks_of(field: ExtraField) -> tuple[Check, ...]:
    checks = []
    if field.min is not None:
        checks.append(Check(field.name, f"{field.name} >= {_number(field.min)}", f"must be >= {_number(field.min)}"))
    if field.max is not None:
        checks.append(Check(field.name, f"{field.name} <= {_number(field.max)}", f"must be <= {_number(field.max)}"))
    if field.values:
        # Escaped: the values are the shop's text inside a Spark SQL literal.
        quoted = ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in field.values)
        checks.append(Check(field.name, f"{field.name} IN ({quoted})", f"unknown value, expected one of {', '.join(field.values)}"))
    return tuple(checks)


def with_extra_fields(source: LandingSource, fields: Sequence[ExtraField]) -> LandingSource:
    """``source``'s contract grown by a shop's own fields (the contract itself when there are none).

    Raises:
        ValueError: A field clashes with the contract, another field or a bronze
            column, or its type does not suit its role (the message names it).
    """
    if not fields:
        return source
    seen: set[str] = set()
    added = []
    for field in fields:
        problem = extra_field_problem(source, field)
        if problem is None and field.name in seen:
            problem = "name", f"{field.name!r} is declared twice"
        if problem:
            raise ValueError(f"{source.name} field {field.name!r}, {problem[0]}: {problem[1]}")
        seen.add(field.name)
        doc = field.description or f"The shop's own {field.role} field."
        added.append(LandingField(field.name, field.dtype, field.required, doc, role=field.role))
    checks = tuple(c for field in fields for c in _checks_of(field))
    return replace(source, fields=(*source.fields, *added), checks=(*source.checks, *checks))


def get_source(name: str) -> LandingSource:
    """The contract of a landing source by name; a clear error for an unknown one."""
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown landing source {name!r}; known: {', '.join(SOURCES)}") from None


def configured_source(cfg: Config, name: str) -> LandingSource:
    """The contract of a landing source grown by the fields ``landing.extra_fields`` declares for it."""
    return with_extra_fields(get_source(name), cfg.landing.extra_fields_of(name))
