"""Text tables: customer messages for the support models, product text for categorization.

All three are partitioned by ``run_date`` like the other feature tables: the partition
of day D is built from bronze partitions of landing days before D and from rows
timestamped before D's midnight (UTC). Each row carries a ``split`` (train, validation
or test) that stays the same from one run date to the next, so a model trained on one
snapshot is never evaluated on a row it was trained on in another.

``serving.product_categories`` holds, per run date, the registered categorizer's
category for every product of ``gold.product_text``, and flags the products whose
given category it confidently disagrees with.
"""

from __future__ import annotations

from shoplake.schemas import columns as C
from shoplake.schemas.spec import Col, TableSpec

#: Values of ``split``.
TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)

_RUN_DATE = Col(
    C.RUN_DATE, "date", False, "The day the table is built for; only data before its midnight (UTC) is used."
)
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
        _RUN_DATE,
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
        _RUN_DATE,
    ),
    keys=(C.TICKET_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "The labelled messages of silver.support_tickets (intent not null): intent training examples and the "
        "answers retrieved by intent and text similarity."
    ),
)

PRODUCT_TEXT = TableSpec(
    name="product_text",
    layer="gold",
    columns=(
        Col(C.ITEM_ID, "string", False, "Product."),
        Col(C.TITLE, "string", False, "Title of the version in effect at run_date, whitespace normalised."),
        Col(C.DESCRIPTION, "string", True, "Its description, whitespace normalised; null when blank."),
        Col(C.BRAND, "string", True, "Its brand; null when blank."),
        Col(C.CATEGORY, "string", True, "Its category; null when blank or absent (the label to learn)."),
        Col(
            C.TEXT,
            "string",
            False,
            "The encoder input: the title, then '. ' and the description when there is one that differs from it.",
        ),
        Col(
            C.SPLIT,
            "string",
            False,
            "train, validation or test from a hash of item_id (80/10/10), the same on every run date.",
        ),
        _RUN_DATE,
    ),
    keys=(C.ITEM_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "Per product the version in effect at run_date (the latest updated_at before its midnight, latest "
        "ingested copy): title, description, brand, category and the text the encoder reads."
    ),
)

PRODUCT_CATEGORIES = TableSpec(
    name="product_categories",
    layer="serving",
    columns=(
        Col(C.ITEM_ID, "string", False, "Product."),
        Col(C.TITLE, "string", False, "Its title in gold.product_text."),
        Col(C.GIVEN_CATEGORY, "string", True, "Its category in gold.product_text; null when it has none."),
        Col(C.PREDICTED_CATEGORY, "string", False, "The most probable category for its text."),
        Col(C.CONFIDENCE, "double", False, "Probability of the predicted category."),
        Col(C.SECOND_CATEGORY, "string", True, "The second most probable category; null for a model of one category."),
        Col(C.SECOND_CONFIDENCE, "double", True, "Its probability; null with second_category."),
        Col(
            C.DISAGREES,
            "boolean",
            False,
            "The given category is set, differs from the prediction, and the confidence is at least the model's "
            "disagreement threshold (categorization.disagreement_confidence when it was trained).",
        ),
        Col(C.MODEL_NAME, "string", False, "Model family of the registered version (tfidf_lr, frozen_lr or fine_tuned)."),
        Col(C.MODEL_VERSION, "string", False, "Registered model version (MLflow) that predicted."),
        Col(C.RUN_DATE, "date", False, "Run date of the gold.product_text partition categorized."),
        Col(C.SCORED_AT, "timestamp", False, "When the categorization ran, UTC."),
    ),
    keys=(C.ITEM_ID, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description=(
        "Predicted category of every product of gold.product_text, the runner-up, and a flag on confident "
        "disagreements with the given category; one commit per run date."
    ),
)

SPECS = (SUPPORT_TICKETS, SUPPORT_TRAINING, PRODUCT_TEXT, PRODUCT_CATEGORIES)
