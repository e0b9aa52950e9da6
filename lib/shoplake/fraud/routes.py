"""``POST /fraud/score``: one payment's fraud score, decision and reasons over HTTP."""

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from shoplake.fraud.serve import FraudScorer, PaymentIn
from shoplake.serve.http import Holder, OnlyParams

router = APIRouter()
#: The documented body: the built-in fields (a shop's own declared ones come beside them).
_BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {"schema": PaymentIn.model_json_schema()}}}}


@router.post("/fraud/score", dependencies=[Depends(OnlyParams())], openapi_extra=_BODY_SCHEMA)
async def fraud_score(
    body: dict[str, Any] = Body(..., description="One payment: the fields of PaymentIn and the shop's own declared payment fields."),
    scorer: FraudScorer = Depends(Holder("fraud")),
) -> dict:
    # The body's fields depend on the configuration and on the served model (the shop's own
    # fields), so the scorer validates it; its errors read like FastAPI's own.
    try:
        payment = scorer.parse(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    # On the replica's event loop rather than a worker thread: scoring takes about a millisecond,
    # less than the hand-over to a thread and back.
    try:
        return scorer.score(payment)
    except RuntimeError as exc:
        raise HTTPException(status_code=503, detail=f"fraud scoring is not available: {exc}") from None
