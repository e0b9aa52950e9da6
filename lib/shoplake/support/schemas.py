"""Customer-service tables: support messages as known before D, and the labelled ones with their resolutions.

Partitioned by ``run_date`` like the other feature tables; each row has a stable
train/validation/test split.
"""

from __future__ import annotations

from shoplake import columns as C
from shoplake.lake.spec import Col, TableSpec
from shoplake.text.splits import RUN_DATE_COL

TASK_SUPPORT = "support"

_TICKET_SPLIT = Col(
    C.SPLIT,
    "string",
    False,
    "train, validation or test: Bitext's own split for a bitext-<split>-<n> ticket id, else from a hash of the "
    "ticket id (80/10/10), the same on every run date.",
)

SUPPORT_TICKETS = TableSpec(
    name="support_tickets",
    layer="silver",
    columns=(
        Col(C.TICKET_ID, "string", False, "Ticket."),
        Col(C.USER_ID, "string", True, "Customer, when known."),
        Col(C.ORDER_ID, "string", True, "Order the message is about, when known."),
        Col(C.CHANNEL, "string", True, "email, chat, phone, ..."),
        Col(C.TEXT, "string", False, "The customer's message, whitespace runs collapsed to one space and trimmed."),
        Col(C.INTENT, "string", True, "Intent label an agent set; null when unlabelled."),
        Col(C.RESOLUTION, "string", True, "The answer or action that resolved it; null when none was recorded."),
        Col(C.CREATED_TS, "timestamp", False, "When the message arrived, UTC; before run_date."),
        _TICKET_SPLIT,
        RUN_DATE_COL,
    ),
    keys=(C.TICKET_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "Support messages created before run_date, one row per ticket id (the latest ingested copy), text "
        "normalised; messages whose text is blank are left out."
    ),
)

SUPPORT_TRAINING = TableSpec(
    name="support_training",
    layer="gold",
    columns=(
        Col(C.TICKET_ID, "string", False, "Ticket."),
        Col(C.TEXT, "string", False, "The customer's message (normalised as in silver.support_tickets)."),
        Col(C.INTENT, "string", False, "Intent label an agent set."),
        Col(C.RESOLUTION, "string", True, "The answer or action that resolved it; answers are retrieved from here."),
        Col(C.ORDER_ID, "string", True, "Order the message is about, when known."),
        _TICKET_SPLIT,
        RUN_DATE_COL,
    ),
    keys=(C.TICKET_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "The labelled messages of silver.support_tickets (intent not null): intent training examples and the "
        "answers retrieved by intent and text similarity."
    ),
)

SPECS = (SUPPORT_TICKETS, SUPPORT_TRAINING)
