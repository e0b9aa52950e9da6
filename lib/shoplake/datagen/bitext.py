"""Adapter: Bitext customer-service utterances -> ``support_tickets`` landing files.

Data: "Bitext Sample Customer Service Training Dataset for Intent Detection" by Bitext
Innovations (https://github.com/bitext/customer-support-intent-detection-training-dataset),
licensed under the Community Data License Agreement - Sharing, Version 1.0
(CDLA-Sharing-1.0; the licence text ships with the data as ``LICENSE``). The landing
files this module writes are derived from it (ids, timestamps and resolutions are
added here); CDLA-Sharing asks that shared derived data keep the same agreement.

Input: ``<src>/Bitext_Sample_Customer_Service_{Training,Validation,Testing}_Dataset.csv``
with columns ``utterance, intent, entity_type, entity_value, start_offset, end_offset,
category, tags``. The utterances are curated examples, not real chat logs.

Mapping, one ticket per utterance:

- ``ticket_id``: ``bitext-<split>-<NNNNNN>``, split ``train``/``validation``/``test``
  and the 1-based row number within that split's file, so the split survives ingest
  and a model can be evaluated on exactly Bitext's held-out rows.
- ``text`` = utterance, ``intent`` = intent, ``channel`` = ``chat``, ``user_id`` null.
- ``order_id`` = entity_value where entity_type is ``order_id``, else null.
- ``resolution``: a short answer per intent from :data:`RESOLUTIONS`, with the
  utterance's entity filled in (``{order_id}``, ``{invoice_id}``, ...) or a generic
  phrase ("your order") when the utterance names none.
- ``created_ts``: the tickets of all splits, in the order train, validation, test,
  are dealt round-robin over ``days`` days from ``start``, so every day has a mix of
  intents and splits; the time of day comes from a CRC32 of the ticket id, stable
  across runs, platforms and library versions. One landing file per day.

Rows with a blank utterance are set aside and counted (the contract requires text);
the published files have none.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zlib
from pathlib import Path

import pandas as pd
import pyarrow as pa

from shoplake import columns as C
from shoplake.datagen.landing_writer import write_import_report, write_landing

log = logging.getLogger(__name__)

NAME = "bitext"
SOURCE = "support_tickets"
CHANNEL_CHAT = "chat"
DEFAULT_START = dt.date(2024, 1, 1)
DEFAULT_DAYS = 30

# Source column names (the Bitext CSV header).
SRC_UTTERANCE = "utterance"
SRC_INTENT = "intent"
SRC_ENTITY_TYPE = "entity_type"
SRC_ENTITY_VALUE = "entity_value"
SRC_COLUMNS = (SRC_UTTERANCE, SRC_INTENT, SRC_ENTITY_TYPE, SRC_ENTITY_VALUE)

# File-name marker -> split name used in ticket ids, in the order tickets are dealt.
SPLITS = {"Training": "train", "Validation": "validation", "Testing": "test"}
FILE_PATTERN = "Bitext_Sample_Customer_Service_{}_Dataset.csv"

# Bitext entity type whose value is an order number (a Bitext label, not a contract column).
ENTITY_ORDER_ID = "order_id"

REASON_BLANK_UTTERANCE = "blank_utterance"

# What each placeholder becomes: (text when the utterance names the entity, text when
# it does not). Keys are Bitext entity types.
_ENTITY_PHRASES = {
    ENTITY_ORDER_ID: ("order {}", "your order"),
    "invoice_id": ("invoice {}", "your invoice"),
    "refund_amount": ("your refund of {}", "your refund"),
    "account_type": ("your {} account", "your account"),
    # Only ever one entity per utterance, so a template can chain these two.
    "delivery_city": (" to {}", ""),
    "delivery_country": (" to {}", ""),
}

RESOLUTIONS: dict[str, str] = {
    "cancel_order": "I've cancelled {order_id}. You'll get a confirmation email, and any payment is refunded to the original method within 5 business days.",
    "change_order": "I've opened {order_id} for changes. Tell me which items or quantities to update; changes are possible until the order ships.",
    "place_order": "You can place an order by adding items to your basket and choosing Checkout. I can also take it here: which items would you like?",
    "track_order": "{order_id} has shipped. Use the tracking link in your dispatch email to follow it; delivery is expected within 3 business days.",
    "check_invoice": "You can view {invoice_id} under Account > Orders > Invoices. It lists every item, tax and delivery charge.",
    "get_invoice": "I've emailed {invoice_id} as a PDF to the address on your account. It can also be downloaded under Account > Invoices.",
    "check_payment_methods": "We accept credit and debit cards, digital wallets and bank transfer. All are shown at checkout.",
    "payment_issue": "Sorry the payment didn't go through. Please check the card details and billing address, or try another method; no money was taken for a failed payment.",
    "check_refund_policy": "Items can be returned within 30 days of delivery for a full refund to the original payment method.",
    "get_refund": "I've started {refund_amount}. It will reach your original payment method within 5-10 business days.",
    "track_refund": "We issued {refund_amount}; it should appear on your statement within 5-10 business days of the return being received.",
    "check_cancellation_fee": "Cancelling before the order ships is free; after dispatch, return shipping may be charged as set out in our terms.",
    "create_account": "You can create {account_type} under Sign up with your email and a password. A confirmation link is sent to your inbox.",
    "delete_account": "I've submitted a request to close {account_type}. You'll receive an email to confirm; your data is then deleted within 30 days.",
    "edit_account": "You can update {account_type} under Account > Profile. Changes to your email need to be confirmed from the new address.",
    "recover_password": "Use 'Forgot password' on the sign-in page and we'll email you a reset link, valid for 24 hours.",
    "registration_problems": "Sorry you're having trouble signing up. Please check that the email isn't already registered and that the password meets the rules; I can also register you here.",
    "switch_account": "I've switched you to {account_type}. The change applies from your next billing period.",
    "delivery_options": "We offer standard (3-5 days), express (1-2 days) and pickup-point delivery{delivery_city}{delivery_country}; the options for your address and their prices are shown at checkout.",
    "delivery_period": "Standard delivery takes 3-5 business days and express 1-2 business days from dispatch.",
    "change_shipping_address": "I've updated the shipping address on your account. Orders that have already shipped keep the old address.",
    "set_up_shipping_address": "You can add a shipping address under Account > Addresses, or enter a new one at checkout.",
    "contact_customer_service": "Our customer service team is available by chat and email every day from 8am to 8pm, and we usually reply within a few hours.",
    "contact_human_agent": "I'm transferring you to a human agent now; please stay in the chat, the typical wait is under five minutes.",
    "complaint": "I'm sorry about your experience. I've logged a complaint and a team member will contact you within 2 business days.",
    "review": "Thank you for your feedback! You can also leave a review on the product page; it helps other customers.",
    "newsletter_subscription": "You're subscribed to our newsletter. You can unsubscribe at any time from the link at the bottom of each email.",
}


class _Phrases(dict):
    """Placeholder values for one ticket: its entity, or a generic phrase for the rest."""

    def __missing__(self, key: str) -> str:
        return _ENTITY_PHRASES[key][1]


def render_resolution(intent: str, entity_type: str | None = None, entity_value: str | None = None) -> str | None:
    """The template answer for an intent, with the utterance's entity filled in.

    Args:
        intent: A Bitext intent name, e.g. ``cancel_order``.
        entity_type: The utterance's entity type (``order_id``, ``invoice_id``, ...), if any.
        entity_value: The entity's text, if any.

    Returns:
        The answer, or ``None`` for an intent without a template.
    """
    template = RESOLUTIONS.get(intent)
    if template is None:
        return None
    phrases = _Phrases()
    if entity_type in _ENTITY_PHRASES and entity_value:
        phrases[entity_type] = _ENTITY_PHRASES[entity_type][0].format(entity_value)
    return template.format_map(phrases)


def _read_split(path: Path, split: str) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in SRC_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"bitext: {path} lacks columns {missing}")
    frame = frame[list(SRC_COLUMNS)].copy()
    frame[C.TICKET_ID] = [f"bitext-{split}-{i:06d}" for i in range(1, len(frame) + 1)]
    frame["_split"] = split
    return frame


def import_bitext(
    src: str | Path,
    out: str | Path,
    *,
    start: dt.date | str = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    fmt: str = "csv",
) -> dict:
    """Turn the Bitext train/validation/test files into ``support_tickets`` landing files.

    The mapping is in the module docstring. Deterministic: the same input and
    arguments give byte-identical files.

    Args:
        src: Folder holding the three Bitext CSV files.
        out: Landing root; files go to ``<out>/support_tickets/<day>.csv`` and the report
            to ``<out>/_import_report_bitext.json``.
        start: First ticket day.
        days: Number of days the tickets are spread over; one file per day.
        fmt: Landing format, ``csv`` (default), ``jsonl`` or ``parquet``.

    Returns:
        The import report: ``rows_read`` (total and ``rows_read_per_split``),
        ``rows_written`` per landing source, ``rows_set_aside`` per reason,
        ``days_written``, ``intents`` (count per intent) and
        ``tickets_with_order_id``.

    Raises:
        FileNotFoundError: One of the three split files is missing.
        ValueError: ``days`` < 1, or a file lacks a column (named).
    """
    began = time.perf_counter()
    if days < 1:
        raise ValueError(f"bitext: days must be >= 1, got {days}")
    src, out = Path(src), Path(out)
    first_day = start if isinstance(start, dt.date) else dt.date.fromisoformat(str(start))

    frames = []
    for marker, split in SPLITS.items():
        path = src / FILE_PATTERN.format(marker)
        if not path.is_file():
            raise FileNotFoundError(f"bitext: missing {split} file {path}")
        frames.append(_read_split(path, split))
    rows = pd.concat(frames, ignore_index=True)
    read_per_split = rows["_split"].value_counts()

    blank = rows[SRC_UTTERANCE].str.strip() == ""
    tickets = rows[~blank].copy()
    # Deal by position in the combined file order (blank rows included) so a set-aside
    # row does not shift every later ticket to another day.
    position = pd.Series(range(len(rows)), index=rows.index)[~blank]
    seconds = tickets[C.TICKET_ID].map(lambda t: zlib.crc32(t.encode()) % 86_400)
    tickets["_day_index"] = position % days
    tickets[C.CREATED_TS] = (
        pd.Timestamp(first_day, tz="UTC") + pd.to_timedelta(tickets["_day_index"], unit="D") + pd.to_timedelta(seconds, unit="s")
    )
    tickets[C.TEXT] = tickets[SRC_UTTERANCE]
    tickets[C.INTENT] = tickets[SRC_INTENT].str.strip().where(lambda s: s != "", None)
    is_order = tickets[SRC_ENTITY_TYPE] == ENTITY_ORDER_ID
    tickets[C.ORDER_ID] = tickets[SRC_ENTITY_VALUE].where(is_order & (tickets[SRC_ENTITY_VALUE] != ""), None)
    tickets[C.RESOLUTION] = [
        render_resolution(i, t, v) for i, t, v in zip(tickets[SRC_INTENT], tickets[SRC_ENTITY_TYPE], tickets[SRC_ENTITY_VALUE], strict=True)
    ]
    tickets = tickets.sort_values([C.CREATED_TS, C.TICKET_ID], kind="stable")

    by_day = dict(tuple(tickets.groupby("_day_index", sort=True)))
    for k in range(days):
        day_rows = by_day.get(k, tickets.iloc[0:0])
        table = pa.table(
            {
                C.TICKET_ID: pa.array(day_rows[C.TICKET_ID], pa.string()),
                C.ORDER_ID: pa.array(day_rows[C.ORDER_ID], pa.string()),
                C.CHANNEL: pa.array([CHANNEL_CHAT] * len(day_rows), pa.string()),
                C.TEXT: pa.array(day_rows[C.TEXT], pa.string()),
                C.INTENT: pa.array(day_rows[C.INTENT], pa.string()),
                C.RESOLUTION: pa.array(day_rows[C.RESOLUTION], pa.string()),
                C.CREATED_TS: pa.array(day_rows[C.CREATED_TS], pa.timestamp("us", tz="UTC")),
            }
        )
        write_landing(table, out, SOURCE, first_day + dt.timedelta(days=k), fmt)

    intents = tickets[C.INTENT].value_counts()
    report = {
        "dataset": NAME,
        "src": str(src),
        "rows_read": int(len(rows)),
        "rows_read_per_split": {s: int(read_per_split.get(s, 0)) for s in SPLITS.values()},
        "rows_written": {SOURCE: int(len(tickets))},
        "rows_set_aside": {REASON_BLANK_UTTERANCE: int(blank.sum())},
        "days_written": days,
        "first_day": first_day.isoformat(),
        "last_day": (first_day + dt.timedelta(days=days - 1)).isoformat(),
        "intents": {str(k): int(intents[k]) for k in sorted(intents.index)},
        "intents_without_resolution": sorted(set(intents.index) - set(RESOLUTIONS)),
        "tickets_with_order_id": int(tickets[C.ORDER_ID].notna().sum()),
        "format": fmt,
    }
    write_import_report(NAME, report, out)
    log.info(
        "bitext: %d utterances read %s -> %d support tickets over %d days from %s, %d set aside, in %.1fs",
        report["rows_read"],
        report["rows_read_per_split"],
        len(tickets),
        days,
        report["first_day"],
        int(blank.sum()),
        time.perf_counter() - began,
    )
    return report
