"""Product categorization tables: the catalogue's encoder text (``gold.product_text``) and the predicted categories (``serving.product_categories``)."""

from __future__ import annotations

from shoplake import columns as C
from shoplake.lake.spec import Col, TableSpec
from shoplake.text.splits import RUN_DATE_COL

TASK_CATEGORIZATION = "categorization"

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
        RUN_DATE_COL,
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

SPECS = (PRODUCT_TEXT, PRODUCT_CATEGORIES)
