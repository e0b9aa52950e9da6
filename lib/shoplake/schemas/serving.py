"""Tables the platform serves from: batch scores written back to the lake."""

from __future__ import annotations

from shoplake.schemas import columns as C
from shoplake.schemas.spec import Col, TableSpec

RECOMMENDATIONS = TableSpec(
    name="recommendations",
    layer="serving",
    columns=(
        Col(C.USER_ID, "string", False, "Customer."),
        Col(C.RANK, "int", False, "1 = best."),
        Col(C.ITEM_ID, "string", False, "Recommended product."),
        Col(C.SCORE, "double", False, "The model's score (comparable within one user and model version)."),
        Col(C.RECOMMENDATION_REASON, "string", False, "Short explanation: 'bought X', 'popular in Y'."),
        Col(C.MODEL_NAME, "string", False, "Model family of the registered version."),
        Col(C.MODEL_VERSION, "string", False, "Registered model version (MLflow) that scored."),
        Col(C.RUN_DATE, "date", False, "Features date scored for."),
        Col(C.SCORED_AT, "timestamp", False, "When the scoring ran, UTC."),
    ),
    keys=(C.USER_ID, C.RANK, C.RUN_DATE),
    partition_by=(C.RUN_DATE,),
    description="Top-k recommendations per user and run date, written in one commit per run.",
)

SPECS = (RECOMMENDATIONS,)
